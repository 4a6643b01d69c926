"""Ingest: every new or changed file of the inbox becomes staged datapoints and row-level findings."""

import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from jc_pipeline.defs.automation.schedules import NIGHTLY_FRESHNESS
from jc_pipeline.defs.resources import WAREHOUSE_POOL, WarehouseResource
from jc_pipeline.lib import ingest, pending

_COMMON = {"group_name": "ingest", "kinds": {"duckdb", "polars"}}
PROGRESS_SECONDS = 15
#: Exports named in the log and metadata when their mapping file does not validate (all are counted).
KEPT_LOGGED = 20
#: Set to 1 to hash every inbox file, trusting no remembered stat (docs/decisions.md).
REHASH_VARIABLE = "JC_INGEST_REHASH"


class IngestConfig(dg.Config):
    """What an ingest reads."""

    settle_seconds: float = Field(
        default=0,
        description="Leave files modified less than this many seconds ago for the next run: they may still be "
                    "arriving (an upload writing its final name directly). The nightly schedule and the inbox sensor "
                    "set it; a run started by hand reads everything.",
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "source_files",
            description="Every file delivered to inbox/<agency_id>/<SECTOR>/, once per content hash: status, "
            "reason, and rows total = loaded + rejected.",
            deps=["agencies", "agency_metric_settings", "agency_breakdown_settings", "metric_definitions",
                  "metric_categories"],
            freshness_policy=NIGHTLY_FRESHNESS,
            **_COMMON,
        ),
        dg.AssetSpec(
            "rejected_rows",
            description="Every row an agency must fix (severity ERROR, not loaded) and every warning on a loaded "
            "row: file, sheet, 1-based row, column, raw value, rule and message.",
            deps=["source_files"],
            **_COMMON,
        ),
    ],
    pool=WAREHOUSE_POOL,
)
def inbox_files(context: dg.AssetExecutionContext, config: IngestConfig,
                warehouse: WarehouseResource) -> Iterator[dg.MaterializeResult]:
    """Read only the files whose sha256 the store has not seen, and record them batch by batch, each batch in
    one short transaction. Files whose size, mtime and ctime are as when last hashed are not even hashed; files
    modified within the last `settle_seconds` (config) are left for the next run."""
    registry, roster = warehouse.registry(), warehouse.roster()
    store = warehouse.store()
    with store.connect() as con:
        ingest.ensure_schema(con)
        ingest.record_agency_states(con, roster)  # the staged rows keep no state of their own
        ingest.mark_read_by_this_version(con, warehouse.layout.root)  # after an upgrade: every file, once, in place
        known, rereads = ingest.known_files(con), ingest.files_to_reread(con)
        unopenable = ingest.unopenable_files(con, {**known, **rereads})
        # JC_INGEST_REHASH=1 reads every file again, for a file rewritten with its old size and times restored.
        seen = {} if os.environ.get(REHASH_VARIABLE) == "1" else ingest.file_stats(con)

    logged = [time.monotonic()]

    def delivered() -> list[tuple[str, str, bool, bool]]:
        with store.connect() as con:
            return ingest.delivered_versions(con)

    def log_progress(done: int, total: int) -> None:
        # Every log line is an event in the run's storage: one per 15 s, not one per 50 files (a state of 32,000
        # files spent 16 s of a nothing-new run writing progress lines).
        if done == total or time.monotonic() - logged[0] >= PROGRESS_SECONDS:
            logged[0] = time.monotonic()
            context.log.info(f"looked at {done}/{total} inbox files")

    def normalize_and_write(read: ingest.ReadBatch) -> ingest.IngestReport:
        batch = read.normalize()
        with store.connect() as con:
            report = ingest.write_batch(con, batch)
            ingest.record_file_stats(con, batch.file_stats)
            return report

    # Batch by batch: memory stays bounded, and a run stopped half-way keeps what it wrote (the next run reads
    # only the files not recorded yet and rolls up every month the written batches touched). Each batch is
    # normalized and written in a thread while the next one is read (Polars and DuckDB work outside the GIL;
    # reading is Python and calamine), one batch at a time and in order; leaving the block waits for the last
    # batch, also when reading failed.
    reports = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-write") as writer:
        writing: Future[ingest.IngestReport] | None = None
        for read in ingest.read_inbox_batches(
            warehouse.layout.root, known, roster, registry, now=datetime.now(UTC), progress=log_progress,
            seen=seen, rereads=rereads, unopenable=unopenable, delivered=delivered,
            settle_seconds=config.settle_seconds,
        ):
            if writing is not None:
                reports.append(writing.result())
            writing = writer.submit(normalize_and_write, read)
            # From here only the writer thread holds the batch, so its rows are freed there once written, not here
            # after the next batch is read: freeing thousands of Arrow sheets costs time, and memory meanwhile.
            del read
        reports.append(writing.result())
    report = sum(reports[1:], reports[0])
    with store.connect() as con:
        # After the batches: a version withdrawals.csv lists may have been read tonight.
        withdrawn = ingest.apply_withdrawals(con, roster.withdrawals)
        # A withdrawn export counts for nothing, whichever mapping reads it: nothing to say of it.
        gone_out = ingest.withdrawn_paths(con, [path for path, _ in report.kept])
        kept = [(path, why) for path, why in report.kept if path not in gone_out]
        # Months no roll-up has covered yet (an earlier ingest stopped after some batches, a roll-up that failed)
        # go with this ingest's: touched_periods_sensor reads only this metadata.
        waiting = pending.pending_months(con)
        gone = ingest.rereads_gone(con, warehouse.layout.root)
    # Nothing at all where files were read before: the share is not mounted, or the folder was emptied (helper-48).
    looked_at = (report.files_new + report.files_changed + report.files_unchanged + report.files_unreadable
                 + report.files_reread + report.files_arriving + report.files_duplicate + len(report.kept))
    missing = len(known) + len(rereads) if not looked_at else 0
    empty = (f"the inbox holds no file, but {missing:,} were read before: is the share mounted? Nothing is lost "
             f"(what they loaded stays); check the data directory's inbox/ folder") if missing else ""
    if empty:
        context.log.warning(empty)
    for path, why in kept[:KEPT_LOGGED]:
        context.log.warning(f"{path} keeps what it loaded, not read again: {why}")
    for line, path in withdrawn.unmatched:
        context.log.warning(ingest.unmatched_message(line, path))
    touched = sorted({month.isoformat() for month in (*report.touched_months, *waiting)})
    yield dg.MaterializeResult(
        asset_key="source_files",
        metadata={
            "files_new": report.files_new,
            "files_changed": report.files_changed,
            "files_unchanged": report.files_unchanged,
            "files_unreadable": report.files_unreadable,
            "files_reread": report.files_reread,
            "files_arriving": report.files_arriving,
            # The inbox held no file, though the store had read some: what the run says of it ("" otherwise).
            "inbox_empty": empty,
            # Recorded unreadable, readable again: those records retired (IngestBatch.recovered).
            "files_recovered": report.files_recovered,
            # Holding a version another path of the agency's folder delivered first: not read (status DUPLICATE).
            "files_duplicate": report.files_duplicate,
            # withdrawals.csv: versions withdrawn and given back by this run, and the months they rebuild (also in
            # touched_months).
            "files_withdrawn": withdrawn.withdrawn,
            "files_restored": withdrawn.restored,
            "withdrawal_months": withdrawn.months,
            "withdrawals_unmatched": dg.MetadataValue.json([ingest.unmatched_message(line, path)
                                                           for line, path in withdrawn.unmatched]),
            # Not read again: their agency's mapping file does not validate (IngestBatch.kept).
            "files_kept": len(kept),
            "kept": dg.MetadataValue.json([{"path": path, "why": why} for path, why in kept[:KEPT_LOGGED]]),
            # Marked to be read again after a roster change, but moved or deleted with their agency's folder.
            "files_gone": len(gone),
            "folders_gone": dg.MetadataValue.json(sorted({path.split("/")[1] for path in gone})),
            "touched_months": dg.MetadataValue.json(touched),
        },
    )
    yield dg.MaterializeResult(
        asset_key="rejected_rows",
        metadata={
            "rows_total": report.rows_total,
            "rows_loaded": report.rows_loaded,
            "rows_rejected": report.rows_rejected,
        },
    )
