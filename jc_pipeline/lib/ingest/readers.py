"""Reading delivered files into raw sheets of text cells, fast and without trusting the file.

Workbooks (.xlsx, .xls) go through calamine (fastexcel) with every cell read as text, so nothing is coerced
before our own parsing (a date in the month column stays visible as an Excel serial number). CSVs up to
``SMALL_CSV_BYTES`` go through the stdlib ``csv`` module (a state sends thousands of tiny files and the C parser
has no per-call overhead); bigger ones through Polars.

Decisions:

* The header is the first row with any non-blank cell; rows are numbered as the spreadsheet shows them
  (1-based, blank leading rows counted), also for CSVs (one record = one row).
* A CSV is decoded as UTF-8 (BOM allowed), else UTF-16 when it has a UTF-16 BOM, else Windows-1252 (what Excel
  writes for "CSV" on Windows). Its delimiter is the most frequent of ``,`` ``;`` and tab in the header line.
* Anything that cannot be read raises :class:`Unreadable` with a reason the agency can act on; the caller
  records the file as UNREADABLE and goes on with the next one.

Hostile files (see ``docs/reliability.md``) are refused *before* calamine sees them, because calamine
allocates every cell of a sheet's bounding box and aborts the whole process (not an exception) when that
allocation fails: a 5 KB workbook with cells in A1 and XFD1048576 would otherwise kill the run.

* ``.xlsx``: the zip directory must declare at most ``MAX_UNCOMPRESSED_BYTES`` in total and no member larger
  than ``RATIO_FLOOR_BYTES`` may expand more than ``MAX_RATIO`` times (zip bomb). Every worksheet XML is then
  streamed once through :mod:`zipfile` (which stops at the declared size and checks the CRC, so a member that
  lies about its size is refused as damaged) and its cell references are read with numpy (no Python work per
  cell) and checked: no column beyond XFD
  (16,384), no row beyond 1,048,576, and a bounding box of at most ``MAX_CELLS`` cells. Cells or rows written
  without a position are counted as if each added a column or row (a conservative bound).
* Password-protected workbooks: Excel stores them as an OLE compound file (magic ``D0 CF 11 E0``) holding a
  stream named ``EncryptionInfo``; a file with that magic whose first MiB contains that name in UTF-16-LE is
  refused as password-protected (heuristic, also used for encrypted .xls saved by new Excel versions).
* Cells longer than ``MAX_CELL_BYTES`` are replaced by their first characters and a note of their length
  before any rule sees them: no cell can be valid at that size, so the row is rejected by the rule of its
  column (a 10 MB "value" is R7) with a message of bounded size, and the other rows load.
* Sheets (and CSVs) with more than ``MAX_COLUMNS`` columns are refused.
* A CSV is binary (refused) when more than 10 % of its first 4 KiB are NUL bytes and it has no UTF-16 BOM; a
  stray NUL byte elsewhere is data, so only the row holding it is rejected by the rule of its column.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import fastexcel
import numpy as np
import polars as pl

SMALL_CSV_BYTES = 1024 * 1024
#: A workbook whose parts expand to more than this is refused (zip bomb).
MAX_UNCOMPRESSED_BYTES = 1024 * 1024 * 1024
#: A workbook member bigger than RATIO_FLOOR_BYTES expanding more than MAX_RATIO times is refused (zip bomb;
#: real sheet XML compresses 5-30 times, repetitive XML rarely above 100).
MAX_RATIO = 200
RATIO_FLOOR_BYTES = 8 * 1024 * 1024
#: Excel's own limits; a sheet beyond them was not written by Excel.
MAX_COLUMNS = 16_384
MAX_ROWS = 1_048_576
#: Largest sheet bounding box (rows x columns) handed to calamine, which allocates ~32 bytes per cell of it.
MAX_CELLS = 25_000_000
#: Cells longer than this (UTF-8 bytes) are cut before any rule sees them (see the module docstring).
MAX_CELL_BYTES = 64 * 1024
_CUT_KEEP = 60
EXTENSIONS = (".xlsx", ".xls", ".csv")

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_OOXML = "EncryptionInfo".encode("utf-16-le")
_DELIMITERS = (",", ";", "\t")
_SCAN_CHUNK = 16 * 1024 * 1024
_SCAN_OVERLAP = 64
#: Bytes read after each r=" (letters + digits of a reference, longer ones are refused).
_REF_WINDOW = 16
_WORKSHEET = re.compile(r"^xl/(?:worksheets|dialogsheets|macrosheets)/[^/]+\.xml$", re.IGNORECASE)

# A small CSV (<= SMALL_CSV_BYTES) may hold one cell of its whole size; cut later by MAX_CELL_BYTES.
csv.field_size_limit(max(csv.field_size_limit(), SMALL_CSV_BYTES + 1))


class Unreadable(Exception):
    """The file cannot be read at all; ``str()`` is the reason (without the file name)."""


@dataclass(frozen=True)
class RawSheet:
    """One sheet (or CSV) as text cells.

    ``header`` holds the header cells as written; ``columns`` the cells below the header, one sequence per
    column (Python lists for small sheets, Polars Series for big ones), possibly more columns than headers.
    ``header_row`` is the 1-based row of the header (0 when the sheet has no non-blank cell at all).
    """

    name: str
    header_row: int
    header: tuple[str | None, ...]
    columns: tuple[Sequence[str | None], ...]
    height: int


def read_file(path: Path, data: bytes | None, sheet_name_for_csv: str) -> list[RawSheet]:
    """Raw sheets of a delivered file (``data`` = its bytes when already in memory). Raises :class:`Unreadable`."""
    suffix = path.suffix.lower()
    if suffix not in EXTENSIONS:
        raise AssertionError(f"read_file called for unsupported type {suffix!r}")  # callers check EXTENSIONS
    size = len(data) if data is not None else path.stat().st_size
    if size == 0:
        raise Unreadable("the file is empty (0 bytes); deliver it again with its data")
    if suffix == ".csv":
        return [_read_csv(path, data, size, sheet_name_for_csv)]
    return _read_workbook(path, data)


# --- workbooks -------------------------------------------------------------------------------------------------


def _read_workbook(path: Path, data: bytes | None) -> list[RawSheet]:
    head = data[:8] if data is not None else _head(path)
    _refuse_hostile_workbook(path, data, head)
    try:
        reader = fastexcel.read_excel(data if data is not None else str(path))
        sheets = []
        for name in reader.sheet_names:
            # header_row=None + skip_rows=0 keeps leading blank rows, so row numbers match the spreadsheet.
            frame = reader.load_sheet(name, header_row=None, skip_rows=0, dtypes="string").to_polars()
            sheets.append(_sheet_from_frame(name, frame))
        return sheets
    except Unreadable:
        raise
    except Exception as exc:  # calamine raises several exception types for damaged files
        raise Unreadable(_workbook_error(exc, head, data)) from exc


def _head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(8)


def _refuse_hostile_workbook(path: Path, data: bytes | None, head: bytes) -> None:
    """Raise :class:`Unreadable` for encrypted workbooks, zip bombs and giant sheets (see the module docstring)."""
    if head == _OLE_MAGIC:
        if data is not None:
            body = data
        else:
            with path.open("rb") as handle:
                body = handle.read(1 << 20)
        if _ENCRYPTED_OOXML in body:
            raise Unreadable("the workbook is password-protected (encrypted); remove the password "
                             "(File > Info > Protect Workbook) and deliver it again")
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data) if data is not None else path) as archive:
                _check_zip_members(archive)
        except zipfile.BadZipFile as exc:
            raise Unreadable(f"the workbook is damaged ({exc}); save it again from Excel and deliver it again") from exc
        except (zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, OSError) as exc:
            raise Unreadable(f"the workbook cannot be unpacked ({exc}); save it again from Excel as .xlsx and "
                             f"deliver it again") from exc


def _check_zip_members(archive: zipfile.ZipFile) -> None:
    members = archive.infolist()
    expanded = sum(info.file_size for info in members)
    if expanded > MAX_UNCOMPRESSED_BYTES:
        raise Unreadable(f"the workbook expands to {expanded / 2**30:.1f} GiB, more than the "
                         f"{MAX_UNCOMPRESSED_BYTES / 2**30:.0f} GiB accepted (a zip bomb or a giant sheet); "
                         f"split it into smaller files")
    for info in members:
        if info.file_size > RATIO_FLOOR_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise Unreadable(f"the workbook part {info.filename!r} expands {info.file_size // max(info.compress_size, 1):,} "
                             f"times ({info.compress_size:,} to {info.file_size:,} bytes), more than the {MAX_RATIO} "
                             f"times real workbooks do (a zip bomb); save it again from Excel and deliver it again")
    for info in members:
        if _WORKSHEET.match(info.filename):
            _check_sheet_extent(archive, info)


#: A position with three or more column letters, or five or more row digits: the fast path cannot vouch for it.
_FAR_POSITION = re.compile(rb'\sr="(?:[A-Z]{3,}|[A-Z]{0,2}[0-9]{5,})')
#: <c> and <row> elements written without a position (placed after the previous one).
_UNPLACED_CELL = re.compile(rb'<c(?=[\s>/])(?![^>]*\sr=")')
_UNPLACED_ROW = re.compile(rb'<row(?=[\s>/])(?![^>]*\sr=")')


def _surely_small(text: bytes) -> bool:
    """True when the sheet cannot span more than MAX_CELLS whatever its cells say: every position is within
    ZZ9999 and the elements without one are few. One C-speed regex pass instead of a scan per cell; the
    ordinary bulk-upload sheet (a few hundred rows) is decided here."""
    if _FAR_POSITION.search(text):
        return False
    columns = 26 * 27 + len(_UNPLACED_CELL.findall(text))  # ZZ = 702
    rows = 9_999 + len(_UNPLACED_ROW.findall(text))
    return columns <= MAX_COLUMNS and rows <= MAX_ROWS and columns * rows <= MAX_CELLS


def _check_sheet_extent(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Stream one worksheet's XML and refuse it when its cell references span more than Excel allows."""
    if info.file_size <= _SCAN_CHUNK:
        # read(n) bounds what is decompressed even when the part lies about its size (archive.read() would not).
        with archive.open(info) as stream:
            text = stream.read(info.file_size + 1)
        if len(text) == info.file_size and _surely_small(text):
            return
    max_col = max_row = 0
    unplaced_cells = unplaced_rows = 0
    tail = b""
    with archive.open(info) as stream:
        while chunk := stream.read(_SCAN_CHUNK):
            text = tail + chunk
            tail = text[-_SCAN_OVERLAP:]
            # Elements without a position (r=...) are placed after the previous one by calamine.
            cells, rows = _unplaced(chunk)
            unplaced_cells, unplaced_rows = unplaced_cells + cells, unplaced_rows + rows
            columns, rows = _largest_refs(info, text)
            max_col, max_row = max(max_col, columns), max(max_row, rows)
    max_col += max(unplaced_cells, 0)
    max_row += max(unplaced_rows, 0)
    if max_col > MAX_COLUMNS or max_row > MAX_ROWS or max_col * max_row > MAX_CELLS:
        _refuse_extent(info, max_col, max_row)


