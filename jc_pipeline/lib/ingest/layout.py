"""Sheet layout: header normalization, layout detection and the expected-column checks (spec §5.1-§5.3, §6.1).

A sheet becomes a :class:`SheetPlan`: which column plays which role, the sheet-level errors that reject every
data row of it (F2-F7), and the sheet-level warnings written once on its header row (F4m, F5m, F6m).

Decisions beyond the reference implementation:

* A sheet without data rows is ignored entirely (an empty helper sheet is not an error).
* A column whose header is present but which holds no data at all is ignored when it is not expected (no F6
  for an empty "notes" column); an expected column that is entirely empty is F5 (F5m for month).
* Two headers that normalize to the same name are F7 (which one holds the data would be a guess).
* Single-page sheets take ``month`` as optional: rows without a month are annual, rows with one are monthly
  (per-row M1/M2 warnings instead of the sheet-level F4m/F6m).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jc_pipeline.lib.export import column_letter
from jc_pipeline.lib.registry import SheetTarget, normalize_sheet_name

if TYPE_CHECKING:
    from jc_pipeline.lib.ingest.context import UploadContext

YEAR, MONTH, VALUE, AGENCY, SYSTEM = "year", "month", "value", "agency", "system"
METRIC, BREAKDOWN_CATEGORY, BREAKDOWN = "metric", "breakdown_category", "breakdown"
#: Role of a standard breakdown sheet's category column (its header differs per breakdown).
CATEGORY = "category"
#: Every role a row cell can play; the normalized row frame has one column per role.
ROLES = (YEAR, MONTH, VALUE, AGENCY, SYSTEM, METRIC, BREAKDOWN_CATEGORY, CATEGORY)
#: Why a value cell an agency sees filled can read as empty (calamine reads a cell's saved result, not its formula).
FORMULAS_READ_EMPTY = ("an Excel error such as #N/A or #DIV/0!, or a formula saved without its result by a program "
                       "other than a spreadsheet, reads as empty: open the file in Excel and save it again")
SINGLE_PAGE_MARKERS = (METRIC, BREAKDOWN_CATEGORY, BREAKDOWN)
#: The reference truncates CSV file names to Excel's sheet-name limit before matching (spec §5.1).
CSV_NAME_CHARS = 31

_SPACES = re.compile(r"\s+")


def normalize_header(cell: str | None) -> str | None:
    """Trim, lower-case, whitespace runs to ``_`` (spec §5.1); blank -> None. Double quotes around the name are
    dropped: a CSV header written ``"year", "month"`` (a space after each comma) keeps them, for the CSV readers
    take a quote after a space as text."""
    if cell is None:
        return None
    text = _SPACES.sub("_", cell.strip().removeprefix('"').removesuffix('"').strip().lower())
    return text or None


@dataclass(frozen=True)
class SheetFinding:
    """A sheet-level finding; for errors it is repeated on every data row of the sheet, with the row's cell of the
    ``extra``-th of the plan's extra columns as its value when the finding is about that column."""

    rule: str
    column: str | None
    raw_value: str | None
    message: str
    extra: int | None = None


@dataclass
class SheetPlan:
    """How the rows of one sheet are read (see the module docstring)."""

    name: str
    layout: str  # "standard" or "single"
    target: SheetTarget | None = None
    roles: dict[str, int] = field(default_factory=dict)
    written: dict[str, str] = field(default_factory=dict)
    extra_columns: list[int] = field(default_factory=list)
    errors: list[SheetFinding] = field(default_factory=list)
    warnings: list[SheetFinding] = field(default_factory=list)
    use_month: bool = False
    month_expected: bool = False


def plan_sheet(name: str, header: tuple[str | None, ...], has_data: tuple[bool, ...], upload: UploadContext, *,
               is_csv: bool) -> SheetPlan:
    """Work out layout, roles and sheet-level findings of one sheet of an upload.

    A pure function of its arguments (callers cache plans: thousands of files share a few headers).
    """
    headers = _Headers([normalize_header(cell) for cell in header],
                       [cell.strip() if cell else None for cell in header])
    named = [i for i, h in enumerate(headers) if h is not None]
    if upload.location_error is not None:
        plan = SheetPlan(name, "standard", extra_columns=named, errors=[upload.location_error])
    elif any(headers[i] in SINGLE_PAGE_MARKERS for i in named):
        plan = _plan_single_page(name, headers, named, list(has_data), upload)
    else:
        plan = _plan_standard(name, headers, named, list(has_data), upload, is_csv)
    # A header naming no column of the sheet is most often a title above the real one (F4 says so): F6 and F9 would
    # tell the agency to delete its data columns, and the sheet's rows are refused whatever they say (helper-60).
    if plan.roles:
        _check_unnamed(plan, headers, has_data, is_csv)
    return plan


