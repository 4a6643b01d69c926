"""Reading delivered files into raw sheets of text cells, fast and without trusting the file.

Workbooks (.xlsx, .xls) go through calamine (fastexcel) with every cell read as text, so nothing is coerced
before our own parsing (a date in the month column stays visible as an Excel serial number). CSVs up to
``SMALL_CSV_BYTES`` go through the stdlib ``csv`` module (a state sends thousands of tiny files and the C parser
has no per-call overhead); bigger ones through Polars.

Decisions:

* The header is the first row with any non-blank cell; rows are numbered as the spreadsheet shows them
  (1-based, blank leading rows counted), also for CSVs (one record = one row).
* A CSV is decoded as UTF-8 (BOM allowed), else UTF-16 when it has a UTF-16 BOM, else Windows-1252 (what Excel
  writes for "CSV" on Windows), but UTF-8 with a stray byte stays UTF-8 (the byte a replacement character, quoted
  in the finding of its row). Its delimiter is the most frequent of ``,`` ``;`` and tab in the header line
  (:mod:`jc_pipeline.lib.csv_text`, the roster's rule too).
* Anything that cannot be read raises :class:`Unreadable` with a reason the agency can act on; the caller
  records the file as UNREADABLE and goes on with the next one.

Hostile workbooks (zip bombs, giant sheets, password protection) are refused by :mod:`workbook_guard` and
:mod:`sheet_extent`, before calamine sees them or, for a small workbook, when calamine fails on it or returns a
sheet beyond the limits; calamine reads every workbook in a worker process (:mod:`jc_pipeline.lib.calamine`),
which bounds what the guard cannot vouch for (.xls, .xlsb, .ods, a small workbook not scanned yet) and reads the
next workbooks while this process turns the last ones into rows. The limits on what is read are (see
``docs/reliability.md``):

* Cells longer than ``MAX_CELL_BYTES`` are replaced by their first characters and a note of their length
  before any rule sees them: no cell can be valid at that size, so the row is rejected by the rule of its
  column (a 10 MB "value" is R7) with a message of bounded size, and the other rows load.
* Sheets with more than ``MAX_COLUMNS`` columns, ``MAX_ROWS`` rows or ``MAX_CELLS`` cells, and CSVs with more than
  ``MAX_COLUMNS`` columns, are refused; so is a workbook whose cells hold more than ``MAX_RATIO`` times its size in
  text past ``RATIO_FLOOR_BYTES`` (:func:`_check_expansion`).
* A CSV is binary (refused) when more than 10 % of its first 4 KiB are NUL bytes and it has no UTF-16 BOM; a
  stray NUL byte elsewhere is data, so only the row holding it is rejected by the rule of its column.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import re
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from jc_pipeline.lib import calamine, csv_text
from jc_pipeline.lib.ingest.sheet_extent import MAX_COLUMNS, check_box
from jc_pipeline.lib.ingest.unreadable import Unreadable
from jc_pipeline.lib.ingest.workbook_guard import (MAX_RATIO, OLE_MAGIC, RATIO_FLOOR_BYTES, ZIP_MAGIC,
                                                   refuse_hostile_workbook, screen_workbook)
from jc_pipeline.lib.regular_files import open_regular, reopen_failed

SMALL_CSV_BYTES = 1024 * 1024
#: The largest bulk-upload CSV read: Polars needs 5-8 times a file's size to parse it, and a state's largest
#: (a superagency's single-page CSV of ten years for a hundred agencies) is under 100 MiB. A 1 GiB CSV aborted the
#: run under a memory cap, every night until it was removed (helper-63). Past inbox.IN_MEMORY_LIMIT: such a CSV is
#: read again by path, up to this size.
MAX_CSV_BYTES = 128 * 1024 * 1024
#: Cells longer than this (UTF-8 bytes) are cut before any rule sees them (see the module docstring).
MAX_CELL_BYTES = 64 * 1024
_CUT_KEEP = 60
#: A cut cell reads: its first _CUT_KEEP characters, _CUT_BEFORE, its size in bytes, _CUT_AFTER.
_CUT_BEFORE = "... [cell of "
_CUT_AFTER = f" bytes cut; more than the {MAX_CELL_BYTES} accepted]"
WORKBOOK_EXTENSIONS = (".xlsx", ".xls")
EXTENSIONS = (*WORKBOOK_EXTENSIONS, ".csv")

#: A ``\r`` not followed by ``\n``: Polars ends records at ``\n`` only.
_LONE_CR = re.compile(rb"\r(?!\n)")

# A small CSV (<= SMALL_CSV_BYTES) may hold one cell of its whole size; cut later by MAX_CELL_BYTES.
csv.field_size_limit(max(csv.field_size_limit(), SMALL_CSV_BYTES + 1))


class RawSheet(NamedTuple):
    """One sheet (or CSV) as text cells.

    ``header`` holds the header cells as written; the cells below it are rows ``first`` to ``first + height - 1``
    of the first ``len(header)`` columns of ``cells`` (Arrow text, ``string`` or ``large_string``). ``cells`` may
    hold more: for a workbook it is the worker's batch of all its sheets stacked (see
    :class:`calamine.Workbook`), which :class:`rows.RowCollector` reads once for all its sheets instead of slicing
    every sheet's every column; it is None for a sheet without any non-blank cell. ``has_data`` says for each
    header cell whether its column holds any non-blank cell below the header. ``header_row`` is the 1-based row
    of the header (0 when the sheet has no non-blank cell at all). ``semicolons``: a CSV separated by semicolons,
    as Excel writes CSVs in the languages that write numbers 1.250,5 (see :func:`values.ambiguous_number`).
    """

    name: str
    header_row: int
    header: tuple[str | None, ...]
    cells: pa.RecordBatch | None
    first: int
    height: int
    has_data: tuple[bool, ...]
    semicolons: bool = False


def read_file(path: Path, data: bytes | None, sheet_name_for_csv: str) -> list[RawSheet]:
    """Raw sheets of a delivered file (``data`` = its bytes when already in memory). Raises :class:`Unreadable`.

    A workbook is read by the worker that :func:`calamine.sheets_in_worker` shares; an ingest reads many ahead
    with :class:`PendingWorkbook` and its own :class:`calamine.WorkbookReader` instead."""
    suffix = path.suffix.lower()
    if suffix not in EXTENSIONS:
        raise AssertionError(f"read_file called for unsupported type {suffix!r}")  # callers check EXTENSIONS
    if suffix == ".csv":
        return [_read_csv(path, data, _nonempty_size(path, data), sheet_name_for_csv)]
    return PendingWorkbook(path, data, None).sheets()


def _nonempty_size(path: Path, data: bytes | None) -> int:
    """The file's size in bytes (``data``: its bytes when in memory); raises :class:`Unreadable` when it is 0."""
    size = len(data) if data is not None else path.stat().st_size
    if size == 0:
        raise Unreadable("the file is empty (0 bytes); deliver it again with its data")
    return size