def _unplaced(chunk: bytes) -> tuple[int, int]:
    """How many ``<c>`` and ``<row>`` elements of ``chunk`` do not start with an ``r="`` position (vectorized)."""
    raw = np.frombuffer(chunk, dtype=np.uint8)
    if raw.size < 16:
        return 0, 0
    tag = np.flatnonzero(raw[:-8] == 0x3C)  # "<", with room for the 8 bytes looked at below
    after = [raw[tag + k] for k in range(1, 8)]
    blank_or_end = lambda b: (b == 0x20) | (b == 0x3E)  # noqa: E731
    positioned = lambda first: (after[first] == 0x72) & (after[first + 1] == 0x3D) & (after[first + 2] == 0x22)  # noqa: E731
    cell = (after[0] == 0x63) & blank_or_end(after[1])
    row = (after[0] == 0x72) & (after[1] == 0x6F) & (after[2] == 0x77) & blank_or_end(after[3])
    cells = int(np.count_nonzero(cell & ~((after[1] == 0x20) & positioned(2))))
    rows = int(np.count_nonzero(row & ~((after[3] == 0x20) & positioned(4))))
    return cells, rows


def _largest_refs(info: zipfile.ZipInfo, text: bytes) -> tuple[int, int]:
    """(largest column, largest row) of the ``r="A1"`` attributes in ``text``, vectorized (no Python per cell)."""
    raw = np.frombuffer(text, dtype=np.uint8)
    if raw.size < 8:
        return 0, 0
    # r=" preceded by whitespace: the position attribute of <c> and <row> (ref=, sqref= end in f=").
    at = np.flatnonzero((raw[1:-2] == 0x72) & (raw[2:-1] == 0x3D) & (raw[3:] == 0x22)) + 1
    at = at[(raw[at - 1] == 0x20) | (raw[at - 1] == 0x09) | (raw[at - 1] == 0x0A) | (raw[at - 1] == 0x0D)]
    if at.size == 0:
        return 0, 0
    padded = np.concatenate([raw, np.zeros(_REF_WINDOW, dtype=np.uint8)])
    window = np.lib.stride_tricks.sliding_window_view(padded, _REF_WINDOW)[at + 3]  # N x 16 bytes, uint8
    is_letter = (window >= 65) & (window <= 90)
    is_digit = (window >= 48) & (window <= 57)
    letters = np.where(is_letter.all(axis=1), _REF_WINDOW, np.argmin(is_letter, axis=1))
    rows_of = np.arange(at.size)
    # digits start right after the letters; count them (capped by the window)
    digits = np.zeros(at.size, dtype=np.int64)
    running = np.ones(at.size, dtype=bool)
    for k in range(9):
        index = np.minimum(letters + k, _REF_WINDOW - 1)
        running &= is_digit[rows_of, index]
        digits += running
    bad = (letters > 3) | (digits > 7)
    if bad.any():
        _refuse_ref(info, _ref_text(padded, int(at[np.flatnonzero(bad)[0]])))
    # Largest column: among the references with the most letters; largest row: among those with the most digits.
    wide = np.flatnonzero(letters == letters.max())
    column = np.zeros(wide.size, dtype=np.int64)
    for k in range(int(letters.max())):
        column = column * 26 + window[wide, k].astype(np.int64) - 64
    long = np.flatnonzero(digits == digits.max())
    row = np.zeros(long.size, dtype=np.int64)
    for k in range(int(digits.max())):
        row = row * 10 + window[long, letters[long] + k].astype(np.int64) - 48
    columns = int(column.max()) if column.size else 0
    rows = int(row.max()) if row.size else 0
    if columns > MAX_COLUMNS:
        _refuse_ref(info, _ref_text(padded, int(at[wide[int(np.argmax(column))]])))
    if rows > MAX_ROWS:
        _refuse_ref(info, _ref_text(padded, int(at[long[int(np.argmax(row))]])))
    return columns, rows


