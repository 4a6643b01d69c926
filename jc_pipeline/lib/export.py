"""Exports of the published warehouse for people who work in spreadsheets: CSV, Parquet and XLSX.

Only the tables and views in :data:`EXPORTABLE` can be exported; a name from the command line is checked against
that list and never pasted into SQL. Text that reached the warehouse from agencies' files (sheet names, raw
values, messages, agency names) could start with ``=``, ``+``, ``-`` or ``@`` and would then run as a formula in a
spreadsheet (CSV injection), also after leading blanks, or after a separator a spreadsheet may split the cell on
(``,``, ``;``, tab, line end: OWASP's note on field separators). CSV exports therefore put a single quote before each
such start of a *text* cell (:func:`neutralize`). XLSX text cells are typed strings, which Excel never evaluates;
those that look like formulas also get Excel's quote-prefix style, so they stay text when edited, and their text is
kept exactly. Real numbers are written as numbers, so a negative value stays a number. Parquet is a typed format that
spreadsheets do not evaluate, so it keeps the data exactly.

:class:`XlsxWorkbook` is shared with the agency feedback workbooks (:mod:`jc_pipeline.lib.feedback`).
"""

from __future__ import annotations

import math
import re
import struct
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import pyarrow as pa

#: Tables and views that may be exported, in the order they are written: the state numbers and their views (the
#: default, :data:`DEFAULT_TABLES`), who is expected and what was summed, the roster and the metric reference, then
#: the agencies' datapoints and where each file went.
EXPORTABLE: tuple[str, ...] = (
    "state_metrics",
    "state_coverage",
    "state_metric_changes",
    "state_caseloads",
    "state_supervision_totals",
    "state_calendar_years",
    "state_expected_agencies",
    "state_metric_contributions",
    "state_metric_inputs",
    "agencies",
    "agency_metric_settings",
    "agency_breakdown_settings",
    "metric_definitions",
    "metric_categories",
    "agency_metrics",
    "source_files",
    "current_source_files",
    "rejected_rows",
    "validation_results",
)
#: What ``jc-pipeline export`` writes when no ``--tables`` are given: the state numbers and their views.
DEFAULT_TABLES: tuple[str, ...] = EXPORTABLE[:6]
FORMATS: tuple[str, ...] = ("csv", "parquet", "xlsx")
#: Excel's hard row limit (including the header row).
XLSX_MAX_ROWS = 1_048_576
XLSX_WORKBOOK = "warehouse_export.xlsx"

# Where a spreadsheet could start a formula (OWASP "CSV injection"): =, +, -, @ at the text's start or after a
# separator it may split the cell on (",", ";", tab, line ends), blanks before it allowed (some programs strip them).
# neutralize puts its quote right before the character (group 3); RE2 (DuckDB) and Python read the pattern alike.
_FORMULA_START = "(^|[,;\t\r\n])([ \t\r\n]*)([=+@-])"
_FORMULA = re.compile(_FORMULA_START)
_LIST_SEPARATOR = "; "
# Rows turned into Python values at a time for the XLSX writer: never a whole worksheet of Python objects.
_XLSX_BATCH_ROWS = 65_536


class ExportError(ValueError):
    """The export cannot be written as asked (unknown table, too many rows for a worksheet)."""


def neutralize(text: str) -> str:
    """``text`` made inert for a CSV file: a ``'`` before every character that could start a formula (at the
    text's start or after a separator, blanks between allowed), else unchanged."""
    return _FORMULA.sub(r"\1\2'\3", text)