# --- workbooks -------------------------------------------------------------------------------------------------


class PendingWorkbook:
    """A workbook file screened by the guard and handed to calamine's worker; :meth:`sheets` waits for it.

    ``reader``: the :class:`calamine.WorkbookReader` to read it ahead with (the caller takes the sheets of its
    workbooks in the order it made them); None: read when :meth:`sheets` is called, by the shared worker."""

    def __init__(self, path: Path, data: bytes | None, reader: calamine.WorkbookReader | None) -> None:
        self.path, self.data, self.reader = path, data, reader
        self.head = b""
        self.ticket: int | None = None
        self.refused: Unreadable | None = None
        self.scan_pending = False
        try:
            self.head = data[:8] if data is not None else _read_again(path, 8)
            _nonempty_size(path, data)
            self.scan_pending = screen_workbook(path, data, self.head)
        except Unreadable as exc:
            self.refused = exc
            return
        if reader is not None:
            self.ticket = reader.submit(self._source)

    @property
    def _source(self) -> bytes | str:
        return self.data if self.data is not None else str(self.path)

    def sheets(self) -> list[RawSheet]:
        """The workbook's raw sheets. Raises :class:`Unreadable`."""
        if self.refused is not None:
            raise self.refused
        try:
            read = self._read(again=False)
        except calamine.WorkerDied as exc:
            self._scan_now()
            if isinstance(exc.__cause__, TimeoutError):
                raise self._stopped(exc) from exc
            # Once more, in a new worker: one killed from outside (the kernel's OOM killer, an operator) is not the
            # workbook's doing, and recorded as its own it stayed UNREADABLE for good (helper-49).
            read = self._read(again=True)
        try:
            _check_expansion(read, len(self.data) if self.data is not None else self.path.stat().st_size)
            return _workbook_sheets(read)
        except Unreadable:  # a sheet beyond the limits
            self._scan_now()
            raise

    def _read(self, *, again: bool) -> calamine.Workbook:
        try:
            if again or self.ticket is None:
                return calamine.sheets_in_worker(self._source)
            return self.reader.result(self.ticket)
        except calamine.CalamineError as exc:
            self._scan_now()
            raise Unreadable(_workbook_error(exc, self.head, self.data)) from exc
        except calamine.WorkerDied as exc:
            if not again:
                raise
            raise self._stopped(exc) from exc

    @staticmethod
    def _stopped(exc: calamine.WorkerDied) -> Unreadable:
        return Unreadable(f"the spreadsheet reader stopped on this workbook: {exc}; delete the rows and columns after "
                          f"the data (Ctrl+End shows the last cell), save it as .xlsx and deliver it again")

    def _scan_now(self) -> None:
        """The guard's scan left for later, now that calamine failed on the workbook or returned a sheet beyond the
        limits: its reason (the far cell, the damaged part) is the one to give."""
        if self.scan_pending:
            self.scan_pending = False
            refuse_hostile_workbook(self.path, self.data, self.head)


