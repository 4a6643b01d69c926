"""Which period months still need recomputing after ingest, and whether the published warehouse lags the store's
roll-ups (crash-safe bookkeeping in the store)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from importlib import resources
from typing import NamedTuple

import duckdb

from jc_pipeline.lib.periods import contiguous_ranges, months_through
from jc_pipeline.lib.warehouse import missing_tables, transaction

#: What resolve, checks and roll-up compute from the same uploads and roster, as a version: raised with every change
#: of it, so that a store whose months an older version built rebuilds every month once (:func:`mark_rules_current`)
#: instead of mixing the two versions' rows month by month, nightly rebuild by nightly rebuild. 2 (2026-12-07): state
#: sums exact to six decimals, a derived year's breakdown counting a category's months, the rows' other cadences.
#: 3 (2026-12-07): an inferred staff total from the staff types with the vacancies, prosecution's vacancy member in
#: the staff checks, aggregation_rule from is_level, agencies_expected_by_subsystem. 4 (2026-12-07):
#: period_not_in_future judged on the day the file was sent, not on today (helper-50: an upgraded store kept the old
#: rule's passes for files no agency sends again).
ROLLUP_RULES = 4

_INDEXED_SQL = "SELECT upload_seq FROM staged_months_indexed"
_LATEST_UPLOAD_SQL = "SELECT coalesce(max(upload_seq), 0) FROM source_files"
# upload_seq grows with every write, so the staged rows of new uploads sit in the newest staged files and the range
# filter skips all the others by their min/max statistics: the cost follows the new rows, not the history. (The
# marks matter only to a store from before pending_file_months, whose first call indexes everything.) A file-month
# listed already is skipped: the table has no key (pending_months.sql).
_INDEX_SQL = """
    INSERT INTO pending_file_months (file_id, month)
    SELECT f.file_id, s.month
    FROM (
        SELECT DISTINCT upload_seq, date_trunc('month', period_start)::DATE AS month
        FROM ingest_datapoints  -- ingest.STAGED_TABLE
        WHERE upload_seq > $after AND upload_seq <= $upto
    ) AS s
    JOIN source_files AS f USING (upload_seq)
    WHERE NOT EXISTS (SELECT 1 FROM rolled_up_file_months AS r WHERE r.file_id = f.file_id AND r.month = s.month)
      AND NOT EXISTS (SELECT 1 FROM pending_file_months AS p WHERE p.file_id = f.file_id AND p.month = s.month)
"""
_SET_INDEXED_SQL = "UPDATE staged_months_indexed SET upload_seq = ?"
_NEXT_UPLOAD_SQL = """
    SELECT greatest((SELECT coalesce(max(upload_seq), 0) FROM source_files),
                    (SELECT upload_seq FROM staged_months_indexed),
                    (SELECT published_upload_seq FROM publish_generations)) + 1
"""

_PENDING = """
    SELECT DISTINCT month FROM (SELECT month FROM pending_file_months UNION ALL SELECT month FROM pending_whole_months)
    ORDER BY month
"""
# The months whose agency_metrics rows a rebuild changed and no roll-up has read since: also after a run that died
# after its checks.
_REBUILT_MONTHS = "SELECT DISTINCT month FROM rebuilt_agency_months"
_WHOLE = "SELECT DISTINCT month FROM pending_whole_months ORDER BY month"
# Every month holding data ($months NULL) or the given ones, once (a month listed and not yet resolved is not listed
# again).
_MARK_WHOLE = """
    INSERT INTO pending_whole_months (month)
    SELECT DISTINCT month FROM (
        SELECT month FROM rolled_up_file_months UNION ALL SELECT month FROM pending_file_months
        UNION ALL SELECT unnest($months::DATE[]))
    WHERE ($months::DATE[] IS NULL OR list_contains($months::DATE[], month))
      AND month NOT IN (SELECT month FROM pending_whole_months WHERE NOT resolved)
