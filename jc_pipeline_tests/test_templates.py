"""Bulk-upload templates: columns, rows and periods per agency kind, read back from the written workbook, and a
round trip through the pipeline's ingest (fill in the values, deliver, ingest: nothing rejected, nothing warned).

The roster is the ingest tests' (``ingest_support.AGENCIES``): ``le`` (plain law enforcement), ``aoc`` (superagency
of two courts), ``dcs`` (SUPERVISION;PAROLE;PROBATION, disaggregated), ``dcs_mixed`` (funding, expenses and staff
combined), ``fy_jail`` (July fiscal year).
"""

from __future__ import annotations

import zipfile
from datetime import date
from xml.etree import ElementTree

import fastexcel
import polars as pl
import pytest

from jc_pipeline.lib.registry import load_registry
from jc_pipeline.lib.roster import BREAKDOWN_SETTINGS_COLUMNS, BREAKDOWN_SETTINGS_FILE, Roster, load_roster
from jc_pipeline.lib.templates import filling_notes, plan_templates, write_workbooks
from jc_pipeline_tests.ingest_support import NOW, SETTINGS, Warehouse, deliver_xlsx, write_roster

TODAY = NOW.date()  # 2024-06-01: months Jan 2023 .. May 2024 have ended, CY2024 and FY2024 have not


@pytest.fixture(scope="module")
def roster(tmp_path_factory):
    """The roster only (tests that just write templates share it)."""
    data_dir = tmp_path_factory.mktemp("roster")
    write_roster(data_dir)
    return load_roster(data_dir)


def read_workbook(path) -> dict[str, pl.DataFrame]:
    """Every sheet as text columns (what an agency's spreadsheet program shows)."""
    reader = fastexcel.read_excel(str(path))
    return {name: reader.load_sheet(name, dtypes="string").to_polars() for name in reader.sheet_names}


def written(roster: Roster, agency: str, tmp_path, today: date = TODAY) -> dict[str, dict[str, pl.DataFrame]]:
    paths = write_workbooks(plan_templates(roster, agency, today=today), tmp_path / "templates" / agency)
    return {path.name: read_workbook(path) for path in paths}


def test_plain_agency_monthly_and_annual_sheets(roster, tmp_path):
    books = written(roster, "le", tmp_path)
    assert list(books) == ["law_enforcement_template.xlsx"]
    sheets = books["law_enforcement_template.xlsx"]
    registry = load_registry()
    expected = {m.sheet for m in registry.metrics_for("LAW_ENFORCEMENT")} | {
        b.sheet for m in registry.metrics_for("LAW_ENFORCEMENT") for b in m.breakdowns if b.sheet}
    assert set(sheets) == expected
    arrests = sheets["arrests"]
    assert arrests.columns == ["year", "month", "value"]
    months = list(zip(arrests["year"], arrests["month"], strict=True))
    assert months[0] == ("2023", "1") and months[-1] == ("2024", "5") and len(months) == 17
    assert arrests["value"].null_count() == arrests.height  # left for the agency
    by_type = sheets["arrests_by_type"]
    assert by_type.columns == ["year", "month", "offense_type", "value"]
    members = [m.display for m in registry.metrics["LAW_ENFORCEMENT_ARRESTS"].breakdown("metric/offense/type")
               .dimension.members]
    assert by_type.height == 17 * len(members)
    assert by_type["offense_type"].head(len(members)).to_list() == members
    assert sheets["funding"].columns == ["year", "value"]
    assert sheets["funding"]["year"].to_list() == ["2023"]  # CY2024 has not ended on 2024-06-01


def test_superagency_lists_each_child_in_the_agency_column(roster, tmp_path):
    books = written(roster, "aoc", tmp_path)
    assert set(books) == {"courts_and_pretrial_template.xlsx", "superagency_template.xlsx"}
    courts = books["courts_and_pretrial_template.xlsx"]
    for name, sheet in courts.items():
        assert "agency" in sheet.columns, name
        assert set(sheet["agency"]) == {"1st District Court", "2nd District Court"}
    # Its own SUPERAGENCY metrics carry no agency column (spec §5.2).
    assert all("agency" not in sheet.columns for sheet in books["superagency_template.xlsx"].values())


def test_split_supervision_gets_a_system_column_on_disaggregated_metrics(roster, tmp_path):
    sheets = written(roster, "dcs", tmp_path)["supervision_template.xlsx"]
    population = sheets["population"]
    assert population.columns == ["year", "month", "system", "value"]
    assert set(population["system"]) == {"PAROLE", "PROBATION"}
    assert population.height == 2 * 17
    mixed = written(roster, "dcs_mixed", tmp_path)["supervision_template.xlsx"]
    assert mixed["funding"].columns == ["year", "value"]  # set to combined in metric_settings.csv
    assert mixed["population"].columns == ["year", "month", "system", "value"]
    # Subsystems travel in the SUPERVISION workbook: no PAROLE / PROBATION workbooks.
    assert [wb.sector for wb in plan_templates(roster, "dcs", today=TODAY)] == ["SUPERVISION"]