def _ref_text(padded: np.ndarray, at: int) -> str:
    return bytes(padded[at + 3:at + 3 + 20]).split(b'"', 1)[0].decode("ascii", "replace")


def _refuse_ref(info: zipfile.ZipInfo, ref: str) -> None:
    raise Unreadable(f"the worksheet {info.filename!r} has a row or cell at {ref!r}, beyond Excel's last column "
                     f"XFD ({MAX_COLUMNS:,}) or row {MAX_ROWS:,}; delete the cells far outside the data, save and "
                     f"deliver it again")


def _refuse_extent(info: zipfile.ZipInfo, columns: int, rows: int) -> None:
    raise Unreadable(f"the worksheet {info.filename!r} spans {columns:,} columns x {rows:,} rows, more than the "
                     f"{MAX_COLUMNS:,} columns, {MAX_ROWS:,} rows and {MAX_CELLS:,} cells accepted; delete the "
                     f"cells far outside the data (Ctrl+End shows the last one), save and deliver it again")


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + letter - 64
    return number


def _workbook_error(exc: Exception, head: bytes, data: bytes | None) -> str:
    text = str(exc).lower()
    if "password" in text or "encrypt" in text:
        return "the workbook is password-protected; remove the password and deliver it again"
    if head[:4] != b"PK\x03\x04" and head != _OLE_MAGIC:
        sample = (data or b"")[:512]
        if sample and b"\x00" not in sample:
            return "the file is not an Excel workbook (it looks like text); save it as .xlsx or rename it to .csv"
        return "the file is not an Excel workbook; save it as .xlsx (Excel Workbook) and deliver it again"
    return f"the workbook is damaged and cannot be read ({exc}); save it again from Excel and deliver it again"