class _Headers(list):
    """Normalized header names (the list) plus the headers as written (``raw``, for findings)."""

    def __init__(self, normalized: list[str | None], raw: list[str | None]) -> None:
        super().__init__(normalized)
        self.raw = raw


def sheet_key(name: str, is_csv: bool) -> str:
    """The normalized sheet name a sheet (or CSV file name) is looked up by (spec §5.1)."""
    return normalize_sheet_name(name.rsplit(".", 1)[0][:CSV_NAME_CHARS] if is_csv else name)


def _plan_standard(name: str, headers: _Headers, named: list[int], has_data: list[bool],
                   upload: UploadContext, is_csv: bool) -> SheetPlan:
    target = upload.targets.get(sheet_key(name, is_csv))
    plan = SheetPlan(name, "standard", target=target)
    if target is None:
        rule, what = ("F3", "CSV file name") if is_csv else ("F2", "sheet name")
        valid = ", ".join(upload.canonical_sheets)
        plan.errors.append(SheetFinding(rule, None, name, (
            f"'{name}' is not a valid {what} for {upload.sector}; use one of: {valid}")))
        plan.extra_columns = named
        return plan
    metric, breakdown = target.metric, target.breakdown
    expected = {YEAR: (YEAR,), VALUE: (VALUE,)}
    if breakdown is not None:
        expected[CATEGORY] = (breakdown.column, *breakdown.legacy_columns)
    if upload.agency_expected:
        expected[AGENCY] = (AGENCY,)
    if upload.system_expected(metric):
        expected[SYSTEM] = (SYSTEM,)
    plan.month_expected = upload.month_expected(metric)
    _assign_roles(plan, headers, named, has_data, {**expected, MONTH: (MONTH,)})
    for role, names in expected.items():
        _check_required(plan, role, names[0], has_data, headers)
    _check_month(plan, has_data, metric.sheet)
    if plan.roles:  # see plan_sheet
        _check_unexpected(plan, headers, has_data, _expected_list(expected, plan.month_expected))
    return plan


def _plan_single_page(name: str, headers: _Headers, named: list[int], has_data: list[bool],
                      upload: UploadContext) -> SheetPlan:
    plan = SheetPlan(name, "single")
    expected = {METRIC: (METRIC,), YEAR: (YEAR,), VALUE: (VALUE,),
                BREAKDOWN_CATEGORY: (BREAKDOWN_CATEGORY,), CATEGORY: (BREAKDOWN,)}
    if upload.agency_expected:
        expected[AGENCY] = (AGENCY,)
    if upload.system_expected(None):
        expected[SYSTEM] = (SYSTEM,)
    _assign_roles(plan, headers, named, has_data, {**expected, MONTH: (MONTH,)})
    for role, names in expected.items():
        if role in (BREAKDOWN_CATEGORY, CATEGORY):
            continue  # both breakdown columns are optional together; checked just below
        _check_required(plan, role, names[0], has_data, headers)
    if (BREAKDOWN_CATEGORY in plan.roles) != (CATEGORY in plan.roles):
        missing = BREAKDOWN if BREAKDOWN_CATEGORY in plan.roles else BREAKDOWN_CATEGORY
        plan.errors.append(SheetFinding("F4", missing, None, (
            f"Missing '{missing}' column: single-page sheets need both 'breakdown_category' and 'breakdown' "
            f"(or neither, when every row is a total); add the column to the header row")))
    plan.use_month = MONTH in plan.roles and has_data[plan.roles[MONTH]]
    _check_unexpected(plan, headers, has_data, _expected_list(expected, True))
    return plan