def export_tables(con: duckdb.DuckDBPyConnection, out_dir: Path, *, tables: Sequence[str] = DEFAULT_TABLES,
                  fmt: str = "csv") -> list[Path]:
    """Write each table of ``tables`` in format ``fmt`` under ``out_dir``; return the files written.

    CSV and Parquet give one file per table (``<table>.csv``), written by DuckDB, so a table of millions of rows
    (``agency_metrics``) is never loaded into Python; XLSX one workbook with a sheet per table. Each file is written
    under a temporary name and renamed when complete: an export that fails leaves the earlier one intact.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    check_tables(tables)
    tables = tuple(dict.fromkeys(tables))  # a name given twice: one file, one sheet (Excel refuses two of a name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if fmt == "xlsx":
        return [write_xlsx(out_dir / XLSX_WORKBOOK, con, tables)]
    paths = []
    for table in tables:
        path = out_dir / f"{table}.{fmt}"
        if fmt == "parquet":  # typed, and spreadsheets do not evaluate it: the data exactly
            sorted_rows(con, table).write_parquet(str(path), compression="zstd", use_tmp_file=True)
        else:
            sorted_rows(con, table, for_spreadsheets=True).write_csv(str(path), header=True, use_tmp_file=True)
        paths.append(path)
    return paths


def check_tables(tables: Iterable[str]) -> None:
    """Raise :class:`ExportError` naming every table that is not exportable."""
    unknown = [t for t in tables if t not in EXPORTABLE]
    if unknown:
        raise ExportError(f"cannot export {', '.join(map(repr, unknown))}; choose from: {', '.join(EXPORTABLE)}")


def sorted_rows(con: duckdb.DuckDBPyConnection, table: str, *, for_spreadsheets: bool = False
                ) -> duckdb.DuckDBPyRelation:
    """The whole table or view, rows sorted on every column so that two exports of the same warehouse are identical
    files (views have no order of their own). Lazy: nothing is read until it is written.

    ``for_spreadsheets``: lists joined into text, then every text cell neutralized (as :func:`neutralize` does);
    numeric, date and boolean columns untouched. Done before the sort: DuckDB's CSV writer does not keep the order
    of a sort under a projection (measured: rows out of order from ~200,000 rows on)."""
    check_tables([table])
    rows = con.table(table)  # a name, never SQL text; and one of EXPORTABLE's (checked above)
    if for_spreadsheets:
        rows = rows.select(*(_spreadsheet_column(name, kind.id)
                             for name, kind in zip(rows.columns, rows.types, strict=True)))
    return rows.order("ALL")


def _spreadsheet_column(name: str, kind: str) -> duckdb.Expression:
    column = duckdb.ColumnExpression(name)
    if kind == "list":
        column = duckdb.FunctionExpression("array_to_string", column, duckdb.ConstantExpression(_LIST_SEPARATOR))
    elif kind != "varchar":
        return column
    return duckdb.FunctionExpression("regexp_replace", column, *map(duckdb.ConstantExpression, (
        _FORMULA_START, "\\1\\2'\\3", "g"))).alias(name)


def write_xlsx(path: Path, con: duckdb.DuckDBPyConnection, tables: Sequence[str]) -> Path:
    """One workbook, one sheet per table (its name cut to Excel's 31 characters), header row bold and frozen.

    A table with more rows than a worksheet holds is refused with the way out, and the workbook is not written.
    Each table is read once, and at most one row past a worksheet's: counting first would compute a view twice."""
    partial = path.with_name(path.name + ".tmp")
    try:
        with XlsxWorkbook(partial) as workbook:
            for table in tables:
                rows = sorted_rows(con, table).limit(XLSX_MAX_ROWS).to_arrow_table()
                if rows.num_rows >= XLSX_MAX_ROWS:
                    raise ExportError(f"too many rows for a worksheet: {table} has more than "
                                      f"{XLSX_MAX_ROWS - 1:,} rows; export it as csv or parquet")
                workbook.add_sheet(table[:31], rows.column_names, _python_rows(rows))
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    return path


def _python_rows(rows: pa.Table) -> Iterator[tuple[Any, ...]]:
    """The rows as tuples of Python values, converted a batch at a time."""
    for batch in rows.to_batches(_XLSX_BATCH_ROWS):
        yield from zip(*(column.to_pylist() for column in batch.columns), strict=True)


class XlsxWorkbook:
    """A minimal streaming XLSX writer: typed cells, inline strings, a bold frozen header row, column widths and
    an optional autofilter; sheets are written one after the other, row by row, deflated as they come (each
    sheet is held deflated, a tenth of its XML, until it ends, then written to the file: :class:`_Zip`).

    Written directly rather than through xlsxwriter, which spends ~10-20 us of Python per cell and ~10 ms per
    workbook: the agency feedback writes a workbook per agency on every run (docs/decisions.md). The parts are
    those xlsxwriter writes in its ``constant_memory`` mode, minus the optional ones (theme, document
    properties). Every cell is written by its Python type, never guessed: text is always a string cell, its text
    kept exactly and escaped for XML (control characters as Excel's ``_xHHHH_``); one that looks like a formula
    gets the quote-prefix style, so it stays text when edited. Numbers are number cells, non-finite ones empty
    (Excel has no NaN). Zip entries carry a fixed time, so the same content gives the same bytes.
    """

    def __init__(self, target: Path | BinaryIO) -> None:
        """Write the workbook to the file ``target`` or into the binary file object ``target`` (left open)."""
        self._zip = _Zip(target)
        self._sheets: list[tuple[str, int, int]] = []  # name, rows written (with the header), filtered columns

    def __enter__(self) -> XlsxWorkbook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_sheet(self, name: str, header: Sequence[str], rows: Iterable[Sequence[Any]], *,
                  widths: Sequence[int] | None = None, autofilter: bool = False) -> int:
        """Write a worksheet holding ``header`` and ``rows`` (``autofilter``: a filter on every header cell);
        return the number of data rows."""
        letters = _column_letters(len(header))
        part = f"xl/worksheets/sheet{len(self._sheets) + 1}.xml"
        count = 0
        with self._zip.part(part) as out:
            out.write(_sheet_start(tuple(header), tuple(widths or ())))
            for count, row in enumerate(rows, start=1):
                r = count + 1
                out.write(f'<row r="{r}">'
                          + "".join(_cell(f"{x}{r}", v) for x, v in zip(letters, row) if v is not None)
                          + "</row>")
            out.write("</sheetData>")
            if autofilter and letters:
                out.write(f'<autoFilter ref="A1:{letters[-1]}{count + 1}"/>')
            out.write("</worksheet>")
        self._sheets.append((name, count + 1, len(letters) if autofilter else 0))
        return count

    def close(self) -> None:
        """Write the workbook parts that list the sheets and close the file."""
        if self._zip.closed:
            return
        n = len(self._sheets)
        sheets = "".join(f'<sheet name="{_attribute(name)}" sheetId="{i}" r:id="rId{i}"/>'
                         for i, (name, _, _) in enumerate(self._sheets, start=1))
        filters = "".join(
            f'<definedName name="_xlnm._FilterDatabase" localSheetId="{i}" hidden="1">'
            f"{_attribute(_quote_sheet(name))}!$A$1:${column_letter(width - 1)}${rows}</definedName>"
            for i, (name, rows, width) in enumerate(self._sheets) if width)
        parts = {
            "[Content_Types].xml": (
                f'{_XML}<Types xmlns="{_PKG_NS}/content-types">'
                f'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                '<Default Extension="xml" ContentType="application/xml"/>'
                f'<Override PartName="/xl/workbook.xml" ContentType="{_TYPE}.sheet.main+xml"/>'
                f'<Override PartName="/xl/styles.xml" ContentType="{_TYPE}.styles+xml"/>'
                + "".join(f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{_TYPE}.worksheet+xml"/>'
                          for i in range(1, n + 1))
                + "</Types>"),
            "_rels/.rels": (f'{_XML}<Relationships xmlns="{_PKG_NS}/relationships"><Relationship Id="rId1" '
                            f'Type="{_REL_NS}/officeDocument" Target="xl/workbook.xml"/></Relationships>'),
            "xl/workbook.xml": (f'{_XML}<workbook xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}"><bookViews><workbookView/>'
                                f"</bookViews><sheets>{sheets}</sheets>"
                                + (f"<definedNames>{filters}</definedNames>" if filters else "") + "</workbook>"),
            "xl/_rels/workbook.xml.rels": (
                f'{_XML}<Relationships xmlns="{_PKG_NS}/relationships">'
                + "".join(f'<Relationship Id="rId{i}" Type="{_REL_NS}/worksheet" Target="worksheets/sheet{i}.xml"/>'
                          for i in range(1, n + 1))
                + f'<Relationship Id="rId{n + 1}" Type="{_REL_NS}/styles" Target="styles.xml"/></Relationships>'),
            "xl/styles.xml": _STYLES,
        }
        for part, text in parts.items():
            self._zip.add(part, *_deflated(text))
        self._zip.close()


# The feedback writes the same three sheet headers into every agency's workbook.
@lru_cache(maxsize=64)
def _sheet_start(header: tuple[str, ...], widths: tuple[int, ...]) -> str:
    """A worksheet's XML up to its first data row: frozen header row, column widths, the header cells."""
    cols = "".join(f'<col min="{c}" max="{c}" width="{w + 0.7109375}" customWidth="1"/>'
                   for c, w in enumerate(widths, start=1))
    return (f'{_XML}<worksheet xmlns="{_MAIN_NS}"><sheetViews><sheetView workbookViewId="0">'
            '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
            '<selection pane="bottomLeft"/></sheetView></sheetViews><sheetFormatPr defaultRowHeight="15"/>'
            + (f"<cols>{cols}</cols>" if cols else "") + '<sheetData><row r="1">'
            + "".join(f'<c r="{x}1" s="{_HEADER}" t="inlineStr"><is>{_text(str(t))}</is></c>'
                      for x, t in zip(_column_letters(len(header)), header))
            + "</row>")


@lru_cache(maxsize=64)
def _column_letters(count: int) -> tuple[str, ...]:
    """The letters of the first ``count`` columns."""
    return tuple(column_letter(c) for c in range(count))


def _cell(ref: str, value: Any) -> str:
    """One cell by the Python type of ``value`` (not None)."""
    if isinstance(value, str):
        body = _inline_string_cached(value) if len(value) <= _CACHED_CHARS else _inline_string(value)
        return f'<c r="{ref}"{body}</c>'
    if isinstance(value, bool):
        return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int | float | Decimal):  # DECIMAL columns too: a number is never text
        return f'<c r="{ref}"><v>{float(value):.16G}</v></c>' if math.isfinite(value) else ""
    if isinstance(value, datetime):
        return f'<c r="{ref}" s="{_DATETIME}"><v>{_serial(value.replace(tzinfo=None)):.16G}</v></c>'
    if isinstance(value, date):
        return f'<c r="{ref}" s="{_DATE}"><v>{_serial(datetime(value.year, value.month, value.day)):.16G}</v></c>'
    if isinstance(value, list | tuple):
        return _cell(ref, _LIST_SEPARATOR.join(map(str, value)))
    return _cell(ref, str(value))


