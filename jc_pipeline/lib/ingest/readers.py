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
"""

from __future__ import annotations

import csv
import io
import itertools
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import fastexcel
import polars as pl

SMALL_CSV_BYTES = 1024 * 1024
#: A workbook whose parts expand to more than this is refused (zip bomb).
MAX_UNCOMPRESSED_BYTES = 1024 * 1024 * 1024
EXTENSIONS = (".xlsx", ".xls", ".csv")

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_OOXML = "EncryptionInfo".encode("utf-16-le")
_DELIMITERS = (",", ";", "\t")


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
    if head == _OLE_MAGIC:
        body = data if data is not None else path.read_bytes()[:1 << 20]
        if _ENCRYPTED_OOXML in body:
            raise Unreadable("the workbook is password-protected (encrypted); remove the password "
                             "(File > Info > Protect Workbook) and deliver it again")
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data) if data is not None else path) as archive:
                expanded = sum(info.file_size for info in archive.infolist())
        except zipfile.BadZipFile as exc:
            raise Unreadable(f"the workbook is damaged ({exc}); save it again from Excel and deliver it again") from exc
        if expanded > MAX_UNCOMPRESSED_BYTES:
            raise Unreadable(f"the workbook expands to {expanded / 2**30:.1f} GiB, more than the "
                             f"{MAX_UNCOMPRESSED_BYTES / 2**30:.0f} GiB accepted; split it into smaller files")


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
    height = max((len(column) for column in columns), default=0)
    for index in range(height):
        if any(_filled(column[index]) for column in columns if index < len(column)):
            header = tuple(column[index] if index < len(column) else None for column in columns)
            body = tuple(column[index + 1:] for column in columns)
            return RawSheet(name, index + 1, header, body, height - index - 1)
    return RawSheet(name, 0, (), (), 0)


def _filled(cell: str | None) -> bool:
    return cell is not None and not cell.isspace() and cell != ""


# --- CSV -------------------------------------------------------------------------------------------------------


def _read_csv(path: Path, data: bytes | None, size: int, name: str) -> RawSheet:
    if data is None or size > SMALL_CSV_BYTES:
        return _read_big_csv(path, data, name)  # Polars: no per-cell Python
    text = _decode(data)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text)))
    except csv.Error as exc:
        raise Unreadable(f"the CSV cannot be parsed ({exc}); export it again as CSV UTF-8") from exc
    # zip_longest transposes rows into columns, padding short rows with None (a missing trailing cell).
    columns = [list(column) for column in itertools.zip_longest(*rows)]
    return _sheet_from_columns(name, columns)


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if b"\x00" in data[:4096]:
        raise Unreadable("the file is not a text CSV (it contains binary data); export it again as CSV UTF-8")
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
        data = data.decode("utf-16").encode("utf-8")
    if b"\x00" in data[:4096]:
        raise Unreadable("the file is not a text CSV (it contains binary data); export it again as CSV UTF-8")
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
