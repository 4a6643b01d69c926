"""File- and sheet-level behaviour: layouts, headers, superagencies, supervision systems, unreadable files."""

from __future__ import annotations

import os
from datetime import date

import polars as pl
import pytest

from jc_pipeline.lib import ingest
from jc_pipeline.lib.ingest.csv_groups import parse_group
from jc_pipeline.lib.ingest import readers
from jc_pipeline.lib.ingest.readers import read_file
from jc_pipeline.lib.roster import Withdrawal
from jc_pipeline_tests.ingest_support import (AGENCIES, Warehouse, assert_accounting, csv_bytes, deliver_csv,
                                              correct_later, deliver_xlsx, inbox_path, touch_later, uploaded_ago,
                                              xls_bytes)
from jc_pipeline_tests.reliability_support import encrypted_ooxml

ARRESTS = [["year", "month", "value"], [2023, 1, 10], [2023, 2, 20]]


@pytest.fixture
def warehouse(tmp_path):
    w = Warehouse(tmp_path)
    yield w
    assert_accounting(w)
    w.close()


def files(w: Warehouse) -> dict[str, tuple]:
    """{file name: (status, rows_total, rows_loaded, rows_rejected)}."""
    return {path.rsplit("/", 1)[-1]: tuple(rest) for path, *rest in w.table("source_files").select(
        "path", "status", "rows_total", "rows_loaded", "rows_rejected").iter_rows()}


def rules(w: Warehouse, name: str | None = None) -> list[tuple]:
    """Sorted (sheet, row_number, rule, column_name) findings, optionally of one file."""
    found = w.table("rejected_rows").join(w.table("source_files").select("file_id", "path"), on="file_id")
    if name is not None:
        found = found.filter(pl.col("path").str.ends_with("/" + name))
    return sorted(found.select("sheet", "row_number", "rule", "column_name").rows(), key=str)


# --- layouts and headers -----------------------------------------------------------------------------------


def test_multi_sheet_workbook_headers_and_row_numbers(warehouse):
    deliver_xlsx(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "le.xlsx", {
        # header on row 3 (two blank rows above), messy header spellings, a blank-header column, a blank row
        " Arrests ": [[], [], [" Year", "MONTH ", "Value", None], [2023, 1, 10, "x"], [], [2023, 2, "bad", None]],
        "Arrests_By_Type": [["year", "month", "Offense Type", "value"], [2023, 1, "Person", 4]],
        "Sheet1": [["notes"], ["hello"]],  # not a sheet name: F2 on its one data row
        "Sheet2": [],  # empty: ignored
    })
    warehouse.ingest()
    assert files(warehouse) == {"le.xlsx": ("ERRORED", 4, 2, 2)}
    # The blank-header column is not read (spec §5.1), and says so on the header row (F9, a warning).
    assert rules(warehouse) == [(" Arrests ", 3, "F9", "column D (no header)"), (" Arrests ", 4, "P2", "Value"),
                                (" Arrests ", 6, "R7", "Value"), ("Sheet1", 2, "F2", None)]
    assert warehouse.metrics().select("sheet", "row_number").rows() == [(" Arrests ", 4), ("Arrests_By_Type", 2)]
    f2 = warehouse.table("rejected_rows").filter(pl.col("rule") == "F2")["message"].item()
    assert "'Sheet1' is not a valid sheet name for LAW_ENFORCEMENT" in f2 and "arrests_by_type" in f2


@pytest.mark.parametrize("blank_lines, quote", [(0, ""), (0, '"'), (400_000, '"'), (400_000, "")],
                         ids=["plain CSVs parsed together", "CSV read alone", "CSV over 1 MiB",
                              "CSV over 1 MiB without quotes"])
def test_cells_past_the_header_are_named_not_dropped(warehouse, blank_lines, quote):
    """A cell right of the last header (a CSV line longer than its header, a workbook column without a header) is
    not read (spec §5.1), but F9 says so on the header row: the row whose only data is there is not lost unsaid."""
    text = f"year,month,{quote}value{quote}\n" + ",,\n" * blank_lines + "2023,1,5\n,,,7\n2023,2,6,note\n"
    inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv").write_text(text)
    deliver_xlsx(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "book.xlsx", {
        "arrests": [["year", "month", "value"], [2024, 1, 5], ["", "", "", 7]],
        "reported_crime": [["year", "month", "value"], ["", "", "", 7]]})  # its only data without a header
    warehouse.ingest()
    assert files(warehouse) == {"arrests.csv": ("INGESTED", 2, 2, 0), "book.xlsx": ("INGESTED", 1, 1, 0)}
    # A sheet's column by its letter, a CSV's by its number (a CSV has no letters).
    assert rules(warehouse) == [("arrests", 1, "F9", "column D (no header)"),
                                ("arrests.csv", 1, "F9", "column 4 (no header)"),
                                ("reported_crime", 1, "F9", "column D (no header)")]
    messages = warehouse.table("rejected_rows", "sheet")["message"].to_list()
    assert messages[0].startswith("Column D of sheet 'arrests' has data but no header, so it was not read")
    assert messages[1].startswith("Column 4 of file 'arrests.csv' has data but no header, so it was not read")


@pytest.mark.parametrize("kind", ["xlsx", "xls"])
def test_a_column_letter_is_the_spreadsheets_when_the_sheet_starts_right_of_column_a(warehouse, kind):
    """calamine reads a sheet from its first used column; the letters count from column A all the same
    (helper-60: a note in E, the sheet starting in B, was "column D", the agency's values)."""
    sheets = {"arrests": [[], [None, "year", "month", "value"], [None, 2023, 1, 10], [None, None, None, None, "x"]]}
    if kind == "xls":
        inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "book.xls").write_bytes(xls_bytes(sheets))
    else:
        deliver_xlsx(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "book.xlsx", sheets)
    warehouse.ingest()
    assert files(warehouse) == {f"book.{kind}": ("INGESTED", 1, 1, 0)}
    assert rules(warehouse) == [("arrests", 2, "F9", "column E (no header)")]
    assert warehouse.metrics().select("row_number", "value").rows() == [(3, 10.0)]


