"""Withdrawn file versions: the state's list (withdrawals.csv, :attr:`Roster.withdrawals`) applied to the store.

A file an agency sent by mistake (another county's numbers, a test export) stays in the history, but what it loaded
must stop counting, and a newer upload cannot do that: it overrides only the datapoints it carries. A withdrawn
version keeps its staged rows and findings; the resolve leaves its rows out (``ingest_withdrawals``), so every
datapoint it won goes back to the upload before it, or away. Its ``source_files`` row says ``WITHDRAWN`` with the
state's reason, and its findings are no longer asked of the agency. Taking the row out of withdrawals.csv gives the
version its status back and its datapoints count again. Either way every month the version's rows fall in is
rebuilt for every agency (the rows may be a superagency's children's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import duckdb
import polars as pl

from jc_pipeline.lib import pending
from jc_pipeline.lib.roster import Withdrawal
from jc_pipeline.lib.warehouse import transaction

WITHDRAWN = "WITHDRAWN"


class WithdrawalChange(NamedTuple):
    """What :func:`apply_withdrawals` changed: file versions withdrawn and given back, the months to rebuild, and the
    lines of withdrawals.csv that name no version read (line, path)."""

    withdrawn: int
    restored: int
    months: int
    unmatched: tuple[tuple[int, str], ...] = ()


# The versions the list names: every version of the path with those bytes (a file sent again after a revert is two;
# a native export's sha256 carries its mapping's after a '+', and a changed mapping makes a version of the same bytes).
_LISTED = """
    SELECT f.upload_seq, f.status, f.reason, 'Withdrawn by the state: ' || w.reason AS withdrawn_reason
    FROM source_files AS f JOIN _withdrawals AS w ON f.path = w.path AND split_part(f.sha256, '+', 1) = w.sha256
"""
_UNMATCHED = """
    SELECT line, path FROM _withdrawals AS w
    WHERE NOT EXISTS (SELECT 1 FROM source_files AS f WHERE f.path = w.path AND split_part(f.sha256, '+', 1) = w.sha256)
    ORDER BY line
"""
# A version newly listed, or read again since (a roster change reads a folder again, in place: the row comes back
# with the status the ingest gives it).
_KEEP_STATUS = f"""
    INSERT OR REPLACE INTO ingest_withdrawals (upload_seq, status, reason)
    SELECT upload_seq, status, reason FROM ({_LISTED}) WHERE status <> '{WITHDRAWN}'
"""
_MARK = f"""
    UPDATE source_files AS f SET status = '{WITHDRAWN}', reason = l.withdrawn_reason
    FROM ({_LISTED}) AS l
    WHERE f.upload_seq = l.upload_seq AND (f.status <> '{WITHDRAWN}' OR f.reason IS DISTINCT FROM l.withdrawn_reason)
"""
_RESTORE = f"""
    UPDATE source_files AS f SET status = w.status, reason = w.reason
    FROM ingest_withdrawals AS w
    WHERE f.upload_seq = w.upload_seq AND f.status = '{WITHDRAWN}'
      AND w.upload_seq NOT IN (SELECT upload_seq FROM ({_LISTED}))
"""
_FORGET = f"DELETE FROM ingest_withdrawals WHERE upload_seq NOT IN (SELECT upload_seq FROM ({_LISTED}))"
_MONTHS = """
    SELECT DISTINCT date_trunc('month', period_start)::DATE
    FROM ingest_datapoints  -- ingest.STAGED_TABLE
    WHERE list_contains($seqs, upload_seq) AND upload_seq BETWEEN list_min($seqs) AND list_max($seqs)
"""
_LATEST_WITHDRAWN = f"""
    SELECT path FROM source_files WHERE list_contains($paths, path)
    QUALIFY row_number() OVER (PARTITION BY path ORDER BY upload_seq DESC) = 1 AND status = '{WITHDRAWN}'
"""


def withdrawn_paths(con: duckdb.DuckDBPyConnection, paths: Sequence[str]) -> set[str]:
    """The paths among ``paths`` whose latest version read is withdrawn."""
    if not paths:
        return set()
    return {path for (path,) in con.execute(_LATEST_WITHDRAWN, {"paths": list(paths)}).fetchall()}


def unmatched_message(line: int, path: str) -> str:
    """What a run says of a row of withdrawals.csv that names no version read (:attr:`WithdrawalChange.unmatched`)."""
    return (f"withdrawals.csv, line {line}: no version of {path} with this sha256 has been read (a typo, or a version "
            f"no longer in the inbox): nothing withdrawn for it; copy path and sha256 from source_files")


def apply_withdrawals(con: duckdb.DuckDBPyConnection, withdrawals: Sequence[Withdrawal]) -> WithdrawalChange:
    """Make the store's withdrawn versions those of ``withdrawals``, in one transaction, after the ingest wrote this
    run's files (a version listed may have arrived tonight, or come back with a store rebuilt from the inbox).
    A row no version read matches is left out and named (``unmatched``), not an error: a typo in its hash, or a
    version no longer in the inbox (a store rebuilt from the inbox after the path was sent again: helper-43, every
    run failed), whose rows no run can load again. Idempotent: with nothing to change it writes nothing."""
    listed = pl.DataFrame([(w.line, w.path, w.sha256, w.reason) for w in withdrawals], orient="row",
                          schema={"line": pl.Int64, "path": pl.String, "sha256": pl.String, "reason": pl.String})
    if not listed.height and not con.execute("SELECT count(*) FROM ingest_withdrawals").fetchall()[0][0]:
        return WithdrawalChange(0, 0, 0)
    con.register("_withdrawals", listed)
    try:
        unmatched = tuple(con.execute(_UNMATCHED).fetchall())
        with transaction(con):
            before = {seq for (seq,) in con.execute("SELECT upload_seq FROM ingest_withdrawals").fetchall()}
            con.execute(_KEEP_STATUS)
            con.execute(_MARK)
            con.execute(_RESTORE)
            con.execute(_FORGET)
            after = {seq for (seq,) in con.execute("SELECT upload_seq FROM ingest_withdrawals").fetchall()}
            changed = sorted(before ^ after)
            months = [m for (m,) in con.execute(_MONTHS, {"seqs": changed}).fetchall()] if changed else []
            if months:
                pending.mark_whole_months(con, months)
            if changed:
                pending.mark_unpublished(con)  # the status and findings change also when no month does
    finally:
        con.unregister("_withdrawals")
    return WithdrawalChange(len(after - before), len(before - after), len(months), unmatched)
