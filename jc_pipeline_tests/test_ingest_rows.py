"""Row-level behaviour of ingest on generated sheets: values, years, months, categories, agencies, systems."""

from __future__ import annotations

import re
import zipfile
from datetime import date, datetime

import polars as pl
import pytest
import xlsxwriter

from jc_pipeline_tests.ingest_support import (
    Warehouse,
    assert_accounting,
    deliver_csv,
    deliver_xls,
    deliver_xlsx,
    inbox_path,
)


@pytest.fixture
def warehouse(tmp_path):
    w = Warehouse(tmp_path)
    yield w
    assert_accounting(w)
    w.close()


def findings(w: Warehouse) -> dict[int, list[tuple[str, str | None, str | None]]]:
    """{row_number: [(rule, column, raw_value), ...]} of one-file runs."""
    result: dict[int, list] = {}
    for row, rule, column, raw in w.table("rejected_rows", "row_number, rule").select(
            "row_number", "rule", "column_name", "raw_value").iter_rows():
        result.setdefault(row, []).append((rule, column, raw))
    return result


def message(w: Warehouse, row: int, rule: str) -> str:
    frame = w.table("rejected_rows").filter((pl.col("row_number") == row) & (pl.col("rule") == rule))
    assert frame.height == 1, frame
    return frame["message"].item()


def values(w: Warehouse) -> list[tuple]:
    return w.metrics().select("metric_key", "period_start", "period_end", "category", "value").rows()


# --- values ------------------------------------------------------------------------------------------------


def test_values_separators_decimals_dollars_and_bad_values(warehouse):
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", [
        ["year", "month", "value"],
        [2023, 1, "1,000"], [2023, 2, "12.5"], [2023, 3, "1,234,567.25"], [2023, 4, "$5"],
        [2023, 5, "-3"], [2023, 6, "N/A"], [2023, 7, ""], [2023, 8, "1e3"], [2023, 9, "1,00"],
    ])
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "funding.csv", [
        ["year", "value"], [2021, "$1,200.50"], [2022, "$ 99"],
    ])
    warehouse.ingest()
    arrests = {start.month: value for key, start, _, _, value in values(warehouse) if key.endswith("ARRESTS")}
    assert arrests == {1: 1000.0, 2: 12.5, 3: 1234567.25, 8: 1000.0}
    funding = [v for key, *_, v in values(warehouse) if key.endswith("FUNDING")]
    assert funding == [1200.5, 99.0]
    found = findings(warehouse)
    # Each rejected row names its column and its value as written (an empty cell has none).
    assert found == {5: [("R7", "value", "$5")], 6: [("R7", "value", "-3")], 7: [("R7", "value", "N/A")],
                     8: [("R7", "value", None)], 10: [("R7", "value", "1,00")]}
    assert "'1,00'" in message(warehouse, 10, "R7")
    assert "not measured in dollars" in message(warehouse, 5, "R7")
    assert "cannot be negative" in message(warehouse, 6, "R7")
    assert "'N/A'" in message(warehouse, 7, "R7")
    assert message(warehouse, 8, "R7").startswith("Empty 'value'")


def test_excel_numeric_cells_and_xls(warehouse):
    rows = [["year", "month", "value"], [2023, 1, 103.0], [2023.0, "Feb", 0.1 + 0.2], [2023, 3, 7]]
    deliver_xlsx(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "a.xlsx", {"arrests": rows})
    deliver_xls(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "b.xls", {"reported_crime": rows})
    warehouse.ingest()
    got = {(k, s.month): v for k, s, _, _, v in values(warehouse)}
    for key in ("LAW_ENFORCEMENT_ARRESTS", "LAW_ENFORCEMENT_REPORTED_CRIME"):
        assert got[(key, 1)] == 103.0 and got[(key, 3)] == 7.0
        assert got[(key, 2)] == pytest.approx(0.3)


def _arrests_with_a_formula(workbook: xlsxwriter.Workbook, formula: str, *result: str) -> None:
    """An arrests sheet: January 5, and February's value a formula (with its cached result, when given)."""
    sheet = workbook.add_worksheet("arrests")
    sheet.write_row(0, 0, ["year", "month", "value"])
    sheet.write_row(1, 0, [2023, 1, 5])
    sheet.write_row(2, 0, [2023, 2])
    sheet.write_formula(2, 2, formula, None, *result)