def test_one_csv_longer_than_its_header_costs_its_group_a_few_parses_not_one_per_file(warehouse, monkeypatch):
    from jc_pipeline.lib.ingest import batch

    for year in range(2008, 2024):
        rows = [["year", "month", "value"], [year, 1, 5]] + ([["", "", "", 7]] if year == 2017 else [])
        deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", f"{year}/arrests.csv", rows)
    groups, alone = [], []
    monkeypatch.setattr(batch, "parse_group", lambda files: groups.append(len(files)) or parse_group(files))
    monkeypatch.setattr(batch, "read_file",
                        lambda path, *rest: alone.append(path.parent.name) or read_file(path, *rest))
    warehouse.ingest()
    # Halved down to the one file, then read alone: 9 parses at most, where each of the 16 was read alone.
    assert groups[0] == 16 and len(groups) <= 9 and alone == ["2017"]
    assert set(warehouse.table("source_files").select("status", "rows_total").rows()) == {("INGESTED", 1)}
    assert len(warehouse.table("source_files")) == 16
    assert rules(warehouse) == [("arrests.csv", 1, "F9", "column 4 (no header)")]


def test_a_csv_whose_first_line_cannot_be_split_is_unreadable_and_named(warehouse):
    path = inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv")
    path.write_bytes(b'"' + b"x" * (2 << 20) + b'"\n1\n')  # one cell of 2 MiB, past the parser's field limit
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "reported_crime.csv", ARRESTS)
    report = warehouse.ingest()
    assert report.files_unreadable == 1 and files(warehouse)["reported_crime.csv"] == ("INGESTED", 2, 2, 0)
    [finding] = warehouse.table("rejected_rows").filter(pl.col("rule") == "F0")["message"].to_list()
    assert "the CSV cannot be parsed" in finding


def test_a_csv_past_the_size_read_is_refused_without_parsing_it(warehouse, monkeypatch):
    """helper-63: a 1 GiB CSV took 5-8 GiB to parse and aborted every night's run under a memory cap. One past
    MAX_CSV_BYTES (read again by path, as every CSV past inbox.IN_MEMORY_LIMIT is) is refused for its size (both
    limits made small here), read no further, and not read again while it is unchanged; the folder's other files
    load."""
    from jc_pipeline.lib.ingest import inbox

    monkeypatch.setattr(readers, "MAX_CSV_BYTES", 2 << 20)
    monkeypatch.setattr(inbox, "IN_MEMORY_LIMIT", 1 << 20)
    rows = [["year", "month", "value"]] + [[2000 + i % 20, 1 + i % 12, i] for i in range(250_000)]
    inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv").write_bytes(csv_bytes(rows))
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "reported_crime.csv", ARRESTS)
    monkeypatch.setattr(readers, "_polars_csv", lambda *args, **kwargs: pytest.fail("a CSV too big was parsed"))
    assert warehouse.ingest().files_unreadable == 1
    assert files(warehouse) == {"arrests.csv": ("UNREADABLE", 0, 0, 0), "reported_crime.csv": ("INGESTED", 2, 2, 0)}
    [finding] = warehouse.table("rejected_rows").filter(pl.col("rule") == "F0")["message"].to_list()
    assert "the CSV is larger than the 2 MiB a bulk upload is read up to; split it into smaller files" in finding
    assert warehouse.ingest().files_unreadable == 0  # unchanged: not read again


def test_csv_file_names_are_sheet_names(warehouse):
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", " Arrests.CSV", ARRESTS)
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests export.csv", ARRESTS)
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "2023/reported_crime.csv", ARRESTS)  # sub-folder
    warehouse.ingest()
    assert files(warehouse) == {" Arrests.CSV": ("INGESTED", 2, 2, 0), "arrests export.csv": ("ERRORED", 2, 0, 2),
                                "reported_crime.csv": ("INGESTED", 2, 2, 0)}
    assert {r[2] for r in rules(warehouse)} == {"F3"}


def test_an_agency_folder_in_another_case_is_the_agency_s_in_source_files_too(warehouse):
    """helper-48: the rows of inbox/LE/ counted for agency le, but source_files said 'LE', so its findings went to a
    page of their own, "not on the roster" (and on a case-insensitive share, over the agency's own page)."""
    deliver_csv(warehouse.data_dir, "LE", "law_enforcement", "arrests.csv",
                [["year", "month", "value"], [2023, 1, 10], [2023, 2, "N/A"]])
    warehouse.ingest()
    assert warehouse.table("source_files").select("path", "agency_id", "sector", "status").rows() == [
        ("inbox/LE/law_enforcement/arrests.csv", "le", "LAW_ENFORCEMENT", "ERRORED")]
    assert warehouse.metrics().select("agency_id", "value").rows() == [("le", 10.0)]


def test_sheet_level_column_errors_reject_every_row(warehouse):
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv",
                [["year", "month", "value", "bloop"], [2023, 1, 1, "x"], [2023, 2, 2, ""]])  # F6
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests_by_type.csv",
                [["year", "month", "value"], [2023, 1, 1]])  # F4 offense_type
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "reported_crime.csv",
                [["year", "month", "value"], [2023, 1, ""], [2023, 2, None]])  # F5 value
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "calls_for_service.csv",
                [["year", "Year", "month", "value"], [2023, 2023, 1, 1]])  # F7
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "use_of_force.csv",
                [["year", "value", "notes"], [2023, 1, None]])  # empty stray column: ignored
    warehouse.ingest()
    assert rules(warehouse) == sorted([
        ("arrests.csv", 2, "F6", "bloop"), ("arrests.csv", 3, "F6", "bloop"),
        ("arrests_by_type.csv", 2, "F4", "offense_type"),
        ("calls_for_service.csv", 2, "F7", "Year"),
        ("reported_crime.csv", 2, "F5", "value"), ("reported_crime.csv", 3, "F5", "value"),
    ], key=str)
    assert files(warehouse)["use_of_force.csv"] == ("INGESTED", 1, 1, 0)