def _read_again(path: Path, size: int = -1) -> bytes:
    """The first ``size`` bytes (-1: all) of a delivered file read again after its hash, as itself: one swapped for
    a symlink or a pipe since is refused (:func:`open_regular`)."""
    try:
        with open_regular(path) as handle:
            return handle.read(size)
    except OSError as exc:
        raise Unreadable(reopen_failed(exc)) from exc


def _workbook_error(exc: Exception, head: bytes, data: bytes | None) -> str:
    text = str(exc).lower()
    if "password" in text or "encrypt" in text:
        return "the workbook is password-protected; remove the password and deliver it again"
    if head[:4] != ZIP_MAGIC and head != OLE_MAGIC:
        sample = (data or b"")[:512]
        if sample.lstrip().startswith(b"<"):  # what some systems export as "Excel": a web page or XML
            return ("the file is a web page or XML with an Excel name, not a workbook; open it in Excel and save it "
                    "as .xlsx (Excel Workbook), or export CSV")
        if sample and b"\x00" not in sample:
            return "the file is not an Excel workbook (it looks like text); save it as .xlsx or rename it to .csv"
        return "the file is not an Excel workbook; save it as .xlsx (Excel Workbook) and deliver it again"
    return f"the workbook is damaged and cannot be read ({exc}); save it again from Excel and deliver it again"


def _check_expansion(workbook: calamine.Workbook, size: int) -> None:
    """Refuse a workbook whose cells hold far more text than the file (:data:`MAX_RATIO` times, past
    :data:`RATIO_FLOOR_BYTES`): one long shared string referenced by thousands of cells is a 64 KB file of 480 MB
    of cells, which every copy in the ingest and every finding quoting a cell multiplied into gigabytes."""
    # The character data alone: the offsets of a sheet's null-padded box (one stray far cell) are no text.
    chars = (column.buffers()[2] for column in workbook.stacked.columns) if workbook.stacked is not None else ()
    text = sum(buffer.size for buffer in chars if buffer is not None)
    if text > RATIO_FLOOR_BYTES and text > MAX_RATIO * max(size, 1):
        raise Unreadable(f"the workbook's cells hold {text:,} bytes of text, {text // max(size, 1):,} times the "
                         f"file's size, more than the {MAX_RATIO} times real workbooks do (the same long text "
                         f"repeated in many cells); deliver the data without the repeated text")


