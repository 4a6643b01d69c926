"""The store is single-writer and the published warehouse is swapped in whole."""

import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pytest

from jc_pipeline.lib.paths import DataLayout, UnsafePathError
from jc_pipeline.lib.warehouse import (MEMORY_LIMIT_ENV, PUBLISHED_TABLES, Store, ensure_contract_schema,
                                      open_published, transaction)


def _fill(store: Store, value: float) -> None:
    with store.connect() as con:
        ensure_contract_schema(con)
        con.execute("DELETE FROM agency_metrics")
        con.execute(
            "INSERT INTO agency_metrics VALUES ('US_XX','A1','JAILS','JAILS_TOTAL_POPULATION','MONTHLY',"
            "DATE '2024-01-01', DATE '2024-02-01', NULL, NULL, ?, false, 'f1', 'population', 2)",
            [value],
        )


def _publish(store: Store, target: Path) -> dict[str, int]:
    return store.publish(target, PUBLISHED_TABLES, prepare=ensure_contract_schema, finish=lambda con: None)


def test_a_commit_that_fails_raises_its_own_error_not_the_rollback_s():
    """helper-49: a COMMIT that failed (the disk full) ends the transaction, and the ROLLBACK after it raised "cannot
    rollback - no transaction is active", which hid why: every full disk read as that."""
    shared = duckdb.connect(":memory:commit_fails")
    shared.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
    first, second = shared.cursor(), shared.cursor()
    # Two transactions insert the same key: the second's COMMIT is refused, as a full disk refuses one.
    with pytest.raises(duckdb.TransactionException, match="Failed to commit: PRIMARY KEY"), transaction(second):
        with transaction(first):
            first.execute("INSERT INTO t VALUES (1)")
            second.execute("INSERT INTO t VALUES (1)")
    assert second.execute("SELECT count(*) FROM t").fetchall() == [(1,)]  # usable again: no transaction left open


def test_publish_copies_every_published_table_with_comments(tmp_path):
    store = Store(tmp_path / "pipeline" / "store.duckdb")
    _fill(store, 10.0)
    target = tmp_path / "warehouse.duckdb"
    counts = _publish(store, target)
    assert set(counts) == set(PUBLISHED_TABLES)
    assert counts["agency_metrics"] == 1
    with duckdb.connect(str(target), read_only=True) as con:
        assert con.execute("SELECT value FROM agency_metrics").fetchall() == [(10.0,)]
        comment = con.execute(
            "SELECT comment FROM duckdb_tables() WHERE table_name = 'agency_metrics'"
        ).fetchall()[0][0]
    assert "latest upload wins" in comment
    assert not list(tmp_path.glob(".warehouse.duckdb*.building*"))


def test_a_publish_keeps_the_mode_and_group_the_state_gave_the_warehouse(tmp_path):
    """helper-49: analysts given the warehouse by its group (chgrp analysts; chmod 640) lost it on the next publish,
    whose new file took the run's umask and group."""
    store = Store(tmp_path / "pipeline" / "store.duckdb")
    _fill(store, 10.0)
    target = tmp_path / "warehouse.duckdb"
    _publish(store, target)
    groups = sorted({os.getgid(), *os.getgroups()} - {target.stat().st_gid})
    given = groups[0] if groups else target.stat().st_gid  # a group this user may give, when it has another
    if os.geteuid() == 0:
        given = 65534  # root may give any: nogroup
    os.chown(target, -1, given)
    target.chmod(0o640)
    _fill(store, 11.0)
    _publish(store, target)
    published = target.stat()
    assert (published.st_mode & 0o777, published.st_gid) == (0o640, given)
    with duckdb.connect(str(target), read_only=True) as con:
        assert con.execute("SELECT value FROM agency_metrics").fetchall() == [(11.0,)]


def test_a_failed_publish_removes_its_copy_and_keeps_the_published_warehouse(tmp_path):
    """A publish that fails half-way (a full disk, say) removes its temp copy at once, not at the next publish:
    left behind, it held the space the next run needed (review: 1.7 MB on a disk with 3 MB free)."""
    store = Store(tmp_path / "pipeline" / "store.duckdb")
    _fill(store, 10.0)
    target = tmp_path / "warehouse.duckdb"
    _publish(store, target)

    def full_disk(con):
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        store.publish(target, PUBLISHED_TABLES, prepare=ensure_contract_schema, finish=full_disk)
    assert not list(tmp_path.glob(".warehouse.duckdb*.building*"))
    with duckdb.connect(str(target), read_only=True) as con:
        assert con.execute("SELECT value FROM agency_metrics").fetchall() == [(10.0,)]


