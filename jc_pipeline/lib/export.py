"""Exports of the published warehouse for people who work in spreadsheets: CSV, Parquet and XLSX.

Only the tables and views in :data:`EXPORTABLE` can be exported; a name from the command line is checked against
that list and never pasted into SQL. Text that reached the warehouse from agencies' files (sheet names, raw
values, messages, agency names) could start with ``=``, ``+``, ``-`` or ``@`` and would then run as a formula in a
spreadsheet (CSV injection). CSV and XLSX exports therefore prefix such *text* cells with a single quote
(:func:`neutralize`); real numbers are written as numbers, so a negative value stays a number. Parquet is a typed
format that spreadsheets do not evaluate, so it keeps the data exactly.

:func:`write_xlsx_sheet` is shared with the agency feedback workbooks (:mod:`jc_pipeline.lib.feedback`).
"""

from __future__ import annotations

import math
import re
import weakref
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

#: Tables and views that may be exported, in the order they are written. The first is the default.
EXPORTABLE: tuple[str, ...] = (
    "state_metrics",
    "state_coverage",
    "state_metric_changes",
    "state_caseloads",
    "state_supervision_totals",
    "state_calendar_years",
    "state_expected_agencies",
    "state_metric_contributions",
    "agencies",
    "metric_definitions",
    "metric_categories",
    "source_files",
    "rejected_rows",
    "validation_results",
)
#: What ``jc-pipeline export`` writes when no ``--tables`` are given: the state numbers and their views.
DEFAULT_TABLES: tuple[str, ...] = EXPORTABLE[:6]
FORMATS: tuple[str, ...] = ("csv", "parquet", "xlsx")
#: Excel's hard row limit (including the header row).
XLSX_MAX_ROWS = 1_048_576
XLSX_WORKBOOK = "warehouse_export.xlsx"

# Characters that make a spreadsheet treat a cell as a formula (OWASP "CSV injection"): =, +, -, @, and tab /
# carriage return, which some spreadsheet programs strip before looking at the first character.
_FORMULA_START = re.compile(r"^[=+\-@\t\r]")
_LIST_SEPARATOR = "; "
_FORMATS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


class ExportError(ValueError):
    """The export cannot be written as asked (unknown table, too many rows for a worksheet)."""


def neutralize(text: str) -> str:
    """``text`` made inert for spreadsheets: a leading ``'`` when it starts like a formula, else unchanged."""
    return "'" + text if _FORMULA_START.match(text) else text


def export_tables(con: duckdb.DuckDBPyConnection, out_dir: Path, *, tables: Sequence[str] = DEFAULT_TABLES,
                  fmt: str = "csv") -> list[Path]:
    """Write each table of ``tables`` in format ``fmt`` under ``out_dir``; return the files written.

    CSV and Parquet give one file per table (``<table>.csv``); XLSX one workbook with a sheet per table.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    check_tables(tables)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = {table: read_table(con, table) for table in tables}
    if fmt == "parquet":
        paths = []
        for table, frame in frames.items():
            paths.append(out_dir / f"{table}.parquet")
            frame.write_parquet(paths[-1])
        return paths
    if fmt == "csv":
        paths = []
        for table, frame in frames.items():
            paths.append(out_dir / f"{table}.csv")
            spreadsheet_safe(frame).write_csv(paths[-1])
        return paths
    return [write_xlsx(out_dir / XLSX_WORKBOOK, frames)]


def check_tables(tables: Iterable[str]) -> None:
    """Raise :class:`ExportError` naming every table that is not exportable."""
    unknown = [t for t in tables if t not in EXPORTABLE]
    if unknown:
        raise ExportError(f"cannot export {', '.join(map(repr, unknown))}; choose from: {', '.join(EXPORTABLE)}")


def read_table(con: duckdb.DuckDBPyConnection, table: str) -> pl.DataFrame:
    """The whole table or view as a Polars frame, rows sorted on every column so that two exports of the same
    warehouse are identical files (views have no order of their own). Arrow path: ``.df()`` is slow under pandas 3.
    """
    check_tables([table])
    # Safe: ``table`` is one of the fixed names of EXPORTABLE (checked above), quoted as an identifier.
    return pl.from_arrow(con.sql(f'SELECT * FROM "{table}" ORDER BY ALL').to_arrow_table())


def spreadsheet_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """Lists joined to text, then every text column neutralized; numeric, date and boolean columns untouched."""
    columns = []
    for name, dtype in frame.schema.items():
        column = pl.col(name)
        if isinstance(dtype, pl.List):
            column = column.cast(pl.List(pl.String)).list.join(_LIST_SEPARATOR)
        elif dtype != pl.String:
            columns.append(column)
            continue
        columns.append(pl.when(column.str.contains(_FORMULA_START.pattern)).then(pl.lit("'") + column)
                       .otherwise(column).alias(name))
    return frame.select(columns)


def write_xlsx(path: Path, frames: dict[str, pl.DataFrame]) -> Path:
    """One workbook, one sheet per frame (sheet name = key), header row bold and frozen."""
    import xlsxwriter

    too_big = [f"{name} ({frame.height:,} rows)" for name, frame in frames.items() if frame.height >= XLSX_MAX_ROWS]
    if too_big:
        raise ExportError(f"too many rows for a worksheet: {', '.join(too_big)}; export these as csv or parquet")
    with xlsxwriter.Workbook(str(path), {"constant_memory": True}) as workbook:
        for name, frame in frames.items():
            write_xlsx_sheet(workbook, name[:31], frame.columns, frame.iter_rows())
    return path


def write_xlsx_sheet(workbook: Any, name: str, header: Sequence[str], rows: Iterable[Sequence[Any]],
                     *, widths: Sequence[int] | None = None) -> Any:
    """Add a worksheet holding ``header`` and ``rows``; return it.

    Every cell is written with the writer for its Python type, never with xlsxwriter's guessing ``write()``,
    which would turn text starting with ``=`` into a formula. Text is also passed through :func:`neutralize`, so
    callers may hand in raw warehouse text. Non-finite numbers become empty cells (Excel has no NaN).
    """
    sheet = workbook.add_worksheet(name)
    bold = _format(workbook, "bold", {"bold": True, "bg_color": "#F0F4F8", "border": 1})
    day = _format(workbook, "date", {"num_format": "yyyy-mm-dd"})
    stamp = _format(workbook, "datetime", {"num_format": "yyyy-mm-dd hh:mm"})
    for col, title in enumerate(header):
        sheet.write_string(0, col, title, bold)
        if widths:
            sheet.set_column(col, col, widths[col])
    sheet.freeze_panes(1, 0)
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            if value is None:
                continue
            if isinstance(value, bool):
                sheet.write_boolean(r, c, value)
            elif isinstance(value, int | float | Decimal):  # DECIMAL columns too: a number is never text
                if math.isfinite(value):
                    sheet.write_number(r, c, float(value))
            elif isinstance(value, datetime):
                sheet.write_datetime(r, c, value.replace(tzinfo=None), stamp)
            elif isinstance(value, date):
                sheet.write_datetime(r, c, datetime(value.year, value.month, value.day), day)
            elif isinstance(value, list | tuple):
                sheet.write_string(r, c, neutralize(_LIST_SEPARATOR.join(map(str, value))))
            else:
                sheet.write_string(r, c, neutralize(str(value)))
    return sheet


def _format(workbook: Any, key: str, properties: dict[str, Any]) -> Any:
    # Formats belong to one workbook; caching them per workbook avoids one format object per sheet.
    cache = _FORMATS.setdefault(workbook, {})
    if key not in cache:
        cache[key] = workbook.add_format(properties)
    return cache[key]
