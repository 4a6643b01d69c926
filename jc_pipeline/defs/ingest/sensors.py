"""Event-driven automation: ingest when deliveries change, roll up exactly the months they touched, publish."""

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import NamedTuple

import dagster as dg

from jc_pipeline.defs.automation.jobs import (
    LAUNCHED_BY_CLI,
    LAUNCHED_BY_TAG,
    ingest_job,
    ingest_run_config,
    publish_job,
    rollup_job,
)
from jc_pipeline.defs.partitions import pending_range_tags
from jc_pipeline.defs.resources import WarehouseResource
from jc_pipeline.lib.ingest.inbox import INBOX, SETTLE_SECONDS, scan_inbox, still_arriving
from jc_pipeline.lib.paths import replace_file
from jc_pipeline.lib.regular_files import open_regular

SOURCE_FILES = dg.AssetKey("source_files")

#: Materializations read per tick; a longer backlog is worked off over the following ticks.
_EVENTS_PER_TICK = 500


class Seen(NamedTuple):
    """A file as a tick sees it: "size:mtime_ns:ctime_ns" (None while it may still be arriving), and where it is
    opened (its real name, which the path shows escaped when it is not UTF-8)."""

    signature: str | None
    location: str


def inbox_signatures(inbox: Path, settle_seconds: float = 0) -> dict[str, Seen]:
    """`agency/SECTOR/.../file` -> :class:`Seen` for every file ingest would look at (sub-folders included,
    symlinks left to ingest to report), the signature None for those modified in the last `settle_seconds`, which
    may still be arriving: cheap to take every minute; only files whose signature moved are hashed. `inbox` is
    `<data_dir>/inbox`."""
    prefix = len(INBOX) + 1
    arriving = still_arriving(datetime.now(UTC), settle_seconds)
    return {file.path[prefix:]: Seen(None if arriving(file) else "{}:{}:{}".format(*file.signature), file.location)
            for file in scan_inbox(inbox.parent) if not file.is_symlink}


def file_sha256(path: str | Path) -> str:
    """Content hash, streamed (deliveries can be hundreds of megabytes), of a regular file only and never through a
    symlink (`open_regular`: a FIFO in the inbox hung every tick)."""
    with open_regular(path) as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def remembered(folder: Path, cursor: str | None) -> dict[str, dict[str, str]]:
    """What the tick of ``cursor`` saw: `{path: {"sig": "size:mtime_ns:ctime_ns", "sha256": ...}}`, kept in
    ``folder`` (:func:`remember`). A cursor from before that kept the map itself is read as it is; a state file
    lost, or an older form of the map, simply makes every file count as moved once, and get hashed."""
    if not cursor:
        return {}
    if cursor.startswith("{"):
        loaded = json.loads(cursor)
    else:
        try:
            loaded = json.loads((folder / f"{cursor}.json").read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
    return {path: value for path, value in loaded.items() if isinstance(value, dict)}


def remember(folder: Path, seen: dict[str, dict[str, str]], previous: str | None) -> str:
    """Keep ``seen`` in ``folder`` under its digest, which is the cursor to return, and remove the others older than
    :data:`_STALE_SECONDS` but the ``previous`` cursor's: a tick the daemon could not record is evaluated again from
    that one. Dagster stores a sensor's cursor with every tick: the whole map there grew the instance by its size
    each minute (helper-53: 96 KB a tick on the demo's 486 files, some 6 MB at a 32,000-file state)."""
    text = json.dumps(seen, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / f"{digest}.json").is_file():
        # The inbox back to a map seen before: its file is this tick's now, recent for the overlapping evaluations'
        # cleanup too (helper-58).
        os.utime(folder / f"{digest}.json")
    else:
        # Durable: Dagster records the cursor next, and a power cut must not leave it naming no file.
        replace_file(folder / f"{digest}.json", text, durable=True)
    # The older maps, and what a write cut short left; not those of an overlapping evaluation (a tick past its
    # timeout, whose cursor the daemon may yet record: helper-56, helper-57), which are recent.
    for stale in [*folder.glob("*.json"), *folder.glob("*.json.partial")]:
        with contextlib.suppress(FileNotFoundError):
            if stale.name not in (f"{digest}.json", f"{previous}.json") and (
                    time.time() - stale.stat().st_mtime > _STALE_SECONDS):
                stale.unlink(missing_ok=True)
    return digest


#: A state file older than this is no evaluation's but the one of the cursor given (ticks come every minute).
_STALE_SECONDS = 600


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every minute: starts the ingest when a file under inbox/ has new or changed content and has not "
                "been modified for two minutes (an upload may still be writing it). A file touched but unchanged "
                "starts nothing; a deleted file is forgotten, and what it delivered stays loaded.",
)
def inbox_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource) -> dg.SensorResult:
    """Launches `ingest_job` when the content of a file under inbox/ is new or changed (what it saw: size, mtime and
    sha256 per file, kept in pipeline/inbox_sensor/ under the digest the cursor holds; only files whose size, mtime or
    ctime moved are re-hashed, and a touched but identical file launches nothing). A file modified in the last
    `SETTLE_SECONDS` may still be arriving: its entry stays as it was until it settles, then its hash is compared (a
    `touch`ed or re-copied file launches nothing), and the run leaves such files for the next (`ingest_run_config`).
    Deleted files are forgotten; the warehouse keeps what they delivered."""
    inbox = warehouse.layout.inbox
    previous = remembered(warehouse.layout.inbox_sensor, context.cursor)
    signatures = inbox_signatures(inbox, SETTLE_SECONDS)
    current: dict[str, dict[str, str]] = {}
    changed: dict[str, list[str | None]] = {}
    for path, (signature, location) in signatures.items():
        before = previous.get(path)
        if signature is None:  # still arriving: looked at once it settles, against what it held before
            if before is not None:
                current[path] = before
            continue
        if before is not None and before.get("sig") == signature:
            current[path] = before
            continue
        try:
            sha = file_sha256(location)
        except OSError:  # vanished or still being copied: look again next tick
            continue
        current[path] = {"sig": signature, "sha256": sha}
        if before is None or before.get("sha256") != sha:
            changed[path] = [before.get("sha256") if before else None, sha, signature]
    cursor = remember(warehouse.layout.inbox_sensor, current, context.cursor)
    if not changed:
        return dg.SensorResult(skip_reason=dg.SkipReason("no new or changed file contents in the inbox"), cursor=cursor)
    # The key covers old and new hash and the file's signature (size, mtime, ctime): a file changed back to an
    # earlier content, or between two contents again later, still launches a run (the daemon runs a key once),
    # while a tick evaluated again over the same cursor asks for the same run.
    run_key = hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:20]
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=run_key, tags={"jc/changed_files": str(len(changed))},
                                    run_config=ingest_run_config())],
        cursor=cursor,
    )


