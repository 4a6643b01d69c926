"""Builders for ingest tests: a data directory with a roster, delivered files, and a store to ingest into."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import xlsxwriter
import xlwt

from jc_pipeline.lib import ingest
from jc_pipeline.lib.ingest import store
from jc_pipeline.lib.ingest.readers import RawSheet
from jc_pipeline.lib.reference import write_reference_tables
from jc_pipeline.lib.registry import load_registry
from jc_pipeline.lib.roster import AGENCY_COLUMNS, SETTINGS_COLUMNS, load_roster
from jc_pipeline.lib.warehouse import transaction

#: A fixed "now" so year bounds and future-period checks do not drift with the calendar.
NOW = datetime(2024, 6, 1, 12, 0)

#: agency_id, agency_name, state_code, sectors, county_fips, population, fiscal_year_start_month, superagency_id
AGENCIES = [
    ("le", "Harlan Police Department", "US_XX", "LAW_ENFORCEMENT", "99001", "52000", "1", ""),
    ("da", "Harlan District Attorney", "US_XX", "PROSECUTION", "99001", "52000", "1", ""),
    ("doc", "Department of Corrections", "US_XX", "PRISONS", "", "1500000", "1", ""),
    ("county_sup", "Harlan County Probation", "US_XX", "SUPERVISION", "99001", "52000", "1", ""),
    ("dcs", "Department of Community Supervision", "US_XX", "SUPERVISION;PAROLE;PROBATION", "", "1500000", "1", ""),
    ("dcs_mixed", "Mixed Supervision Department", "US_XX", "SUPERVISION;PAROLE;PROBATION", "", "1500000", "1", ""),
    ("fy_jail", "July County Jail", "US_XX", "JAILS", "99002", "30000", "7", ""),
    ("aoc", "Administrative Office of the Courts", "US_XX", "SUPERAGENCY", "", "1500000", "1", ""),
    ("court_1", "1st District Court", "US_XX", "COURTS_AND_PRETRIAL", "", "300000", "1", "aoc"),
    ("court_2", "2nd District Court", "US_XX", "COURTS_AND_PRETRIAL", "", "250000", "1", "aoc"),
    ("tx_jail", "Other State Jail", "US_YY", "JAILS", "", "1000", "1", ""),
]
#: agency_id, metric_key, enabled, frequency, starting_month, disaggregated_by_supervision_subsystems
SETTINGS = [
    ("dcs_mixed", "SUPERVISION_FUNDING", "", "", "", "false"),
    ("dcs_mixed", "SUPERVISION_EXPENSES", "", "", "", "false"),
    ("dcs_mixed", "SUPERVISION_TOTAL_STAFF", "", "", "", "false"),
]


def write_roster(data_dir: Path, agencies=AGENCIES, settings=SETTINGS) -> None:
    """Write agencies.csv and metric_settings.csv into ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, columns, rows in (("agencies.csv", AGENCY_COLUMNS, agencies),
                                ("metric_settings.csv", SETTINGS_COLUMNS, settings)):
        with (data_dir / name).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            writer.writerows(rows)