"""
_RESOLVE_WHOLE = "UPDATE pending_whole_months SET resolved = TRUE WHERE month IN (SELECT unnest($months::DATE[]))"
_UNPEND_WHOLE = "DELETE FROM pending_whole_months WHERE resolved AND month IN (SELECT unnest($months::DATE[]))"
# Every staged file-month is in one of these two once the new uploads are indexed: a few hundred thousand rows
# against the staged table's millions (3,000 agencies: 5-11 ms against 0.10-0.15 s).
_STAGED_MONTHS = """
    SELECT DISTINCT month
    FROM (SELECT month FROM rolled_up_file_months UNION ALL SELECT month FROM pending_file_months)
    WHERE month >= $first AND month <= $last
"""

# The agencies a staged row of a pending file-month is stored under (a superagency's upload carries its child
# agencies' rows). Pending files are recent uploads, so the upload_seq range lets the scan skip the row groups of
# every other upload by their min/max statistics.
_PENDING_SEQ_RANGE = """
    SELECT min(f.upload_seq), max(f.upload_seq)
    FROM pending_file_months AS p JOIN source_files AS f USING (file_id)
    WHERE list_contains($months, p.month)
"""
_PENDING_AGENCIES = """
    SELECT DISTINCT s.agency_id
    FROM ingest_datapoints AS s  -- ingest.STAGED_TABLE
    SEMI JOIN (
        SELECT f.upload_seq, p.month
        FROM pending_file_months AS p JOIN source_files AS f USING (file_id)
        WHERE list_contains($months, p.month)
    ) AS p ON p.upload_seq = s.upload_seq AND p.month = date_trunc('month', s.period_start)::DATE
    WHERE s.upload_seq BETWEEN $first AND $last
    ORDER BY s.agency_id
"""

_RESOLVED = "UPDATE pending_file_months SET resolved = TRUE WHERE month IN (SELECT unnest($months::DATE[]))"
_MARK = """
    INSERT INTO rolled_up_file_months
    SELECT file_id, month FROM pending_file_months AS p
    WHERE resolved AND month IN (SELECT unnest($months::DATE[]))
      AND NOT EXISTS (SELECT 1 FROM rolled_up_file_months AS r WHERE r.file_id = p.file_id AND r.month = p.month)
"""
_UNPEND = "DELETE FROM pending_file_months WHERE resolved AND month IN (SELECT unnest($months::DATE[]))"

# One row per month and rebuilt agency, not checked yet; a NULL agency stands for every agency (a rebuild of whole
# months).
_RECORD_REBUILT = """
    INSERT INTO rebuilt_agency_months (month, agency_id, checked)
    SELECT m.month, a.agency_id, FALSE
    FROM unnest($months::DATE[]) AS m(month)
    CROSS JOIN (SELECT unnest(coalesce($agencies::VARCHAR[], [NULL::VARCHAR])) AS agency_id) AS a
"""
# The rebuilds of these months and agencies (NULL: every agency) have been checked.
_CHECKED = """
    UPDATE rebuilt_agency_months SET checked = TRUE
    WHERE month IN (SELECT unnest($months::DATE[]))
      AND ($agencies::VARCHAR[] IS NULL OR list_contains($agencies::VARCHAR[], agency_id))
"""
_UNCHECKED = "SELECT DISTINCT agency_id, month FROM rebuilt_agency_months WHERE NOT checked"
_REBUILT = """
    SELECT count(DISTINCT month), bool_or(agency_id IS NULL),
           coalesce(list(DISTINCT agency_id ORDER BY agency_id) FILTER (WHERE agency_id IS NOT NULL), [])
    FROM rebuilt_agency_months
    WHERE checked AND month IN (SELECT unnest($months::DATE[]))
"""
# The months a nightly state roll-up must read: their agency_metrics rows were rebuilt and checked since their last
# roll-up, or they hold uploads such a rebuild read (a rebuild of no agency records none).
_TO_ROLL_UP = """
    SELECT month FROM rebuilt_agency_months WHERE checked AND month IN (SELECT unnest($months::DATE[]))
    UNION
    SELECT month FROM pending_file_months WHERE resolved AND month IN (SELECT unnest($months::DATE[]))
