"""Bulk-upload templates: the workbook an agency fills in and drops into its inbox (spec §5.2, §5.3, §5.7).

One workbook per inbox sector folder the agency uploads to (one upload = one system), holding one sheet per
enabled metric file: the aggregate sheet and one sheet per uploadable breakdown. Columns follow spec §5.2 and the
ingest's expectations (:mod:`jc_pipeline.lib.ingest.context`):

* ``year`` always; ``month`` when any reporting agency has the metric monthly, or for a metric split by subsystem
  any of its subsystems' keys (the ingest's rule, ``Roster.month_column_expected``; annual rows leave it empty);
* ``agency`` for a superagency uploading its children's data (not in its own SUPERAGENCY folder), one row group
  per child that reports the sector and has the metric enabled;
* ``system`` in a SUPERVISION workbook for metrics disaggregated by subsystem: one row group per subsystem the
  agency has (PAROLE, PROBATION, ...) with the subsystem metric enabled;
* the breakdown column on breakdown sheets, with the display value of every member the row group's agency has
  enabled for the metric (``breakdown_settings.csv`` turns members off, spec §4.4 / §5.7); a breakdown with every
  member turned off for every row group gets no sheet;
* ``value``, left empty for the agency.

Rows: the periods to fill, from January of last year up to the last period that has ended by ``today`` (a period
still running would be rejected). Annual rows carry the year the period *ends* in (spec §5.4): a July fiscal year
running July 2022 - June 2023 is ``year = 2023``. No hint rows: ingest would reject them (rule T1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from jc_pipeline.lib.periods import annual_period, months_between
from jc_pipeline.lib.registry import SUPERVISION_SUBSYSTEMS, SYSTEM_CODES, Breakdown, Metric, Registry, load_registry
from jc_pipeline.lib.roster import Agency, EffectiveSetting, Roster

SUPERVISION = "SUPERVISION"
SUPERAGENCY = "SUPERAGENCY"


@dataclass(frozen=True)
class TemplateSheet:
    """One sheet: its name, header and rows (``None`` = empty cell; the value column is always empty);
    ``year_starts`` the months in which the years of its annual rows start (a metric's sheet only)."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]
    year_starts: tuple[int, ...] = ()


@dataclass(frozen=True)
class TemplateWorkbook:
    """The template of one inbox folder: ``inbox/<agency_id>/<sector>/``."""

    agency_id: str
    sector: str
    sheets: tuple[TemplateSheet, ...]

    @property
    def file_name(self) -> str:
        return f"{self.sector.lower()}_template.xlsx"


@dataclass(frozen=True)
class _RowGroup:
    """Rows of one agency (and subsystem) for one metric, with the setting that decides its periods.

    ``agency_id`` and ``metric_key`` (the subsystem key for a subsystem group) decide its breakdown members.
    """

    agency: str | None
    system: str | None
    setting: EffectiveSetting
    agency_id: str
    metric_key: str


def plan_templates(roster: Roster, agency_id: str, *, today: date,
                   registry: Registry | None = None) -> list[TemplateWorkbook]:
    """The workbooks ``agency_id`` uploads (pure: nothing is written). ``KeyError`` for an unknown agency."""
    registry = registry or load_registry()
    agency = roster.agencies[agency_id]
    workbooks = []
    for sector, reporters, with_agency in _folders(roster, agency):
        sheets = []
        for metric in registry.metrics_for(sector):
            sheets.extend(_metric_sheets(roster, registry, metric, sector, reporters, with_agency, today))
        if sheets:
            workbooks.append(TemplateWorkbook(agency_id, sector, tuple(sheets)))
    return workbooks


def filling_notes(workbooks: Sequence[TemplateWorkbook]) -> list[str]:
    """What an agency must know to fill ``workbooks`` in: empty rows are rejected, and, per month other than
    January in which the years of annual rows start (the agency's fiscal year, a metric's own, a child's), the
    sheets whose 'year' is the year such a year ends in."""
    by_start: dict[int, list[str]] = {}
    for workbook in workbooks:
        for sheet in workbook.sheets:
            for month in sheet.year_starts:
                if month != 1:
                    by_start.setdefault(month, []).append(f"{workbook.sector.lower()}/{sheet.name}")
    notes = ["every row is a period to report: delete the rows and sheets you leave empty (an empty value is "
             "rejected, R7; a sheet without any value too, F5)"] if workbooks else []
    notes += [f"annual rows of {', '.join(sheets)}: 'year' is the year in which the year starting in month {month} "
              f"ends" for month, sheets in sorted(by_start.items())]
    return notes


def write_workbooks(workbooks: Sequence[TemplateWorkbook], out_dir: Path) -> list[Path]:
    """Write planned template workbooks (:func:`plan_templates`) into ``out_dir``; return their paths (one per
    sector folder)."""
    import xlsxwriter

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for workbook_plan in workbooks:
        path = out_dir / workbook_plan.file_name
        with xlsxwriter.Workbook(str(path)) as workbook:
            header = workbook.add_format({"bold": True, "bg_color": "#F0F4F8", "border": 1})
            for sheet_plan in workbook_plan.sheets:
                _write_sheet(workbook, sheet_plan, header)
        paths.append(path)
    return paths


# ---- planning -------------------------------------------------------------------------------------------------


def _folders(roster: Roster, agency: Agency) -> list[tuple[str, tuple[Agency, ...], bool]]:
    """(sector folder, agencies whose data it carries, agency column?) in system-code order.

    Mirrors the ingest's upload context: a superagency's folders carry its children's data (agency column),
    except its own SUPERAGENCY folder. Subsystems of an agency that also reports SUPERVISION travel in the
    SUPERVISION workbook (system column), so they get no folder of their own.
    """
    children = roster.children(agency.agency_id)
    folders = []
    for sector in SYSTEM_CODES:
        if sector == SUPERAGENCY or not children:
            reporters = (agency,) if sector in agency.sectors else ()
        else:
            reporters = tuple(child for child in children if sector in child.sectors)
        if sector in SUPERVISION_SUBSYSTEMS:
            reporters = tuple(r for r in reporters if SUPERVISION not in r.sectors)
        if reporters:
            folders.append((sector, reporters, bool(children) and sector != SUPERAGENCY))
    return folders


def _metric_sheets(roster: Roster, registry: Registry, metric: Metric, sector: str, reporters: Sequence[Agency],
                   with_agency: bool, today: date) -> list[TemplateSheet]:
    groups: list[_RowGroup] = []
    with_system = False
    for reporter in reporters:
        label = reporter.agency_name if with_agency else None
        for key in roster.sheet_keys(reporter.agency_id, metric.key):
            setting = roster.effective(reporter.agency_id, key)
            if key != metric.key:
                with_system = True
                system = registry.metrics[key].sector
            else:
                system = SUPERVISION if sector == SUPERVISION else None
            if setting.enabled:
                groups.append(_RowGroup(label, system, setting, reporter.agency_id, key))
    if not groups:
        return []
    with_month = roster.month_column_expected((r.agency_id for r in reporters), metric.key)
    keys = ["year"] + ["month"] * with_month + ["agency"] * with_agency + ["system"] * with_system
    periods = [(group, period) for group in groups for period in _periods(group.setting, today)]

    def rows(breakdown: Breakdown | None = None) -> tuple[tuple[object, ...], ...]:
        out = []
        for group, (year, month) in periods:
            cells: list[object] = [year]
            if with_month:
                cells.append(month)
            if with_agency:
                cells.append(group.agency)
            if with_system:
                cells.append(group.system)
            if breakdown is None:
                out.append((*cells, None))
                continue
            identifier = breakdown.dimension.identifier
            out.extend((*cells, member.display, None) for member in breakdown.dimension.members
                       if roster.category_enabled(group.agency_id, group.metric_key, identifier, member.name))
        return tuple(out)

    starts = tuple(sorted({g.setting.starting_month for g in groups if g.setting.frequency != "MONTHLY"}))
    sheets = [TemplateSheet(metric.sheet, (*keys, "value"), rows(), starts)]
    for breakdown in metric.breakdowns:
        if breakdown.sheet is None or breakdown.column is None:  # not bulk-uploadable (spec §9.14)
            continue
        breakdown_rows = rows(breakdown)
        if breakdown_rows:
            sheets.append(TemplateSheet(breakdown.sheet, (*keys, breakdown.column, "value"), breakdown_rows))
    return sheets


def _periods(setting: EffectiveSetting, today: date) -> list[tuple[int, int | None]]:
    """(year, month) to fill: months of last year and this year that have ended; annual periods labelled by
    the year they end in (last and this year) that have ended."""
    if setting.frequency == "MONTHLY":
        first = date(today.year - 1, 1, 1)
        return [(m.year, m.month) for m in months_between(first, date(today.year, today.month, 1))]
    periods = []
    for year in (today.year - 1, today.year):
        _, end = annual_period(year, setting.starting_month)
        if end <= today:
            periods.append((year, None))
    return periods


# ---- writing --------------------------------------------------------------------------------------------------


_VALUE_PROMPT = "Delete the rows you cannot fill: an empty value is rejected."


def _write_sheet(workbook, plan: TemplateSheet, header_format) -> None:
    sheet = workbook.add_worksheet(plan.name)
    for col, title in enumerate(plan.columns):
        sheet.write_string(0, col, title, header_format)
        sheet.set_column(col, col, 44 if title not in ("year", "month", "value", "system") else 12)
    for r, row in enumerate(plan.rows, start=1):
        for c, cell in enumerate(row):
            if isinstance(cell, int):
                sheet.write_number(r, c, cell)
            elif cell is not None:
                sheet.write_string(r, c, cell)  # names and categories are text, never formulas
    value_col = len(plan.columns) - 1
    if plan.rows:
        # Excel refuses negative or non-numeric values while typing; the ingest checks them again anyway. The
        # prompts are the filling notes an agency needs in the workbook itself (the command line prints them to
        # the state team only).
        sheet.data_validation(1, value_col, len(plan.rows), value_col, {
            "validate": "decimal", "criteria": ">=", "value": 0,
            "input_title": "Value", "input_message": _VALUE_PROMPT,
            "error_title": "Value", "error_message": "Enter a number of zero or more. " + _VALUE_PROMPT,
        })
        fiscal = [month for month in plan.year_starts if month != 1]
        if fiscal:
            year_col = plan.columns.index("year")
            starts = " or ".join(date(2000, month, 1).strftime("%B") for month in fiscal)
            sheet.data_validation(1, year_col, len(plan.rows), year_col, {
                "validate": "any", "input_title": "Year",
                "input_message": f"The year in which the reporting year ends (years here start in {starts}).",
            })
    sheet.freeze_panes(1, 0)
