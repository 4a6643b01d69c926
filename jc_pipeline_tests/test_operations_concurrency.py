"""Single-writer safety and analysts reading during runs (DESIGN §4, §6): two runs at once both succeed and leave
the warehouse one run leaves; a read-only analyst session open for a whole run never fails and never sees half a
run; a backfill started during a nightly run loses nothing of either."""

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from jc_pipeline.runner import RUNNER_TAG
from jc_pipeline_tests.test_operations_support import (
    SNAPSHOT_SQL,
    add_late_correction,
    assert_same_contents,
    baseline,
    copy_state,
    corrected,
    fingerprint,
    first_law_enforcement_agency,
    jc,
    remember_corrected,
    snapshot,
    start_jc,
    warehouse_contents,
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




@contextmanager
def analysts(warehouse: Path, folder: Path, modes: tuple[str, ...]) -> Iterator[dict[str, Path]]:
    """Analyst sessions (`_READER`, one process per mode) querying `warehouse` from before the block to after it;
    yields where each mode logs its answers. Every session must live to the end."""
    stop = folder / "stop"
    readers = {
        mode: subprocess.Popen([sys.executable, "-c", _READER, mode, str(warehouse), str(folder / f"{mode}.jsonl"),
                                str(stop), str(folder / f"{mode}.ready"), SNAPSHOT_SQL])
        for mode in modes
    }
    try:
        deadline = time.monotonic() + 60
        while not all((folder / f"{mode}.ready").exists() for mode in readers):
            assert all(r.poll() is None for r in readers.values()) and time.monotonic() < deadline, "a reader died"
            time.sleep(0.05)
        yield {mode: folder / f"{mode}.jsonl" for mode in modes}
        assert all(r.poll() is None for r in readers.values()), "a reader died during the run"
    finally:
        stop.touch()
        for reader in readers.values():
            reader.wait(timeout=60)


def answers(log: Path) -> list[tuple]:
    """Every answer an analyst session got, in order; it must never have got an error."""
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [answer for kind, answer in lines if kind == "error"] == []
    return [tuple(answer) for _, answer in lines]


def test_reader_open_during_a_run_sees_old_or_new_state_only(tmp_path_factory, tmp_path):
    """Two analyst sessions during a run that publishes a correction: one connection held from before the run,
    one reconnecting for every query. Neither ever errs; the held one reads the old state whole, the other the
    old state and then the new one, never a mixture and never back."""
    data = copy_state(baseline(tmp_path_factory), tmp_path / "data")
    warehouse = data / "warehouse.duckdb"
    old = snapshot(warehouse)
    add_late_correction(data, first_law_enforcement_agency(warehouse))
    with analysts(warehouse, tmp_path, ("held", "fresh")) as logs:
        run = start_jc("run", data_dir=data, dagster_home=tmp_path / "dagster_home")
        run_out, run_err = run.communicate(timeout=600)
        assert run.returncode == 0, f"stdout:\n{run_out}\nstderr:\n{run_err}"
    new = snapshot(warehouse)
    assert new != old, "the correction must change the published state"
    # A single run from the baseline with this correction: the reference of the next test (which needs no run of
    # its own to compute it when this one ran).
    remember_corrected(data)

    held, fresh = answers(logs["held"]), answers(logs["fresh"])
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


#: The engineer's backfill: the first half of 2025, from the command line (docs/operations.md §3).
BACKFILL = ("--from", "2025-01", "--to", "2025-06")
#: A correction to May 2025 (inside the backfill) that arrives during the nightly run.
LATE_MONTH, LATE_VALUE = 5, 50505


def test_backfill_during_a_nightly_run_loses_nothing(tmp_path_factory, tmp_path):
    """A nightly `jc-pipeline run` is rolling up a late correction when an engineer starts a backfill of the first
    half of 2025, after one more correction (May 2025) has arrived; an analyst queries the warehouse throughout.
    No lock error anywhere (both commands exit 0 with nothing on stderr, every Dagster run succeeds, every query
    answers), the two commands really overlap, and nothing is lost: both corrections are in the published
    `agency_metrics`, the final warehouse equals the one the two commands leave when run one after the other, and
    the analyst never sees an earlier state come back after a later one."""
    source = baseline(tmp_path_factory)
    agency = first_law_enforcement_agency(source / "warehouse.duckdb")

    # One after the other: the nightly with its correction (that is `corrected`), then the backfill with May's.
    sequential = copy_state(corrected(tmp_path_factory), tmp_path / "sequential")
    add_late_correction(sequential, agency, month=LATE_MONTH, value=LATE_VALUE)
    result = jc("run", *BACKFILL, data_dir=sequential, dagster_home=tmp_path / "sequential_home")
    assert result.returncode == 0, result.stderr

    # At once, on one instance with the baseline's history, as on the state's server.
    data = copy_state(source, tmp_path / "data", with_instance=True)
    home = data / "pipeline" / "dagster_home"
    warehouse = data / "warehouse.duckdb"
    old = snapshot(warehouse)
    add_late_correction(data, agency)
    with dg.DagsterInstance.from_config(str(home)) as instance, \
            analysts(warehouse, tmp_path, ("fresh",)) as logs:
        earlier = {run.run_id for run in instance.get_runs()}
        nightly = start_jc("run", data_dir=data, dagster_home=home)
        deadline = time.monotonic() + 600
        while not any(run.job_name == "ingest_job" and run.status == dg.DagsterRunStatus.SUCCESS
                      for run in instance.get_runs() if run.run_id not in earlier):
            assert nightly.poll() is None, nightly.communicate()
            assert time.monotonic() < deadline, "the nightly's ingest never finished"
            time.sleep(0.1)
        # The nightly has read the inbox: May's correction is the backfill's to pick up.
        add_late_correction(data, agency, month=LATE_MONTH, value=LATE_VALUE)
        backfill = start_jc("run", *BACKFILL, data_dir=data, dagster_home=home)
        for command in (nightly, backfill):
            out, err = command.communicate(timeout=900)
            assert command.returncode == 0 and err == "", f"stdout:\n{out}\nstderr:\n{err}"
        records = [r for r in instance.get_run_records() if r.dagster_run.run_id not in earlier]

    assert {r.dagster_run.status for r in records} == {dg.DagsterRunStatus.SUCCESS}
    by_command: dict[str, list] = {}
    for record in sorted(records, key=lambda r: r.start_time):
        by_command.setdefault(record.dagster_run.tags[RUNNER_TAG], []).append(record)
    nightly_runs, backfill_runs = by_command.values()  # in order of their first run's start
    assert backfill_runs[0].start_time < nightly_runs[-1].end_time, "the backfill must start before the nightly ends"
    assert [(r.dagster_run.tags["dagster/asset_partition_range_start"],
             r.dagster_run.tags["dagster/asset_partition_range_end"])
            for r in backfill_runs if r.dagster_run.job_name == "rollup_job"] == [("2025-01-01", "2025-06-01")]

    with duckdb.connect(str(warehouse), read_only=True) as con:
        delivered = con.execute("""
            SELECT period_start, value FROM agency_metrics
            WHERE agency_id = ? AND metric_key = 'LAW_ENFORCEMENT_ARRESTS' AND dimension IS NULL
              AND period_start IN ('2025-03-01', '2025-05-01') ORDER BY 1""", [agency]).fetchall()
    assert delivered == [(date(2025, 3, 1), 99999.0), (date(2025, LATE_MONTH, 1), float(LATE_VALUE))]
    assert_same_contents(warehouse_contents(warehouse), warehouse_contents(sequential / "warehouse.duckdb"))

    seen = answers(logs["fresh"])
    assert len(seen) >= 10, "the analyst must have queried throughout"
    assert seen[0] == old and seen[-1] == snapshot(warehouse)
    states = [state for i, state in enumerate(seen) if i == 0 or state != seen[i - 1]]
    assert len(states) == len(set(states)), f"an earlier state came back after a later one: {states}"