"""
_FORGET_REBUILT = "DELETE FROM rebuilt_agency_months WHERE checked AND month IN (SELECT unnest($months::DATE[]))"

#: The bookkeeping tables that had a primary key (file_id, month) before pending_months.sql dropped it.
_FILE_MONTH_TABLES = ("rolled_up_file_months", "pending_file_months")
_KEYED_SQL = """
    SELECT DISTINCT table_name FROM duckdb_constraints()
    WHERE constraint_type = 'PRIMARY KEY' AND database_name = current_database() AND schema_name = current_schema()
      AND list_contains($tables, table_name)
"""
_COUNT_ROLLUP_SQL = "UPDATE publish_generations SET rolled_up = rolled_up + 1"
_GENERATIONS_SQL = "SELECT rolled_up, published, published_upload_seq FROM publish_generations"
_PUBLISHED_SQL = """
    UPDATE publish_generations
    SET published = greatest(published, $rolled_up), published_upload_seq = greatest(published_upload_seq, $uploaded)
"""


class Rebuild(NamedTuple):
    """Months rebuilt together, and the agencies rebuilt in them (None: every agency)."""

    months: list[date]
    agencies: list[str] | None


class Generations(NamedTuple):
    """Roll-ups committed to the store so far and how many of them the published warehouse holds; the latest
    upload recorded in the store and the latest the published warehouse holds (``source_files.upload_seq``)."""

    rolled_up: int
    published: int
    uploaded: int
    published_uploads: int

    @property
    def unpublished(self) -> bool:
        """The warehouse lacks a roll-up (or another change counted as one, :func:`mark_unpublished`), or files
        ingested since its publish: also files that touch no month (every row rejected, or unreadable), whose rows
        the reports must show the agency that night."""
        return self.rolled_up > self.published or self.uploaded > self.published_uploads


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the bookkeeping tables (idempotent). A store whose file-month tables still have a primary key (see
    pending_months.sql) gets them again without one, with the same rows, in one transaction (``con`` must not hold
    one then)."""
    script = resources.files("jc_pipeline.lib").joinpath("sql/pending_months.sql").read_text(encoding="utf-8")
    con.execute(script)
    found = {row[0] for row in con.execute(_KEYED_SQL, {"tables": list(_FILE_MONTH_TABLES)}).fetchall()}
    keyed = [table for table in _FILE_MONTH_TABLES if table in found]  # code constants, never the catalog's text
    if keyed:
        with transaction(con):
            for table in keyed:
                con.execute(f"ALTER TABLE {table} RENAME TO {table}_keyed")
            con.execute(script)
            for table in keyed:
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {table}_keyed")
                con.execute(f"DROP TABLE {table}_keyed")


def _indexed(con: duckdb.DuckDBPyConnection) -> None:
    """The bookkeeping tables exist and list the file-months of every upload staged so far."""
    ensure_schema(con)
    with transaction(con):
        _index_new_uploads(con)


def pending_months(con: duckdb.DuckDBPyConnection) -> list[date]:
    """Month starts that new or changed files touched, that a change of the reference tables marked
    (:func:`mark_whole_months`), or whose rebuilt datapoints (:func:`record_rebuilt`) no roll-up has read, and no
    roll-up has covered yet."""
    _indexed(con)
    pending = con.execute(_PENDING).fetchall()
    return sorted({row[0] for row in [*pending, *con.execute(_REBUILT_MONTHS).fetchall()]})


def whole_months(con: duckdb.DuckDBPyConnection) -> list[date]:
    """The pending months to rebuild for every agency (:func:`mark_whole_months`)."""
    ensure_schema(con)
    return [row[0] for row in con.execute(_WHOLE).fetchall()]


