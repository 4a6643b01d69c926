"""Stage times of pipeline runs, read back from the Dagster instance's event log.

A stage is what its steps did: ``ingest`` (the steps of ``ingest_job``: reference tables, reading and staging
files), ``normalize`` and ``checks`` (the two timed halves of the ``agency_metrics`` step: resolving datapoints,
then every validation rule), ``roll-up`` (the rest of ``rollup_job``: the state tables and the remainder of the
``agency_metrics`` step), ``publish`` (the steps of ``publish_job``). ``dagster`` is the rest of the wall time:
creating runs, planning and logging events, starting and finishing them.
"""

from __future__ import annotations

from collections import defaultdict

import dagster as dg

STAGES = ("ingest", "normalize", "checks", "roll-up", "publish", "dagster")
_JOB_STAGE = {"ingest_job": "ingest", "rollup_job": "roll-up", "publish_job": "publish"}
_STEP_EVENTS = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}


def stage_seconds(instance: dg.DagsterInstance, run_ids: list[str], wall_seconds: float) -> dict[str, float]:
    """Seconds per stage (:data:`STAGES`) over these runs; they add up to ``wall_seconds``."""
    stages: dict[str, float] = defaultdict(float)
    for step, seconds in _job_steps(instance, run_ids).items():
        stages[_JOB_STAGE[step.split("/")[0]]] += seconds
    for run_id in run_ids:
        for stage, seconds in _normalize_split(instance, run_id).items():
            stages[stage] += seconds
            stages["roll-up"] -= seconds
    stages["dagster"] = wall_seconds - sum(stages.values())
    return {stage: round(stages[stage], 3) for stage in STAGES}


def step_seconds(instance: dg.DagsterInstance, run_ids: list[str]) -> dict[str, float]:
    """Seconds per ``job/step`` over these runs (a job run several times, like ``rollup_job`` for several ranges
    of months, sums its runs): where a stage's time goes."""
    return {step: round(seconds, 3) for step, seconds in _job_steps(instance, run_ids).items()}


def _job_steps(instance: dg.DagsterInstance, run_ids: list[str]) -> dict[str, float]:
    return {step: sum(end - start for start, end in windows)
            for step, windows in step_windows(instance, run_ids).items()}


def step_windows(instance: dg.DagsterInstance, run_ids: list[str]) -> dict[str, list[tuple[float, float]]]:
    """(start, end) timestamps (``time.time()``) of each ``job/step`` over these runs, one pair per run of it."""
    windows: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for run_id in run_ids:
        job = instance.get_run_by_id(run_id).job_name  # type: ignore[union-attr]
        for step, window in _step_windows(instance, run_id).items():
            windows[f"{job}/{step}"].append(window)
    return windows


def _step_windows(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    began: dict[str, float] = {}
    windows: dict[str, tuple[float, float]] = {}
    for entry in instance.all_logs(run_id, of_type=_STEP_EVENTS):
        if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
            began[entry.step_key] = entry.timestamp
        else:
            windows[entry.step_key] = (began[entry.step_key], entry.timestamp)
    return windows


def _normalize_split(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """``resolve_seconds`` and ``checks_seconds`` the ``agency_metrics`` step recorded (once per run; a run over a
    range of months repeats the same metadata on every month's materialization)."""
    split: dict[str, float] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.asset_materialization
        metadata = materialization.metadata if materialization else {}
        for key, stage in (("resolve_seconds", "normalize"), ("checks_seconds", "checks")):
            if key in metadata and stage not in split:
                split[stage] = float(metadata[key].value)
    return split