def test_an_excel_error_cell_is_rejected_with_a_message_that_names_it(warehouse):
    """calamine reads an error cell (#DIV/0!) as empty: the row is rejected (R7) and the message says such a cell
    reads as empty, since the agency sees the error, not a blank."""
    path = inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "errors.xlsx")
    with xlsxwriter.Workbook(str(path)) as workbook:
        _arrests_with_a_formula(workbook, "=1/0", "#DIV/0!")
    warehouse.ingest()
    assert findings(warehouse) == {3: [("R7", "value", None)]}
    assert "#DIV/0!, or a formula saved without its result" in message(warehouse, 3, "R7")


def test_a_year_typed_as_a_date_and_an_accounting_dash_are_named_with_their_fix(warehouse):
    """helper-35: a year cell formatted as a date read back as '2023-01-01 00:00:00' under the plain 'not a year'
    message; Excel's accounting format saves a zero as ' -   ' in a CSV. Each is rejected, named as what it is."""
    path = inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "dates.xlsx")
    with xlsxwriter.Workbook(str(path)) as workbook:
        sheet = workbook.add_worksheet("arrests")
        sheet.write_row(0, 0, ["year", "month", "value"])
        sheet.write_datetime(1, 0, datetime(2023, 1, 1), workbook.add_format({"num_format": "yyyy"}))
        sheet.write_row(1, 1, [1, 5])
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "reported_crime.csv",
                [["year", "month", "value"], [2023, 1, " -   "], [2023, 2, "7"]])
    deliver_csv(warehouse.data_dir, "fy_jail", "JAILS", "funding.csv", [["year", "value"], ["2022-23", 5]])
    warehouse.ingest()
    rows = warehouse.table("rejected_rows").sort("sheet").select("sheet", "row_number", "rule", "raw_value",
                                                                   "message").rows()
    assert rows == [
        ("arrests", 2, "R1", "2023-01-01 00:00:00",
         "Year '2023-01-01 00:00:00' is a date: type the year as a number (such as 2023), not as a date"),
        ("funding.csv", 2, "R1", "2022-23",  # a fiscal year written short: not a date
         "Invalid 'year' value '2022-23': write a whole number such as 2023, or a fiscal year such as 2022-2023"),
        ("reported_crime.csv", 2, "R7", "-",
         "Invalid 'value' '-': a dash stands for zero in Excel's accounting format; write 0")]


def test_formulas_saved_without_their_results_are_named_in_the_messages(warehouse):
    """helper-35: a workbook written by a script (openpyxl) holds formulas without their results, which calamine
    reads as empty; the agency sees numbers. The R7 row and the F5 column say so and how to fix it."""
    path = inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "scripted.xlsx")
    with xlsxwriter.Workbook(str(path)) as workbook:
        _arrests_with_a_formula(workbook, "=10+5")
        funding = workbook.add_worksheet("funding")
        funding.write_row(0, 0, ["year", "value"])
        funding.write_row(1, 0, [2023])
        funding.write_formula(1, 1, "=1000*12")
    # As openpyxl saves them: the formula without a cached result (xlsxwriter writes a result of 0).
    with zipfile.ZipFile(path) as book:
        parts = {name: book.read(name) for name in book.namelist()}
    with zipfile.ZipFile(path, "w") as book:
        for name, data in parts.items():
            cached = name.startswith("xl/worksheets/")
            book.writestr(name, re.sub(rb"(</f>)<v>0</v>", rb"\1", data) if cached else data)
    warehouse.ingest()
    fix = ("or a formula saved without its result by a program other than a spreadsheet, reads as empty: open the "
           "file in Excel and save it again")
    rows = warehouse.table("rejected_rows").select("sheet", "row_number", "rule", "message").rows()
    assert {(sheet, row, rule) for sheet, row, rule, _ in rows} == {("arrests", 3, "R7"), ("funding", 2, "F5")}
    assert all(fix in text for *_, text in rows)


# --- years and periods -------------------------------------------------------------------------------------