def test_a_title_above_the_header_is_named_as_the_header_read(warehouse):
    """helper-35: a title row above the column names is the sheet's header (its first row that is not empty, as
    the spec reads it); the missing columns' messages say which row was read and to delete the rows above the
    column names. A header naming some of the columns gets the plain message."""
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv",
                [["Case le18 Police - Arrests by month", "", ""], ["", "", ""], ["Year", "Month", "Value"],
                 [2023, 1, 5]])
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "reported_crime.csv",
                [["year", "month", "count"], [2023, 1, 5]])
    warehouse.ingest()
    f4 = warehouse.table("rejected_rows").filter(pl.col("rule") == "F4").unique(["sheet", "column_name"]).sort(
        "sheet", "column_name").select("sheet", "column_name", "message").rows()
    hint = ("; the header row is the sheet's first row that is not empty, here the one starting 'Case le18 Police - "
            "Arrests by month', which names none of the sheet's columns: if your column names are on a later row, "
            "delete the rows above them")
    assert f4 == [
        ("arrests.csv", "value", "Missing 'value' column: add a 'value' column to the header row and fill it in on "
                                 "every row" + hint),
        ("arrests.csv", "year", "Missing 'year' column: add a 'year' column to the header row and fill it in on "
                                "every row" + hint),
        ("reported_crime.csv", "value", "Missing 'value' column: add a 'value' column to the header row and fill "
                                        "it in on every row")]
    # Nor is the title's column "unexpected", nor the blank cells beside it columns "without a header": those
    # told the agency to delete its data (helper-60). A header naming some of the columns still gets them.
    found = warehouse.table("rejected_rows").join(warehouse.table("source_files"), on="file_id")
    assert set(found.select(pl.col("path").str.split("/").list.last(), "rule").rows()) == {
        ("arrests.csv", "F4"), ("reported_crime.csv", "F4"), ("reported_crime.csv", "F6")}


@pytest.mark.parametrize("small_csv_bytes", [1024, 10], ids=["small", "big"])
def test_a_header_quoted_after_spaces_is_read_by_its_names(warehouse, monkeypatch, small_csv_bytes):
    """helper-35: '"year", "month", "value"' (a space after each comma): the CSV readers keep the quotes of a field
    that starts with a space, and every row was rejected for missing and unexpected columns."""
    path = inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv")
    path.write_text('"Year", "Month", "Value"\n2023, 1, 5\n2023, 2, 6\n')
    monkeypatch.setattr(readers, "SMALL_CSV_BYTES", small_csv_bytes)
    warehouse.ingest()
    assert files(warehouse) == {"arrests.csv": ("INGESTED", 2, 2, 0)}
    assert warehouse.metrics()["value"].to_list() == [5.0, 6.0]


def test_a_row_rejected_for_an_unexpected_column_quotes_its_own_cell_there(warehouse):
    """F6 rejects every row of the sheet; each finding names the column and carries that row's cell (the value the
    agency must move or delete), in CSV files and workbooks alike, also with two such columns."""
    header = ["year", "month", "value", "force_type", "notes"]
    body = [[2023, 1, 4, "Physical", ""], [2023, 2, 5, " ALL ", "late"], [2023, 3, 6, None, None]]
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", [header, *body])
    deliver_xlsx(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "book.xlsx", {"arrests": [header, *body]})
    warehouse.ingest()
    quoted = warehouse.con.execute("""
        SELECT r.sheet, r.row_number, r.column_name, r.raw_value FROM rejected_rows AS r
        WHERE r.rule = 'F6' ORDER BY ALL""").fetchall()
    cells = [(row, column, value) for row, cells in enumerate(body, start=2)
             for column, value in zip(header[3:], cells[3:], strict=True)]
    expected = {(row, column, None if value in ("", None) else value.strip() if isinstance(value, str) else value)
                for row, column, value in cells}
    for sheet in ("arrests.csv", "arrests"):
        got = {(row, column, None if value in ("", None) else value.strip()) for s, row, column, value in quoted
               if s == sheet}
        assert got == expected, sheet


def test_template_hint_rows_and_blank_rows(warehouse):
    deliver_xlsx(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "t.xlsx", {
        "arrests_by_type": [["year", "month", "offense_type", "value"],
                            [None, None, "[All, Person, Property, Drug, Other, Unknown]", None],
                            [None, None, None, None], [2023, 1, "Drug", 3]]})
    warehouse.ingest()
    assert files(warehouse) == {"t.xlsx": ("ERRORED", 2, 1, 1)}  # the blank row is not a data row
    assert rules(warehouse) == [("arrests_by_type", 2, "T1", "offense_type")]


def test_single_page_layout(warehouse):
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "everything.csv", [
        ["metric", "year", "month", "breakdown_category", "breakdown", "value"],
        ["arrests", 2023, 1, None, None, 10],
        ["arrests", 2023, 1, "offense_type", "Person Offenses", 6],
        ["Arrests", 2023, 1, "Offense Type", "property", 4],
        ["funding", 2022, None, None, None, 100],
        ["funding", 2022, 3, None, None, 9],  # month on an annual metric: monthly value + M2
        ["annual_budget", 2021, None, "funding_type", "Grants", 50],  # legacy metric name
        ["bogus", 2023, 1, None, None, 1],  # R8
        ["arrests", 2023, 2, "race", "White", 1],  # R9
        ["arrests", 2023, 2, None, "Person", 1],  # R9: breakdown without breakdown_category
        ["", 2023, 2, None, None, 1],  # R8 empty
    ])
    warehouse.ingest()
    got = warehouse.metrics().select("metric_key", "period_start", "frequency", "category", "value").rows()
    assert sorted(got, key=str) == sorted([
        ("LAW_ENFORCEMENT_ARRESTS", date(2023, 1, 1), "MONTHLY", None, 10.0),
        ("LAW_ENFORCEMENT_ARRESTS", date(2023, 1, 1), "MONTHLY", "PERSON", 6.0),
        ("LAW_ENFORCEMENT_ARRESTS", date(2023, 1, 1), "MONTHLY", "PROPERTY", 4.0),
        ("LAW_ENFORCEMENT_FUNDING", date(2022, 1, 1), "ANNUAL", None, 100.0),
        ("LAW_ENFORCEMENT_FUNDING", date(2022, 3, 1), "MONTHLY", None, 9.0),
        ("LAW_ENFORCEMENT_FUNDING", date(2021, 1, 1), "ANNUAL", "GRANTS", 50.0),
        ("LAW_ENFORCEMENT_FUNDING", date(2021, 1, 1), "ANNUAL", None, 50.0),  # inferred total
    ], key=str)
    assert sorted(r[1:3] for r in rules(warehouse)) == [(6, "M2"), (8, "R8"), (9, "R9"), (10, "R9"), (11, "R8")]


