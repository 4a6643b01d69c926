"""The instance's SQLite storage commits without waiting for the disk once the code location is loaded: no fsync
per commit, and no checkpoint per closed connection; the event log of the instance `jc-pipeline` opens keeps one
connection per file."""

import inspect
import os
import shutil
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from jc_pipeline import instance as instance_package
from jc_pipeline.instance import KEPT_OPEN, tune_sqlite_storage
from jc_pipeline.instance.event_log import ENGINES_KEPT, PooledSqliteEventLogStorage, load_instance

NORMAL, FULL = 1, 2


def _synchronous_levels(instance: dg.DagsterInstance) -> set[int]:
    """The `synchronous` level of each SQLite connection the instance's event log opens."""
    levels: set[int] = set()
    storage = instance.event_log_storage
    with storage.index_connection() as conn:  # type: ignore[attr-defined]
        levels.add(conn.exec_driver_sql("PRAGMA synchronous").scalar())
    return levels


def test_event_log_commits_without_fsync_in_wal_mode(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        tune_sqlite_storage()
        tune_sqlite_storage()  # registering twice is harmless
        assert _synchronous_levels(instance) == {NORMAL}


def test_a_new_database_starts_in_wal_mode(tmp_path):
    tune_sqlite_storage()
    path = tmp_path / "new.db"
    with create_engine(f"sqlite:///{path}", poolclass=NullPool).connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == NORMAL


def test_databases_not_in_wal_mode_keep_full_sync(tmp_path):
    tune_sqlite_storage()
    path = tmp_path / "rollback-journal.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE kept (x INTEGER)")
    conn.close()
    with create_engine(f"sqlite:///{path}").connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "delete"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == FULL


def _write_once(path: Path) -> None:
    """One event's worth of work, as Dagster's SQLite storage does it: connect, insert, commit, close."""
    with create_engine(f"sqlite:///{path}", poolclass=NullPool).begin() as conn:
        conn.exec_driver_sql("INSERT INTO events VALUES (1)")