def mark_whole_months(con: duckdb.DuckDBPyConnection, months: Sequence[date] | None = None) -> None:
    """Mark every month holding data (or ``months``) for a rebuild of all its agencies: the roster, an agency's
    settings or the registry changed, and agency_metrics, the verdicts and state_metrics of every month were made
    with the old ones (expected agencies, populations, frequencies, enabled categories); or a file read again left
    ``months``. Call it in the transaction that writes the change, after :func:`ensure_schema`, so that a change is
    never stored without its rebuild pending."""
    con.execute(_MARK_WHOLE, {"months": None if months is None else list(months)})


def mark_rules_current(con: duckdb.DuckDBPyConnection) -> bool:
    """Mark every month holding data for a rebuild of all its agencies when the store's months were built by other
    roll-up rules than :data:`ROLLUP_RULES` (a store from before the record: any), record the current ones, and say
    whether it marked. Call it in the transaction that writes the reference tables, after :func:`ensure_schema`."""
    if con.execute("SELECT list(version) FROM rollup_rules").fetchall()[0][0] == [ROLLUP_RULES]:
        return False
    con.execute("DELETE FROM rollup_rules")
    con.execute("INSERT INTO rollup_rules VALUES (?)", [ROLLUP_RULES])
    mark_whole_months(con)
    return True


def months_without_datapoints(con: duckdb.DuckDBPyConnection, first: date, last: date) -> set[date]:
    """The month starts first..last (inclusive) in which no staged datapoint's period starts: a roll-up covering
    them rebuilds nothing there (agency_metrics is resolved from the staged datapoints only). Read from the
    file-months of the uploads (new ones indexed first); a month with data taken for empty could only make a
    nightly roll-up rebuild its agencies there again, to the same rows."""
    _indexed(con)
    return _without_datapoints(con, first, last)


def _without_datapoints(con: duckdb.DuckDBPyConnection, first: date, last: date) -> set[date]:
    rows = con.execute(_STAGED_MONTHS, {"first": first, "last": last}).fetchall()
    return set(months_through(first, last)) - {month for (month,) in rows}


def _pending_agencies(con: duckdb.DuckDBPyConnection, months: Sequence[date]) -> list[str]:
    """Agencies (sorted) with staged rows in `months` from uploads no roll-up has covered yet (indexed already):
    the only ones whose agency_metrics of those months can have changed since they were last rebuilt."""
    params = {"months": sorted(months)}
    first, last = con.execute(_PENDING_SEQ_RANGE, params).fetchall()[0]
    if first is None:
        return []
    return [row[0] for row in con.execute(_PENDING_AGENCIES, {**params, "first": first, "last": last}).fetchall()]


def pending_rebuilds(con: duckdb.DuckDBPyConnection, months: Sequence[date]) -> list[Rebuild]:
    """What a nightly roll-up over `months` rebuilds: the months among them holding pending uploads or a rebuild
    whose checks did not finish (:func:`record_rebuilt`), grouped into ranges of
    consecutive months (joined across months without any datapoint, where a rebuild has nothing to do), each with
    the agencies that have pending uploads or such a rebuild in it (None, every agency, for a range holding a month
    :func:`mark_whole_months` marked or rebuilt whole). A range's agencies are rebuilt in all of its
    months: the same rows as rebuilding each month's own agencies, since both steps are per agency. Months of
    `months` in no range are current and not read. Uploads staged since the last call are indexed first; call it
    on the connection that then rebuilds them and calls `mark_resolved` (the store's lock keeps any other upload
    out meanwhile)."""
    _indexed(con)
    wanted = set(months)
    unchecked = con.execute(_UNCHECKED).fetchall()  # a run that died before or in its checks: done again
    extra = [(agency, month) for agency, month in unchecked if month in wanted and agency is not None]
    whole = {row[0] for row in con.execute(_WHOLE).fetchall()} | {
        month for agency, month in unchecked if agency is None and month in wanted}
    work = sorted({row[0] for row in con.execute(_PENDING).fetchall() if row[0] in wanted}
                  | {month for _, month in extra} | (whole & wanted))
    if not work:
        return []
    rebuilds = []
    for first, last in contiguous_ranges(work, empty=_without_datapoints(con, work[0], work[-1])):
        group = months_through(first, last)
        if whole.intersection(group):
            rebuilds.append(Rebuild(group, None))
            continue
        agencies = {*_pending_agencies(con, group), *(agency for agency, month in extra if first <= month <= last)}
        rebuilds.append(Rebuild(group, sorted(agencies)))
    return rebuilds


