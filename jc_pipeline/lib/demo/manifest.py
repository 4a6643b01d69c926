"""What a demo state contains: every file written and every planted quirk, for tests to assert against."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Quirk names (keys of DemoManifest.quirks), one per irregularity the pipeline must handle.
FISCAL_YEAR = "fiscal_year"  # annual rows of a July fiscal-year agency, labelled by the year the FY ends
FREQUENCY_OVERRIDE = "frequency_override"  # rows of a metric whose frequency metric_settings.csv switched
SUPERAGENCY = "superagency"  # rows a superagency uploads for a child (the `agency` column)
SUPERVISION_SYSTEM = "supervision_system"  # rows split into PAROLE / PROBATION by the `system` column
BREAKDOWN_WITHOUT_TOTAL = "breakdown_without_total"  # breakdown rows whose aggregate row is absent
MISMATCHED_TOTAL = "mismatched_total"  # aggregate differs from its breakdown sum by more than 1
BLANK_VALUE = "blank_value"  # empty value cell
NON_NUMERIC_VALUE = "non_numeric_value"  # "N/A", "--", "twelve"
CATEGORY_SPELLING = "category_spelling"  # a category label that is not the exact display value
MONTH_NAME = "month_name"  # month given as a name ("January", "JAN", "Febuary", "march ")
THOUSANDS_SEPARATOR = "thousands_separator"  # "1,250" as text in a CSV value cell
LATE_CORRECTION = "late_correction"  # a later file re-delivering old datapoints with new values
STOPPED_REPORTING = "stopped_reporting"  # last row of an agency that stopped delivering mid-2023
TEMPLATE_HINT_ROW = "template_hint_row"  # "[Person Offenses, Property Offenses, ...]" row with blank value
BLANK_ROW = "blank_row"  # a fully blank row inside a sheet
INVALID_SHEET_NAME = "invalid_sheet_name"  # a workbook sheet whose name is not a bulk-upload sheet name
DISABLED_CATEGORY = "disabled_category"  # a breakdown row for a category breakdown_settings.csv turns off

QUIRKS = (
    FISCAL_YEAR,
    FREQUENCY_OVERRIDE,
    SUPERAGENCY,
    SUPERVISION_SYSTEM,
    BREAKDOWN_WITHOUT_TOTAL,
    MISMATCHED_TOTAL,
    BLANK_VALUE,
    NON_NUMERIC_VALUE,
    CATEGORY_SPELLING,
    MONTH_NAME,
    THOUSANDS_SEPARATOR,
    LATE_CORRECTION,
    STOPPED_REPORTING,
    TEMPLATE_HINT_ROW,
    BLANK_ROW,
    INVALID_SHEET_NAME,
    DISABLED_CATEGORY,
)

# Layouts of spec §5.1.
MULTI_SHEET = "multi_sheet"  # one sheet per metric file (aggregate + breakdown sheets)
SINGLE_PAGE = "single_page"  # metric, year, month, breakdown_category, breakdown, value
METRIC_CSV = "metric_csv"  # one metric file per CSV, named after its sheet


@dataclass(frozen=True)
class QuirkLocation:
    """Where a quirk sits: ``row`` is the 1-based spreadsheet row (header = 1), as rejection messages count.

    ``agency_id`` is the agency the rows belong to (the child for superagency uploads); ``year``/``month`` the
    period label as written (``month`` None for annual rows); ``sheet`` is the file stem for CSV files.
    """

    path: str
    sheet: str | None
    row: int | None
    note: str
    agency_id: str | None = None
    metric_key: str | None = None
    year: int | None = None
    month: int | None = None


@dataclass(frozen=True)
class SheetRecord:
    """One sheet as written: ``data_rows`` counts every row below the header, blank and hint rows included."""

    name: str
    columns: tuple[str, ...]
    data_rows: int
    blank_rows: int


@dataclass(frozen=True)
class FileRecord:
    """One delivered file; ``path`` is relative to the data directory, with '/' separators."""

    path: str
    layout: str
    file_format: str  # xlsx | xls | csv
    agency_id: str  # the inbox folder's agency (the superagency for uploads on behalf of children)
    sector: str
    sheets: tuple[SheetRecord, ...]

    @property
    def data_rows(self) -> int:
        return sum(sheet.data_rows for sheet in self.sheets)


@dataclass
class DemoManifest:
    """Everything ``write_demo_state`` wrote."""

    data_dir: Path
    state_code: str
    years: tuple[int, ...]
    agency_ids: tuple[str, ...]
    files: list[FileRecord] = field(default_factory=list)
    quirks: dict[str, list[QuirkLocation]] = field(default_factory=lambda: {name: [] for name in QUIRKS})
    native: list[Path] = field(default_factory=list)  # mapping files and native exports (see demo.native)

    def add_quirk(self, name: str, location: QuirkLocation) -> None:
        self.quirks[name].append(location)
