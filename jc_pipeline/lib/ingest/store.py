"""Recording an :class:`IngestBatch` in DuckDB: source_files, rejected_rows and the staged datapoints.

Decisions:

* ``upload_seq`` is assigned here, in batch order (``received_at``, then path), continuing the store's maximum;
  a higher sequence wins when two uploads carry the same datapoint.
* ``file_id`` = first 16 hex digits of sha256(path NUL sha256 NUL upload_seq): one id per ingestion of a file
  version, never reused, so a file that reverts to an earlier content is a new, winning upload whose lineage
  and bookkeeping (e.g. which months were rolled up for it) start afresh.
* Superseded versions keep their source_files row, findings and staged datapoints (history, and a newer
  upload only overrides the datapoints it carries); resolution picks the winner.
* A file version read again because the roster changed how its folder is read (``pending_rereads``, marked by the
  reference step) or because its agency's mapping changed is read in place: the same file_id and upload_seq, so it
  keeps its place among the uploads, with its earlier reading (source_files row, findings, staged rows) replaced,
  and the months the earlier reading held marked for a rebuild of every agency.
* One transaction per batch: a crash leaves the store as it was, and the next run re-reads the same files.
* The staged datapoints are Parquet files beside the store (:func:`staged_folder`), one per batch, written and
  flushed inside the batch's transaction and listed in ``ingest_staged_files`` by it; the view ``ingest_datapoints``
  reads the listed files. A file the store does not list (a batch rolled back or killed before its commit, a file
  merged into another) is never read, and the next :func:`ensure_schema` removes it (docs/decisions.md, "Staged
  datapoints in Parquet files beside the store").
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from jc_pipeline.lib import pending
from jc_pipeline.lib.code_version import code_digest
from jc_pipeline.lib.ingest.batch import DUPLICATE, REREAD, UNREADABLE, IngestBatch
from jc_pipeline.lib.ingest.inbox import UNOPENABLE, is_skipped
from jc_pipeline.lib.ingest.lookups import agency_states
from jc_pipeline.lib.ingest.normalize import attach
from jc_pipeline.lib.paths import replace_file
from jc_pipeline.lib.roster import Roster
from jc_pipeline.lib.warehouse import ensure_contract_schema, string_literal, transaction

#: The view of every staged datapoint (the Parquet files ``ingest_staged_files`` lists).
STAGED_TABLE = "ingest_datapoints"
#: The staged rows' columns and types, as written to every Parquet file (the view reads them as DuckDB types).
#: Spelled out rather than taken from normalize's DATAPOINT_SCHEMA: it is the format of files already on disk, which
#: a change to the batches' frames must not alter unnoticed.
STAGED_SCHEMA = pl.Schema({
    "sheet": pl.String, "sheet_order": pl.Int32, "row_number": pl.Int64, "upload_seq": pl.Int64,
    "agency_id": pl.String, "sector": pl.String, "metric_key": pl.String, "frequency": pl.String,
    "period_start": pl.Date, "period_end": pl.Date, "dimension": pl.String, "category": pl.String,
    "value": pl.Float64,
})
_DUCKDB_TYPES = {pl.String: "VARCHAR", pl.Int32: "INTEGER", pl.Int64: "BIGINT", pl.Date: "DATE", pl.Float64: "DOUBLE"}
_STAGED_COMMENT = ("Every loaded row of every ingested file version, kept after newer uploads supersede it; "
                   "agency_metrics is resolved from it (latest upload_seq wins). Reads the Parquet files "
                   "ingest_staged_files lists. Not published.")
#: Columns a staged row must have (the breakdown's dimension and category are NULL on a total).
_STAGED_REQUIRED = tuple(c for c in STAGED_SCHEMA if c not in ("dimension", "category"))
#: A staged file of fewer rows is small; once :data:`SMALL_FILES_MERGED` of them are listed, a batch merges them into
#: one (a nightly run stages one file of ~70,000 rows at 3,000 agencies; reading a view over 1,600 small files cost
#: 0.15-0.26 s a scan against 0.004-0.022 s over the full build's twelve).
SMALL_FILE_ROWS = 200_000
SMALL_FILES_MERGED = 32
_STAGED_FILE = re.compile(r"[0-9]+-[0-9]+-[0-9a-f]{8}\.parquet(?:\.partial)?")

_FILE_COLUMNS = ("file_id", "path", "sha256", "agency_id", "sector", "received_at", "ingested_at", "upload_seq",
                 "status", "reason", "rows_total", "rows_loaded", "rows_rejected")
_FINDING_COLUMNS = ("file_id", "sheet", "row_number", "column_name", "raw_value", "rule", "severity", "message")


@dataclass(frozen=True)
class IngestReport:
    """What one :func:`write_batch` recorded."""

    touched_months: list[date]
    files_new: int
    files_changed: int
    files_unchanged: int
    files_unreadable: int
    files_reread: int  # read again in place; a copy read again in place counts as files_duplicate, as a new one does
    files_arriving: int
    rows_total: int
    rows_loaded: int
    rows_rejected: int
    #: (path, why) of the native exports not read again: their agency's mapping does not read them (IngestBatch.kept)
    kept: tuple[tuple[str, str], ...] = ()
    #: Paths recorded unreadable that read again (IngestBatch.recovered)
    files_recovered: int = 0
    #: Files holding a version another path delivered first (status DUPLICATE)
    files_duplicate: int = 0

    def __add__(self, other: IngestReport) -> IngestReport:
        """What two batches written one after the other recorded."""
        return IngestReport(sorted(set(self.touched_months) | set(other.touched_months)),
                            *(getattr(self, f) + getattr(other, f) for f in _COUNTS),
                            kept=self.kept + other.kept, files_recovered=self.files_recovered + other.files_recovered,
                            files_duplicate=self.files_duplicate + other.files_duplicate)


_COUNTS = ("files_new", "files_changed", "files_unchanged", "files_unreadable", "files_reread", "files_arriving",
           "rows_total", "rows_loaded", "rows_rejected")


def _sql(name: str) -> str:
    return resources.files("jc_pipeline.lib.ingest").joinpath(f"sql/{name}").read_text(encoding="utf-8")


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the contract tables and the ingest's internal tables if missing, point the view of the staged
    datapoints at the listed files and remove the staged files the store does not list (idempotent). Run it on the
    store's exclusive connection (:meth:`~jc_pipeline.lib.warehouse.Store.connect`): no other writer may be
    between writing a file and listing it."""
    ensure_contract_schema(con)
    con.execute(_sql("ingest_schema.sql"))
    pending.ensure_schema(con)  # pending_rereads, and the file-month bookkeeping a file read again updates
    # A store from before 2026-12-06 keeps its staged rows in a table (a view now).
    staged = {name for (name,) in con.execute(
        "SELECT c.column_name FROM duckdb_columns() AS c JOIN duckdb_tables() AS t USING (database_name, table_name) "
        "WHERE database_name = current_database() AND table_name = $table", {"table": STAGED_TABLE}).fetchall()}
    if "state_code" in staged:
        # A store from before 2026-12-06, whose staged rows carried their file's id and their agency's state: the
        # ids are in source_files; each agency's state on its latest upload goes to ingest_agency_states.
        with transaction(con):
            con.execute("INSERT OR IGNORE INTO ingest_agency_states "
                        "SELECT agency_id, arg_max(state_code, upload_seq) FROM ingest_datapoints GROUP BY agency_id")
            con.execute("ALTER TABLE ingest_datapoints DROP COLUMN file_id")
            con.execute("ALTER TABLE ingest_datapoints DROP COLUMN state_code")
    if staged:
        _move_staged_table(con)
    _point_view(con)
    _remove_unlisted(con)


