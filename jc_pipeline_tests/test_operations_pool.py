"""A step of `jc-pipeline run` waits for the slot of the one-slot pool `duckdb_warehouse`; a run killed outside
`jc-pipeline run` keeps that slot until something ends it, and the wait said nothing (helper-30: a run printed
"[1/3] ingest" and hung for 10 minutes). The run now names the run it waits for."""

from __future__ import annotations

import signal
import threading
import time

import dagster as dg
import pytest

from jc_pipeline.defs.resources import WAREHOUSE_POOL
from jc_pipeline.lib.paths import DataLayout
from jc_pipeline.runner import free_ended_holders, open_instance, pool_holders, run_pipeline
from jc_pipeline.status import print_status
from jc_pipeline_tests.ingest_support import deliver_csv, write_roster


def test_pool_holders_name_the_run_job_status_and_who_started_it():
    @dg.asset
    def anything() -> int:
        return 1

    with dg.instance_for_test() as instance:
        instance.event_log_storage.set_concurrency_slots(WAREHOUSE_POOL, 1)
        assert pool_holders(instance) == []
        run = dg.materialize([anything], instance=instance, tags={"jc/launched_by": "jc-pipeline"})
        instance.event_log_storage.claim_concurrency_slot(WAREHOUSE_POOL, run.run_id, "agency_metrics")
        assert pool_holders(instance) == [f"{run.run_id} (__ephemeral_asset_job__, SUCCESS, started by jc-pipeline)"]
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        instance.event_log_storage.claim_concurrency_slot(WAREHOUSE_POOL, "gone", "state_metrics")
        assert pool_holders(instance) == ["gone (no such run in this instance)"]


def _one_file_state(tmp_path, monkeypatch) -> tuple[DataLayout, dg.DagsterInstance]:
    """A state of one file, and its instance with the warehouse pool limited to one slot, as dagster.yaml sets it."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    layout = DataLayout.from_env(tmp_path / "data")
    write_roster(layout.root)
    deliver_csv(layout.root, "le", "LAW_ENFORCEMENT", "arrests.csv", [["year", "month", "value"], [2024, 1, 7]])
    instance = open_instance(layout)
    instance.event_log_storage.set_concurrency_slots(WAREHOUSE_POOL, 1)
    return layout, instance


@pytest.fixture
def terminable_children():
    """SIGTERM at its default while the test runs. Dagster maps SIGTERM to SIGINT's handler whenever a run on the
    main thread ends: in a test process started with SIGINT ignored (a background job of a non-interactive shell)
    SIGTERM is then ignored too, and the compute-log `tail` processes of a run on another thread inherit that and
    outlive Dagster's SIGTERM by 30 s each (the run below took over 120 s). `jc-pipeline` runs on the main thread,
    where Dagster installs handlers of its own for the run, which its children do not inherit."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGTERM, previous)


@pytest.mark.usefixtures("terminable_children")
def test_a_run_waiting_for_the_warehouse_names_the_run_that_holds_it(tmp_path, monkeypatch, capsys):
    layout, instance = _one_file_state(tmp_path, monkeypatch)
    # A run whose process died outside jc-pipeline run: still STARTED in the instance.
    instance.add_run(dg.DagsterRun(job_name="rollup_job", run_id="killed-elsewhere",
                                   status=dg.DagsterRunStatus.STARTED))
    instance.event_log_storage.claim_concurrency_slot(WAREHOUSE_POOL, "killed-elsewhere", "agency_metrics")
    said: list[str] = []
    run = threading.Thread(target=run_pipeline, args=(layout,), kwargs={"echo": said.append})
    run.start()
    deadline = time.monotonic() + 60
    while not any("waiting for the warehouse" in line for line in said) and time.monotonic() < deadline:
        time.sleep(0.2)
    instance.event_log_storage.free_concurrency_slots_for_run("killed-elsewhere")
    run.join(timeout=120)
    assert not run.is_alive()
    waiting = [line for line in said if "waiting for the warehouse" in line]
    assert waiting and "Dagster run killed-elsewhere (rollup_job, STARTED, started by Dagster) holds it" in waiting[0]
    assert said[-1].startswith("      done; whole run")  # it went on once the slot was free
    instance.event_log_storage.claim_concurrency_slot(WAREHOUSE_POOL, "killed-elsewhere", "state_metrics")
    print_status(layout)  # status names the holder too
    assert ("the warehouse is held by Dagster run killed-elsewhere (rollup_job, STARTED, started by Dagster)"
            in capsys.readouterr().out)


def test_a_run_frees_the_slot_an_ended_or_deleted_run_kept(tmp_path, monkeypatch):
    """helper-31: a run deleted in the UI, or ended (the daemon frees its slot only after five minutes, and only
    while it runs), kept the slot: the run now frees it and goes on."""
    layout, instance = _one_file_state(tmp_path, monkeypatch)
    instance.add_run(dg.DagsterRun(job_name="rollup_job", run_id="canceled", status=dg.DagsterRunStatus.CANCELED))
    instance.event_log_storage.claim_concurrency_slot(WAREHOUSE_POOL, "canceled", "agency_metrics")
    said: list[str] = []
    run_pipeline(layout, echo=said.append)
    assert "      freed the warehouse's slot that Dagster run canceled kept after it ended" in said
    assert not any("waiting for the warehouse" in line for line in said)
    instance.event_log_storage.claim_concurrency_slot(WAREHOUSE_POOL, "deleted", "agency_metrics")
    assert free_ended_holders(instance) == ["deleted"] and pool_holders(instance) == []
