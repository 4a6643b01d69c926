"""Turn observations into the files agencies deliver: which file each datapoint lands in, and its cells.

A delivery is an in-memory table model (files -> sheets -> rows of cells) so quirks can be planted on it
before anything is written. Rows carry "marks" (quirk name, note); writers turn them into QuirkLocations with
the final spreadsheet row numbers.

Organisation (spec §5.1): one upload per sector, in ``inbox/<uploader>/<SECTOR>/``; one file per calendar year
(or quarter) holding the monthly rows of that year and the annual rows whose period ends in it. A superagency
uploads its children's rows with an ``agency`` column; supervision rows for a subsystem carry a ``system``
column. One-metric CSV agencies keep one running file per sheet with their whole history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from jc_pipeline.lib.demo import manifest as q
from jc_pipeline.lib.demo.agencies import DemoAgency, DemoState
from jc_pipeline.lib.demo.values import Observation
from jc_pipeline.lib.registry import Breakdown, Member

MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
# How agencies write months: numbers, names (with the classic "Febuary"), upper-case abbreviations, or the
# lower-case names with a trailing space that a hand-typed sheet ends up with.
MONTH_STYLES = {
    "number": lambda month: month,
    "full": lambda month: "Febuary" if month == 2 else MONTH_NAMES[month - 1],
    "abbr": lambda month: MONTH_NAMES[month - 1][:3].upper(),
    "casual": lambda month: MONTH_NAMES[month - 1].lower() + " ",
}
_SEVERITY_SHORT = {"FELONY": "Felonies", "MISDEMEANOR": "Misdemeanors"}
_SEVERITY_CASUAL = {"FELONY": "Felony", "MISDEMEANOR": "Misdemenor"}
_SEX_SHORT = {"MALE": "Male", "FEMALE": "Female", "UNKNOWN": "Unknown"}


def category_label(style: str, identifier: str, member: Member) -> str:
    """The category as an agency with this label style writes it (``display`` = the exact display value)."""
    severity = member.name in _SEVERITY_SHORT  # FELONY / MISDEMEANOR only exist in case-severity dimensions
    if style == "short":
        if identifier == "metric/offense/type":
            return member.display.removesuffix(" Offenses")
        if identifier == "global/biological_sex":
            return _SEX_SHORT[member.name]
        if severity:
            return _SEVERITY_SHORT[member.name]
    elif style == "casual":
        if identifier == "metric/offense/type":
            return member.display.lower() + " "
        if identifier == "global/biological_sex":
            return _SEX_SHORT[member.name].lower()
        if severity:
            return _SEVERITY_CASUAL[member.name]
    elif style == "upper" and identifier in ("metric/offense/type", "global/biological_sex"):
        return member.name
    return member.display


@dataclass
class Row:
    """One spreadsheet row: ``cells`` align with the sheet's columns (None = empty cell)."""

    cells: list[object]
    agency_id: str | None = None
    metric_key: str | None = None
    year: int | None = None
    month: int | None = None
    member: str | None = None  # breakdown member NAME; None on aggregate rows
    marks: list[tuple[str, str]] = field(default_factory=list)

    def mark(self, quirk: str, note: str) -> None:
        self.marks.append((quirk, note))


@dataclass
class Sheet:
    name: str
    columns: list[str]
    rows: list[Row]
    breakdown: Breakdown | None = None  # what a standard breakdown sheet holds
    marks: list[tuple[str, str]] = field(default_factory=list)  # quirks of the whole sheet (row None)
    _marked: set[tuple[str, str]] = field(default_factory=set, repr=False)

    def mark_once(self, row: Row, quirk: str, note: str) -> None:
        """Mark ``row`` unless an earlier row of this sheet already carries the same mark."""
        if (quirk, note) not in self._marked:
            self._marked.add((quirk, note))
            row.mark(quirk, note)

    def set(self, row: Row, column: str, value: object) -> None:
        row.cells[self.columns.index(column)] = value

    def get(self, row: Row, column: str) -> object:
        return row.cells[self.columns.index(column)]


@dataclass
class Delivery:
    """One file to write; ``path`` is relative to the data directory."""

    path: str
    layout: str
    file_format: str
    agency_id: str
    sector: str
    sheets: list[Sheet]


@dataclass(frozen=True)
class _Item:
    """One value to place: an aggregate (breakdown None) or one breakdown member of an observation."""

    observation: Observation
    breakdown: Breakdown | None
    member: Member | None
    value: int

    @property
    def sheet(self) -> str:
        return self.breakdown.sheet if self.breakdown else self.observation.metric.sheet