def staged_folder(con: duckdb.DuckDBPyConnection) -> Path:
    """The folder of the staged Parquet files: beside the store's DuckDB file, named after it
    (``pipeline/store.duckdb`` -> ``pipeline/store_staged``)."""
    folder = _folder(con)
    if folder is None:
        raise ValueError("the staged datapoints are Parquet files beside the store's DuckDB file, and an in-memory "
                         "database has none: open the store from a file")
    return folder


def _folder(con: duckdb.DuckDBPyConnection) -> Path | None:
    ((path,),) = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()
    if not path:
        return None
    database = Path(path).resolve()
    return database.with_name(f"{database.stem}_staged")


def stage_datapoints(con: duckdb.DuckDBPyConnection, staged: pl.DataFrame) -> None:
    """Stage ``staged`` (:data:`STAGED_SCHEMA`) inside the caller's open transaction: one Parquet file, flushed to
    disk, then listed. Refuses a frame with a NULL where a value is required, as the store's tables refuse one
    (a row never goes in incomplete, nor is it dropped). Merges the small files once there are
    :data:`SMALL_FILES_MERGED` of them."""
    for column in _STAGED_REQUIRED:
        if staged[column].null_count():
            raise duckdb.ConstraintException(f"NOT NULL constraint failed: {STAGED_TABLE}.{column}")
    if not staged.height:
        return
    folder = staged_folder(con)
    _list(con, _write(folder, staged.lazy()))
    small = [name for (name,) in con.execute(
        "SELECT file_name FROM ingest_staged_files WHERE rows < $small ORDER BY file_name",
        {"small": SMALL_FILE_ROWS}).fetchall()]
    if len(small) >= SMALL_FILES_MERGED:
        merged = _write(folder, pl.scan_parquet([folder / name for name in small], schema=STAGED_SCHEMA))
        con.execute("DELETE FROM ingest_staged_files WHERE list_contains($names, file_name)", {"names": small})
        _list(con, merged)
    _point_view(con)