def test_duplicates_reject_the_whole_period_of_the_metric(warehouse):
    deliver_xlsx(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "d.xlsx", {
        "arrests_by_type": [["year", "month", "offense_type", "value"],
                            [2023, 1, "Person", 1], [2023, 1, "Drug", 2], [2023, 1, "Person Offenses", 3],
                            [2023, 2, "Person", 4]],
        # the legacy sheet name of the same breakdown: its January row collides with the one above
        "arrests_by_gender": [["year", "month", "gender", "value"], [2023, 1, "Male", 5], [2023, 2, "Male", 6]],
        "arrests_by_biological_sex": [["year", "month", "biological_sex", "value"], [2023, 2, "Male", 7]],
    })
    warehouse.ingest()
    assert rules(warehouse) == sorted([
        ("arrests_by_biological_sex", 2, "P1", "value"), ("arrests_by_gender", 3, "P1", "value"),
        ("arrests_by_type", 2, "P1", "value"), ("arrests_by_type", 3, "P1", "value"),
        ("arrests_by_type", 4, "P1", "value"),
    ], key=str)
    delivered = warehouse.metrics().filter(~pl.col("is_inferred_total"))
    assert sorted(delivered.select("sheet", "row_number").rows()) == [("arrests_by_gender", 2), ("arrests_by_type", 5)]


def test_breakdown_total_warning_tolerances(warehouse):
    deliver_xlsx(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "p.xlsx", {
        "arrests": [["year", "month", "value"], [2023, 1, 100], [2023, 2, 100]],
        "arrests_by_type": [["year", "month", "offense_type", "value"],
                            [2023, 1, "Person", 99.5], [2023, 2, "Person", 98]],
        "funding": [["year", "value"], [2021, 1000000], [2022, 1000000]],
        "funding_by_type": [["year", "funding_type", "value"], [2021, "Grants", 996000], [2022, "Grants", 994000]],
    })
    warehouse.ingest()
    assert rules(warehouse) == [("arrests", 3, "P2", "value"), ("funding", 3, "P2", "value")]


# --- superagencies and supervision systems ------------------------------------------------------------------


def test_superagency_rows_belong_to_children(warehouse):
    deliver_csv(warehouse.data_dir, "aoc", "COURTS_AND_PRETRIAL", "cases_filed.csv", [
        ["year", "month", "agency", "value"],
        [2023, 1, "1st District Court", 10], [2023, 1, " 2ND district   COURT ", 20], [2023, 2, "court_1", 11],
        [2023, 2, "Harlan Police Department", 1], [2023, 2, "", 2],
    ])
    deliver_csv(warehouse.data_dir, "aoc", "COURTS_AND_PRETRIAL", "sentences_imposed.csv",
                [["year", "month", "value"], [2023, 1, 5]])  # no agency column
    deliver_csv(warehouse.data_dir, "aoc", "SUPERAGENCY", "funding.csv", [["year", "value"], [2023, 500]])
    warehouse.ingest()
    got = warehouse.metrics().select("agency_id", "metric_key", "period_start", "value").rows()
    assert sorted(got) == [
        ("aoc", "SUPERAGENCY_FUNDING", date(2023, 1, 1), 500.0),
        ("court_1", "COURTS_AND_PRETRIAL_CASES_FILED", date(2023, 1, 1), 10.0),
        ("court_1", "COURTS_AND_PRETRIAL_CASES_FILED", date(2023, 2, 1), 11.0),
        ("court_2", "COURTS_AND_PRETRIAL_CASES_FILED", date(2023, 1, 1), 20.0),
    ]
    assert rules(warehouse) == sorted([
        ("cases_filed.csv", 5, "R6", "agency"), ("cases_filed.csv", 6, "R6", "agency"),
        ("sentences_imposed.csv", 2, "F4", "agency"),
    ], key=str)


def test_supervision_system_column_routes_rows(warehouse):
    deliver_csv(warehouse.data_dir, "dcs", "SUPERVISION", "funding.csv", [
        ["year", "system", "value"],
        [2023, "PAROLE", 1], [2023, "probation", 2], [2023, "Supervision", 3], [2023, "pretrial-supervision", 4],
        [2023, "all", 5], [2023, "both", 6], [2023, "", 7],
    ])
    deliver_csv(warehouse.data_dir, "dcs", "SUPERVISION", "expenses.csv", [["year", "value"], [2023, 1]])  # F4
    deliver_csv(warehouse.data_dir, "dcs", "PAROLE", "population.csv",  # a subsystem folder: no system column
                [["year", "month", "value"], [2023, 1, 100]])
    deliver_csv(warehouse.data_dir, "county_sup", "SUPERVISION", "funding.csv",
                [["year", "system", "value"], [2023, "PAROLE", 1]])  # not disaggregated: F6
    warehouse.ingest()
    got = warehouse.metrics().select("agency_id", "sector", "metric_key", "value").rows()
    assert sorted(got) == [
        ("dcs", "PAROLE", "PAROLE_FUNDING", 1.0), ("dcs", "PAROLE", "PAROLE_POPULATION", 100.0),
        ("dcs", "PROBATION", "PROBATION_FUNDING", 2.0), ("dcs", "SUPERVISION", "SUPERVISION_FUNDING", 3.0),
    ]
    assert rules(warehouse) == sorted([
        ("expenses.csv", 2, "F4", "system"), ("funding.csv", 2, "F6", "system"),
        ("funding.csv", 5, "R5", "system"), ("funding.csv", 6, "P4", "system"), ("funding.csv", 7, "P4", "system"),
        ("funding.csv", 8, "R5", "system"),
    ], key=str)
    # An unknown system is answered with the agency's own systems, which it can write.
    messages = [m for (m,) in warehouse.con.execute("SELECT message FROM rejected_rows WHERE rule = 'P4'").fetchall()]
    assert len(messages) == 2
    assert all("write one of the agency's systems, SUPERVISION, PAROLE, PROBATION (" in m for m in messages), messages