def test_years_bounds_ranges_and_real_value_in_message(warehouse):
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "funding.csv", [
        ["year", "value"],
        ["2021", 1], ["2022.0", 2], ["1599", 3], ["2031", 4], ["20x1", 5], ["", 6], ["1999", 7],
        ["2022-2023", 8], ["2020-2022", 9], ["2000", 10],
    ])
    warehouse.ingest()
    # 2000 is the first year the pipeline takes (January 2000, helper-40: the boundary was never tested); 1999 is R13.
    assert [(s, e) for _, s, e, _, _ in values(warehouse)] == [
        (date(2000, 1, 1), date(2001, 1, 1)), (date(2021, 1, 1), date(2022, 1, 1)),
        (date(2022, 1, 1), date(2023, 1, 1))]
    found = findings(warehouse)
    assert {row: [r[0] for r in rules] for row, rules in found.items()} == {
        4: ["R1"], 5: ["R1"], 6: ["R1"], 7: ["R1"], 8: ["R13"], 9: ["R1"], 10: ["R1"]}
    assert "'1599'" in message(warehouse, 4, "R1") and "between 1600 and 2025" in message(warehouse, 4, "R1")
    assert "'2031'" in message(warehouse, 5, "R1")
    assert message(warehouse, 7, "R1").startswith("Empty 'year'")
    assert "before January 2000" in message(warehouse, 8, "R13")
    assert "calendar years" in message(warehouse, 9, "R1")  # a range on a calendar-year metric is ambiguous
    assert "consecutive" in message(warehouse, 10, "R1")


def test_fiscal_year_periods_are_explicit_dates(warehouse):
    """fy_jail's year starts in July: 2023 and 2022-2023 both name 2022-07-01..2023-07-01 (end-year label). Either
    spelling of a year still running (2024, 2023-2024) is loaded, for the checks to hold until it ends; either
    spelling of one that has not started (2025, 2024-2025) is R13, although 2025 is after the ingest's year."""
    deliver_csv(warehouse.data_dir, "fy_jail", "JAILS", "funding.csv", [["year", "value"], [2023, 10], [2024, 11],
                                                                        [2025, 12]])
    deliver_csv(warehouse.data_dir, "fy_jail", "JAILS", "expenses.csv", [["year", "value"], ["2022-2023", 20],
                                                                         ["2024-2025", 30], ["2023-2024", 21]])
    report = warehouse.ingest()
    assert [(k, s, e, v) for k, s, e, _, v in values(warehouse)] == [
        ("JAILS_EXPENSES", date(2022, 7, 1), date(2023, 7, 1), 20.0),
        ("JAILS_EXPENSES", date(2023, 7, 1), date(2024, 7, 1), 21.0),
        ("JAILS_FUNDING", date(2022, 7, 1), date(2023, 7, 1), 10.0),
        ("JAILS_FUNDING", date(2023, 7, 1), date(2024, 7, 1), 11.0),
    ]
    rejected = warehouse.table("rejected_rows").join(warehouse.table("source_files"), on="file_id")
    assert sorted(rejected.select(pl.col("path").str.extract(r"([^/]+)$"), "row_number", "rule", "column_name",
                                  "raw_value").rows()) == [
        ("expenses.csv", 3, "R13", "year", "2024-2025"),  # starts 2024-07-01, after "now"
        ("funding.csv", 4, "R13", "year", "2025")]
    assert report.touched_months == [date(2022, 7, 1), date(2023, 7, 1)]
    assert warehouse.metrics()["frequency"].unique().to_list() == ["ANNUAL"]


def test_months_numbers_names_misspellings_and_errors(warehouse):
    months = ["1", "02", "MARCH ", "apr", "Sept", "janaury", "FEBUARY", "Marchuary", "13", "0", "2021-05-01",
              "44197"]
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv",
                [["year", "month", "value"]] + [[2022 if i > 3 else 2023, m, i] for i, m in enumerate(months)])
    warehouse.ingest()
    loaded = sorted((s.isoformat(), v) for _, s, _, _, v in values(warehouse))
    assert loaded == [("2022-01-01", 5.0), ("2022-02-01", 6.0), ("2022-09-01", 4.0), ("2023-01-01", 0.0),
                      ("2023-02-01", 1.0), ("2023-03-01", 2.0), ("2023-04-01", 3.0)]
    found = {row: rules[0][0] for row, rules in findings(warehouse).items()}
    assert found == {9: "R3", 10: "R2", 11: "R2", 12: "R4", 13: "R4"}
    assert "'Marchuary'" in message(warehouse, 9, "R3")


def test_blank_month_on_monthly_metric_is_annual_with_warning(warehouse):
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", [
        ["year", "month", "value"], [2023, 1, 5], [2022, "", 60]])
    warehouse.ingest()
    assert sorted((s, e, v) for _, s, e, _, v in values(warehouse)) == [
        (date(2022, 1, 1), date(2023, 1, 1), 60.0), (date(2023, 1, 1), date(2023, 2, 1), 5.0)]
    assert findings(warehouse) == {3: [("M1", "month", None)]}