def _workbook_sheets(workbook: calamine.Workbook) -> list[RawSheet]:
    """The raw sheets of a workbook, each as :func:`_sheet_from_arrow` makes it of the sheet's batch, with the work
    done for all of them at once where it can be: long cells are cut in the stacked batch, one Arrow take reads
    every sheet's first two rows, which almost always hold the header and, under each header cell, a cell that
    says its column holds data, and every sheet keeps the stacked batch as its cells (:class:`RawSheet`). A state
    sends ~200,000 sheets, mostly of a few rows, and an Arrow call per sheet and column costs microseconds."""
    stacked, shape, starts = workbook.stacked, workbook.shape, workbook.starts
    live = [i for i, (_, rows, width) in enumerate(shape) if rows and width]
    for i in live:
        check_box(shape[i][0], shape[i][2], shape[i][1])
    if stacked is None or not live:
        return [_empty(name) for name, _, _ in shape]
    stacked = _cut_long_cells(stacked)
    # Rows 1 and 2 of each sheet (row 1 twice for a sheet of one row, which has no row 2 to read), all columns
    # at once: one conversion to Python of the taken rows, column after column.
    top = np.array([starts[i] for i in live], dtype=np.int64)
    second_row = top + np.minimum(1, np.array([shape[i][1] for i in live], dtype=np.int64) - 1)
    taken = stacked.take(pa.array(np.column_stack((top, second_row)).ravel()))
    values, count = pa.concat_arrays(taken.columns).to_pylist(), taken.num_rows
    firsts = iter(zip(*(values[j * count:(j + 1) * count] for j in range(taken.num_columns)), strict=True))
    columns = stacked.columns
    sheets = []
    for i, (name, rows, width) in enumerate(shape):
        if not (rows and width):
            sheets.append(_empty(name))
            continue
        header, second = next(firsts)[:width], next(firsts)[:width]
        if not any(map(_filled, header)):  # blank rows above the header: found as in any batch
            sheets.append(_sheet_from_arrow(name, stacked.slice(starts[i], rows).select(range(width))))
            continue
        first = starts[i] + 1
        # A column's cell on row 2 almost always shows it holds data; only a blank one costs a look further down.
        has_data = (tuple(_has_data(cell, columns[j], first, rows - 1) for j, cell in enumerate(second))
                    if rows > 1 else (False,) * width)
        sheets.append(RawSheet(name, 1, header, stacked, first, rows - 1, has_data))
    return sheets


def _sheet_from_arrow(name: str, batch: pa.RecordBatch) -> RawSheet:
    """Split a batch of Arrow text columns at its first non-blank row (the header); the body stays Arrow (sliced,
    no copy)."""
    if batch.num_columns == 0 or batch.num_rows == 0:
        return _empty(name)
    _check_width(name, batch.num_columns)
    batch = _cut_long_cells(batch)
    header_at = first_filled_row(batch)
    if header_at is None:
        return _empty(name)
    header = tuple(column[header_at].as_py() for column in batch.columns)
    return _raw_sheet(name, header_at + 1, header, batch, header_at + 1)


def first_filled_row(cells: pa.RecordBatch | pa.Table) -> int | None:
    """The index of the first row with a non-blank cell (a sheet's header, whatever blank rows stand above it;
    also for the native exports' workbooks), None when every cell is blank. ``cells`` has at least one row."""
    if any(_filled(column[0].as_py()) for column in cells.columns):  # the usual case: the header is on row 1
        return 0
    filled = [pc.fill_null(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(column)), 0), False)
              for column in cells.columns]
    rows = pc.indices_nonzero(functools.reduce(pc.or_, filled))
    return rows[0].as_py() if len(rows) else None


def _raw_sheet(name: str, header_row: int, header: tuple[str | None, ...], cells: pa.RecordBatch,
               first: int) -> RawSheet:
    """The sheet whose header, on ``header_row``, is ``header``, with the rows of ``cells`` from ``first`` on
    below it."""
    height = cells.num_rows - first
    has_data = tuple(_has_data(column[first].as_py() if height else None, column, first, height)
                     for column in cells.columns)
    return RawSheet(name, header_row, header, cells, first, height, has_data)


def _has_data(top: str | None, column: pa.Array, first: int, height: int) -> bool:
    """Whether ``height`` cells of ``column`` from ``first`` on, the first of which is ``top``, hold any non-blank
    cell."""
    # The first cell almost always answers; the cells are scanned only when it is blank.
    if _filled(top):
        return True
    cells = column.slice(first, height)
    return cells.null_count < height and bool(pc.max(pc.utf8_length(pc.utf8_trim_whitespace(cells))).as_py())


def _empty(name: str) -> RawSheet:
    """A sheet without any non-blank cell."""
    return RawSheet(name, 0, (), None, 0, 0, ())