def _sheet_from_frame(name: str, frame: pl.DataFrame) -> RawSheet:
    """Split a frame of text cells at its first non-blank row (the header); the body stays Polars Series."""
    if frame.width == 0 or frame.height == 0:
        return RawSheet(name, 0, (), (), 0)
    _check_width(name, frame.width)
    frame = _cut_long_cells(frame)
    if any(_filled(cell) for cell in frame.row(0)):  # the usual case: the header is on row 1
        header_at = 0
    else:
        header_at = frame.select(
            pl.any_horizontal(pl.all().str.strip_chars().str.len_bytes() > 0).fill_null(False).arg_true().first()
        ).item()
        if header_at is None:
            return RawSheet(name, 0, (), (), 0)
    body = frame.slice(header_at + 1)
    return RawSheet(name, header_at + 1, tuple(frame.row(header_at)), tuple(body.iter_columns()), body.height)


def _sheet_from_columns(name: str, columns: list[list[str | None]]) -> RawSheet:
    """Split Python column lists at the first non-blank row (the header)."""
    _check_width(name, len(columns))
    for column in columns:
        if max(map(len, filter(None, column)), default=0) > MAX_CELL_BYTES // 4:  # cheap pre-filter (chars)
            column[:] = [_cut(cell) for cell in column]
    height = max((len(column) for column in columns), default=0)
    for index in range(height):
        if any(_filled(column[index]) for column in columns if index < len(column)):
            header = tuple(column[index] if index < len(column) else None for column in columns)
            body = tuple(column[index + 1:] for column in columns)
            return RawSheet(name, index + 1, header, body, height - index - 1)
    return RawSheet(name, 0, (), (), 0)


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
    return f"{cell[:_CUT_KEEP]}... [cell of {size} bytes cut; more than the {MAX_CELL_BYTES} accepted]"