def inbox_path(data_dir: Path, agency: str, sector: str, name: str) -> Path:
    path = data_dir / "inbox" / agency / sector / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def csv_bytes(rows: Sequence[Sequence[object]]) -> bytes:
    """CSV text of ``rows`` (first row = header); None cells are written empty."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([["" if c is None else c for c in row] for row in rows])
    return buffer.getvalue().encode("utf-8")


def deliver_csv(data_dir: Path, agency: str, sector: str, name: str, rows: Sequence[Sequence[object]]) -> Path:
    path = inbox_path(data_dir, agency, sector, name)
    path.write_bytes(csv_bytes(rows))
    return path


def uploaded_ago(path: Path, seconds: float) -> Path:
    """Give `path` the modification time of an upload that ended `seconds` ago (unattended runs leave files
    modified more recently for the next run: test_ingest_arriving.py)."""
    then = (datetime.now(UTC) - timedelta(seconds=seconds)).timestamp()
    os.utime(path, (then, then))
    return path


def deliver_xlsx(data_dir: Path, agency: str, sector: str, name: str,
                 sheets: dict[str, Sequence[Sequence[object]]]) -> Path:
    """A workbook with one sheet per entry; numbers stay numeric cells, None cells stay empty."""
    path = inbox_path(data_dir, agency, sector, name)
    with xlsxwriter.Workbook(str(path)) as workbook:
        for sheet, rows in sheets.items():
            worksheet = workbook.add_worksheet(sheet)
            for r, row in enumerate(rows):
                for c, cell in enumerate(row):
                    if cell is not None:
                        worksheet.write(r, c, cell)
    return path


def deliver_xls(data_dir: Path, agency: str, sector: str, name: str,
                sheets: dict[str, Sequence[Sequence[object]]]) -> Path:
    """An old-format .xls workbook (BIFF8, via xlwt)."""
    path = inbox_path(data_dir, agency, sector, name)
    path.write_bytes(xls_bytes(sheets))
    return path


def xls_bytes(sheets: dict[str, Sequence[Sequence[object]]]) -> bytes:
    """An old-format .xls workbook (BIFF8, via xlwt) as bytes."""
    buffer = io.BytesIO()
    workbook = xlwt.Workbook()
    for sheet, rows in sheets.items():
        worksheet = workbook.add_sheet(sheet)
        for r, row in enumerate(rows):
            for c, cell in enumerate(row):
                if cell is not None:
                    worksheet.write(r, c, cell)
    workbook.save(buffer)
    return buffer.getvalue()


def touch_later(path: Path, seconds: int) -> None:
    """Move the file's modification time ``seconds`` into the future (upload order follows received_at)."""
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + seconds))


def stage_rows(con: duckdb.DuckDBPyConnection, rows: Sequence[tuple]) -> None:
    """Stage datapoints as a batch does (``store.stage_datapoints``, in one transaction): tuples in the order of
    ``store.STAGED_SCHEMA``."""
    with transaction(con):
        store.stage_datapoints(con, pl.DataFrame(rows, schema=store.STAGED_SCHEMA, orient="row"))


def correct_later(w: Warehouse, name: str, rows: Sequence[Sequence[object]]) -> Path:
    """Deliver ``rows`` as ``name`` in le's LAW_ENFORCEMENT folder, modified a minute after the files before it (a
    later upload), and ingest it."""
    path = deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", name, rows)
    touch_later(path, 60)
    w.ingest()
    return path


class Warehouse:
    """A data directory plus a temporary DuckDB store, driven through the public ingest API."""

    def __init__(self, root: Path, agencies=AGENCIES, settings=SETTINGS, database: str | None = None) -> None:
        self.data_dir = root / "data"
        write_roster(self.data_dir, agencies, settings)
        self.registry = load_registry()
        self.roster = load_roster(self.data_dir, self.registry)
        self.con = duckdb.connect(database or str(root / "w.duckdb"))
        ingest.ensure_schema(self.con)

    def parse(self, now: datetime = NOW) -> ingest.IngestBatch:
        known, rereads = ingest.known_files(self.con), ingest.files_to_reread(self.con)
        return ingest.parse_inbox(self.data_dir, known, self.roster, self.registry, now=now, rereads=rereads,
                                  unopenable=ingest.unopenable_files(self.con, {**known, **rereads}),
                                  delivered=lambda: ingest.delivered_versions(self.con))

    def change_roster(self, agencies=AGENCIES, settings=SETTINGS) -> None:
        """Write the roster files anew and load them, as the reference step does: the reference tables (first the
        current roster's, if never written) and the files to read again, which the next :meth:`ingest` reads."""
        if not self.con.execute("SELECT count(*) FROM agencies").fetchall()[0][0]:
            # The reference step writes the roster before any ingest reads a file: as if it had, with nothing to
            # read again (a first write finds every agency new).
            write_reference_tables(self.con, self.registry, self.roster)
            self.con.execute("DELETE FROM pending_rereads")
        write_roster(self.data_dir, agencies, settings)
        self.roster = load_roster(self.data_dir, self.registry)
        write_reference_tables(self.con, self.registry, self.roster)

    def ingest(self, now: datetime = NOW) -> ingest.IngestReport:
        """record_agency_states + parse_inbox + write_batch + resolve_agency_metrics of the touched months."""
        ingest.record_agency_states(self.con, self.roster)
        report = ingest.write_batch(self.con, self.parse(now))
        ingest.resolve_agency_metrics(self.con, report.touched_months, self.roster, self.registry)
        return report

    def table(self, name: str, order: str = "") -> pl.DataFrame:
        query = {"source_files": "SELECT * FROM source_files",
                 "rejected_rows": "SELECT * FROM rejected_rows",
                 "agency_metrics": "SELECT * FROM agency_metrics",
                 # with the file_id of each row's upload (source_files)
                 "staged": f"SELECT s.*, f.file_id FROM {ingest.STAGED_TABLE} AS s JOIN source_files AS f "
                           f"USING (upload_seq)"}[name]
        return self.con.sql(query + (f" ORDER BY {order}" if order else "")).pl()

    def metrics(self) -> pl.DataFrame:
        """agency_metrics in a canonical order (for comparisons)."""
        return self.table("agency_metrics", "agency_id, metric_key, period_start, period_end, dimension NULLS FIRST, "
                                            "category NULLS FIRST")

    def close(self) -> None:
        self.con.close()