@dg.sensor(
    jobs=[rollup_job, publish_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After each ingest: one roll-up of exactly the months its new or changed files touched (late "
                "corrections to old months included); its success publishes. Files that touch no month (every row "
                "rejected, or unreadable) are published at once, so the agency hears that night. Ingests started "
                "by `jc-pipeline run` are left to that command.",
)
def touched_periods_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """After ingest runs, rolls up exactly the period months their new or changed files touched (metadata
    `touched_months` of `source_files`), late corrections to old months included: one run from the first of those
    months to the last, rebuilding only the months with pending uploads and in them only the agencies concerned
    (`pending_range_tags`); its success publishes. New or changed files that
    touch no month (all their rows rejected, or unreadable) are published at once, so the reports tell the agency
    that night. Every materialization since the last tick counts, not only the latest, so two ingests between ticks
    lose nothing. Ingests started by `jc-pipeline run` are skipped: that command rolls up and publishes by itself.
    Cursor: the storage id of the last materialization read."""
    after = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=SOURCE_FILES, after_storage_id=after), limit=_EVENTS_PER_TICK, ascending=True
    ).records
    if not records:
        return dg.SensorResult(skip_reason=dg.SkipReason("no ingest since the last tick"), cursor=context.cursor)
    cursor = str(records[-1].storage_id)
    months: set[date] = set()
    recorded = False
    for record in records:
        run = context.instance.get_run_by_id(record.run_id)
        if run is not None and run.tags.get(LAUNCHED_BY_TAG) == LAUNCHED_BY_CLI:
            continue
        metadata = record.asset_materialization.metadata if record.asset_materialization else {}
        months |= {date.fromisoformat(month) for month in _value(metadata, "touched_months", [])}
        # Whatever changed what the feedback shows, also with no month touched (helper-50: a night that only
        # recovered a file kept "check its permissions" published).
        recorded = recorded or any(_value(metadata, key, 0) for key in _RECORDED)
    batch = f"{records[0].storage_id}-{records[-1].storage_id}"
    if months:
        start, end = min(months), max(months)
        request = dg.RunRequest(run_key=f"{batch}:{start}:{end}", job_name=rollup_job.name,
                                tags=pending_range_tags(start, end))
    elif recorded:
        request = dg.RunRequest(run_key=f"{batch}:publish", job_name=publish_job.name)
    else:
        return dg.SensorResult(skip_reason=dg.SkipReason("the new ingests recorded no new or changed file"),
                               cursor=cursor)
    return dg.SensorResult(run_requests=[request], cursor=cursor)


#: source_files metadata that counts changes of the store's files and findings.
_RECORDED = ("files_new", "files_changed", "files_reread", "files_recovered", "files_duplicate", "files_withdrawn",
             "files_restored")


def _value(metadata: Mapping[str, dg.MetadataValue], key: str, default: object) -> object:
    return metadata[key].value if key in metadata else default


STATE_METRICS = dg.AssetKey("state_metrics")


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    request_job=publish_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After each successful roll-up started by a sensor or from the UI (a backfill of the state assets "
                "included): publishes the analyst warehouse and the reports. Runs of `jc-pipeline run` are left to "
                "that command, which publishes by itself.",
)
def publish_after_rollup_sensor(context: dg.RunStatusSensorContext) -> dg.RunRequest | None:
    """Publishes a new analyst warehouse after each successful roll-up: `rollup_job` runs from the sensors or the
    UI, and UI backfills of the state assets (those run as Dagster's asset job, so every job of this code location is
    watched and filtered here). `jc-pipeline run` publishes by itself and is left alone. Every successful roll-up
    publishes, also one followed by another still queued: should that one fail or be cancelled, nothing else would
    (helper-54).

    A run it leaves alone returns None, not a SkipReason: Dagster ends a run-status sensor's tick at the first value
    returned, and the publish then came one 30-second tick per run later (helper-53: 463 s after a correction's
    roll-up, growing with every run of a backfill)."""
    run = context.dagster_run
    if run.tags.get(LAUNCHED_BY_TAG) == LAUNCHED_BY_CLI:
        return None
    if run.job_name != rollup_job.name and STATE_METRICS not in (run.asset_selection or ()):
        return None
    return dg.RunRequest(run_key=run.run_id)