def _inline_string(text: str) -> str:
    """A text cell after its reference: type, the quote-prefix style if it looks like a formula, the text as XML."""
    style = f' s="{_QUOTE_PREFIX}"' if _FORMULA.search(text) else ""
    return f'{style} t="inlineStr"><is>{_text(text)}</is>'


# Feedback workbooks repeat the same texts in row after row and agency after agency (rule titles, what to do,
# metric names, file paths): at 3,000 agencies 489,000 text cells hold 38,700 distinct texts. Only texts up to
# _CACHED_CHARS are kept, so the cache stays small whatever an agency's file holds.
_inline_string_cached = lru_cache(maxsize=16_384)(_inline_string)


def _text(text: str) -> str:
    """``<t>`` of an inline string: cut to Excel's 32,767 characters, control characters as ``_xHHHH_`` (and a
    literal ``_xHHHH_`` kept literal), XML-escaped, surrounding spaces preserved."""
    text = text[:_MAX_CHARS]
    if "_x" in text or _CONTROL.search(text):
        text = _CONTROL.sub(lambda m: f"_x{ord(m.group()):04X}_", _ESCAPE_LIKE.sub(r"_x005F\1", text))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if text[:1].isspace() or text[-1:].isspace():
        return f'<t xml:space="preserve">{text}</t>'
    return f"<t>{text}</t>"