def rebuilds_to_roll_up(con: duckdb.DuckDBPyConnection, months: Sequence[date]) -> list[Rebuild]:
    """What a nightly state roll-up over `months` re-reads: the ranges of its months whose agency_metrics rows
    were rebuilt and checked since their last roll-up (`record_rebuilt`, `mark_resolved`), each with its rebuilt
    agencies (`rebuilt_agencies`; None: every agency). The other months' state rows are current."""
    ensure_schema(con)
    rebuilt = [row[0] for row in con.execute(_TO_ROLL_UP, {"months": sorted(set(months))}).fetchall()]
    return [Rebuild(group, _rebuilt_agencies(con, group))
            for group in (months_through(first, last) for first, last in contiguous_ranges(rebuilt))]


def record_rebuilt(con: duckdb.DuckDBPyConnection, rebuilds: Sequence[Rebuild]) -> None:
    """Record that agency_metrics was just rebuilt as `rebuilds` say (each rebuild's agencies; None: every agency),
    not checked yet: the months stay in :func:`pending_months` until their roll-up, and a rebuild whose checks do
    not finish (:func:`mark_resolved`) is done again by the next :func:`pending_rebuilds`, while the state roll-up
    reads checked rebuilds only (`rebuilds_to_roll_up`, `rebuilt_agencies`)."""
    ensure_schema(con)
    with transaction(con):
        for months, agencies in rebuilds:
            con.execute(_RECORD_REBUILT, {"months": sorted(set(months)),
                                          "agencies": None if agencies is None else sorted(set(agencies))})


def mark_resolved(con: duckdb.DuckDBPyConnection, rebuilds: Sequence[Rebuild]) -> None:
    """Record that agency_metrics, rebuilt as `rebuilds` say (:func:`record_rebuilt`) from every upload staged so
    far, has been checked: the pending uploads of their months are resolved. Call it on the connection that did the
    rebuilds and the checks, before closing it: the store's lock is still held, so no upload can slip in between
    what the rebuilds read and what this records."""
    ensure_schema(con)
    with transaction(con):
        _index_new_uploads(con)
        for months, agencies in rebuilds:
            params = {"months": sorted(set(months))}
            con.execute(_RESOLVED, params)
            if agencies is None:
                con.execute(_RESOLVE_WHOLE, params)
            con.execute(_CHECKED, {**params, "agencies": None if agencies is None else sorted(set(agencies))})


def rebuilt_agencies(con: duckdb.DuckDBPyConnection, months: Sequence[date]) -> list[str] | None:
    """The agencies (sorted) whose agency_metrics rows of `months` were rebuilt and checked since the state roll-up
    of those months last ran (`record_rebuilt`, `mark_resolved`), or None when any of the months was rebuilt whole
    or has no record (a store from before the record, or a rebuild of no agency): then the state roll-up must read
    every agency."""
    ensure_schema(con)
    return _rebuilt_agencies(con, months)


def _rebuilt_agencies(con: duckdb.DuckDBPyConnection, months: Sequence[date]) -> list[str] | None:
    wanted = sorted(set(months))
    recorded, whole, agencies = con.execute(_REBUILT, {"months": wanted}).fetchall()[0]
    if recorded < len(wanted) or whole:
        return None
    return list(agencies)