@pytest.mark.parametrize(("today", "years"), [(TODAY, ["2023"]), (date(2024, 7, 1), ["2023", "2024"])])
def test_fiscal_year_rows_are_labelled_by_the_year_they_end(roster, tmp_path, today, years):
    sheets = written(roster, "fy_jail", tmp_path, today)["jails_template.xlsx"]
    # FY2023 = July 2022 - June 2023; FY2024 ends on 2024-07-01 (exclusive), so it is listed from that day on.
    assert sheets["funding"]["year"].to_list() == years
    assert sheets["total_population"].columns == ["year", "month", "value"]


def test_categories_turned_off_are_left_out_for_that_agency_and_metric_only(tmp_path):
    """breakdown_settings.csv: court_1 has no 'Other Funding'; dcs turns 'Administrative' supervision off for the
    combined metric (so for parole too) but back on for probation; le reports no call-type breakdown at all."""
    write_roster(tmp_path)
    call_types = [m.name for m in load_registry().dimensions["metric/law_enforcement/calls_for_service/type"].members]
    daily = "metric/supervision/daily_population/type"
    rows = [("court_1", "COURTS_AND_PRETRIAL_FUNDING", "metric/courts/funding/type", "OTHER", "false"),
            ("dcs", "SUPERVISION_POPULATION", daily, "ADMINISTRATIVE", "false"),
            ("dcs", "PROBATION_POPULATION", daily, "ADMINISTRATIVE", "true")]
    rows += [("le", "LAW_ENFORCEMENT_CALLS_FOR_SERVICE", "call_type", name, "false") for name in call_types]
    lines = [",".join(BREAKDOWN_SETTINGS_COLUMNS)] + [",".join(row) for row in rows]
    (tmp_path / BREAKDOWN_SETTINGS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    roster = load_roster(tmp_path)

    funding = written(roster, "aoc", tmp_path)["courts_and_pretrial_template.xlsx"]["funding_by_type"]
    offered = {court: set(group["funding_type"]) for (court,), group in funding.group_by("agency")}
    assert offered["2nd District Court"] - offered["1st District Court"] == {"Other Funding"}
    assert len(offered["1st District Court"]) == len(offered["2nd District Court"]) - 1

    population = written(roster, "dcs", tmp_path)["supervision_template.xlsx"]["population_by_type"]
    administrative = population.filter(pl.col("supervision_type") == "People on Administrative Supervision")
    assert set(administrative["system"]) == {"PROBATION"} and administrative.height == 17
    assert set(population.filter(pl.col("system") == "PAROLE")["supervision_type"]) == {
        m.display for m in load_registry().dimensions[daily].members if m.name != "ADMINISTRATIVE"}

    sheets = written(roster, "le", tmp_path)["law_enforcement_template.xlsx"]
    assert "calls_for_service_by_type" not in sheets and "calls_for_service" in sheets
    assert sheets["arrests_by_type"].height == 17 * 6  # other metrics keep every category


def fill(sheet: pl.DataFrame) -> list[list[object]]:
    """Values as an agency would type them: 100 for a total; per breakdown the first category 100, the rest 0,
    so every breakdown adds up to its total."""
    keys = [c for c in sheet.columns if c != "value"]
    period = [c for c in keys if c in ("year", "month", "agency", "system")]
    first = pl.int_range(pl.len()).over(period) == 0 if len(keys) > len(period) else pl.lit(True)
    filled = sheet.with_columns(value=pl.when(first).then(100).otherwise(0))
    rows = [[None if cell is None else int(cell) if name in ("year", "month") else cell
             for name, cell in zip(filled.columns, row, strict=True)] for row in filled.iter_rows()]
    return [filled.columns, *rows]


#: dcs's subsystems at another frequency than its combined metric: its annual funding monthly for parole, its monthly
#: population annual for both subsystems (the subsystem keys follow the combined row unless they have their own).
MIXED_FREQUENCIES = [*SETTINGS, ("dcs", "PAROLE_FUNDING", "", "MONTHLY", "", ""),
                     ("dcs", "PAROLE_POPULATION", "", "ANNUAL", "", ""),
                     ("dcs", "PROBATION_POPULATION", "", "ANNUAL", "", "")]


@pytest.mark.parametrize("settings", [SETTINGS, MIXED_FREQUENCIES], ids=["as_registered", "subsystem_frequencies"])
def test_filled_templates_ingest_without_a_single_finding(tmp_path, settings):
    """One ingest over the filled templates of every kind of agency (plain, superagency, split and combined
    supervision, fiscal year; split supervision also with subsystems reported at another frequency than the
    combined metric): every row loaded, no rejected row, no warning."""
    warehouse = Warehouse(tmp_path, settings=settings)
    expected_rows = {}
    for agency in ("le", "aoc", "dcs", "dcs_mixed", "fy_jail"):
        plans = {wb.file_name: wb for wb in plan_templates(warehouse.roster, agency, today=TODAY)}
        for path in write_workbooks(plan_templates(warehouse.roster, agency, today=TODAY),
                                    tmp_path / "templates" / agency):
            plan = plans[path.name]
            delivered = deliver_xlsx(warehouse.data_dir, agency, plan.sector, path.name,
                                     {name: fill(sheet) for name, sheet in read_workbook(path).items()})
            expected_rows[delivered.relative_to(warehouse.data_dir).as_posix()] = sum(len(s.rows) for s in plan.sheets)
    warehouse.ingest()
    findings = warehouse.table("rejected_rows")
    assert findings.height == 0, findings.select("sheet", "row_number", "rule", "message").head(5)
    files = warehouse.table("source_files")
    assert dict(zip(files["path"], files["rows_loaded"], strict=True)) == expected_rows
    assert set(files["status"]) == {"INGESTED"}
    assert warehouse.table("agency_metrics").height > 0
    warehouse.close()


def test_template_command(tmp_path, capsys):
    from jc_pipeline import cli

    write_roster(tmp_path)
    assert cli.main(["template", "--data-dir", str(tmp_path), "--agency", "fy_jail"]) == 0
    assert (tmp_path / "templates" / "fy_jail" / "jails_template.xlsx").is_file()
    out = capsys.readouterr().out
    assert "delete the rows and sheets you leave empty" in out
    assert "jails/funding" in out and "'year' is the year in which the year starting in month 7 ends" in out
    assert cli.main(["template", "--data-dir", str(tmp_path), "--agency", "nope"]) == 1
    assert "'nope' is not an agency_id" in capsys.readouterr().err


def test_notes_name_every_month_a_year_of_annual_rows_starts_in(tmp_path):
    """The agency's fiscal year, a metric's own year (metric_settings.csv) and a child's: each start month other
    than January is named with its sheets; an agency whose years all start in January gets the empty-rows note only."""
    write_roster(tmp_path, settings=[*SETTINGS, ("le", "LAW_ENFORCEMENT_FUNDING", "", "ANNUAL", "10", "")])
    roster = load_roster(tmp_path)
    le = filling_notes(plan_templates(roster, "le", today=TODAY))
    assert le[1:] == ["annual rows of law_enforcement/funding: 'year' is the year in which the year starting in "
                      "month 10 ends"]
    assert le[0].startswith("every row is a period to report")
    assert len(filling_notes(plan_templates(roster, "da", today=TODAY))) == 1  # calendar years only
    jail = filling_notes(plan_templates(roster, "fy_jail", today=TODAY))
    assert any(note.startswith("annual rows of jails/funding") and "month 7 ends" in note for note in jail)


def _prompts(path, sheet_name: str) -> dict[str, tuple[str | None, str | None]]:
    """The cell prompts of a template's sheet: (prompt shown on the cell, error shown on a refused value) by the
    column letter of the range."""
    number = fastexcel.read_excel(str(path)).sheet_names.index(sheet_name) + 1  # xlsxwriter's part names
    with zipfile.ZipFile(path) as book:
        xml = ElementTree.fromstring(book.read(f"xl/worksheets/sheet{number}.xml"))
    main = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    return {v.get("sqref")[0]: (v.get("prompt"), v.get("error")) for v in xml.iter(f"{main}dataValidation")}


def test_the_workbook_itself_tells_the_agency_to_delete_rows_it_cannot_fill(roster, tmp_path):
    """An empty value is rejected (R7): the value cells say so when selected and when a value is refused, never
    that a cell may be left empty; a fiscal year's annual sheet says which year 'year' names."""
    (path,) = write_workbooks(plan_templates(roster, "fy_jail", today=TODAY), tmp_path)
    funding = _prompts(path, "funding")
    prompt, error = funding["B"]  # year, value
    assert prompt == "Delete the rows you cannot fill: an empty value is rejected."
    assert error == "Enter a number of zero or more. Delete the rows you cannot fill: an empty value is rejected."
    assert funding["A"][0] == "The year in which the reporting year ends (years here start in July)."
    assert "A" not in _prompts(path, "total_population")  # monthly rows: no year to explain
