"""DESIGN §7: the same code location runs on executors that put every step in its own process (Kubernetes, Celery
and Dask all do). Dagster's multiprocess executor is the local stand-in: a step may not rely on another's memory,
only on the resources and the store. The whole pipeline under it must publish the tables the default run does."""

import os
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

import jc_pipeline.definitions
from jc_pipeline.lib.paths import DataLayout
from jc_pipeline.runner import run_pipeline
from jc_pipeline_tests.test_operations_support import baseline, copy_state, demo_template, fingerprint

pytestmark = pytest.mark.slow


def _multiprocess_definitions() -> dg.Definitions:
    """The code location's definitions with the executor swapped: what a Kubernetes or Celery deployment does
    (`k8s_job_executor` / `celery_executor` in place of `multiprocess_executor`)."""
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(jc_pipeline.definitions.__file__).parent),
        dg.Definitions(executor=dg.multiprocess_executor),
    )


# Reconstructable entry points: every step process imports this module and rebuilds its job from here.
def ingest_job() -> dg.JobDefinition:
    return _multiprocess_definitions().resolve_job_def("ingest_job")


def rollup_job() -> dg.JobDefinition:
    return _multiprocess_definitions().resolve_job_def("rollup_job")


def publish_job() -> dg.JobDefinition:
    return _multiprocess_definitions().resolve_job_def("publish_job")


_JOBS = {"ingest_job": ingest_job, "rollup_job": rollup_job, "publish_job": publish_job}


#: Step processes fork from a server that imported the code once (still one fresh process per step, sharing no
#: memory with any other step); spawning each from scratch costs ~10 s of imports per step on 2 cores.
_EXECUTION = {
    "execution": {
        "config": {
            "max_concurrent": 2,
            "start_method": {"forkserver": {"preload_modules": [__name__, "great_expectations"]}},
        }
    }
}


def _launch_multiprocess(definitions, job_name, run_config, tags, instance):
    return dg.execute_job(
        dg.reconstructable(_JOBS[job_name]),
        instance=instance,
        run_config={**run_config, **_EXECUTION},
        tags=dict(tags),
        raise_on_error=False,
    )


def _baseline_span(data: Path) -> tuple[date, date]:
    """First and last month the baseline's roll-ups covered."""
    with dg.DagsterInstance.from_config(str(data / "pipeline" / "dagster_home")) as instance:
        runs = instance.get_runs(dg.RunsFilter(job_name="rollup_job"))
        starts = [run.tags["dagster/asset_partition_range_start"] for run in runs]
        ends = [run.tags["dagster/asset_partition_range_end"] for run in runs]
    return date.fromisoformat(min(starts)), date.fromisoformat(max(ends))


def test_whole_pipeline_under_the_multiprocess_executor_matches_the_default_run(tmp_path_factory, tmp_path):
    reference_dir = baseline(tmp_path_factory)
    reference = fingerprint(reference_dir / "warehouse.duckdb")
    # One roll-up run over the whole span (months without data included) instead of one per contiguous range:
    # the same tables (backfills are idempotent), a third of the step processes.
    first, last = _baseline_span(reference_dir)
    data = copy_state(demo_template(tmp_path_factory), tmp_path / "data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
        mp.setenv("JC_DATA_DIR", str(data))
        summary = run_pipeline(
            DataLayout.from_env(data), first=first, last=last, echo=lambda line: None, launch=_launch_multiprocess
        )
        assert summary.published and len(summary.run_ids) == 3
        assert fingerprint(data / "warehouse.duckdb") == reference

        # Every step really ran in a process of its own, none in this one.
        with dg.DagsterInstance.get() as instance:
            step_pids: dict[str, set[int]] = {}
            for run_id in summary.run_ids:
                records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
                for record in records:
                    event = record.event_log_entry.dagster_event
                    step_pids.setdefault(f"{run_id}:{event.step_key}", set()).add(event.pid)
    pids = [pid for pids in step_pids.values() for pid in pids]
    assert len(step_pids) >= 6  # reference_tables, inbox_files, agency_metrics, state_metrics, publish steps
    assert os.getpid() not in pids
    assert len(set(pids)) == len(pids), "each step must have had its own process"
