"""The demo state: valid roster, realistic files in all bulk-upload layouts, and every planted quirk findable
by opening the written files (not by trusting the manifest)."""

from __future__ import annotations

import csv
import math
import os
import re
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import fastexcel
import pytest

from jc_pipeline.lib import ingest, validation
from jc_pipeline.lib.demo import DemoManifest, write_demo_state
from jc_pipeline.lib.demo import manifest as q
from jc_pipeline.lib.reference import write_reference_tables
from jc_pipeline.lib.registry import SUPERVISION_SUBSYSTEMS, TIER1_SECTORS, load_registry, normalize_sheet_name
from jc_pipeline.lib.roster import AGENCIES_FILE, BREAKDOWN_SETTINGS_FILE, SETTINGS_FILE, load_roster

MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1
    )
}


@dataclass(frozen=True)
class Cell:
    """One data row of a written file, cells as text (None = empty)."""

    path: str
    sheet: str
    row: int  # spreadsheet row, header = 1
    cells: dict[str, str | None]


def read_rows(data_dir: Path, path: str) -> dict[str, list[Cell]]:
    """Every sheet of a written file -> its data rows, as text."""
    full = data_dir / path
    if full.suffix == ".csv":
        with full.open(newline="", encoding="utf-8") as handle:
            lines = list(csv.reader(handle))
        header, body = lines[0], lines[1:]
        sheets = {full.stem: [dict(zip(header, (c if c != "" else None for c in line))) for line in body]}
    else:
        reader = fastexcel.read_excel(full)
        sheets = {}
        for name in reader.sheet_names:
            frame = reader.load_sheet(name, dtypes="string").to_polars()
            sheets[name] = frame.to_dicts()
    return {name: [Cell(path, name, i, row) for i, row in enumerate(rows, start=2)] for name, rows in sheets.items()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoManifest:
    return write_demo_state(tmp_path_factory.mktemp("demo") / "data")


@pytest.fixture(scope="module")
def files(demo) -> dict[str, dict[str, list[Cell]]]:
    return {record.path: read_rows(demo.data_dir, record.path) for record in demo.files}


@pytest.fixture(scope="module")
def roster(demo):
    return load_roster(demo.data_dir)


def _all_rows(files):
    return [row for sheets in files.values() for rows in sheets.values() for row in rows]


def _month(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip().lower()
    return int(float(text)) if text[0].isdigit() else MONTHS[text[:3]]


def _number(text: str | None) -> float:
    return float(text.replace(",", ""))


# --- shape of the state ------------------------------------------------------------------------------------


def test_roster_is_valid_and_covers_all_sectors(demo, roster):
    assert len(roster.agencies) == 64
    sectors = {sector for agency in roster.agencies.values() for sector in agency.sectors}
    assert set(TIER1_SECTORS) <= sectors and "SUPERAGENCY" in sectors
    assert demo.years == (2020, 2021, 2022, 2023, 2024, 2025)
    assert all(agency.state_code == "US_XX" for agency in roster.agencies.values())
    counties = {a.county_fips: a.population for a in roster.agencies.values() if "JAILS" in a.sectors}
    state = roster.agencies["doc"].population
    assert sum(counties.values()) == state and 500_000 < state < 5_000_000
    law_enforcement = [a for a in roster.agencies.values() if "LAW_ENFORCEMENT" in a.sectors]
    assert len(law_enforcement) >= 25 and sum(a.population for a in law_enforcement) == state


def test_every_agency_delivers_each_year_it_reports(demo, roster):
    delivered = {(record.agency_id, record.sector) for record in demo.files}
    for agency in roster.agencies.values():
        if agency.superagency_id:
            assert (agency.superagency_id, agency.sectors[0]) in delivered
        else:
            assert all(
                (agency.agency_id, sector) in delivered
                for sector in agency.sectors
                if sector not in SUPERVISION_SUBSYSTEMS
            )


def test_all_layouts_and_formats_present(demo):
    kinds = {(record.layout, record.file_format) for record in demo.files}
    assert {
        (q.MULTI_SHEET, "xlsx"),
        (q.MULTI_SHEET, "xls"),
        (q.SINGLE_PAGE, "xlsx"),
        (q.SINGLE_PAGE, "csv"),
        (q.METRIC_CSV, "csv"),
    } <= kinds
    assert 200 <= len(demo.files) <= 800
    assert all((demo.data_dir / record.path).is_file() for record in demo.files)
    metric_csvs = [r for r in demo.files if r.layout == q.METRIC_CSV]
    registry = load_registry()
    for record in metric_csvs:  # one-metric CSVs are named after their sheet
        assert normalize_sheet_name(Path(record.path).name) in registry.sheet_targets(record.sector)


def test_manifest_row_accounting_matches_files(demo, files):
    for record in demo.files:
        sheets = files[record.path]
        assert [s.name for s in record.sheets] == list(sheets)
        for sheet in record.sheets:
            assert len(sheets[sheet.name]) == sheet.data_rows, (record.path, sheet.name)
            assert sum(not any(row.cells.values()) for row in sheets[sheet.name]) == sheet.blank_rows


def test_values_look_real(files, roster):
    """Arrests ~ 30 per 1,000 residents a year; staff and budgets move slowly year to year."""
    arrests, staff = defaultdict(float), defaultdict(dict)
    for row in _all_rows(files):
        agency = row.path.split("/")[1]
        if row.sheet == "arrests" and "month" in row.cells and row.cells["value"] and row.cells["year"] == "2024":
            arrests[agency] += _number(row.cells["value"])
        if (
            row.sheet == "staff"
            and "LAW_ENFORCEMENT" in row.path
            and row.cells["value"]
            and row.cells["value"][0].isdigit()
        ):
            staff[agency][row.cells["year"]] = _number(row.cells["value"])
    rates = [
        arrests[a] / roster.agencies[a].population * 1000 for a in arrests if roster.agencies[a].population > 20_000
    ]
    assert len(rates) >= 10 and 15 < sorted(rates)[len(rates) // 2] < 45
    changes = [abs(y["2025"] / y["2024"] - 1) for y in staff.values() if "2024" in y and "2025" in y and y["2024"] > 20]
    assert changes and max(changes) < 0.2


# --- determinism and overwrite -----------------------------------------------------------------------------


def _snapshot(directory: Path):
    # Bytes, workbooks too: a file that differs only in an embedded write time is a new delivery to ingest.
    return {path.relative_to(directory).as_posix(): path.read_bytes()
            for path in sorted(directory.rglob("*")) if path.is_file()}


def test_same_seed_same_files_and_overwrite(tmp_path):
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    began = datetime.now(UTC).replace(microsecond=0)
    first = write_demo_state(first_dir, agencies=30, years=1, seed=3)
    second = write_demo_state(second_dir, agencies=30, years=1, seed=3)
    assert _snapshot(first_dir) == _snapshot(second_dir)
    assert first.quirks == second.quirks and first.years == (2025,)
    # Two writes within one second match even with a write time inside; no workbook may carry the time of writing.
    for path in first_dir.rglob("*.xlsx"):
        with zipfile.ZipFile(path) as archive:
            properties = archive.read("docProps/core.xml").decode() if "docProps/core.xml" in archive.namelist() else ""
        for stamp in re.findall(r"<dcterms:(?:created|modified)[^>]*>([^<]+)<", properties):
            assert datetime.fromisoformat(stamp.replace("Z", "+00:00")) < began, (path, stamp)

    (first_dir / "warehouse.duckdb").write_bytes(b"keep me")
    stray = first_dir / "inbox" / "stray.txt"
    stray.write_text("old")
    with pytest.raises(FileExistsError, match="agencies.csv already exists"):
        write_demo_state(first_dir, agencies=30, years=1, seed=3)
    write_demo_state(first_dir, agencies=30, years=1, seed=3, overwrite=True)
    assert (first_dir / "warehouse.duckdb").read_bytes() == b"keep me" and not stray.exists()
    (first_dir / "warehouse.duckdb").unlink()
    assert _snapshot(first_dir) == _snapshot(second_dir)


def test_rejects_too_few_agencies(tmp_path):
    with pytest.raises(ValueError, match="at least"):
        write_demo_state(tmp_path, agencies=5)


# --- breakdowns sum to totals ------------------------------------------------------------------------------

_DAMAGE = (q.MISMATCHED_TOTAL, q.BLANK_VALUE, q.NON_NUMERIC_VALUE, q.BREAKDOWN_WITHOUT_TOTAL)


def _datapoints(files, roster):
    """(path, agency_id, metric_key, year, month) -> {"total": value, "<breakdown sheet or column>": sum}."""
    registry = load_registry()
    points: dict[tuple, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for path, sheets in files.items():
        _, folder_agency, sector, name = path.split("/")
        if name.startswith("correction_"):
            continue
        for sheet, rows in sheets.items():
            for row in rows:
                cells = row.cells
                if cells.get("year") is None or sheet == "gender":
                    continue
                metric_sheet = cells.get("metric") or normalize_sheet_name(sheet)
                system = cells.get("system") or sector
                target = registry.sheet_targets(system)[metric_sheet]
                agency = folder_agency
                if cells.get("agency"):
                    agency = roster.find_child(folder_agency, cells["agency"]).agency_id
                key = (path, agency, target.metric.key, int(cells["year"]), _month(cells.get("month")))
                part = cells.get("breakdown_category") or (target.breakdown.column if target.breakdown else "total")
                try:
                    points[key][part] += _number(cells["value"])
                except (AttributeError, ValueError):  # blank or non-numeric value
                    points[key][part] = float("nan")
    return points


def test_breakdowns_sum_to_totals_except_planted_mismatches(demo, files, roster):
    damaged = {
        (loc.path, loc.agency_id, loc.metric_key, loc.year, loc.month) for name in _DAMAGE for loc in demo.quirks[name]
    }
    checked = 0
    for key, parts in _datapoints(files, roster).items():
        if "total" not in parts or len(parts) == 1:
            continue
        breakdowns = [value for part, value in parts.items() if part != "total"]
        if key in damaged:
            continue
        assert all(value == parts["total"] for value in breakdowns), (key, dict(parts))
        checked += 1
    assert checked > 5000
    for location in demo.quirks[q.MISMATCHED_TOTAL]:
        parts = _datapoints({location.path: files[location.path]}, roster)[
            (location.path, location.agency_id, location.metric_key, location.year, location.month)
        ]
        assert all(abs(value - parts["total"]) > 1 for part, value in parts.items() if part != "total")


@pytest.mark.parametrize("flow", ["POPULATION", "ADMISSIONS", "RELEASES"])
def test_jail_pre_and_post_adjudication_add_up_to_the_total(files, roster, flow):
    # Within 1: each of the three is rounded on its own (the rules jail_population_parts_match_total and
    # jail_flow_parts_match_total allow that much).
    points = _datapoints(files, roster)
    checked = 0
    for (path, agency, key, year, month), parts in points.items():
        if key == f"JAILS_TOTAL_{flow}" and not math.isnan(parts.get("total", math.nan)):
            pre = points.get((path, agency, f"JAILS_PRE_ADJUDICATION_{flow}", year, month), {}).get("total")
            post = points.get((path, agency, f"JAILS_POST_ADJUDICATION_{flow}", year, month), {}).get("total")
            if pre is not None and post is not None and not math.isnan(pre + post):
                assert abs(pre + post - parts["total"]) <= 1, (path, agency, year, month, pre, post, parts["total"])
                checked += 1
    assert checked > 50


# --- each quirk, found in the files ------------------------------------------------------------------------


def _at(files, location) -> Cell:
    return files[location.path][location.sheet][location.row - 2]


def test_quirk_manifest_is_complete(demo):
    assert set(demo.quirks) == set(q.QUIRKS)
    assert all(demo.quirks[name] for name in q.QUIRKS), [name for name in q.QUIRKS if not demo.quirks[name]]


def test_fiscal_year_agencies_use_end_year_labels(demo, files, roster):
    fiscal = {a.agency_id for a in roster.agencies.values() if a.fiscal_year_start_month == 7}
    assert len(fiscal) >= 5
    for location in demo.quirks[q.FISCAL_YEAR]:
        assert (
            location.agency_id in fiscal
            or roster.effective(location.agency_id, location.metric_key).starting_month != 1
        )
        row = _at(files, location)
        assert int(row.cells["year"]) == location.year and row.cells.get("month") is None
        # the file for calendar year Y holds the fiscal year ending in Y
        if re.search(r"_(\d{4})\.", location.path):
            assert re.search(r"_(\d{4})\.", location.path).group(1) == str(location.year)


def test_frequency_switched_by_metric_settings(demo, files, roster):
    switched = [s for s in roster.settings.values() if s.frequency]
    assert switched
    monthly = [s for s in switched if s.frequency == "MONTHLY"]
    assert monthly and roster.effective(monthly[0].agency_id, monthly[0].metric_key).frequency == "MONTHLY"
    locations = [l for l in demo.quirks[q.FREQUENCY_OVERRIDE] if l.metric_key == monthly[0].metric_key]
    assert locations and all(_at(files, l).cells.get("month") is not None for l in locations)


def test_superagency_uploads_for_children(demo, files, roster):
    superagency = next(a for a in roster.agencies.values() if "SUPERAGENCY" in a.sectors)
    children = roster.children(superagency.agency_id)
    assert len(children) >= 3
    labels = {
        row.cells["agency"]
        for row in _all_rows(files)
        if row.path.startswith(f"inbox/{superagency.agency_id}/") and "agency" in row.cells
    }
    resolved = {label: roster.find_child(superagency.agency_id, label) for label in labels}
    assert all(resolved.values()) and {c.agency_id for c in resolved.values()} == {c.agency_id for c in children}
    assert any(label == child.agency_id for label, child in resolved.items())
    assert any(label not in (child.agency_name, child.agency_id) for label, child in resolved.items())
    assert any(label == child.agency_name for label, child in resolved.items())
    assert demo.quirks[q.SUPERAGENCY]


def test_supervision_split_by_system_column(demo, files, roster):
    agency = next(a for a in roster.agencies.values() if set(a.sectors) == {"SUPERVISION", "PAROLE", "PROBATION"})
    rows = [r for r in _all_rows(files) if r.path.startswith(f"inbox/{agency.agency_id}/SUPERVISION/")]
    assert {r.cells["system"] for r in rows if "system" in r.cells} == {"PAROLE", "PROBATION"}
    assert all("system" not in r.cells for r in rows if r.sheet.startswith("funding"))  # reported combined
    assert demo.quirks[q.SUPERVISION_SYSTEM]


def test_breakdown_without_total(demo, files):
    for location in demo.quirks[q.BREAKDOWN_WITHOUT_TOTAL]:
        assert _at(files, location).cells["value"] is not None
        sheets = files[location.path]
        aggregate = re.match(r"'(\w+)'", location.note.split("no ")[1]).group(1)
        assert not [
            r
            for r in sheets[aggregate]
            if r.cells["year"] == str(location.year) and _month(r.cells.get("month")) == location.month
        ]


def test_blank_and_non_numeric_values(demo, files):
    assert len(demo.quirks[q.BLANK_VALUE]) >= 2
    for location in demo.quirks[q.BLANK_VALUE]:
        assert _at(files, location).cells["value"] is None
    values = {_at(files, l).cells["value"] for l in demo.quirks[q.NON_NUMERIC_VALUE]}
    assert values == {"N/A", "--", "twelve"}


def test_category_and_month_spellings(demo, files):
    rows = _all_rows(files)
    labels = {
        value
        for row in rows
        for column, value in row.cells.items()
        if column in ("breakdown", "offense_type", "biological_sex", "case_severity", "severity_type")
    }
    for label in (
        "Person Offenses",
        "Person",
        "person offenses ",
        "PERSON",
        "Male",
        "male",
        "Male Biological Sex",
        "Felonies",
        "Misdemenor",
    ):
        assert label in labels, label
    months = {row.cells.get("month") for row in rows}
    for month in ("January", "JAN", "Febuary", "march ", "1"):
        assert month in months, month
    separators = [
        row
        for row in rows
        if row.path.endswith(".csv") and re.fullmatch(r"\d{1,3}(,\d{3})+", row.cells.get("value") or "")
    ]
    assert separators
    for location in demo.quirks[q.THOUSANDS_SEPARATOR]:
        assert "," in _at(files, location).cells["value"]
    for location in demo.quirks[q.CATEGORY_SPELLING] + demo.quirks[q.MONTH_NAME]:
        assert location.note.split("'")[1] in _at(files, location).cells.values()


def test_late_correction_revises_an_old_month(demo, files, roster):
    locations = demo.quirks[q.LATE_CORRECTION]
    path = locations[0].path
    assert re.fullmatch(r"inbox/\w+/(LAW_ENFORCEMENT|JAILS)/correction_(\d{4})-03\.csv", path)
    year = locations[0].year
    assert year <= 2023
    points = _datapoints(files, roster)
    originals = [
        parts for key, parts in points.items() if key[1:] == (locations[0].agency_id, locations[0].metric_key, year, 3)
    ]
    assert len(originals) == 1
    correction = defaultdict(float)
    for cell in files[path][Path(path).stem]:
        correction[cell.cells["breakdown_category"] or "total"] += _number(cell.cells["value"])
    assert correction["total"] != originals[0]["total"] and set(correction) == set(originals[0])
    assert all(value == correction["total"] for value in correction.values())
    folder = (demo.data_dir / path).parent
    assert os.stat(demo.data_dir / path).st_mtime_ns > max(
        p.stat().st_mtime_ns for p in folder.iterdir() if p.name != Path(path).name
    )


def test_agency_that_stopped_reporting(demo, files, roster):
    (location,) = demo.quirks[q.STOPPED_REPORTING]
    agency = location.agency_id
    assert agency in roster.agencies
    periods = {
        (int(r.cells["year"]), _month(r.cells.get("month")) or 12)
        for r in _all_rows(files)
        if r.path.startswith(f"inbox/{agency}/") and r.cells.get("year")
    }
    assert max(periods) == (2023, 6) and location.year == 2023


def test_template_hint_blank_row_and_invalid_sheet(demo, files):
    (hint,) = demo.quirks[q.TEMPLATE_HINT_ROW]
    cells = _at(files, hint).cells
    assert cells["value"] is None and any(v and v.startswith("[") and ", " in v for v in cells.values())
    (blank,) = demo.quirks[q.BLANK_ROW]
    assert not any(_at(files, blank).cells.values())
    assert blank.row < len(files[blank.path][blank.sheet]) + 1  # data follows the blank row
    (invalid,) = demo.quirks[q.INVALID_SHEET_NAME]
    assert invalid.sheet == "gender" and "gender" in files[invalid.path]
    assert normalize_sheet_name("gender") not in load_registry().sheet_targets("LAW_ENFORCEMENT")


# --- breakdown categories turned off -----------------------------------------------------------------------


def _breakdown_rows(files, roster):
    """(cell, agency_id, metric_key, breakdown, label) for every breakdown row of the written files."""
    registry = load_registry()
    for path, sheets in files.items():
        _, folder_agency, sector, _ = path.split("/")
        for sheet, rows in sheets.items():
            for row in rows:
                cells = row.cells
                if cells.get("year") is None or sheet == "gender":
                    continue
                target = registry.sheet_targets(cells.get("system") or sector)[
                    cells.get("metric") or normalize_sheet_name(sheet)]
                if "breakdown_category" in cells:  # single page: the row names its breakdown column, or none
                    column = cells["breakdown_category"]
                    breakdown = next((b for b in target.metric.breakdowns if column and b.column == column), None)
                    label = cells["breakdown"]
                else:
                    breakdown = target.breakdown
                    label = cells[breakdown.column] if breakdown else None
                if breakdown is None:
                    continue
                agency = roster.find_child(folder_agency, cells["agency"]).agency_id if cells.get("agency") else (
                    folder_agency)
                yield row, agency, target.metric.key, breakdown, label


def test_disabled_categories_are_marked_wherever_they_are_delivered(demo, files, roster):
    """A handful of agencies turn a category off; every row still delivering one is in the manifest, and only
    those rows (found in the files through the roster as the pipeline loads it, not through the manifest)."""
    disabled = [s for s in roster.category_settings() if not s.enabled]
    assert len({s.agency_id for s in disabled}) >= 4
    off = defaultdict(set)  # (agency, metric, dimension) -> how its disabled categories may be written
    for s in disabled:
        member = load_registry().dimensions[s.dimension].member(s.category)
        off[(s.agency_id, s.metric_key, s.dimension)] |= {member.name.casefold(), member.display.casefold()}
    delivering = {
        (row.path, row.sheet, row.row, agency, metric_key)
        for row, agency, metric_key, breakdown, label in _breakdown_rows(files, roster)
        if label.strip().casefold() in off.get((agency, metric_key, breakdown.dimension.identifier), ())
    }
    marked = {(l.path, l.sheet, l.row, l.agency_id, l.metric_key) for l in demo.quirks[q.DISABLED_CATEGORY]}
    assert marked == delivering and len(marked) >= 6
    # Some agencies deliver a category they turned off (the warning shows), others do not (nothing to flag).
    sending = {agency for *_, agency, _ in marked}
    assert sending and {s.agency_id for s in disabled} - sending


def test_disabled_categories_warn_on_the_demo_and_still_load(demo, roster, tmp_path):
    """Ingest and validate the folders of the agencies that deliver a disabled category: one category_enabled
    warning per delivered datapoint, none an error."""
    uploaders = {demo.data_dir / l.path.rsplit("/", 2)[0] for l in demo.quirks[q.DISABLED_CATEGORY]}
    subset = tmp_path / "data"
    subset.mkdir()
    for name in (AGENCIES_FILE, SETTINGS_FILE, BREAKDOWN_SETTINGS_FILE):
        (subset / name).write_bytes((demo.data_dir / name).read_bytes())
    for folder in uploaders:
        for path in folder.rglob("*"):
            if path.is_file():
                target = subset / path.relative_to(demo.data_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(path.read_bytes())
    registry = load_registry()
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        ingest.ensure_schema(con)
        write_reference_tables(con, registry, roster)
        batch = ingest.parse_inbox(subset, {}, roster, registry, now=datetime(2026, 1, 15))
        months = ingest.write_batch(con, batch).touched_months
        ingest.resolve_agency_metrics(con, months, roster, registry)
        outcomes = {o.rule.name: o for o in validation.validate_months(con, months, today=date(2026, 1, 15),
                                                                        registry=registry)}
        flagged = con.execute(
            "SELECT f.path, v.sheet, v.row_number, v.severity FROM validation_results AS v "
            "JOIN source_files AS f USING (file_id) WHERE v.check_name = 'category_enabled'").fetchall()
    damaged = {(l.path, l.sheet, l.row) for name in (q.BLANK_VALUE, q.NON_NUMERIC_VALUE) for l in demo.quirks[name]}
    delivered = {(l.path, l.sheet, l.row) for l in demo.quirks[q.DISABLED_CATEGORY]} - damaged
    assert {(path, sheet, row) for path, sheet, row, _ in flagged} == delivered
    assert {severity for *_, severity in flagged} == {"WARNING"} and outcomes["category_enabled"].error is None