# --- files that cannot be used -------------------------------------------------------------------------------


def test_unreadable_files_never_stop_the_others(warehouse):
    inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "random.xlsx").write_bytes(os.urandom(3000))
    inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "empty.csv").write_bytes(b"")
    inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "notes.txt").write_text("hello")
    inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "use_of_force.csv ").write_bytes(csv_bytes(ARRESTS))
    inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "locked.xlsx").write_bytes(encrypted_ooxml())
    inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "text.xlsx").write_bytes(csv_bytes(ARRESTS))
    inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "binary.csv").write_bytes(b"\x00\x01\x02" * 100)
    inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", ".hidden.csv").write_bytes(csv_bytes(ARRESTS))
    inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "~$arrests.xlsx").write_bytes(b"lock")
    # What systems and shares write beside the deliveries (helper-48: F1 and F8 on the agency's feedback for good).
    for junk in ("Thumbs.db", "desktop.ini", "Icon\r", "arrests.csv:Zone.Identifier", "@eaDir/arrests.csv",
                 "#recycle/arrests.csv"):
        inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", junk).write_bytes(csv_bytes(ARRESTS))
    (warehouse.data_dir / "inbox" / "$RECYCLE.BIN").mkdir()
    (warehouse.data_dir / "inbox" / "$RECYCLE.BIN" / "arrests.csv").write_bytes(csv_bytes(ARRESTS))
    (warehouse.data_dir / "inbox" / "desktop.ini").write_bytes(b"[.ShellClassInfo]")
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", ARRESTS)
    report = warehouse.ingest()
    assert files(warehouse) == {
        "arrests.csv": ("INGESTED", 2, 2, 0), "binary.csv": ("UNREADABLE", 0, 0, 0),
        "empty.csv": ("UNREADABLE", 0, 0, 0), "locked.xlsx": ("UNREADABLE", 0, 0, 0),
        "notes.txt": ("UNREADABLE", 0, 0, 0), "random.xlsx": ("UNREADABLE", 0, 0, 0),
        "text.xlsx": ("UNREADABLE", 0, 0, 0), "use_of_force.csv ": ("UNREADABLE", 0, 0, 0),
    }
    assert report.files_unreadable == 7 and report.rows_loaded == 2
    reasons = dict(warehouse.table("source_files").select(
        pl.col("path").str.split("/").list.last(), "reason").iter_rows())
    assert "password-protected" in reasons["locked.xlsx"]
    assert "empty" in reasons["empty.csv"]
    assert "'.txt' files are not read" in reasons["notes.txt"]
    assert "ends with a space after '.csv'; rename the file to 'use_of_force.csv'" in reasons["use_of_force.csv "]
    assert "looks like text" in reasons["text.xlsx"]
    assert all(reason.startswith("inbox/le/LAW_ENFORCEMENT/") for name, reason in reasons.items()
               if name != "arrests.csv")
    assert {r[2] for r in rules(warehouse)} == {"F0", "F1"}


def test_misplaced_files(warehouse, tmp_path):
    deliver_csv(warehouse.data_dir, "nobody", "LAW_ENFORCEMENT", "arrests.csv", ARRESTS)  # unknown agency
    deliver_csv(warehouse.data_dir, "le", "JAILS", "funding.csv", [["year", "value"], [2023, 1]])  # not its sector
    deliver_csv(warehouse.data_dir, "le", "POLICE", "arrests.csv", ARRESTS)  # not a sector folder
    (warehouse.data_dir / "inbox" / "loose.csv").write_bytes(csv_bytes(ARRESTS))  # outside any agency folder
    outside = tmp_path / "secret.csv"
    outside.write_bytes(csv_bytes(ARRESTS))
    inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "link.csv").symlink_to(outside)
    (warehouse.data_dir / "inbox" / "le" / "LAW_ENFORCEMENT" / "linked_dir").symlink_to(tmp_path)
    warehouse.ingest()
    status = {p: (s, t, r) for p, s, t, r in warehouse.table("source_files").select(
        "path", "status", "rows_total", "rows_rejected").iter_rows()}
    assert status == {
        "inbox/nobody/LAW_ENFORCEMENT/arrests.csv": ("ERRORED", 2, 2),
        "inbox/le/JAILS/funding.csv": ("ERRORED", 1, 1),
        "inbox/le/POLICE/arrests.csv": ("ERRORED", 2, 2),
        "inbox/loose.csv": ("ERRORED", 2, 2),
        "inbox/le/LAW_ENFORCEMENT/link.csv": ("UNREADABLE", 0, 0),
        "inbox/le/LAW_ENFORCEMENT/linked_dir": ("UNREADABLE", 0, 0),
    }
    assert {r[2] for r in rules(warehouse)} == {"F8"}
    assert warehouse.table("agency_metrics").height == 0


