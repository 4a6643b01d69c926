"""Builders of hostile files for the reliability tests: zip bombs, giant sheets, encrypted workbooks.

Every builder stays small in memory and fast: a zip bomb is written from one deflate block repeated (deflate
blocks ending in a full flush are byte-aligned and independent), never by materializing its expansion.
"""

from __future__ import annotations

import io
import resource
import struct
import time
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import xlsxwriter
import xlwt
from xlwt.CompoundDoc import XlsDoc

SHEET_HEAD = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
              b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">')
SHEET_MEMBER = "xl/worksheets/sheet1.xml"


@dataclass
class Budget:
    """What a block of code cost: wall seconds and growth of the process's peak RSS (MiB)."""

    seconds: float = 0.0
    peak_growth_mib: float = 0.0


@contextmanager
def bounded(seconds: float, peak_growth_mib: float = 300) -> Iterator[Budget]:
    """Assert the block finishes within ``seconds`` and grows the peak RSS by less than ``peak_growth_mib``.

    ``ru_maxrss`` is a high-water mark, so the growth is a lower bound of what the block used; a zip bomb or
    a giant sheet handed to calamine would raise it by gigabytes (or abort the process)."""
    budget = Budget()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    yield budget
    budget.seconds = time.perf_counter() - start
    budget.peak_growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert budget.seconds < seconds, f"took {budget.seconds:.1f} s, more than {seconds} s"
    assert budget.peak_growth_mib < peak_growth_mib, f"peak RSS grew {budget.peak_growth_mib:.0f} MiB"


def small_workbook(sheets: dict[str, list[list[object]]]) -> bytes:
    """An ordinary .xlsx (xlsxwriter) as bytes."""
    buffer = io.BytesIO()
    with xlsxwriter.Workbook(buffer) as workbook:
        for name, rows in sheets.items():
            sheet = workbook.add_worksheet(name)
            for r, row in enumerate(rows):
                for c, cell in enumerate(row):
                    if cell is not None:
                        sheet.write(r, c, cell)
    return buffer.getvalue()


def with_sheet_xml(workbook: bytes, xml: bytes, member: str = SHEET_MEMBER) -> bytes:
    """``workbook`` with the XML of one worksheet replaced (deflated by zipfile, sizes honest)."""
    return rewritten_zip(workbook, parts={member: xml})


def rewritten_zip(workbook: bytes, *, parts: dict[str, bytes] | None = None, comment: bytes = b"",
                  extra: bytes = b"", prefix: bytes = b"") -> bytes:
    """``workbook`` written again by zipfile, every part deflated with honest sizes: ``parts`` replaces the parts
    it names and adds new ones; ``comment`` is the archive comment, ``extra`` an extra field on every entry and
    ``prefix`` bytes before the archive."""
    changed = dict(parts or {})
    source = zipfile.ZipFile(io.BytesIO(workbook))
    entries = [(info, changed.pop(info.filename) if info.filename in changed else source.read(info))
               for info in source.infolist()]
    entries += [(zipfile.ZipInfo(name), data) for name, data in changed.items()]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in entries:
            entry = zipfile.ZipInfo(info.filename, info.date_time)
            entry.compress_type, entry.extra = zipfile.ZIP_DEFLATED, extra
            target.writestr(entry, data)
        target.comment = comment
    return prefix + out.getvalue()


def column_letters(number: int) -> str:
    """1 -> A, 27 -> AA, 16384 -> XFD."""
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def wide_sheet_xml(columns: int) -> bytes:
    """A sheet whose first row holds ``columns`` numeric cells (and declares that dimension)."""
    cells = b"".join(b'<c r="%s1"><v>1</v></c>' % column_letters(i).encode() for i in range(1, columns + 1))
    return (SHEET_HEAD + b'<dimension ref="A1:%s1"/><sheetData><row r="1">' % column_letters(columns).encode()
            + cells + b"</row></sheetData></worksheet>")