def _cut_long_cells(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every cell longer than MAX_CELL_BYTES cut (see :func:`_cut`); one vectorized check."""
    if frame.estimated_size() <= MAX_CELL_BYTES:  # no cell can be that long: the usual small sheet costs nothing
        return frame
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    longest = frame.select(pl.col(text).str.len_bytes().max()).row(0) if text else ()
    long = [column for column, size in zip(text, longest, strict=True) if (size or 0) > MAX_CELL_BYTES]
    if not long:
        return frame
    return frame.with_columns(
        pl.when(pl.col(c).str.len_bytes() > MAX_CELL_BYTES)
        .then(pl.concat_str(pl.col(c).str.slice(0, _CUT_KEEP), pl.lit("... [cell of "),
                            pl.col(c).str.len_bytes().cast(pl.String), pl.lit(" bytes cut; more than the "),
                            pl.lit(f"{MAX_CELL_BYTES} accepted]")))
        .otherwise(pl.col(c)).alias(c) for c in long)


def _filled(cell: str | None) -> bool:
    return cell is not None and not cell.isspace() and cell != ""


# --- CSV -------------------------------------------------------------------------------------------------------


def _read_csv(path: Path, data: bytes | None, size: int, name: str) -> RawSheet:
    if data is None or size > SMALL_CSV_BYTES:
        return _read_big_csv(path, data, name)  # Polars: no per-cell Python
    text = _decode(data)
    first_line = text.lstrip("\r\n").split("\n", 1)[0]
    _check_width(name, max(first_line.count(d) for d in _DELIMITERS) + 1)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text)))
    except csv.Error as exc:
        raise Unreadable(f"the CSV cannot be parsed ({exc}); export it again as CSV UTF-8") from exc
    # zip_longest transposes rows into columns, padding short rows with None (a missing trailing cell).
    columns = [list(column) for column in itertools.zip_longest(*rows)]
    return _sheet_from_columns(name, columns)


def _refuse_binary(data: bytes) -> None:
    sample = data[:4096]
    if sample.count(b"\x00") * 10 > len(sample):
        raise Unreadable("the file is not a text CSV (it contains binary data: NUL bytes; UTF-16 without a byte "
                         "order mark looks like this too); export it again as CSV UTF-8")


def _from_utf16(data: bytes) -> bytes:
    try:
        return data.decode("utf-16").encode("utf-8")
    except UnicodeError as exc:
        raise Unreadable(f"the CSV starts with a UTF-16 byte order mark but is not valid UTF-16 ({exc}); "
                         f"export it again as CSV UTF-8") from exc


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _from_utf16(data).decode("utf-8")
    _refuse_binary(data)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _delimiter(text: str) -> str:
    first_line = text.lstrip("\r\n").split("\n", 1)[0]
    counts = [first_line.count(d) for d in _DELIMITERS]
    return _DELIMITERS[counts.index(max(counts))] if max(counts) > 0 else ","


def _read_big_csv(path: Path, data: bytes | None, name: str) -> RawSheet:
    data = data if data is not None else path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        data = _from_utf16(data)
    _refuse_binary(data)
    line_end = data.find(b"\n")
    first_line = data[:line_end] if line_end >= 0 else data
    _check_width(name, max(first_line.count(d.encode()) for d in _DELIMITERS) + 1)
    options = dict(has_header=False, infer_schema=False, truncate_ragged_lines=True,
                   separator=_delimiter(data[:65536].decode("utf-8", "replace")))
    try:
        try:
            frame = pl.read_csv(data, encoding="utf8", **options)
        except pl.exceptions.ComputeError:  # not UTF-8: Windows-1252, as for small files
            frame = pl.read_csv(data.decode("cp1252", errors="replace").encode("utf-8"), **options)
    except pl.exceptions.PolarsError as exc:
        raise Unreadable(f"the CSV cannot be parsed ({exc}); export it again as CSV UTF-8") from exc
    return _sheet_from_frame(name, frame)