def _write(folder: Path, rows: pl.LazyFrame) -> tuple[str, int, int, int]:
    """Write ``rows`` as a new Parquet file in ``folder``, flushed to disk with its name; return (file name, rows,
    first and last upload_seq). Written beside its name first, so a file under a listed name is always whole.

    The rows are written in the order of their period (stable: a period's rows keep the batch's order), so each
    row group holds a few periods and the resolve's scan of a year skips the others by their statistics: the
    resolve of the bench's 122 months 7.89-7.90 -> 6.13-6.20 s (14.5 -> 11.3 s of CPU), for 0.8 s more CPU in
    the ingest's writes (docs/benchmarks-history.md)."""
    frame = rows.select(STAGED_SCHEMA.names()).cast(STAGED_SCHEMA).sort("period_start", maintain_order=True).collect()
    first, last = frame["upload_seq"].min(), frame["upload_seq"].max()
    name = f"{first}-{last}-{uuid.uuid4().hex[:8]}.parquet"
    encoded = io.BytesIO()
    frame.write_parquet(encoded, compression="snappy", statistics=True)
    folder.mkdir(exist_ok=True)
    replace_file(folder / name, encoded.getbuffer(), durable=True)
    return name, frame.height, first, last


def _list(con: duckdb.DuckDBPyConnection, written: tuple[str, int, int, int]) -> None:
    """List a file :func:`_write` wrote (the view reads it once re-pointed: :func:`_point_view`)."""
    con.execute("INSERT INTO ingest_staged_files VALUES (?, ?, ?, ?)", written)