def _attribute(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _quote_sheet(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


def _serial(moment: datetime) -> float:
    """Excel's day number (1900 date system; the days before 1900-03-01 are one off, as in Excel itself)."""
    delta = moment - _EPOCH
    days = delta.days + delta.seconds / 86400 + delta.microseconds / 86_400_000_000
    return days - 1 if moment < _LEAP_BUG else days


def column_letter(index: int) -> str:
    """A spreadsheet column's letters from its 0-based index (0 -> A, 26 -> AA)."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


class _Zip:
    """The zip container of a workbook: deflated parts written one after the other, then their directory.

    Written here rather than through :mod:`zipfile`, whose per-part set-up (an entry object, a deflate stream,
    the header written, then sought back to and written again) was a third of a feedback workbook's CPU, and which
    cannot take a part compressed once for many workbooks (the parts listing the sheets: :func:`_deflated`). The
    bytes are zipfile's for the same parts: no data descriptors, no Zip64 (Excel may call such files damaged, so a
    workbook past 2 GiB is refused), a fixed time, so the same content gives the same bytes.
    """

    def __init__(self, target: Path | BinaryIO) -> None:
        self._file = target if hasattr(target, "write") else open(target, "wb")  # noqa: SIM115 - closed in close
        self._owned = self._file is not target
        self._directory: list[bytes] = []
        self._offset = 0
        self.closed = False

    @contextmanager
    def part(self, name: str) -> Iterator[_PartWriter]:
        """A part written as text (UTF-8), deflated as it comes and added when the block ends."""
        writer = _PartWriter()
        yield writer
        self.add(name, *writer.finish())

    def add(self, name: str, crc: int, size: int, deflated: bytes) -> None:
        """Add the part ``name``: its CRC-32, its size and its bytes deflated (raw deflate)."""
        encoded = name.encode("ascii")
        end = self._offset + _LOCAL_HEADER.size + len(encoded) + len(deflated)
        if max(size, end) > _ZIP_LIMIT:
            raise ExportError(f"the workbook is over 2 GiB at its part {name}; export this table as csv or parquet")
        fields = (_ZIP_VERSION, 0, zlib.DEFLATED, 0, _DOS_DATE, crc, len(deflated), size, len(encoded))
        self._file.write(_LOCAL_HEADER.pack(b"PK\x03\x04", *fields, 0) + encoded)
        self._file.write(deflated)
        self._directory.append(_DIRECTORY_ENTRY.pack(b"PK\x01\x02", _ZIP_MADE_BY, *fields, 0, 0, 0, 0,
                                                     _ZIP_FILE_MODE, self._offset) + encoded)
        self._offset = end

    def close(self) -> None:
        """Write the directory and the end record; close the file when it was opened here."""
        directory = b"".join(self._directory)
        count = len(self._directory)
        self._file.write(directory + _END_RECORD.pack(b"PK\x05\x06", 0, 0, count, count, len(directory),
                                                      self._offset, 0))
        self.closed = True
        if self._owned:
            self._file.close()


class _PartWriter:
    """Text of one part, encoded and deflated in pieces of about :data:`_PIECE_CHARS` characters."""

    def __init__(self) -> None:
        self._pending: list[str] = []
        self._chars = 0
        self._deflater = zlib.compressobj(_DEFLATE_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._deflated: list[bytes] = []
        self._crc = 0
        self._size = 0

    def write(self, text: str) -> None:
        self._pending.append(text)
        self._chars += len(text)
        if self._chars >= _PIECE_CHARS:
            self._flush()

    def _flush(self) -> None:
        data = "".join(self._pending).encode("utf-8")
        self._pending, self._chars = [], 0
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._deflated.append(self._deflater.compress(data))

    def finish(self) -> tuple[int, int, bytes]:
        """CRC-32, size and deflated bytes of everything written."""
        self._flush()
        self._deflated.append(self._deflater.flush())
        return self._crc, self._size, b"".join(self._deflated)


# The parts listing the sheets (and the styles) repeat from one feedback workbook to the next: deflated once each.
@lru_cache(maxsize=64)
def _deflated(text: str) -> tuple[int, int, bytes]:
    """CRC-32, size and raw-deflated bytes of ``text`` in UTF-8, as a part written whole."""
    writer = _PartWriter()
    writer.write(text)
    return writer.finish()


# Deflate's fastest level: the feedback writes a workbook per agency on every run, and zipfile's default (level 6)
# made 3,000 of them only 5% smaller for ~0.2 s more CPU.
_DEFLATE_LEVEL = 1
_PIECE_CHARS = 1 << 16
_ZIP_LIMIT = (1 << 31) - 1
_ZIP_VERSION = 20  # deflate
_ZIP_MADE_BY = 3 << 8 | _ZIP_VERSION  # Unix, as zipfile writes it
_DOS_DATE = 1 << 5 | 1  # 1980-01-01, 00:00:00 (time 0)
_ZIP_FILE_MODE = 0o600 << 16  # rw-------, as zipfile writes it
#: A part's local header, its directory entry, and the end record: signature, then the fields :meth:`_Zip.add` packs.
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_DIRECTORY_ENTRY = struct.Struct("<4sH5H3L5HLL")
_END_RECORD = struct.Struct("<4s4H2LH")
_MAX_CHARS = 32_767
_CACHED_CHARS = 1_000
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\ufffe\uffff]")
_ESCAPE_LIKE = re.compile("(_x[0-9a-fA-F]{4}_)")
_EPOCH = datetime(1899, 12, 30)
_LEAP_BUG = datetime(1900, 3, 1)
_HEADER, _DATE, _DATETIME, _QUOTE_PREFIX = 1, 2, 3, 4  # cellXfs of _STYLES
_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_NS = "http://schemas.openxmlformats.org/package/2006"
_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_STYLES = (
    f'{_XML}<styleSheet xmlns="{_MAIN_NS}"><numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/>'
    '<numFmt numFmtId="165" formatCode="yyyy-mm-dd hh:mm"/></numFmts><fonts count="2">'
    '<font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts><fills count="3">'
    '<fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill>'
    '<fill><patternFill patternType="solid"><fgColor rgb="FFF0F4F8"/><bgColor indexed="64"/></patternFill></fill>'
    '</fills><borders count="2"><border><left/><right/><top/><bottom/><diagonal/></border><border>'
    '<left style="thin"><color auto="1"/></left><right style="thin"><color auto="1"/></right>'
    '<top style="thin"><color auto="1"/></top><bottom style="thin"><color auto="1"/></bottom><diagonal/></border>'
    '</borders><cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="5"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="2" borderId="1" xfId="0" applyFont="1" applyFill="1" applyBorder="1"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0" quotePrefix="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>'
)