def test_files_refused_for_their_folder_are_read_again_once_the_roster_takes_them(warehouse, tmp_path):
    """An agency sends before the state adds it (or a sector) to agencies.csv: its files are refused (F8), and read
    again by the first ingest after the roster takes them, without being sent again, in place (the same versions).
    The agencies' other files are read again too, and stay refused where the roster still refuses them (a folder
    that is no sector, a symlink)."""
    deliver_csv(warehouse.data_dir, "nobody", "LAW_ENFORCEMENT", "arrests.csv", ARRESTS)  # not on the roster yet
    deliver_csv(warehouse.data_dir, "le", "JAILS", "funding.csv", [["year", "value"], [2023, 1]])  # not its sector
    deliver_csv(warehouse.data_dir, "le", "POLICE", "arrests.csv", ARRESTS)  # never a sector folder
    outside = tmp_path / "secret.csv"
    outside.write_bytes(csv_bytes(ARRESTS))
    inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "link.csv").symlink_to(outside)
    first = warehouse.ingest()
    assert (first.files_new, first.rows_loaded) == (4, 0)
    assert warehouse.ingest().files_new == 0  # the roster is the same: nothing is read again

    taken = [("le", *AGENCIES[0][1:3], "LAW_ENFORCEMENT;JAILS", *AGENCIES[0][4:]),
             ("nobody", "Nobody Police Department", "US_XX", "LAW_ENFORCEMENT", "99001", "8000", "1", ""),
             *AGENCIES[1:]]
    assert AGENCIES[0][0] == "le"
    before = warehouse.table("source_files").select("path", "file_id", "upload_seq").sort("path")
    warehouse.change_roster(agencies=taken)
    again = warehouse.ingest()
    assert (again.files_new, again.files_reread, again.rows_loaded, again.rows_rejected) == (0, 4, 3, 2)
    files = warehouse.table("source_files").sort("path")
    assert files.select("path", "file_id", "upload_seq").equals(before)
    assert {p: s for p, s in files.select("path", "status").iter_rows()} == {
        "inbox/nobody/LAW_ENFORCEMENT/arrests.csv": "INGESTED", "inbox/le/JAILS/funding.csv": "INGESTED",
        "inbox/le/POLICE/arrests.csv": "ERRORED", "inbox/le/LAW_ENFORCEMENT/link.csv": "UNREADABLE"}
    assert set(warehouse.table("rejected_rows")["rule"]) == {"F8"}  # the two files' F8 findings are gone
    assert warehouse.table("rejected_rows").join(files, on="file_id")["path"].unique().sort().to_list() == [
        "inbox/le/LAW_ENFORCEMENT/link.csv", "inbox/le/POLICE/arrests.csv"]
    assert warehouse.ingest().files_reread == 0  # read once, then known like any other file


def test_an_upload_in_progress_is_not_a_delivery_until_renamed(warehouse):
    """SFTP and browser clients write under a temporary name and rename once done: the temporary file is not read
    nor recorded (recorded, it stayed UNREADABLE on the agency's feedback after the upload ended)."""
    partial = deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv.filepart", ARRESTS)
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv.PART", ARRESTS)
    assert warehouse.ingest().files_new == 0 and warehouse.table("source_files").height == 0
    partial.rename(partial.with_name("arrests.csv"))
    report = warehouse.ingest()
    assert (report.files_new, report.rows_loaded) == (1, 2)
    assert files(warehouse) == {"arrests.csv": ("INGESTED", 2, 2, 0)}


def test_file_that_cannot_be_opened(warehouse, monkeypatch):
    from jc_pipeline.lib.ingest import batch

    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", ARRESTS)

    def denied(file):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(batch, "fingerprint", denied)
    warehouse.ingest()
    assert files(warehouse) == {"arrests.csv": ("UNREADABLE", 0, 0, 0)}
    assert "Permission denied" in warehouse.table("source_files")["reason"].item()
    assert warehouse.ingest().files_unchanged == 1  # the same problem is not recorded twice


def test_a_file_unreadable_for_a_night_keeps_its_place_once_it_reads_again(warehouse, monkeypatch):
    """helper-48: a file that could not be opened one night (permissions, a lock, a share's hiccup) was read as a new
    upload once it opened again, and its old numbers won over the correction sent since. The same bytes are its
    earlier reading: its unreadable record is retired (with its finding) and nothing moves."""
    from jc_pipeline.lib.ingest import batch

    original = deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", ARRESTS)
    warehouse.ingest()
    correct_later(warehouse, "2023/arrests.csv", [["year", "month", "value"], [2023, 1, 99]])
    corrected = warehouse.metrics()
    assert corrected.filter(pl.col("period_start") == date(2023, 1, 1))["value"].to_list() == [99.0]
    opens = batch.fingerprint

    def denied(file):
        if file.path.endswith("LAW_ENFORCEMENT/arrests.csv"):
            raise PermissionError(13, "Permission denied")
        return opens(file)

    monkeypatch.setattr(batch, "fingerprint", denied)
    assert warehouse.ingest().files_unreadable == 1
    assert files(warehouse)["arrests.csv"] == ("UNREADABLE", 0, 0, 0)  # the latest version of its path
    monkeypatch.undo()
    report = warehouse.ingest()
    assert (report.files_new, report.files_changed, report.files_recovered, report.touched_months) == (0, 0, 1, [])
    assert warehouse.metrics().equals(corrected)
    assert warehouse.table("source_files").filter(pl.col("path").str.ends_with("/LAW_ENFORCEMENT/arrests.csv")).select(
        "status", "upload_seq").rows() == [("INGESTED", 1)]
    assert "F0" not in set(warehouse.table("rejected_rows")["rule"])
    assert warehouse.ingest().files_unchanged == 2
    original.write_bytes(csv_bytes([["year", "month", "value"], [2023, 1, 5]]))  # other bytes: a new upload
    assert warehouse.ingest().files_changed == 1
    assert warehouse.metrics().filter(pl.col("period_start") == date(2023, 1, 1))["value"].to_list() == [5.0]


