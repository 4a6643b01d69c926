"""Single-writer safety and analysts reading during runs (DESIGN §4, §6): two runs at once both succeed and leave
the warehouse one run leaves; a read-only analyst session open for a whole run never fails and never sees half a
run."""

import json
import subprocess
import sys
import time

import dagster as dg
import pytest

from jc_pipeline_tests.test_operations_support import (
    SNAPSHOT_SQL,
    add_late_correction,
    baseline,
    copy_state,
    corrected,
    fingerprint,
    first_law_enforcement_agency,
    remember_corrected,
    snapshot,
    start_jc,
)

pytestmark = pytest.mark.slow

#: An analyst session, one JSON line per answer or error. Mode "held": one read-only connection opened before the
#: run and kept to the end. Mode "fresh": a new connection per query (what `duckdb -readonly` started again does).
#: Two processes, because DuckDB shares one database instance between connections to the same file in a process:
#: a fresh connection beside a held one would still read the held (old) file.
_READER = r"""
import json, pathlib, sys, time
import duckdb

mode, warehouse, out, stop, ready, sql = sys.argv[1:7]
stop, ready = pathlib.Path(stop), pathlib.Path(ready)
held = duckdb.connect(warehouse, read_only=True) if mode == "held" else None

def query():
    if held is not None:
        return held.execute(sql).fetchall()[0]
    with duckdb.connect(warehouse, read_only=True) as con:
        return con.execute(sql).fetchall()[0]

with open(out, "w") as log:
    def record():
        try:
            log.write(json.dumps(["ok", list(query())]) + "\n")
        except Exception as error:  # recorded, never raised: the test asserts there are none
            log.write(json.dumps(["error", f"{type(error).__name__}: {error}"]) + "\n")
        log.flush()

    record()
    ready.touch()
    while not stop.exists():
        record()
        time.sleep(0.1)
    record()
"""


def test_reader_open_during_a_run_sees_old_or_new_state_only(tmp_path_factory, tmp_path):
    data = copy_state(baseline(tmp_path_factory), tmp_path / "data")
    warehouse = data / "warehouse.duckdb"
    old = snapshot(warehouse)
    add_late_correction(data, first_law_enforcement_agency(warehouse))
    stop = tmp_path / "stop"
    readers = {}
    for mode in ("held", "fresh"):
        readers[mode] = subprocess.Popen([
            sys.executable, "-c", _READER, mode, str(warehouse), str(tmp_path / f"{mode}.jsonl"), str(stop),
            str(tmp_path / f"{mode}.ready"), SNAPSHOT_SQL,
        ])
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"{mode}.ready").exists() for mode in readers):
            assert all(r.poll() is None for r in readers.values()) and time.monotonic() < deadline, "a reader died"
            time.sleep(0.05)
        run = start_jc("run", data_dir=data, dagster_home=tmp_path / "dagster_home")
        run_out, run_err = run.communicate(timeout=600)
        assert run.returncode == 0, f"stdout:\n{run_out}\nstderr:\n{run_err}"
        assert all(r.poll() is None for r in readers.values()), "a reader died during the run"
    finally:
        stop.touch()
        for reader in readers.values():
            reader.wait(timeout=60)
    new = snapshot(warehouse)
    assert new != old, "the correction must change the published state"
    # A single run from the baseline with this correction: the reference of the next test (which needs no run of
    # its own to compute it when this one ran).
    remember_corrected(data)

    answers = {}
    for mode in readers:
        lines = [json.loads(line) for line in (tmp_path / f"{mode}.jsonl").read_text().splitlines()]
        assert [answer for kind, answer in lines if kind == "error"] == []
        answers[mode] = [tuple(answer) for _, answer in lines]
    held, fresh = answers["held"], answers["fresh"]
    assert len(fresh) >= 10 and len(held) >= 10, "the readers must have queried throughout the run"
    # A session opened before the swap keeps reading the file it opened: the old state, whole.
    assert set(held) == {old}
    # New sessions see the old state until the swap, then the new one; nothing in between, never back.
    assert set(fresh) <= {old, new}
    assert fresh[0] == old and fresh[-1] == new
    first_new = fresh.index(new)
    assert all(answer == new for answer in fresh[first_new:])


def test_two_runs_started_at_once_both_succeed_and_match_one_run(tmp_path_factory, tmp_path):
    """Both on the same data directory and a fresh instance: both ingest the same new file, roll up the same month
    and publish; the pool and the store's lock serialize the writes, and the first open of the instance is
    serialized too (two processes creating the SQLite storages at once used to record two schema heads, after which
    every command failed: the `DagsterInstance.from_config` below caught it)."""
    reference = fingerprint(corrected(tmp_path_factory) / "warehouse.duckdb")
    data = copy_state(baseline(tmp_path_factory), tmp_path / "data")
    add_late_correction(data, first_law_enforcement_agency(data / "warehouse.duckdb"))
    home = tmp_path / "dagster_home"  # one instance for both, as on a real machine

    runs = [start_jc("run", data_dir=data, dagster_home=home) for _ in range(2)]
    outputs = [run.communicate(timeout=900) for run in runs]

    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0, f"stdout:\n{out}\nstderr:\n{err}"
        assert "Traceback" not in err
    assert fingerprint(data / "warehouse.duckdb") == reference
    with dg.DagsterInstance.from_config(str(home)) as instance:
        jobs = [run.job_name for run in instance.get_runs()]
        statuses = {run.status for run in instance.get_runs()}
    assert jobs.count("ingest_job") == 2 and jobs.count("publish_job") >= 1
    assert statuses == {dg.DagsterRunStatus.SUCCESS}