def far_cells_xml(far_ref: str = "XFD1048576") -> bytes:
    """Two cells, A1 and ``far_ref``: a few hundred bytes whose bounding box is Excel's whole grid."""
    row = int("".join(ch for ch in far_ref if ch.isdigit()))
    return (SHEET_HEAD + b'<sheetData><row r="1"><c r="A1"><v>1</v></c></row>'
            + b'<row r="%d"><c r="%s"><v>1</v></c></row></sheetData></worksheet>' % (row, far_ref.encode()))


def zip_bomb(expanded_mib: int = 1024, declared_size: int | None = None) -> bytes:
    """A valid-looking .xlsx whose worksheet XML expands to ``expanded_mib`` MiB of blanks (~1 MB on disk).

    ``declared_size`` makes the zip directory lie about the worksheet's size (the real expansion is the same).
    Built from one deflate block of 1 MiB of blanks repeated: nothing of the expansion is ever in memory."""
    chunk = b" " * (1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(SHEET_HEAD + b"<sheetData>") + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH) == block  # independent blocks
    tail_xml = b"</sheetData></worksheet>"
    tail = compressor.compress(tail_xml) + compressor.flush()
    crc = zlib.crc32(SHEET_HEAD + b"<sheetData>")
    for _ in range(expanded_mib):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(tail_xml, crc)
    size = len(SHEET_HEAD) + len(b"<sheetData>") + expanded_mib * len(chunk) + len(tail_xml)
    bomb = (SHEET_MEMBER, head + block * expanded_mib + tail, crc, declared_size or size)
    others = []
    with zipfile.ZipFile(io.BytesIO(small_workbook({"arrests": [["year", "month", "value"]]}))) as template:
        for info in template.infolist():
            if info.filename != SHEET_MEMBER:
                data = template.read(info)
                deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
                others.append((info.filename, deflater.compress(data) + deflater.flush(), zlib.crc32(data),
                               len(data)))
    return _raw_zip([bomb, *others])


def _raw_zip(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """A zip of pre-deflated members (name, raw deflate data, crc32, declared uncompressed size)."""
    out = io.BytesIO()
    directory = []
    for name, data, crc, size in members:
        encoded = name.encode()
        offset = out.tell()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size,
                              len(encoded), 0) + encoded)
        out.write(data)
        directory.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(data),
                                     size, len(encoded), 0, 0, 0, 0, 0, offset) + encoded)
    start = out.tell()
    out.write(b"".join(directory))
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), out.tell() - start, start, 0))
    return out.getvalue()


def encrypted_ooxml() -> bytes:
    """An OLE compound file holding an 'EncryptionInfo' stream: how Excel stores a password-protected .xlsx
    (xlwt's compound-document writer with the first directory entry after the root renamed)."""
    class Encrypted(XlsDoc):
        def _build_directory(self):
            super()._build_directory()
            name = "EncryptionInfo\x00".encode("utf-16-le")
            entry = name + b"\x00" * (64 - len(name)) + len(name).to_bytes(2, "little")
            self.dir_stream = self.dir_stream[:128] + entry + self.dir_stream[128 + 66:]

    buffer = io.BytesIO()
    Encrypted().save(buffer, b"\x00" * 4096)
    return buffer.getvalue()


def far_cells_xls(column: int = 0x3FFF) -> bytes:
    """A 6 KB .xls (BIFF8, xlwt) with a cell in A1 and one at ``column`` (0-based) of row 65,536: calamine's .xls
    reader allocates the box between them (column 16,384: 32 GiB) and aborts the process when that fails.

    xlwt refuses columns past 255, so the cell is written at column 255 and its RK record patched."""
    buffer = io.BytesIO()
    workbook = xlwt.Workbook()
    sheet = workbook.add_sheet("arrests")
    sheet.write(0, 0, "year")
    sheet.write(65535, 255, 7)
    workbook.save(buffer)
    data = bytearray(buffer.getvalue())
    record = struct.pack("<HHHH", 0x027E, 10, 65535, 255)  # RK: opcode, length, row, column
    at = data.index(record)
    struct.pack_into("<H", data, at + 6, column)
    return bytes(data)