def test_a_merged_month_cell_over_categories_is_rejected_not_stored_as_years(warehouse):
    """helper-35: "January" merged over a month's six offense rows; calamine reads the five cells below it as
    empty. Stored as annual values (M1), each category became a year's value of 2024 and an annual total was
    inferred from five of them. A breakdown row without a month among rows of its year with months is rejected
    (R14) with the fix; a year's total below its months (an aggregate row) stays annual (M1)."""
    path = inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.xlsx")
    members = ["Person Offenses", "Property Offenses", "Drug Offenses", "Public Order Offenses", "Other Offenses",
               "Unknown Offenses"]
    with xlsxwriter.Workbook(str(path)) as book:
        by_type = book.add_worksheet("arrests_by_type")
        by_type.write_row(0, 0, ["year", "month", "offense_type", "value"])
        by_type.merge_range(1, 1, 6, 1, "January")
        by_type.merge_range(7, 1, 12, 1, "February")
        for row, member in enumerate(members * 2, start=1):
            by_type.write_row(row, 0, [2024])
            by_type.write_row(row, 2, [member, 10 + row])
        by_type.write_row(13, 0, [2023, None, "Person Offenses", 99])  # a year alone: annual (M1)
        arrests = book.add_worksheet("arrests")
        arrests.write_row(0, 0, ["year", "month", "value"])
        arrests.write_row(1, 0, [2024, "January", 75])
        arrests.write_row(2, 0, [2024, None, 900])  # the year's total below its months: annual (M1)
    warehouse.ingest()
    found = {(sheet, row): rule for sheet, row, rule in warehouse.table("rejected_rows").select(
        "sheet", "row_number", "rule").iter_rows()}
    assert found == {**{("arrests_by_type", row): "R14" for row in (*range(3, 8), *range(9, 14))},
                     ("arrests_by_type", 14): "M1", ("arrests", 3): "M1",
                     ("arrests", 2): "P2"}  # January's breakdown now lacks the rows to send again
    rejected = warehouse.table("rejected_rows").filter(pl.col("row_number") == 3).filter(pl.col("rule") == "R14")
    assert rejected.select("column_name", "raw_value").rows() == [("month", None)]
    assert rejected["message"].item() == (
        "Month is empty on this 'Property Offenses' row of 2024, while other rows of 2024 in this sheet have "
        "months: write the month on every row (a merged month cell, or a month written once above its "
        "categories, leaves the rows below it empty)")
    loaded = sorted((key, s.isoformat(), e.isoformat(), c or "", v) for key, s, e, c, v in values(warehouse))
    # Totals without a total row are inferred from the categories loaded ("": the total).
    assert loaded == [
        ("LAW_ENFORCEMENT_ARRESTS", "2023-01-01", "2024-01-01", "", 99.0),
        ("LAW_ENFORCEMENT_ARRESTS", "2023-01-01", "2024-01-01", "PERSON", 99.0),
        ("LAW_ENFORCEMENT_ARRESTS", "2024-01-01", "2024-02-01", "", 75.0),
        ("LAW_ENFORCEMENT_ARRESTS", "2024-01-01", "2024-02-01", "PERSON", 11.0),
        ("LAW_ENFORCEMENT_ARRESTS", "2024-01-01", "2025-01-01", "", 900.0),
        ("LAW_ENFORCEMENT_ARRESTS", "2024-02-01", "2024-03-01", "", 17.0),
        ("LAW_ENFORCEMENT_ARRESTS", "2024-02-01", "2024-03-01", "PERSON", 17.0)]


def test_a_merged_year_cell_is_named_in_the_empty_years_message(warehouse):
    """helper-35: a year merged over three months read as one year and two empty ones (R1), with no word on why."""
    path = inbox_path(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "merged_year.xlsx")
    with xlsxwriter.Workbook(str(path)) as book:
        sheet = book.add_worksheet("arrests")
        sheet.write_row(0, 0, ["year", "month", "value"])
        sheet.merge_range(1, 0, 3, 0, 2023)
        for row, month in enumerate((1, 2, 3), start=1):
            sheet.write_row(row, 1, [month, 10 + month])
    warehouse.ingest()
    assert findings(warehouse) == {3: [("R1", "year", None)], 4: [("R1", "year", None)]}
    assert message(warehouse, 3, "R1") == ("Empty 'year' value: write the year the value is for (e.g. 2023) on every "
                                           "row (a merged year cell leaves the rows below it empty)")