def _point_view(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create the view ``ingest_datapoints`` over the files ``ingest_staged_files`` lists, by their absolute
    paths (the store's folder may have moved since they were listed); with none, an empty view of the same
    columns. Raises FileNotFoundError, naming the folder and the fix, when a listed file is missing."""
    names = [name for (name,) in con.execute("SELECT file_name FROM ingest_staged_files ORDER BY file_name").fetchall()]
    folder = staged_folder(con) if names else None
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of the {len(names)} staged files the store lists are missing from {folder} (first: "
            f"{missing[0]}): restore that folder from the same backup as the store beside it, or delete both and run "
            "again, which ingests every inbox file anew")
    # A view takes no parameters: the paths are SQL string literals, quotes doubled. Each is the store's own folder
    # and a name made by _write (digits, a dash, hex), never input.
    files = ", ".join(string_literal(str(folder / name)) for name in names)
    # Never Hive partitions: a data directory under a folder named like "state=NY" would add a column.
    source = (f"read_parquet([{files}], hive_partitioning = false)" if names else
              "(SELECT " + ", ".join(f"NULL::{_DUCKDB_TYPES[t]} AS {c}" for c, t in STAGED_SCHEMA.items())
              + " WHERE false)")
    con.execute(f"CREATE OR REPLACE VIEW {STAGED_TABLE} AS SELECT * FROM {source}")
    con.execute(f"COMMENT ON VIEW {STAGED_TABLE} IS {string_literal(_STAGED_COMMENT)}")


def _remove_unlisted(con: duckdb.DuckDBPyConnection) -> None:
    """Remove the staged folder's files the store does not list: those of a batch rolled back or killed before it
    committed, and those merged into another file. Only names :func:`_write` makes are touched."""
    folder = _folder(con)
    if folder is None or not folder.is_dir():
        return
    listed = {name for (name,) in con.execute("SELECT file_name FROM ingest_staged_files").fetchall()}
    for entry in os.scandir(folder):
        if entry.name not in listed and _STAGED_FILE.fullmatch(entry.name):
            os.unlink(entry.path)


def _move_staged_table(con: duckdb.DuckDBPyConnection) -> None:
    """A store from before 2026-12-06 keeps its staged rows in a table: they become one staged file, and the
    table goes (one transaction; killed before it ends, the table stays and the file is removed next time). The
    caller, :func:`ensure_schema`, then points the view at the files."""
    rows = con.sql(f"SELECT * FROM {STAGED_TABLE}").pl()
    with transaction(con):
        con.execute(f"DROP TABLE {STAGED_TABLE}")
        if rows.height:
            _list(con, _write(staged_folder(con), rows.lazy()))


def record_agency_states(con: duckdb.DuckDBPyConnection, roster: Roster) -> int:
    """Remember the state of every agency of ``roster`` (ingest_agency_states) before its datapoints are staged,
    for when a later roster no longer lists one. Writes only what changed (a run with nothing new writes nothing)
    and returns how many agencies that was."""
    return con.execute("""
        INSERT OR REPLACE INTO ingest_agency_states
        SELECT unnest($agency_id) AS agency_id, unnest($state_code) AS state_code
        EXCEPT SELECT agency_id, state_code FROM ingest_agency_states
    """, agency_states(roster).to_dict(as_series=False)).fetchall()[0][0]


def mark_read_by_this_version(con: duckdb.DuckDBPyConnection, data_dir: Path) -> int:
    """Mark every path the inbox still holds to be read again (``pending_rereads``) when the store's files were read
    by other code than this version's (:func:`~jc_pipeline.lib.code_version.code_digest`): an upgrade may load and
    reject other rows, or word its findings otherwise, and the files no agency sends again would keep the old
    reading for good (helper-42: a semicolon CSV's '1.250' stayed loaded as 1.25 after the upgrade that rejects it).
    Records the current code in the same transaction; returns how many paths it marked (0 when current). A path
    gone from the inbox keeps its reading (helper-43: marked, it was named as missing on every run).

    A path this version's scan skips (:func:`~jc_pipeline.lib.ingest.inbox.is_skipped`: a ``Thumbs.db`` or
    ``desktop.ini`` an older version recorded) is no delivery: its versions that loaded nothing are retired with
    their findings (but those withdrawals.csv withdraws: helper-54), not marked (helper-50: an agency's feedback kept
    its F1 for good, and ``inbox/desktop.ini`` was named as a folder gone on every run); one that loaded rows keeps
    them, as a deleted file does."""
    code = code_digest()
    if con.execute("SELECT list(code_digest) FROM ingest_read_by").fetchall()[0][0] == [code]:
        return 0
    recorded = [path for (path,) in con.execute("SELECT DISTINCT path FROM source_files ORDER BY path").fetchall()]
    skipped = [path for path in recorded if is_skipped(path)]
    paths = [path for (path,) in con.execute("SELECT DISTINCT path FROM current_source_files WHERE path NOT IN "
                                             "(SELECT path FROM pending_rereads) ORDER BY path").fetchall()
             if not is_skipped(path) and data_dir.joinpath(path).is_file()]
    with transaction(con):
        if skipped:
            con.execute("DELETE FROM pending_rereads WHERE list_contains($paths, path)", {"paths": skipped})
            _retire(con, con.execute(_LOADED_NOTHING_SQL, {"paths": skipped}).fetchall())
        con.execute("INSERT INTO pending_rereads SELECT unnest($paths::VARCHAR[])", {"paths": paths})
        con.execute("DELETE FROM ingest_read_by")
        con.execute("INSERT INTO ingest_read_by VALUES (?)", [code])
    return len(paths)


def _retire(con: duckdb.DuckDBPyConnection, versions: list[tuple[str]]) -> None:
    """Delete the file versions ``versions`` (rows of a file_id), which loaded nothing, with their findings, in the
    caller's transaction; the reports are published again. Their upload_seq is not given again
    (:func:`pending.next_upload_seq`)."""
    ids = [file for (file,) in versions]
    con.execute("DELETE FROM rejected_rows WHERE list_contains($ids, file_id)", {"ids": ids})
    con.execute("DELETE FROM source_files WHERE list_contains($ids, file_id)", {"ids": ids})
    pending.mark_unpublished(con)


# The latest version of each path is the view current_source_files (lib/sql/warehouse_schema.sql).
_KNOWN_SQL = "SELECT path, sha256 FROM current_source_files WHERE path NOT IN (SELECT path FROM pending_rereads)"
# Each of $paths with its latest version read (sha256 not starting with $unopenable, inbox.UNOPENABLE; NULL: never).
_UNOPENABLE_SQL = """
    SELECT path, max_by(sha256, upload_seq) FILTER (WHERE NOT starts_with(sha256, $unopenable))
    FROM source_files
    WHERE list_contains($paths, path)
    GROUP BY path
"""
# The versions of $paths that could not be opened since the latest one read, but those withdrawals.csv withdraws
# (helper-56: retired, a withdrawn one was "given back", then named on every run).
_UNOPENED_SINCE_READ_SQL = """
    SELECT file_id FROM source_files
    WHERE list_contains($paths, path) AND starts_with(sha256, $unopenable)
      AND upload_seq NOT IN (SELECT upload_seq FROM ingest_withdrawals)
    QUALIFY upload_seq > coalesce(max(upload_seq) FILTER (WHERE NOT starts_with(sha256, $unopenable))
                                  OVER (PARTITION BY path), 0)
"""
# The versions of $paths that loaded no row, but those withdrawals.csv withdraws (they stay, as withdrawn).
_LOADED_NOTHING_SQL = """
    SELECT file_id FROM source_files
    WHERE list_contains($paths, path) AND rows_loaded = 0
      AND upload_seq NOT IN (SELECT upload_seq FROM ingest_withdrawals)
"""
_REREADS_SQL = "SELECT path, sha256 FROM current_source_files WHERE path IN (SELECT path FROM pending_rereads)"
# Every version's path and bytes (a native export's sha256 without its mapping's), whether it loaded a row and
# whether it counts (not withdrawn), in upload order; not those that could not be opened.
_DELIVERED_SQL = """
    SELECT path, split_part(sha256, '+', 1), rows_loaded > 0, status <> 'WITHDRAWN' FROM source_files
    WHERE NOT starts_with(sha256, $unopenable)
    ORDER BY upload_seq
"""


def known_files(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """{relative path: sha256 of its latest ingested version}, but for the paths to read again
    (:func:`files_to_reread`)."""
    return dict(con.execute(_KNOWN_SQL).fetchall())


def delivered_versions(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, bool, bool]]:
    """(path, sha256 of its bytes, whether it loaded a row, whether it counts: not withdrawn) of every version
    recorded, in upload order (``delivered`` of :func:`parse_inbox_batches`)."""
    return con.execute(_DELIVERED_SQL, {"unopenable": UNOPENABLE}).fetchall()


def unopenable_files(con: duckdb.DuckDBPyConnection, known: Mapping[str, str]) -> dict[str, str | None]:
    """{relative path: sha256 of its latest version read, or None} of the paths of ``known`` (:func:`known_files`)
    whose latest version could not be opened (``unopenable`` of :func:`parse_inbox_batches`); no query when none."""
    paths = [path for path, sha in known.items() if sha.startswith(UNOPENABLE)]
    if not paths:
        return {}
    return dict(con.execute(_UNOPENABLE_SQL, {"paths": paths, "unopenable": UNOPENABLE}).fetchall())


def files_to_reread(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """{relative path: sha256 of its latest version} of the paths marked to be read again (``pending_rereads``:
    the roster changed how their folder is read). The ingest reads such a file in place when its content is
    still that version, else as a new version."""
    return dict(con.execute(_REREADS_SQL).fetchall())


def rereads_gone(con: duckdb.DuckDBPyConnection, data_dir: Path) -> list[str]:
    """The paths marked to be read again (:func:`files_to_reread`) whose agency folder ``data_dir`` no longer holds,
    in order: the folder of an agency renamed or taken off the roster was moved or deleted before a run read it
    again. What they loaded keeps its earlier reading (the rows of an agency off the roster stay loaded, failing
    agency_in_roster); the mark stays, so a file put back is read again (docs/operations.md, "Renaming or removing
    an agency"). A single file deleted from a folder that is still there is not named: deleted files keep what they
    delivered, and the roster change marks every path the folder ever held (helper-31: a file deleted long before
    was named on every run)."""
    paths = con.execute("SELECT path FROM pending_rereads ORDER BY path").fetchall()
    return [path for (path,) in paths if not data_dir.joinpath(*Path(path).parts[:2]).is_dir()]


def file_stats(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, int, int, str]]:
    """{relative path: (size, mtime_ns, ctime_ns, sha256)} as the file was when last hashed (``seen`` of
    :func:`parse_inbox_batches`). A store older than this table simply has none: every file is hashed once."""
    rows = con.execute("SELECT path, size, mtime_ns, ctime_ns, sha256 FROM inbox_file_stats").fetchall()
    return {path: (size, mtime_ns, ctime_ns, sha) for path, size, mtime_ns, ctime_ns, sha in rows}


def record_file_stats(con: duckdb.DuckDBPyConnection, stats: pl.DataFrame) -> None:
    """Remember ``batch.file_stats`` (after ``batch`` is written). A kill before or after either write loses
    nothing: a remembered hash spares a read only while it is also the path's latest in source_files."""
    if stats.height:
        con.register("_file_stats", stats)
        try:
            con.execute("INSERT OR REPLACE INTO inbox_file_stats BY NAME SELECT * FROM _file_stats")
        finally:
            con.unregister("_file_stats")


def write_batch(con: duckdb.DuckDBPyConnection, batch: IngestBatch) -> IngestReport:
    """Record ``batch`` in one transaction and report what it carried (see the module docstring)."""
    files = batch.files
    if batch.recovered:
        # Read again, a path's unreadable versions since its last reading are retired with their findings (they
        # loaded nothing): its feedback no longer asks to fix what is fixed, and it compares with that reading.
        with transaction(con):
            _retire(con, con.execute(_UNOPENED_SINCE_READ_SQL, {"paths": list(batch.recovered),
                                                                "unopenable": UNOPENABLE}).fetchall())
    if files.height:
        # One thread for a batch within one row group, set outside the transaction: a failed insert aborts it, and
        # the setting must come back after the rollback, not inside the aborted transaction (which refuses it).
        small = max(batch.findings.height, batch.datapoints.height) <= _ROW_GROUP_ROWS
        with _one_thread(con) if small else nullcontext(), transaction(con):
            files = _with_ids(con, files, pending.next_upload_seq(con))
            ids = files.select("path", "file_id", "upload_seq")
            reread = files.filter(pl.col("change") == REREAD)
            if reread.height:
                _unload(con, reread)
            # Only the paths go through the joins: joined whole, the rows were copied (the staged datapoints: 1.6 of
            # 1.9 s of CPU over the bench's batches). A path missing from the batch's files would get a NULL file_id,
            # which the tables refuse: the transaction rolls back rather than drop the row.
            findings = attach(batch.findings, ["path"], ids, file_id="file_id").select(_FINDING_COLUMNS)
            # sheet_order counts the sheets of each file from 0, whichever batch the file was read in.
            staged = attach(batch.datapoints, ["path"], ids, upload_seq="upload_seq").with_columns(
                sheet_order=pl.col("sheet_idx") - pl.col("sheet_idx").min().over("upload_seq")
            ).select(STAGED_SCHEMA.names())
            _insert(con, "source_files", files.select(_FILE_COLUMNS))
            _insert(con, "rejected_rows", findings)
            stage_datapoints(con, staged)
            if reread.height:
                _pend_reread_months(con, staged, reread)
                pending.mark_unpublished(con)  # its findings, also when it holds no month
            con.execute("DELETE FROM pending_rereads WHERE list_contains($paths, path)",
                        {"paths": files["path"].to_list()})
    months = batch.datapoints.select(pl.col("period_start").dt.truncate("1mo").unique().sort()).to_series()
    return IngestReport(
        touched_months=months.to_list(),
        files_new=files.filter((pl.col("change") == "new") & (pl.col("status") != DUPLICATE)).height,
        files_changed=files.filter((pl.col("change") == "changed") & (pl.col("status") != DUPLICATE)).height,
        files_unchanged=batch.files_unchanged,
        files_unreadable=files.filter(pl.col("status") == UNREADABLE).height,
        files_reread=files.filter((pl.col("change") == REREAD) & (pl.col("status") != DUPLICATE)).height,
        files_arriving=batch.files_arriving,
        rows_total=int(files["rows_total"].sum()),
        rows_loaded=int(files["rows_loaded"].sum()),
        rows_rejected=int(files["rows_rejected"].sum()),
        kept=batch.kept,
        files_recovered=len(batch.recovered),
        files_duplicate=files.filter(pl.col("status") == DUPLICATE).height,
    )


def _with_ids(con: duckdb.DuckDBPyConnection, files: pl.DataFrame, first_seq: int) -> pl.DataFrame:
    """``files`` with their upload_seq and file_id: the next ones in order, or for a version read again its own,
    and its received_at: the same delivery, sent when it was (helper-50: an upgrade's re-read dated a month sent
    while it ran by the file's later mtime, and period_not_in_future let it through)."""
    fresh = files.filter(pl.col("change") != REREAD)
    fresh = fresh.with_columns(upload_seq=pl.int_range(first_seq, first_seq + fresh.height, dtype=pl.Int64),
                               # numbered by its modification time, a file dated ahead of the clock is recorded as
                               # received when it was read: period_not_in_future judges that day, for good.
                               received_at=pl.min_horizontal("received_at", "ingested_at"))
    ids = [file_id(path, sha, seq) for path, sha, seq in fresh.select("path", "sha256", "upload_seq").iter_rows()]
    fresh = fresh.with_columns(file_id=pl.Series(ids, dtype=pl.String))
    reread = files.filter(pl.col("change") == REREAD)
    if not reread.height:
        return fresh
    # The path's latest version: the one files_to_reread named, whose content the file still holds (its version
    # may differ by the mapping's hash, when the roster change gave the agency a mapping or took it away).
    known = con.sql("SELECT path, upload_seq, file_id, received_at FROM current_source_files "
                    "WHERE list_contains($paths, path)", params={"paths": reread["path"].to_list()}).pl()
    return pl.concat([fresh, reread.drop("received_at").join(known, on="path", how="left").select(fresh.columns)])


def _unload(con: duckdb.DuckDBPyConnection, reread: pl.DataFrame) -> None:
    """Remove the earlier reading of the file versions ``reread`` (file_id, upload_seq) inside the caller's
    transaction: their staged rows, findings, source_files rows and file-month bookkeeping; the months their
    staged rows held are marked for a rebuild of every agency (some of those rows may now fall elsewhere, or be
    rejected, and a rebuild of their months by agency would not know whose rows went)."""
    seqs, ids = reread["upload_seq"].to_list(), reread["file_id"].to_list()
    pending.mark_whole_months(con, _unstage(con, seqs))
    for table in ("rejected_rows", "source_files", "pending_file_months", "rolled_up_file_months"):
        # Table names are the constants above, never input.
        con.execute(f"DELETE FROM {table} WHERE list_contains($ids, file_id)", {"ids": ids})


def _unstage(con: duckdb.DuckDBPyConnection, seqs: list[int]) -> list[date]:
    """Rewrite the staged files holding rows of the uploads ``seqs`` without those rows (inside the caller's
    transaction: the old files stay until the next :func:`ensure_schema` removes them, unlisted); return the months
    the removed rows were in."""
    folder = staged_folder(con)
    names = [name for (name,) in con.execute(
        "SELECT file_name FROM ingest_staged_files WHERE first_upload_seq <= $last AND last_upload_seq >= $first",
        {"first": min(seqs), "last": max(seqs)}).fetchall()]
    months: set[date] = set()
    for name in names:
        rows = pl.scan_parquet(folder / name, schema=STAGED_SCHEMA).collect()
        removed = rows["upload_seq"].is_in(seqs)
        if not removed.any():
            continue
        months.update(rows.filter(removed)["period_start"].dt.truncate("1mo").unique().to_list())
        con.execute("DELETE FROM ingest_staged_files WHERE file_name = ?", [name])
        kept = rows.filter(~removed)
        if kept.height:
            _list(con, _write(folder, kept.lazy()))
    _point_view(con)
    return sorted(months)


def _pend_reread_months(con: duckdb.DuckDBPyConnection, staged: pl.DataFrame, reread: pl.DataFrame) -> None:
    """List the months of the rows just staged for the versions read again as pending file-months: their upload_seq
    is older than the uploads :func:`pending.pending_months` indexes from the staged rows."""
    _insert(con, "pending_file_months", staged.join(reread.select("upload_seq", "file_id"), on="upload_seq")
            .select("file_id", month=pl.col("period_start").dt.truncate("1mo")).unique())


def file_id(path: str, sha256: str, upload_seq: int) -> str:
    """Identifier of one ingestion of one file version (see the module docstring)."""
    return hashlib.sha256(f"{path}\0{sha256}\0{upload_seq}".encode()).hexdigest()[:16]


#: DuckDB's row group size. Arrow batches of exactly this many rows are inserted one row group each, one per
#: thread (197,100 staged rows: 47-49 -> 30-32 ms). A batch whose rows all fit in one is written on one thread:
#: two threads filling one partial row group took twice as long (65,700 rows: 32-34 ms against 17-19 ms).
_ROW_GROUP_ROWS = 122_880


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    """Insert ``frame`` into ``table`` inside the caller's open transaction."""
    # The frame is registered under a fixed name, never formatted into the SQL; only our constants are. It goes
    # as Arrow in Polars' own string layout (string_view): registered as is, every string was first copied into
    # large_string, a quarter of the inserts' time (measured on the staged datapoints). The registration is part of
    # the transaction: when the insert fails, the caller's rollback removes it (unregistering in the aborted
    # transaction would raise, over the insert's own error).
    arrow = frame.to_arrow(compat_level=pl.CompatLevel.newest())
    con.register("_ingest_frame", pa.Table.from_batches(arrow.to_batches(max_chunksize=_ROW_GROUP_ROWS), arrow.schema))
    con.execute(f"INSERT INTO {table} ({', '.join(frame.columns)}) SELECT * FROM _ingest_frame")
    con.unregister("_ingest_frame")


@contextmanager
def _one_thread(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """DuckDB on one thread inside the block. The setting is the database's, not the connection's: the store's
    connections are exclusive (:meth:`warehouse.Store.connect`), so nothing else runs meanwhile."""
    threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    con.execute("SET threads = 1")
    try:
        yield
    finally:
        con.execute("SET threads = $threads", {"threads": threads})