def test_a_file_moved_renamed_or_copied_is_not_a_new_upload(warehouse):
    """helper-48: an old file moved into an archive folder (or a workbook renamed) was read as a new upload, and its
    old numbers won over the correction sent since. A file with the bytes, and but for a workbook the name, that
    another path of the sector folder delivered first is a DUPLICATE: not read, nothing moves. A CSV's name says
    what it holds: the same rows under another name are another metric, read as always; so is a changed file."""
    original = deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", ARRESTS)
    workbook = deliver_xlsx(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "JC_2023.xlsx",
                            {"reported_crime": [["year", "month", "value"], [2023, 1, 4]]})
    warehouse.ingest()
    correct_later(warehouse, "corrections/arrests.csv", [["year", "month", "value"], [2023, 1, 99]])
    corrected = warehouse.metrics()
    archive = inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "archive/arrests.csv")
    original.rename(archive)
    touch_later(archive, 120)
    workbook.rename(workbook.with_name("JC_2023_old.xlsx"))
    touch_later(workbook.with_name("JC_2023_old.xlsx"), 120)
    report = warehouse.ingest()
    assert (report.files_new, report.files_duplicate, report.touched_months) == (0, 2, [])
    assert warehouse.metrics().equals(corrected)
    duplicates = warehouse.table("source_files").filter(pl.col("status") == "DUPLICATE").sort("path")
    assert duplicates.select("path", "rows_total", "rows_loaded", "rows_rejected").rows() == [
        ("inbox/le/LAW_ENFORCEMENT/JC_2023_old.xlsx", 0, 0, 0),
        ("inbox/le/LAW_ENFORCEMENT/archive/arrests.csv", 0, 0, 0)]
    assert duplicates["reason"][1] == (
        "inbox/le/LAW_ENFORCEMENT/archive/arrests.csv: the same bytes as inbox/le/LAW_ENFORCEMENT/arrests.csv, read "
        "there, so not read again (a file moved, renamed or copied); to send its numbers again, change the file")
    other_metric = deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "reported_crime.csv", ARRESTS)
    touch_later(other_metric, 180)
    assert warehouse.ingest().files_new == 1  # the arrests' rows as reported crime: another metric, read
    archive.write_bytes(csv_bytes([["year", "month", "value"], [2023, 1, 7]]))  # changed: read, and it wins
    touch_later(archive, 240)
    assert warehouse.ingest().files_changed == 1
    arrests = (pl.col("metric_key") == "LAW_ENFORCEMENT_ARRESTS") & (pl.col("period_start") == date(2023, 1, 1))
    assert warehouse.metrics().filter(arrests)["value"].to_list() == [7.0]


def test_copies_are_found_in_the_night_they_arrive_and_a_revert_is_an_edit(warehouse):
    """helper-50: a copy read the same night as its original won over the correction between them, and turned into a
    DUPLICATE only when a roster change read the folder again (the published number moved with no upload); a path
    that held a copy's bytes and was edited, then reverted, kept the edit."""
    jan = pl.col("period_start") == date(2023, 1, 1)
    original = deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", ARRESTS)
    correction = deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "corrections/arrests.csv",
                             [["year", "month", "value"], [2023, 1, 99]])
    copy = inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "2023/arrests.csv")
    copy.write_bytes(original.read_bytes())
    touch_later(correction, 60)
    touch_later(copy, 120)
    report = warehouse.ingest()
    assert (report.files_new, report.files_duplicate) == (2, 1)
    assert warehouse.metrics().filter(jan)["value"].to_list() == [99.0]
    warehouse.change_roster(agencies=[(a[0], "Harlan City Police", *a[2:]) if a[0] == "le" else a
                                      for a in AGENCIES])  # the folder read again: the copy stays one
    again = warehouse.ingest()
    assert (again.files_duplicate, again.files_reread) == (1, 2)  # helper-48: the copy counted as read again too
    assert warehouse.metrics().filter(jan)["value"].to_list() == [99.0]
    copy.write_bytes(csv_bytes([["year", "month", "value"], [2023, 1, 20]]))  # edited: read, and it wins
    touch_later(copy, 180)
    warehouse.ingest()
    assert warehouse.metrics().filter(jan)["value"].to_list() == [20.0]
    copy.write_bytes(original.read_bytes())  # reverted: an edit too, though the bytes are the original's
    touch_later(copy, 240)
    assert warehouse.ingest().files_changed == 1
    assert warehouse.metrics().filter(jan)["value"].to_list() == [10.0]