def _wal_database(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=wal")
        conn.execute("CREATE TABLE events (x INTEGER)")
    conn.close()
    assert not Path(f"{path}-wal").exists()  # the last connection closed: checkpointed, log deleted
    return path


def test_closing_an_event_connection_does_not_checkpoint(tmp_path):
    tune_sqlite_storage()
    path = _wal_database(tmp_path / "events.db")
    for _ in range(3):
        _write_once(path)
    # Not the last connection: the log (holding the three commits) was neither checkpointed nor deleted.
    assert Path(f"{path}-wal").stat().st_size > 0
    with sqlite3.connect(path) as reader:
        assert reader.execute("SELECT count(*) FROM events").fetchone() == (3,)
    reader.close()


def test_only_the_most_recent_files_stay_open(tmp_path):
    tune_sqlite_storage()
    paths = [_wal_database(tmp_path / f"run{i}.db") for i in range(KEPT_OPEN + 3)]
    for path in paths:
        _write_once(path)
    # The oldest files were closed (checkpointed, their logs deleted) as newer ones took their places.
    still_logging = [path for path in paths if Path(f"{path}-wal").exists()]
    assert still_logging == paths[-KEPT_OPEN:]
    for path in paths[:3]:
        with sqlite3.connect(path) as reader:
            assert reader.execute("SELECT count(*) FROM events").fetchone() == (1,)
        reader.close()


# ---- the event log keeps a connection per file ------------------------------------------------------------------


@dg.asset
def counted() -> int:
    """One materialization: a run's worth of events (run shard and index)."""
    return 1


@pytest.fixture
def template_instance(tmp_path, monkeypatch):
    """An instance with the shipped dagster.yaml, opened as `jc-pipeline` opens it (whatever DAGSTER_HOME says)."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(Path(instance_package.__file__).with_name("dagster.yaml"), home / "dagster.yaml")
    instance = load_instance(home)
    yield instance
    instance.dispose()


@contextmanager
def _connections_opened() -> Iterator[Counter]:
    """Counts the new SQLite connections opened meanwhile, by database file."""
    opened: Counter = Counter()

    def count(dbapi: sqlite3.Connection, _record: object) -> None:
        opened[next(file for _, name, file in dbapi.execute("PRAGMA database_list") if name == "main")] += 1

    event.listen(Engine, "connect", count)
    try:
        yield opened
    finally:
        event.remove(Engine, "connect", count)


def test_the_pooled_event_log_takes_the_place_of_dagsters_default_in_the_instance_folder(template_instance, tmp_path):
    storage = template_instance.event_log_storage
    assert type(storage) is PooledSqliteEventLogStorage
    assert Path(storage._base_dir) == tmp_path / "dagster_home" / "history" / "runs"  # Dagster's default folder
    # The one private method overridden still exists, with the same contract, in the pinned Dagster.
    assert list(inspect.signature(SqliteEventLogStorage._connect).parameters) == ["self", "shard"]


def test_a_copied_instance_writes_its_own_files(template_instance, tmp_path):
    dg.materialize([counted], instance=template_instance)
    template_instance.dispose()
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "dagster_home", copy)
    with load_instance(copy) as copied:
        run_id = dg.materialize([counted], instance=copied).run_id
    assert (copy / "history" / "runs" / f"{run_id}.db").exists()
    assert not (tmp_path / "dagster_home" / "history" / "runs" / f"{run_id}.db").exists()


def test_an_instance_with_its_own_storage_keeps_it(tmp_path):
    home = tmp_path / "own"
    home.mkdir()
    (home / "dagster.yaml").write_text(f"storage:\n  sqlite:\n    base_dir: {tmp_path / 'elsewhere'}\n")
    with load_instance(home) as instance:
        assert type(instance.event_log_storage) is SqliteEventLogStorage
        assert Path(instance.event_log_storage._base_dir) == tmp_path / "elsewhere" / "history" / "runs"


def test_each_run_file_is_opened_once_and_the_events_round_trip(template_instance):
    storage = template_instance.event_log_storage
    with _connections_opened() as opened:
        for _ in range(3):
            assert dg.materialize([counted], instance=template_instance).success
    runs = template_instance.get_runs()  # newest first
    assert len(runs) == 3
    # Dagster's own storage opens a run's file for every query (over 30 times for this run); this one once.
    for run in runs:
        assert opened[storage.path_for_shard(run.run_id)] == 1
        kinds = {e.dagster_event.event_type for e in template_instance.all_logs(run.run_id) if e.dagster_event}
        assert {dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.ASSET_MATERIALIZATION} <= kinds
    assert len(storage._engines) <= ENGINES_KEPT
    latest = template_instance.get_latest_materialization_event(dg.AssetKey("counted"))
    assert latest is not None and latest.run_id == runs[0].run_id


def test_files_past_the_kept_ones_are_closed_and_reopened_when_used_again(template_instance):
    storage = template_instance.event_log_storage
    run_ids = [dg.materialize([counted], instance=template_instance).run_id for _ in range(ENGINES_KEPT + 2)]
    assert len(storage._engines) == ENGINES_KEPT
    assert storage.path_for_shard(run_ids[0]) not in {e.url.database for e in storage._engines.values()}
    with _connections_opened() as opened:
        assert len(template_instance.all_logs(run_ids[0])) > 5  # read again through a new connection
    assert opened[storage.path_for_shard(run_ids[0])] == 1


def test_other_processes_see_every_committed_event(template_instance, tmp_path):
    """Dagster's webserver and daemon read the same files through their own connections."""
    run_id = dg.materialize([counted], instance=template_instance).run_id
    reader = SqliteEventLogStorage(template_instance.event_log_storage._base_dir)  # Dagster's class, own engines
    assert [e.dagster_event_type for e in reader.get_logs_for_run(run_id)] == [
        e.dagster_event_type for e in template_instance.all_logs(run_id)]
    assert reader.get_latest_materialization_events([dg.AssetKey("counted")])[dg.AssetKey("counted")].run_id == run_id


def test_wipe_closes_the_kept_connections_before_deleting_the_files(template_instance):
    storage = template_instance.event_log_storage
    wiped = dg.materialize([counted], instance=template_instance).run_id
    assert wiped in storage._engines
    storage.wipe()  # deletes every run's file (and empties the index, which stays)
    assert not Path(storage.path_for_shard(wiped)).exists()
    assert set(storage._engines) <= {"index"}
    run_id = dg.materialize([counted], instance=template_instance).run_id
    assert any(e.dagster_event_type == dg.DagsterEventType.RUN_SUCCESS for e in template_instance.all_logs(run_id))


def test_a_forked_child_opens_its_own_connections(template_instance):
    storage = template_instance.event_log_storage
    dg.materialize([counted], instance=template_instance)
    parent_engines = dict(storage._engines)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write an event, report what it used, exit without running pytest's teardown
        try:
            run_id = dg.materialize([counted], instance=template_instance).run_id
            shared = any(storage._engines.get(shard) is engine for shard, engine in parent_engines.items())
            os.write(write, f"{run_id} {int(shared)}".encode())
        finally:
            os._exit(0)
    os.close(write)
    run_id, shared = os.read(read, 200).decode().split()
    os.waitpid(pid, 0)
    assert shared == "0"
    # The parent's kept connections still work, and see what the child wrote.
    assert any(e.dagster_event_type == dg.DagsterEventType.RUN_SUCCESS for e in template_instance.all_logs(run_id))