def _sheet_from_columns(name: str, columns: list[list[str | None]]) -> RawSheet:
    """Split Python column lists at the first non-blank row (the header); the body becomes Arrow."""
    _check_width(name, len(columns))
    for column in columns:
        if max(map(len, filter(None, column)), default=0) > MAX_CELL_BYTES // 4:  # cheap pre-filter (chars)
            column[:] = [_cut(cell) for cell in column]
    height = max((len(column) for column in columns), default=0)
    for index in range(height):
        if any(_filled(column[index]) for column in columns if index < len(column)):
            header = tuple(column[index] if index < len(column) else None for column in columns)
            body = pa.RecordBatch.from_arrays([pa.array(column[index + 1:], type=pa.string()) for column in columns],
                                              names=[str(j) for j in range(len(columns))])
            return _raw_sheet(name, index + 1, header, body, 0)
    return _empty(name)


def _check_width(name: str, width: int) -> None:
    if width > MAX_COLUMNS:
        raise Unreadable(f"the sheet {name!r} has {width:,} columns, more than the {MAX_COLUMNS:,} accepted; delete "
                         f"the columns outside the data and deliver it again")


def _cut(cell: str | None) -> str | None:
    """``cell``, or its start and a note of its size when longer than MAX_CELL_BYTES (UTF-8)."""
    if cell is None or len(cell) * 4 <= MAX_CELL_BYTES:
        return cell
    size = len(cell.encode("utf-8", "surrogatepass"))
    if size <= MAX_CELL_BYTES:
        return cell
    return f"{cell[:_CUT_KEEP]}{_CUT_BEFORE}{size}{_CUT_AFTER}"