class Planner:
    """Groups observations into deliveries and renders their cells in each uploader's style."""

    def __init__(self, state: DemoState, overrides: set[tuple[str, str]]):
        self.agencies = state.by_id
        self.overrides = overrides  # (agency_id, metric_key) whose frequency metric_settings switched
        self.children = {a.agency_id: i for i, a in enumerate(a for a in state.agencies if a.superagency_id)}

    def plan(self, observations: Iterable[Observation]) -> list[Delivery]:
        """All deliveries, in a deterministic order."""
        groups: dict[tuple[str, str, str], list[Observation]] = {}
        for observation in observations:
            uploader = self.uploader(observation.agency_id)
            if uploader.last_month and observation.last_month > date(*uploader.last_month, 1):
                continue  # the agency stopped reporting
            key = (uploader.agency_id, observation.metric.parent_sector, self._window(uploader, observation))
            groups.setdefault(key, []).append(observation)
        deliveries = []
        for (uploader_id, sector, window), group in groups.items():
            deliveries.extend(self._deliveries(self.agencies[uploader_id], sector, window, group))
        return deliveries

    def single_page(
        self, uploader: DemoAgency, sector: str, path: str, group: list[Observation], file_format: str
    ) -> Delivery:
        """A single-page delivery (also used for the late correction file)."""
        items = [item for observation in group for item in _items(observation)]
        monthly = any(item.observation.month is not None for item in items)
        columns = ["metric", "year"] + ["month"] * monthly + self._id_columns(uploader, items)
        columns += ["breakdown_category", "breakdown", "value"]
        sheet = Sheet("Sheet 1" if file_format != "csv" else _stem(path), columns, [])
        for item in items:
            cells = self._cells(uploader, item) | {
                "metric": item.observation.metric.sheet,
                "breakdown_category": item.breakdown.column if item.breakdown else None,
                "breakdown": self._label(uploader, item),
            }
            sheet.rows.append(self._row(sheet, item, cells, uploader))
        return Delivery(path, q.SINGLE_PAGE, file_format, uploader.agency_id, sector, [sheet])

    # --- grouping ------------------------------------------------------------------------------------------

    def uploader(self, agency_id: str) -> DemoAgency:
        """The agency whose inbox folder carries this agency's data (its superagency, if any)."""
        agency = self.agencies[agency_id]
        return self.agencies[agency.superagency_id] if agency.superagency_id else agency

    @staticmethod
    def _window(uploader: DemoAgency, observation: Observation) -> str:
        last = observation.last_month
        if uploader.layout == q.METRIC_CSV:
            return "all"
        if uploader.quarterly:
            return f"{last.year}_Q{(last.month - 1) // 3 + 1}"
        return str(last.year)

    def _deliveries(self, uploader: DemoAgency, sector: str, window: str, group: list[Observation]) -> list[Delivery]:
        folder = f"inbox/{uploader.agency_id}/{sector}"
        if uploader.layout == q.SINGLE_PAGE:
            name = f"bulk_upload_{window}.{uploader.file_format}"
            return [self.single_page(uploader, sector, f"{folder}/{name}", group, uploader.file_format)]
        sheets = self._standard_sheets(uploader, group)
        if uploader.layout == q.METRIC_CSV:
            return [
                Delivery(f"{folder}/{sheet.name}.csv", q.METRIC_CSV, "csv", uploader.agency_id, sector, [sheet])
                for sheet in sheets
            ]
        name = f"JC_{window}.xls" if uploader.file_format == "xls" else f"justice_counts_{window}.xlsx"
        return [Delivery(f"{folder}/{name}", q.MULTI_SHEET, uploader.file_format, uploader.agency_id, sector, sheets)]

    # --- rendering -----------------------------------------------------------------------------------------

    def _standard_sheets(self, uploader: DemoAgency, group: list[Observation]) -> list[Sheet]:
        """Aggregate and breakdown sheets (multi-sheet workbooks and one-metric CSVs)."""
        by_sheet: dict[str, list[_Item]] = {}
        for observation in group:
            for item in _items(observation):
                by_sheet.setdefault(item.sheet, []).append(item)
        sheets = []
        for name, items in by_sheet.items():
            breakdown = items[0].breakdown
            monthly = any(item.observation.month is not None for item in items)
            columns = ["year"] + ["month"] * monthly + self._id_columns(uploader, items)
            columns += ([breakdown.column] if breakdown else []) + ["value"]
            sheet = Sheet(name, columns, [], breakdown)
            for item in items:
                cells = self._cells(uploader, item)
                if breakdown is not None:
                    cells[breakdown.column] = self._label(uploader, item)
                sheet.rows.append(self._row(sheet, item, cells, uploader))
            sheets.append(sheet)
        return sheets

    def _id_columns(self, uploader: DemoAgency, items: list[_Item]) -> list[str]:
        columns = []
        if any(item.observation.agency_id != uploader.agency_id for item in items):
            columns.append("agency")
        if any(item.observation.system for item in items):
            columns.append("system")
        return columns

    def _cells(self, uploader: DemoAgency, item: _Item) -> dict[str, object]:
        observation = item.observation
        value: object = item.value
        if uploader.thousands_separators and observation.metric.unit == "USD":
            value = f"{item.value:,}"  # exported as formatted text: "1,250,000"
        return {
            "year": observation.year,
            "month": MONTH_STYLES[uploader.month_style](observation.month) if observation.month else None,
            "agency": self._child_label(observation),
            "system": observation.system,
            "value": value,
        }

    def _label(self, uploader: DemoAgency, item: _Item) -> str | None:
        if item.breakdown is None:
            return None
        return category_label(uploader.label_style, item.breakdown.dimension.identifier, item.member)

    def _child_label(self, observation: Observation) -> str | None:
        """How the superagency names the child: mostly its exact name, sometimes re-typed or by id."""
        child = self.agencies[observation.agency_id]
        if child.superagency_id is None:
            return None
        variant = (self.children[child.agency_id] + observation.year) % 4
        if variant == 1 and observation.year % 2 == 0:
            return child.agency_name.upper()
        if variant == 2:
            return child.agency_id
        if variant == 3 and observation.year % 3 == 0:
            return "  " + child.agency_name.replace(" ", "  ", 1).lower() + " "
        return child.agency_name

    def _row(self, sheet: Sheet, item: _Item, cells: dict[str, object], uploader: DemoAgency) -> Row:
        observation = item.observation
        row = Row(
            cells=[cells.get(column) for column in sheet.columns],
            agency_id=observation.agency_id,
            metric_key=observation.metric.key,
            year=observation.year,
            month=observation.month,
            member=item.member.name if item.member else None,
        )
        self._mark(sheet, row, cells, item, uploader)
        return row

    def _mark(self, sheet: Sheet, row: Row, cells: dict[str, object], item: _Item, uploader: DemoAgency) -> None:
        """Record the quirks this row shows — once per sheet and distinct spelling, so lists stay short."""
        observation = item.observation
        metric = observation.metric
        if observation.month is None and observation.start.month != 1:
            sheet.mark_once(
                row,
                q.FISCAL_YEAR,
                f"FY {observation.start:%b %Y}-{observation.last_month:%b %Y} labelled {observation.year}",
            )
        if (observation.agency_id, metric.key) in self.overrides:
            sheet.mark_once(
                row,
                q.FREQUENCY_OVERRIDE,
                f"{metric.key} reported {'MONTHLY' if observation.month else 'ANNUAL'} by metric_settings",
            )
        if observation.system:
            sheet.mark_once(row, q.SUPERVISION_SYSTEM, f"system {observation.system} -> {metric.key}")
        label = cells.get("agency")
        if label is not None:
            child = self.agencies[observation.agency_id]
            how = (
                "exact name"
                if label == child.agency_name
                else ("agency_id" if label == child.agency_id else "re-typed name")
            )
            sheet.mark_once(row, q.SUPERAGENCY, f"agency '{label}' ({how}) -> {child.agency_id}")
        month = cells.get("month")
        if isinstance(month, str):
            sheet.mark_once(row, q.MONTH_NAME, f"month '{month}' = {observation.month}")
        category = self._label(uploader, item)
        if category is not None and category != item.member.display:
            sheet.mark_once(row, q.CATEGORY_SPELLING, f"'{category}' for {item.member.name} ({item.member.display})")
        if isinstance(cells.get("value"), str):
            row.mark(q.THOUSANDS_SEPARATOR, f"value '{cells['value']}' = {item.value}")


def _items(observation: Observation) -> list[_Item]:
    items = [_Item(observation, None, None, observation.value)]
    for breakdown, allocation in observation.breakdowns:
        items.extend(_Item(observation, breakdown, member, value) for member, value in allocation)
    return items


def _stem(path: str) -> str:
    return path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
