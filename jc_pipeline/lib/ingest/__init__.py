"""Ingest stage: inbox files -> staged datapoints, rejected rows and the file registry; then agency_metrics.

Public API (called by the Dagster layer)::

    ingest.ensure_schema(con)
    ingest.record_agency_states(con, roster)            # before staging: staged rows keep no state of their own
    ingest.mark_read_by_this_version(con, data_dir)     # after an upgrade: every path read again, once
    known, seen = ingest.known_files(con), ingest.file_stats(con)   # paths to read again (roster change) left out
    rereads = ingest.files_to_reread(con)                            # ... and given here, to be read in place
    unopenable = ingest.unopenable_files(con, {**known, **rereads})  # last recorded unreadable: their last reading
    delivered = lambda: ingest.delivered_versions(con)  # the path that delivered each version first (when needed)
    gone = ingest.rereads_gone(con, data_dir)           # after the ingest: marked paths the inbox no longer holds
    ingest.apply_withdrawals(con, roster.withdrawals)   # after the ingest: the versions withdrawals.csv lists
    batch = ingest.parse_inbox(data_dir, known, roster, registry, now=..., seen=seen, rereads=rereads,
                               unopenable=unopenable, delivered=delivered)             # no DB
    report = ingest.write_batch(con, batch)                                            # one transaction
    ingest.record_file_stats(con, batch.file_stats)     # next time, files whose stat did not move are not read
    for batch in ingest.parse_inbox_batches(...): ...   # the same in bounded memory, batch after batch
    for read in ingest.read_inbox_batches(...): read.normalize()   # the same, each batch normalized when wanted
    ingest.resolve_agency_metrics(con, months, roster, registry)

Pure logic only (no Dagster import). The rule catalogue is :data:`RULES` (documented in docs/rules.md).
"""

from jc_pipeline.lib.ingest.batch import IngestBatch, ReadBatch, parse_inbox, parse_inbox_batches, read_inbox_batches
from jc_pipeline.lib.ingest.resolve import resolve_agency_metrics
from jc_pipeline.lib.ingest.rules import RULES, Rule
from jc_pipeline.lib.ingest.store import (
    STAGED_TABLE,
    IngestReport,
    delivered_versions,
    ensure_schema,
    file_stats,
    files_to_reread,
    known_files,
    mark_read_by_this_version,
    record_agency_states,
    record_file_stats,
    rereads_gone,
    unopenable_files,
    write_batch,
)
from jc_pipeline.lib.ingest.withdrawals import WithdrawalChange, apply_withdrawals, unmatched_message, withdrawn_paths

__all__ = [
    "RULES",
    "STAGED_TABLE",
    "IngestBatch",
    "IngestReport",
    "ReadBatch",
    "Rule",
    "WithdrawalChange",
    "apply_withdrawals",
    "delivered_versions",
    "ensure_schema",
    "file_stats",
    "files_to_reread",
    "known_files",
    "mark_read_by_this_version",
    "parse_inbox",
    "parse_inbox_batches",
    "read_inbox_batches",
    "record_agency_states",
    "record_file_stats",
    "rereads_gone",
    "resolve_agency_metrics",
    "unmatched_message",
    "unopenable_files",
    "withdrawn_paths",
    "write_batch",
]