def _assign_roles(plan: SheetPlan, headers: _Headers, named: list[int], has_data: list[bool],
                  accepted: dict[str, tuple[str, ...]]) -> None:
    by_name = {name: role for role, names in accepted.items() for name in names}
    for index in named:
        role = by_name.get(headers[index])
        if role is None:
            plan.extra_columns.append(index)
        elif role in plan.roles:
            first = plan.written[role]
            plan.errors.append(SheetFinding("F7", headers.raw[index], None, (
                f"Columns '{first}' and '{headers.raw[index]}' both hold '{accepted[role][0]}'; keep one and "
                f"delete the other")))
            plan.extra_columns.append(index)
        else:
            plan.roles[role] = index
            plan.written[role] = headers.raw[index]


def _check_required(plan: SheetPlan, role: str, column: str, has_data: list[bool], headers: _Headers) -> None:
    if role not in plan.roles:
        plan.errors.append(SheetFinding("F4", column, None, (
            f"Missing '{column}' column: add a '{column}' column to the header row and fill it in on every row"
            + _title_hint(plan, headers))))
    elif not has_data[plan.roles[role]]:
        plan.errors.append(SheetFinding("F5", plan.written[role], None, (
            f"Empty '{plan.written[role]}' column: fill it in on every row, or delete the rows you have no "
            f"data for" + (f" ({FORMULAS_READ_EMPTY})" if role == VALUE else ""))))


def _title_hint(plan: SheetPlan, headers: _Headers) -> str:
    """A header row naming none of the sheet's columns is most often a title above the real one: say which row
    was read as the header."""
    if plan.roles:
        return ""
    first = next((cell for cell in headers.raw if cell), "")
    return (f"; the header row is the sheet's first row that is not empty, here the one starting '{first[:80]}', "
            f"which names none of the sheet's columns: if your column names are on a later row, delete the rows "
            f"above them")


def _check_month(plan: SheetPlan, has_data: list[bool], sheet: str) -> None:
    present = MONTH in plan.roles
    filled = present and has_data[plan.roles[MONTH]]
    if plan.month_expected and not present:
        plan.warnings.append(SheetFinding("F4m", MONTH, None, (
            f"Missing 'month' column: {sheet} is reported monthly, so the rows were stored as annual values, "
            f"which the state numbers leave out while it is set to monthly; add a month column if the data is "
            f"monthly, or set the metric to annual in metric_settings.csv")))
    elif plan.month_expected and not filled:
        plan.warnings.append(SheetFinding("F5m", plan.written[MONTH], None, (
            f"Empty 'month' column: {sheet} is reported monthly, so the rows were stored as annual values, "
            f"which the state numbers leave out while it is set to monthly; fill in the months if the data is "
            f"monthly, or set the metric to annual in metric_settings.csv")))
    elif not plan.month_expected and filled:
        plan.warnings.append(SheetFinding("F6m", plan.written[MONTH], None, (
            f"Unexpected 'month' column: {sheet} is reported annually, so rows with a month were stored as "
            f"monthly values, which the state numbers leave out while it is set to annual; delete the column if "
            f"the data is annual, or set the metric to monthly in metric_settings.csv")))
    plan.use_month = filled


def _check_unexpected(plan: SheetPlan, headers: _Headers, has_data: list[bool], expected: str) -> None:
    for position, index in enumerate(plan.extra_columns):
        if has_data[index] and not any(f.rule == "F7" and f.column == headers.raw[index] for f in plan.errors):
            plan.errors.append(SheetFinding("F6", headers.raw[index], None, (
                f"Unexpected '{headers.raw[index]}' column on sheet '{plan.name}': the columns here are {expected}; "
                f"delete the column or move its data to the sheet where it belongs"), extra=position))


def _check_unnamed(plan: SheetPlan, headers: _Headers, has_data: tuple[bool, ...], is_csv: bool) -> None:
    """Columns without a header are not read (spec §5.1); a warning names those holding data, so that their cells,
    and a row whose only data is there, are not dropped without a word. A CSV's columns have numbers, a sheet's
    letters."""
    for index, header in enumerate(headers):
        if header is None and has_data[index]:
            column, where = (index + 1, f"file '{plan.name}'") if is_csv else (column_letter(index),
                                                                                 f"sheet '{plan.name}'")
            plan.warnings.append(SheetFinding("F9", f"column {column} (no header)", None, (
                f"Column {column} of {where} has data but no header, so it was not read: give it its header if "
                f"its data belongs in the upload, or delete it")))


def _expected_list(expected: dict[str, tuple[str, ...]], month: bool) -> str:
    names = [names[0] for names in expected.values()] + ([MONTH] if month else [])
    return ", ".join(names)
