"""Inbox sensor: start an ingest run when a delivery appears or changes, without waiting for the night."""

import hashlib
import json
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import dagster as dg

from jc_pipeline.defs.automation.jobs import ingest_job, publish_job, rollup_job
from jc_pipeline.defs.partitions import range_tags
from jc_pipeline.defs.resources import WarehouseResource
from jc_pipeline.lib.pending import with_year_starts
from jc_pipeline.lib.periods import contiguous_ranges


def inbox_signatures(inbox: Path) -> dict[str, str]:
    """`agency/SECTOR/file` -> "size:mtime_ns" for every delivered file: cheap to take every 30 seconds; the
    ingest run itself decides by content hash whether anything really changed."""
    signatures: dict[str, str] = {}
    for path in sorted(inbox.glob("*/*/*")):
        if path.is_file() and not path.is_symlink():
            stat = path.stat()
            signatures[path.relative_to(inbox).as_posix()] = f"{stat.st_size}:{stat.st_mtime_ns}"
    return signatures


def changed_files(previous: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """Files that are new or whose signature changed since the previous tick."""
    return sorted(path for path, signature in current.items() if previous.get(path) != signature)


@dg.sensor(job=ingest_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def inbox_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource) -> dg.SensorResult:
    """Launches `ingest_job` when files under inbox/ are added or changed (cursor: size and mtime per file)."""
    previous = json.loads(context.cursor) if context.cursor else {}
    current = inbox_signatures(warehouse.layout.inbox)
    changed = changed_files(previous, current)
    if not changed:
        return dg.SensorResult(skip_reason=dg.SkipReason("no new or changed files in the inbox"), cursor=context.cursor)
    run_key = hashlib.sha256(json.dumps({p: current[p] for p in changed}).encode()).hexdigest()[:20]
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=run_key, tags={"jc/changed_files": str(len(changed))})],
        cursor=json.dumps(current),
    )


@dg.asset_sensor(asset_key=dg.AssetKey("source_files"), job=rollup_job, default_status=dg.DefaultSensorStatus.RUNNING)
def touched_periods_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    """After every ingest, rolls up exactly the period months the new files touched: one run per contiguous range."""
    materialization = asset_event.asset_materialization
    touched = materialization.metadata.get("touched_months") if materialization else None
    months = [date.fromisoformat(m) for m in (touched.value if touched else [])]
    for start, end in contiguous_ranges(with_year_starts(months)):
        yield dg.RunRequest(run_key=f"{asset_event.run_id}:{start}:{end}", tags=range_tags(start, end))


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[rollup_job],
    request_job=publish_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def publish_after_rollup_sensor(context: dg.RunStatusSensorContext):
    """Publishes a new analyst warehouse after each successful roll-up."""
    return dg.RunRequest(run_key=context.dagster_run.run_id)