def assert_accounting(warehouse: Warehouse) -> None:
    """rows_total = loaded + rejected for every file; every rejected row has an ERROR finding, and findings
    carry file, sheet, row, rule, severity and message (column and raw value for row-level rules)."""
    files = warehouse.table("source_files")
    findings = warehouse.table("rejected_rows")
    assert (files["rows_total"] == files["rows_loaded"] + files["rows_rejected"]).all()
    rejected_rows = (findings.filter((pl.col("severity") == "ERROR") & pl.col("row_number").is_not_null())
                     .group_by("file_id").agg(n=pl.struct("sheet", "row_number").n_unique()))
    counted = files.join(rejected_rows, on="file_id", how="left").with_columns(pl.col("n").fill_null(0))
    assert (counted["n"] == counted["rows_rejected"]).all(), counted.filter(pl.col("n") != pl.col("rows_rejected"))
    assert findings["severity"].is_in(["ERROR", "WARNING"]).all()
    assert sum(findings[column].null_count() for column in ("file_id", "rule", "message")) == 0
    located = findings.filter(pl.col("row_number").is_not_null())
    assert located["sheet"].null_count() == 0
    row_level = located.filter(pl.col("rule").str.contains(r"^(R\d+|T1|M\d|C1|P[124])$"))
    assert row_level["column_name"].null_count() == 0, row_level.filter(pl.col("column_name").is_null())
    unreadable = files.filter(pl.col("status") == "UNREADABLE")
    assert (unreadable["rows_total"] == 0).all() and unreadable["reason"].null_count() == 0
    # Every loaded row is a staged datapoint, but the rows of an "Other" member's sub-categories (C2), which are
    # summed into one datapoint of that member or give way to its own row.
    staged = warehouse.table("staged").group_by("file_id").agg(n=pl.len())
    summed = findings.filter(pl.col("rule") == "C2").group_by("file_id").agg(parts=pl.len())
    loaded = (files.join(staged, on="file_id", how="left").join(summed, on="file_id", how="left")
              .with_columns(pl.col("n", "parts").fill_null(0)))
    assert (loaded["n"] <= loaded["rows_loaded"]).all() and (
        loaded["n"] >= loaded["rows_loaded"] - loaded["parts"]).all() and (
        loaded.filter(pl.col("parts") == 0)["n"] == loaded.filter(pl.col("parts") == 0)["rows_loaded"]).all()


def cells_below_header(sheet: RawSheet) -> list[list[str | None]]:
    """The cells below a sheet's header, column by column, one list per header cell (as RawSheet describes them)."""
    if sheet.cells is None:
        return []
    return [sheet.cells.column(j).slice(sheet.first, sheet.height).to_pylist() for j in range(len(sheet.header))]