def mark_rolled_up(con: duckdb.DuckDBPyConnection, months: Sequence[date]) -> None:
    """Record that the staged files' datapoints in `months` that the last rebuild of agency_metrics read
    (`mark_resolved`) are now reflected in the state tables, and that the published warehouse lacks them until
    `mark_published` (one transaction: a kill leaves both or neither). Uploads written after that rebuild (another
    process's ingest between the two steps of a roll-up run) stay pending for the next roll-up. The checked
    rebuilds of `months` are forgotten: the state tables now reflect them (unchecked ones wait for their checks)."""
    ensure_schema(con)
    with transaction(con):
        con.execute(_MARK, {"months": list(months)})
        con.execute(_UNPEND, {"months": list(months)})
        con.execute(_UNPEND_WHOLE, {"months": list(months)})
        con.execute(_FORGET_REBUILT, {"months": list(months)})
        con.execute(_COUNT_ROLLUP_SQL)


def mark_unpublished(con: duckdb.DuckDBPyConnection) -> None:
    """Count a change of the store the published warehouse lacks and that no roll-up may follow (a rewritten
    reference table, a file read again in place: neither moves the latest upload), as a roll-up counts, so the
    next run publishes it even when no month holds data. Call it in the transaction that writes the change."""
    con.execute(_COUNT_ROLLUP_SQL)


def _index_new_uploads(con: duckdb.DuckDBPyConnection) -> None:
    """Add the file-months of the uploads written since the last call to pending_file_months (in the caller's
    transaction). A store from before that table indexes all its staged rows once, on the first call."""
    after = con.execute(_INDEXED_SQL).fetchall()[0][0]
    upto = con.execute(_LATEST_UPLOAD_SQL).fetchall()[0][0]
    if upto > after:
        con.execute(_INDEX_SQL, {"after": after, "upto": upto})
        con.execute(_SET_INDEXED_SQL, [upto])



def next_upload_seq(con: duckdb.DuckDBPyConnection) -> int:
    """The upload_seq of the next upload: above every one recorded, and above those the index of new uploads and the
    publish record have passed, which a retired version (it loaded nothing: deleted) may have held. Given again, that
    number was taken for indexed and published: the new upload's months were never rolled up (helper-54). Call it
    after :func:`ensure_schema`, in the transaction that writes the upload."""
    return con.execute(_NEXT_UPLOAD_SQL).fetchall()[0][0]


def rolled_up_halfway(con: duckdb.DuckDBPyConnection) -> list[date]:
    """The months whose agency_metrics rows a roll-up rebuilt and whose state rows no roll-up has rebuilt since
    (``rebuilt_agency_months``, checked or not): a roll-up is half done, in progress in another run or stopped
    between its steps, and a copy of the store now would publish its new agency rows beside the old state sums."""
    ensure_schema(con)
    return sorted(row[0] for row in con.execute(_REBUILT_MONTHS).fetchall())


def generations(con: duckdb.DuckDBPyConnection) -> Generations:
    """What the store holds (roll-ups, uploads) and what the published warehouse is known to hold. A store no
    ingest has written (no ``source_files``: a publish launched from the UI first) holds no upload."""
    ensure_schema(con)
    rolled_up, published, published_uploads = con.execute(_GENERATIONS_SQL).fetchall()[0]
    uploaded = 0 if missing_tables(con, ["source_files"]) else con.execute(_LATEST_UPLOAD_SQL).fetchall()[0][0]
    return Generations(rolled_up, published, uploaded, published_uploads)


def mark_published(con: duckdb.DuckDBPyConnection, *, rolled_up: int, uploaded: int) -> None:
    """Record that a publish completed from a store holding ``rolled_up`` roll-ups and uploads up to ``uploaded``
    (:func:`generations`, read before that publish began: a roll-up or an ingest committed meanwhile may be missing
    from it and stays unpublished). Never lowers what an overlapping publish recorded."""
    ensure_schema(con)
    con.execute(_PUBLISHED_SQL, {"rolled_up": rolled_up, "uploaded": uploaded})