def test_a_month_merged_after_months_written_in_full_is_rejected_too(warehouse):
    """helper-39: January and February on every row, March merged over its two categories. Property's March row
    is no year total of Property (20 + 20 is not 22): R14, not a year's value of 22."""
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests_by_type.csv", [
        ["year", "month", "offense_type", "value"],
        [2024, 1, "Person Offenses", 10], [2024, 1, "Property Offenses", 20],
        [2024, 2, "Person Offenses", 10], [2024, 2, "Property Offenses", 20],
        [2024, 3, "Person Offenses", 11], [2024, None, "Property Offenses", 22]])
    warehouse.ingest()
    assert findings(warehouse) == {7: [("R14", "month", None)]}


def test_rows_without_a_month_beside_other_agencies_metrics_or_their_own_months_stay_annual(warehouse):
    """helper-37: R14 is about one agency's metric in one sheet. Another agency's rows (a superagency's upload),
    another metric's (a single-page sheet) and a category's own year total below its months are annual (M1)."""
    deliver_csv(warehouse.data_dir, "aoc", "COURTS_AND_PRETRIAL", "cases_filed_by_severity.csv", [
        ["year", "month", "agency", "severity_type", "value"], [2023, 1, "court_1", "Felony", 5],
        [2023, 2, "court_1", "Felony", 6], [2023, None, "court_2", "Felony", 60],
        [2023, None, "court_2", "Misdemeanor", 70]])
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "everything.csv", [
        ["metric", "year", "month", "breakdown_category", "breakdown", "value"], ["arrests", 2023, 1, None, None, 10],
        ["arrests", 2023, 2, None, None, 11], ["reported_crime", 2023, None, "offense_type", "Person Offenses", 100]])
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests_by_type.csv", [
        ["year", "month", "offense_type", "value"], [2022, 1, "Person Offenses", 5], [2022, 2, "Person Offenses", 6],
        [2022, None, "person offense", 11]])  # the year's total of Person, spelled otherwise
    warehouse.ingest()
    assert sorted(warehouse.table("rejected_rows").filter(pl.col("severity") == "ERROR").rows()) == []
    found = sorted(warehouse.table("rejected_rows").filter(pl.col("rule") == "M1").select("sheet", "row_number")
                   .rows())
    assert found == [("arrests_by_type.csv", 4), ("cases_filed_by_severity.csv", 4),
                     ("cases_filed_by_severity.csv", 5), ("everything.csv", 4)]


def test_missing_and_empty_month_columns_store_annual_values(warehouse):
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", [["year", "value"], [2022, 5]])
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "reported_crime.csv",
                [["year", "month", "value"], [2022, "", 7]])
    warehouse.ingest()
    assert {(k, s, e) for k, s, e, _, _ in values(warehouse)} == {
        ("LAW_ENFORCEMENT_ARRESTS", date(2022, 1, 1), date(2023, 1, 1)),
        ("LAW_ENFORCEMENT_REPORTED_CRIME", date(2022, 1, 1), date(2023, 1, 1))}
    assert sorted(r for rules in findings(warehouse).values() for r in rules) == [
        ("F4m", "month", None), ("F5m", "month", None)]


def test_future_month_is_rejected(warehouse):
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", [
        ["year", "month", "value"], [2024, 6, 1], [2024, 7, 2]])
    warehouse.ingest()
    assert [s for _, s, *_ in values(warehouse)] == [date(2024, 6, 1)]
    assert findings(warehouse) == {3: [("R13", "year", "2024")]}


# --- categories --------------------------------------------------------------------------------------------