def test_publish_leaves_the_store_s_other_tables_out_and_the_store_as_it_was(tmp_path):
    store = Store(tmp_path / "pipeline" / "store.duckdb")
    _fill(store, 10.0)
    with store.connect() as con:
        con.execute("CREATE TABLE ingest_staged_files AS SELECT 1 AS staged")  # internal, like the real one
        con.execute('CREATE TABLE "odd ""name""" AS SELECT 2 AS staged')
        # A view of the store's own (the staged datapoints' reads files beside the store): not the analysts'.
        con.execute("CREATE VIEW ingest_datapoints AS SELECT staged FROM ingest_staged_files")
    target = tmp_path / "warehouse.duckdb"
    _publish(store, target)
    with duckdb.connect(str(target), read_only=True) as con:
        published = {name for (name,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        views = {name for (name,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert set(PUBLISHED_TABLES) <= published and not {"ingest_staged_files", 'odd "name"'} & published
    assert "ingest_datapoints" not in views
    with store.connect() as con:
        assert con.execute("SELECT staged FROM ingest_datapoints").fetchall() == [(1,)]
        assert con.execute('SELECT staged FROM "odd ""name"""').fetchall() == [(2,)]
        assert con.execute("SELECT value FROM agency_metrics").fetchall() == [(10.0,)]


def test_a_reader_holding_the_old_warehouse_keeps_the_old_state(tmp_path):
    store = Store(tmp_path / "store.duckdb")
    target = tmp_path / "warehouse.duckdb"
    _fill(store, 1.0)
    _publish(store, target)
    reader = duckdb.connect(str(target), read_only=True)
    _fill(store, 2.0)
    _publish(store, target)  # must not fail although a reader has the file open
    assert reader.execute("SELECT value FROM agency_metrics").fetchall() == [(1.0,)]
    reader.close()
    with duckdb.connect(str(target), read_only=True) as fresh:
        assert fresh.execute("SELECT value FROM agency_metrics").fetchall() == [(2.0,)]


def _hold_lock(path: str, seconds: float, started) -> None:
    with Store(Path(path)).connect():
        started.set()
        time.sleep(seconds)


def test_second_writer_waits_for_the_lock_instead_of_failing(tmp_path):
    path = tmp_path / "store.duckdb"
    started = multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_lock, args=(str(path), 1.5, started))
    holder.start()
    assert started.wait(30)
    began = time.monotonic()
    with Store(path).connect() as con:
        waited = time.monotonic() - began
        assert con.execute("SELECT 1").fetchall() == [(1,)]
    holder.join()
    assert waited > 0.5


def test_connections_have_a_memory_limit_and_spill_beside_the_store(tmp_path, monkeypatch):
    store = Store(tmp_path / "pipeline" / "store.duckdb")
    setting = "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
    with store.connect() as con:
        limit, spill = con.execute(setting).fetchone()
    assert limit == "2.0 GiB" and Path(spill) == tmp_path / "pipeline" / "duckdb_tmp"
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "300MiB")
    with store.open(tmp_path / "other.duckdb") as con:
        assert con.execute(setting).fetchone()[0] == "300.0 MiB"
    # The commands that read the published warehouse (export sorts whole tables) keep to the same limit.
    layout = DataLayout.from_env(tmp_path)
    with pytest.raises(FileNotFoundError, match="no warehouse at .* yet: run `jc-pipeline run` first"):
        open_published(layout)
    duckdb.connect(str(layout.warehouse)).close()
    with open_published(layout) as con:
        limit, spill = con.execute(setting).fetchone()
    assert limit == "300.0 MiB" and Path(spill) == tmp_path / "pipeline" / "duckdb_tmp"


_READ_PUBLISHED = """
import sys
from jc_pipeline.lib.paths import DataLayout
from jc_pipeline.lib.warehouse import open_published
with open_published(DataLayout.from_env(sys.argv[1])) as con:
    print(con.execute("SELECT sum(value) FROM agency_metrics").fetchall()[0][0])
"""


def test_the_published_warehouse_is_read_from_a_read_only_share(tmp_path):
    """An analyst's copy of the data directory on a read-only share, holding the warehouse but not the pipeline's
    folder (where the spill directory and the Dagster instance would go), and no way to make one: the warehouse is
    read and `jc-pipeline status` shows it, writing nothing there; with an instance folder it cannot open (its lock
    file cannot be made), status says so and still shows the warehouse. Read by an unprivileged user, for whom a
    folder without write permission is read-only (not for root)."""
    store = Store(tmp_path / "pipeline" / "store.duckdb")
    _fill(store, 41.0)
    # A folder every user can reach (the test's own tmp_path sits below a folder only its owner may enter).
    share = Path(tempfile.mkdtemp(prefix="jc-share-"))
    unprivileged = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: no unprivileged user to read the share as")
        unprivileged = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

    def read(*command: str) -> subprocess.CompletedProcess:
        env = {key: value for key, value in os.environ.items() if key not in ("DAGSTER_HOME", "JC_DATA_DIR")}
        return subprocess.run([*unprivileged, sys.executable, *command], capture_output=True, text=True, timeout=300,
                              env={**env, "HOME": str(share), "PYTHONDONTWRITEBYTECODE": "1"})

    try:
        _publish(store, share / "warehouse.duckdb")
        for path in (share, share / "warehouse.duckdb"):
            path.chmod(0o555 if path.is_dir() else 0o444)
        opened = read("-c", _READ_PUBLISHED, str(share))
        assert opened.returncode == 0, opened.stderr
        assert opened.stdout.strip() == "41.0"
        status = read("-m", "jc_pipeline.cli", "status", "--data-dir", str(share))
        assert status.returncode == 0, status.stderr
        assert f"Dagster instance {share / 'pipeline' / 'dagster_home'}: none yet" in status.stdout
        assert f"warehouse {share / 'warehouse.duckdb'}" in status.stdout
        assert sorted(p.name for p in share.iterdir()) == ["warehouse.duckdb"]  # no pipeline/ folder made
        # Commands that write say where they may not, and the way out.
        export = read("-m", "jc_pipeline.cli", "export", "--data-dir", str(share), "--tables", "agency_metrics")
        assert export.returncode == 1
        assert export.stderr.strip() == (
            f"jc-pipeline export: [Errno 13] Permission denied: '{share / 'exports'}'; give --out a folder you may "
            f"write to, or run it as a user who may write there")
        out = Path(tempfile.mkdtemp(prefix="jc-exports-"))
        out.chmod(0o777)
        try:
            export = read("-m", "jc_pipeline.cli", "export", "--data-dir", str(share), "--tables", "agency_metrics",
                          "--out", str(out))
            assert export.returncode == 0, export.stderr
            assert "41.0" in (out / "agency_metrics.csv").read_text()
        finally:
            shutil.rmtree(out)

        share.chmod(0o755)
        home = share / "pipeline" / "dagster_home"
        home.mkdir(parents=True)
        (home / "dagster.yaml").write_text("{}\n")
        for path in (home, home.parent, share):
            path.chmod(0o555)
        status = read("-m", "jc_pipeline.cli", "status", "--data-dir", str(share))
        assert status.returncode == 0, status.stderr
        assert f"Dagster instance {home}: its runs cannot be read here (PermissionError: [Errno 13] Permission denied" in status.stdout
        assert f"warehouse {share / 'warehouse.duckdb'}" in status.stdout
    finally:
        for path in share.rglob("*"):
            if path.is_dir():
                path.chmod(0o755)
        share.chmod(0o755)
        shutil.rmtree(share)


def test_a_memory_limit_duckdb_cannot_read_is_named_and_touches_no_file(tmp_path, monkeypatch):
    """JC_DUCKDB_MEMORY_LIMIT set to what DuckDB does not read fails with the variable named and an example; empty
    counts as not set; the store is neither created nor changed."""
    store = Store(tmp_path / "pipeline" / "store.duckdb")
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "")
    with store.connect() as con:
        con.execute("CREATE TABLE kept AS SELECT 1 AS x")
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "2.0 GiB"
    before = store.path.read_bytes()
    for wrong in ("lots", "4"):
        monkeypatch.setenv(MEMORY_LIMIT_ENV, wrong)
        with pytest.raises(ValueError, match=rf"JC_DUCKDB_MEMORY_LIMIT='{wrong}' is not a memory size .*set it like"):
            with store.connect():
                pass
        with pytest.raises(ValueError, match="JC_DUCKDB_MEMORY_LIMIT"):
            store.open(tmp_path / "new.duckdb")
    assert store.path.read_bytes() == before and not (tmp_path / "new.duckdb").exists()


def test_layout_refuses_paths_that_escape_the_data_directory(tmp_path):
    layout = DataLayout.from_env(tmp_path)
    (tmp_path / "inbox").mkdir()
    outside = tmp_path.parent / "elsewhere"
    outside.mkdir(exist_ok=True)
    (tmp_path / "inbox" / "link").symlink_to(outside)
    with pytest.raises(UnsafePathError):
        layout.inside(tmp_path / "inbox" / "link")
    with pytest.raises(UnsafePathError):
        layout.inside(tmp_path / "inbox" / ".." / ".." / "etc")
    assert layout.inside(tmp_path / "inbox") == (tmp_path / "inbox").resolve()