def _cut_long_cells(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` with every cell longer than MAX_CELL_BYTES cut (as :func:`_cut` does), vectorized."""
    # The batch's buffers bound every cell's size (a cell's bytes lie in its column's buffers, each counted at
    # least once); the usual small sheet is done in one call.
    if batch.get_total_buffer_size() <= MAX_CELL_BYTES:
        return batch
    return pa.RecordBatch.from_arrays([_cut_column(column) for column in batch.columns], names=batch.schema.names)


def _cut_column(column: pa.Array) -> pa.Array:
    sizes = pc.binary_length(column)
    if (pc.max(sizes).as_py() or 0) <= MAX_CELL_BYTES:
        return column
    text = column.type
    cut = pc.binary_join_element_wise(pc.utf8_slice_codeunits(column, 0, _CUT_KEEP), pa.scalar(_CUT_BEFORE, text),
                                      pc.cast(sizes, text), pa.scalar(_CUT_AFTER, text), pa.scalar("", text))
    return pc.if_else(pc.greater(sizes, MAX_CELL_BYTES), cut, column)


def _filled(cell: str | None) -> bool:
    return cell is not None and not cell.isspace() and cell != ""


# --- CSV -------------------------------------------------------------------------------------------------------


def _read_csv(path: Path, data: bytes | None, size: int, name: str) -> RawSheet:
    if data is None or size > SMALL_CSV_BYTES:
        return _read_big_csv(path, data, name)  # Polars: no per-cell Python
    text = _decode(data)
    header = csv_text.header_line(text)
    _check_width(name, max(header.count(d) for d in csv_text.DELIMITERS) + 1)
    separator = csv_text.delimiter(header)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=separator))
    except csv.Error as exc:
        raise Unreadable(f"the CSV cannot be parsed ({exc}); export it again as CSV UTF-8") from exc
    # zip_longest transposes rows into columns, padding short rows with None (a missing trailing cell).
    columns = [list(column) for column in itertools.zip_longest(*rows)]
    return _sheet_from_columns(name, columns)._replace(semicolons=separator == ";")


def _refuse_binary(data: bytes) -> None:
    if data.startswith((ZIP_MAGIC, OLE_MAGIC)):  # Excel's own formats, saved or renamed with a .csv name
        raise Unreadable("the file is an Excel workbook with a .csv name; rename it to .xlsx (or .xls), or save it "
                         "from Excel as CSV UTF-8")
    sample = data[:4096]
    if sample.count(b"\x00") * 10 > len(sample):
        raise Unreadable("the file is not a text CSV (it contains binary data: NUL bytes; UTF-16 without a byte "
                         "order mark looks like this too); export it again as CSV UTF-8")


def _decode(data: bytes) -> str:
    if not data.startswith(csv_text.UTF16_BOMS):  # UTF-16 text is half NUL bytes
        _refuse_binary(data)
    return _text(data)


def _text(data: bytes) -> str:
    try:
        return csv_text.decode(data)
    except UnicodeError as exc:  # only UTF-16 fails: any other byte sequence decodes
        raise Unreadable(f"the CSV starts with a UTF-16 byte order mark but is not valid UTF-16 ({exc}); "
                         f"export it again as CSV UTF-8") from exc


def _read_big_csv(path: Path, data: bytes | None, name: str) -> RawSheet:
    data = data if data is not None else _read_again(path, MAX_CSV_BYTES + 1)
    if len(data) > MAX_CSV_BYTES:
        raise Unreadable(f"the CSV is larger than the {MAX_CSV_BYTES // 2**20} MiB a bulk upload is read up to; "
                         f"split it into smaller files (one per year, for example) and deliver those")
    if data.startswith(csv_text.UTF16_BOMS):
        data = _text(data).encode("utf-8")
    _refuse_binary(data)  # after re-encoding: UTF-16 text is half NUL bytes
    if data.count(b"\r") != data.count(b"\r\n"):
        data = _LONE_CR.sub(b"\n", data)
    header = csv_text.header_line(data).decode("utf-8", "replace")
    separator = csv_text.delimiter(header)
    _check_width(name, header.count(separator) + 1)  # before any split: a giant first line is refused as it is
    # Polars takes the width from the first line, blank or not: the header's, given, keeps leading blank rows
    # from cutting every row to one cell.
    try:
        try:
            frame = _polars_csv(data, _width([header], separator), separator)
        except _Ragged:  # a cell past the header's last column: read as wide as the widest line, nothing cut off
            width = _widest_line(data, separator)
            _check_width(name, width)
            try:
                frame = _polars_csv(data, width, separator)
            except _Ragged:  # a broken quote splits a line otherwise for Polars than for csv: cut, as before
                frame = _polars_csv(data, width, separator, truncate=True)
    except (pl.exceptions.PolarsError, csv.Error) as exc:
        raise Unreadable(f"the CSV cannot be parsed ({exc}); export it again as CSV UTF-8") from exc
    table = frame.to_arrow(compat_level=pl.CompatLevel.oldest())  # large_string, which pyarrow computes on
    cells = pa.RecordBatch.from_arrays([column.combine_chunks() for column in table.columns], names=table.column_names)
    return _sheet_from_arrow(name, cells)._replace(semicolons=separator == ";")


class _Ragged(Exception):
    """A line of a CSV has more cells than the width it was read with."""


def _polars_csv(data: bytes, width: int, separator: str, *, truncate: bool = False) -> pl.DataFrame:
    """``data`` as ``width`` text columns; a short line is padded, a longer one raises :class:`_Ragged` (or is cut
    to ``width`` with ``truncate``)."""
    options = dict(has_header=False, schema={f"column_{i}": pl.String for i in range(width)}, separator=separator,
                   truncate_ragged_lines=truncate, missing_columns="insert",
                   extra_columns="ignore" if truncate else "raise")
    try:
        try:
            return pl.read_csv(data, encoding="utf8", **options)
        except pl.exceptions.ComputeError as exc:
            if "more fields" in str(exc):
                raise
            return pl.read_csv(_text(data).encode("utf-8"), **options)  # not UTF-8: decoded as small files are
    except (pl.exceptions.ComputeError, pl.exceptions.SchemaError) as exc:
        if "more fields" in str(exc) or "not specified in schema" in str(exc):
            raise _Ragged from exc
        raise


def _width(lines: Iterable[str], separator: str) -> int:
    """The most cells of any of ``lines`` (CSV text), at least 1."""
    return max((len(row) for row in csv.reader(lines, delimiter=separator)), default=0) or 1


def _widest_line(data: bytes, separator: str) -> int:
    """The most cells of any line of ``data`` (CSV bytes, lines ending in ``\n``), at least 1. Without a quote
    character a line's cells are its separators plus one, counted by numpy (the csv module took 8 s of a 95 MiB
    file's 11 s); with one, the csv module reads the lines, knowing quoted separators and line ends."""
    if b'"' in data or not data:
        return _width(io.StringIO(data.decode("utf-8", "replace"), newline=""), separator)
    cells = np.frombuffer(data, np.uint8)
    starts = np.concatenate(([0], np.flatnonzero(cells == ord("\n")) + 1))
    separators = np.add.reduceat(cells == ord(separator), starts[starts < len(cells)], dtype=np.int64)
    return int(separators.max()) + 1