def test_a_workbook_copied_the_same_night_goes_to_calamine_once(warehouse, monkeypatch):
    """helper-51: a renamed copy of a workbook read the same night was handed to calamine's worker too, and its
    reading dropped as a DUPLICATE's."""
    from jc_pipeline.lib.calamine import WorkbookReader

    handed: list[str] = []
    submit = WorkbookReader.submit
    monkeypatch.setattr(WorkbookReader, "submit", lambda self, source: handed.append(source) or submit(self, source))
    book = deliver_xlsx(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.xlsx", {"arrests": ARRESTS})
    inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests (1).xlsx").write_bytes(book.read_bytes())
    other = deliver_xlsx(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests_2024.xlsx",
                         {"arrests": [["year", "month", "value"], [2024, 1, 7]]})
    report = warehouse.ingest()
    assert sorted(handed) == sorted([book.read_bytes(), other.read_bytes()]) and report.files_duplicate == 1
    assert files(warehouse)["arrests (1).xlsx"][0] == "DUPLICATE"
    assert files(warehouse)["arrests.xlsx"][:3] == ("INGESTED", 2, 2)


def test_another_agencys_file_is_read_and_named(warehouse):
    """helper-48: the bytes another agency delivered, sent into this agency's folder, replaced its numbers without a
    word. Read as usual, with an F10 warning naming the recorded path that loaded them first (helper-54: not one
    refused whole, F8, nor one withdrawn; helper-56: a copy of the same night too, and none on a refused file)."""
    funding = [["year", "value"], [2023, 1000]]

    def f10() -> list[tuple]:
        return warehouse.con.execute(
            "SELECT f.path, r.row_number, r.message FROM rejected_rows r JOIN current_source_files f USING (file_id) "
            "WHERE r.rule = 'F10' AND r.severity = 'WARNING' ORDER BY f.path").fetchall()

    first = deliver_csv(warehouse.data_dir, "fy_jail", "JAILS", "funding.csv", funding)
    refused = [deliver_csv(warehouse.data_dir, "le", "JAILS", "funding.csv", funding),  # F8: le is no jail
               deliver_csv(warehouse.data_dir, "aoc", "JAILS", "funding.csv", funding),  # F8: no child is one
               deliver_csv(warehouse.data_dir, "tx_jail", "JAILS", "funding.txt", funding),  # F1
               deliver_csv(warehouse.data_dir, "tx_jail", "JAILS", "funding (copy).csv", funding)]  # F3: no row
    same = deliver_csv(warehouse.data_dir, "tx_jail", "JAILS", "funding.csv", funding)  # the same night
    for minutes, path in enumerate([*refused, same], start=1):
        touch_later(path, 60 * minutes)
    warehouse.ingest()
    first_path, same_path = (str(p.relative_to(warehouse.data_dir)) for p in (first, same))
    assert f10() == [(same_path, None, f"the same bytes as {first_path}, which agency 'fy_jail' delivered: its "
                                       f"numbers are read as this agency's")]
    assert warehouse.con.execute("SELECT status, rows_loaded FROM current_source_files WHERE path = ?",
                                 [same_path]).fetchall() == [("INGESTED", 1)]  # read as usual
    assert_accounting(warehouse)
    same.write_bytes(csv_bytes([["year", "value"], [2023, 7]]))  # the agency's own numbers: no warning
    touch_later(same, 180)
    warehouse.ingest()
    assert f10() == []
    ((sha,),) = warehouse.con.execute("SELECT sha256 FROM source_files WHERE path = ?", [first_path]).fetchall()
    ingest.apply_withdrawals(warehouse.con, [Withdrawal(first_path, sha, "tx_jail's numbers", 2)])
    same.write_bytes(csv_bytes(funding))  # sent again: the version it copied is withdrawn, not fy_jail's delivery
    touch_later(same, 240)
    warehouse.ingest()
    assert f10() == []


def test_a_shared_export_read_through_each_agencys_mapping_is_not_another_agencys_file(tmp_path):
    """helper-54: a regional jail system's export, delivered to two jails whose mappings each read their facility's
    rows, got F10 and a remedy telling the state to withdraw it."""
    jails = [("jail_a", "Ashby County Jail", "US_XX", "JAILS", "99001", "52000", "1", ""),
             ("jail_b", "Brook County Jail", "US_XX", "JAILS", "99002", "30000", "1", "")]
    w = Warehouse(tmp_path, agencies=jails, settings=[])
    export = b"booking,booked,facility\nB1,2024-01-05,ASHBY\nB2,2024-01-09,ASHBY\nB3,2024-01-07,BROOK\n"
    (w.data_dir / "mappings").mkdir()
    for agency, facility in (("jail_a", "ASHBY"), ("jail_b", "BROOK")):
        (w.data_dir / "mappings" / f"{agency}.yaml").write_text(
            "version: 1\nsources:\n  - name: regional_jms\n    pattern: JAILS/regional_jms.csv\n    kind: records\n"
            "    columns: {booking: booking, booked: booked, facility: facility}\n    metrics:\n"
            "      - metric: JAILS_TOTAL_ADMISSIONS\n        date: booked\n"
            f"        where: {{column: facility, in: [{facility}]}}\n", encoding="utf-8")
    w.change_roster(agencies=jails, settings=[])  # the mappings taken in
    inbox_path(w.data_dir, "jail_a", "JAILS", "regional_jms.csv").write_bytes(export)
    w.ingest()
    inbox_path(w.data_dir, "jail_b", "JAILS", "regional_jms.csv").write_bytes(export)
    w.ingest()
    assert w.con.execute("SELECT count(*) FROM rejected_rows WHERE rule = 'F10'").fetchall() == [(0,)]
    totals = w.metrics().filter(pl.col("dimension").is_null()).select("agency_id", "value").rows()
    assert sorted(totals) == [("jail_a", 2.0), ("jail_b", 1.0)]
    w.close()


def test_a_version_keeps_when_it_was_received(warehouse):
    """helper-50: read again in place (a roster change, an upgrade), a version took the file's later modification
    time, and a month sent while it ran passed period_not_in_future; a file dated ahead of the clock is received
    when it is read, not in the future."""
    sent = uploaded_ago(deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", ARRESTS), 86_400)
    ahead = deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "reported_crime.csv", ARRESTS)
    touch_later(ahead, 10 * 86_400)
    warehouse.ingest()
    received = dict(warehouse.table("source_files").select("path", "received_at").iter_rows())
    ingested = warehouse.table("source_files")["ingested_at"][0]
    assert received["inbox/le/LAW_ENFORCEMENT/reported_crime.csv"] == ingested
    os.utime(sent)  # touched now: its bytes and its sending unchanged
    warehouse.change_roster(agencies=[(a[0], "Harlan City Police", *a[2:]) if a[0] == "le" else a
                                      for a in AGENCIES])
    assert warehouse.ingest().files_reread == 2
    assert dict(warehouse.table("source_files").select("path", "received_at").iter_rows()) == received


def test_a_folder_that_could_not_be_listed_is_retired_once_it_is(warehouse, monkeypatch):
    """helper-48: a folder recorded unreadable (no permission to list it) kept its UNREADABLE row, and its "check
    its permissions", on the agency's feedback for good after it was fixed."""
    from jc_pipeline.lib.ingest import inbox

    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "2023/arrests.csv", ARRESTS)
    lists = os.scandir

    def denied(folder):
        if str(folder).endswith("2023"):
            raise PermissionError(13, "Permission denied", str(folder))
        return lists(folder)

    monkeypatch.setattr(inbox.os, "scandir", denied)
    monkeypatch.setattr(os, "scandir", denied)  # the read of the folder's entry fails the same way
    warehouse.ingest()
    assert files(warehouse) == {"2023": ("UNREADABLE", 0, 0, 0)}
    monkeypatch.undo()
    report = warehouse.ingest()
    assert (report.files_new, report.files_recovered) == (1, 1)
    assert files(warehouse) == {"arrests.csv": ("INGESTED", 2, 2, 0)}
    assert set(warehouse.table("rejected_rows")["rule"]) == set()


def test_an_unknown_system_is_answered_with_the_systems_the_column_may_name(tmp_path):
    """An agency of several sectors hears only its supervision systems: writing JAILS in 'system' is P4 again."""
    agencies = [("multi", "Multi County", "US_XX", "LAW_ENFORCEMENT;JAILS;SUPERVISION;PROBATION", "", "1000", "1",
                 "")]
    w = Warehouse(tmp_path, agencies=agencies, settings=[])
    deliver_csv(w.data_dir, "multi", "SUPERVISION", "funding.csv", [["year", "system", "value"], [2023, "all", 1]])
    w.ingest()
    (message,) = [m for (m,) in w.con.execute("SELECT message FROM rejected_rows WHERE rule = 'P4'").fetchall()]
    assert "write one of the agency's systems, SUPERVISION, PROBATION (" in message, message
    w.close()