def test_sub_categories_of_other_are_summed_into_it(warehouse):
    """Templates list an "Other" member's sub-categories as "<its label> - <sub-category>" (spec §3.10): each row
    loads, and their values are summed into that member, unless the file gives the member's own row, which is then
    its value. The same sub-category twice is still a duplicate."""
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "funding_by_type.csv", [
        ["year", "funding_type", "value"],
        [2023, "Grants", 10], [2023, "Other Funding - Gifts", 5], [2023, "other funding - Santa Claus", 7],
        [2022, "Grants", 10], [2022, "Other Funding", 12], [2022, "Other Funding - Gifts", 5],
        [2022, "Other Funding - Bake Sales", 7],
        [2021, "Other Funding - Gifts", 1], [2021, "Other Funding - Gifts", 2],
        [2020, "Grants - Federal", 4],
    ])
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "funding.csv", [
        ["year", "value"], [2023, 22], [2022, 22]])
    warehouse.ingest()
    got = sorted((start.year, category, value) for _, start, _, category, value in values(warehouse) if category)
    assert got == [(2022, "GRANTS", 10), (2022, "OTHER", 12), (2023, "GRANTS", 10), (2023, "OTHER", 12)]
    lineage = warehouse.metrics().filter(pl.col("category") == "OTHER").sort("period_start")["row_number"].to_list()
    assert lineage == [6, 3]  # the Other row itself; the first of the sub-categories
    assert sorted(warehouse.table("rejected_rows").select("row_number", "rule", "raw_value").rows()) == [
        (3, "C2", "Other Funding - Gifts"), (4, "C2", "other funding - Santa Claus"),
        (7, "C2", "Other Funding - Gifts"), (8, "C2", "Other Funding - Bake Sales"),  # told, each loaded
        (9, "P1", "1"), (10, "P1", "2"),  # "Gifts" twice in 2021
        (11, "R10", "Grants - Federal"),  # Grants has no sub-categories
    ]
    assert "added into 'Other Funding' for 2023-01-01 to 2023-12-31" in message(warehouse, 3, "C2")
    # 10 + 12 = 22 in both years: no breakdown-sum warning, and the sub-categories beside 2022's Other row do not
    # count twice.
    files = warehouse.table("source_files").select("path", "rows_total", "rows_loaded").sort("path").rows()
    assert [(total, loaded) for _, total, loaded in files] == [(2, 2), (10, 7)]


def test_categories_deterministic_matching(warehouse):
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests_by_type.csv", [
        ["year", "month", "offense_type", "value"],
        [2023, 1, "Person", 1], [2023, 1, "property offenses", 2], [2023, 1, "DRUG", 3],
        [2023, 1, "public_order", 4], [2023, 1, "Other", 5], [2023, 1, " unknown  offenses ", 6],
        [2023, 2, "All", 7], [2023, 2, "Violent", 8], [2023, 2, "", 9], [2023, 2, "Totals", 10],
    ])
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests_by_race.csv", [
        ["year", "month", "race/ethnicity", "value"],
        [2023, 1, "Black / Not Hispanic or Latino", 1], [2023, 1, "hispanic_Black", 2], [2023, 1, "white", 3],
        [2023, 1, "Hispanic", 4], [2023, 1, "Not Hispanic White", 5], [2023, 1, "Martian", 6],
    ])
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests_by_biological_sex.csv", [
        ["year", "month", "biological_sex", "value"], [2023, 1, "M", 1], [2023, 1, "female", 2],
        [2023, 1, "Non-binary", 3]])
    warehouse.ingest()
    got = set(warehouse.metrics().filter(pl.col("category").is_not_null()).select("category", "value").rows())
    assert got == {
        ("PERSON", 1), ("PROPERTY", 2), ("DRUG", 3), ("PUBLIC_ORDER", 4), ("OTHER", 5), ("UNKNOWN", 6),
        ("NOT_HISPANIC_BLACK", 1), ("HISPANIC_BLACK", 2), ("UNKNOWN_ETHNICITY_WHITE", 3), ("HISPANIC_UNKNOWN", 4),
        ("NOT_HISPANIC_WHITE", 5), ("MALE", 1), ("FEMALE", 2), ("UNKNOWN", 3),
    }
    rejected = warehouse.table("rejected_rows").select("sheet", "row_number", "rule", "raw_value").rows()
    assert sorted(rejected) == sorted([
        ("arrests_by_biological_sex.csv", 4, "C1", "Non-binary"),
        ("arrests_by_race.csv", 7, "R10", "Martian"),
        ("arrests_by_type.csv", 8, "R11", "All"),
        ("arrests_by_type.csv", 9, "R10", "Violent"),
        ("arrests_by_type.csv", 10, "R10", None),
        ("arrests_by_type.csv", 11, "R11", "Totals"),
    ])
    invalid = warehouse.table("rejected_rows").filter(pl.col("raw_value") == "Violent")["message"].item()
    assert "Person Offenses, Property Offenses" in invalid  # the list of valid labels
    legacy = warehouse.table("rejected_rows").filter(pl.col("rule") == "C1")["message"].item()
    assert "Unknown Biological Sex" in legacy
