"""The workbook guard bounds calamine's sheet box whatever the XML's spelling, and lets real workbooks through.

Each hostile variant below, handed to calamine, aborts the process (a failed allocation of a 17-billion-cell box);
the guard must refuse it, with the cell to delete. The scan's fast path and its windowed full scan are both
exercised, and which workbooks are scanned before calamine reads them.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path
from unittest.mock import patch

import fastexcel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from isal import isal_zlib

from jc_pipeline.lib import calamine
from jc_pipeline.lib.ingest import sheet_extent, workbook_guard
from jc_pipeline.lib.ingest.unreadable import Unreadable
from jc_pipeline_tests.reliability_support import (SHEET_HEAD, SHEET_MEMBER, far_cells_xml, rewritten_zip,
                                                   small_workbook, with_sheet_xml)

FAR = "XFD1048576"


def sheet(body: bytes, head: bytes = SHEET_HEAD) -> bytes:
    return head + b"<sheetData>" + body + b"</sheetData></worksheet>"


def guard(workbook: bytes) -> None:
    workbook_guard.refuse_hostile_workbook(Path("w.xlsx"), workbook, workbook[:8])


def workbook_with(xml: bytes) -> bytes:
    return with_sheet_xml(small_workbook({"arrests": [["year"]]}), xml)


def relocated(xml: bytes, target: str) -> bytes:
    """A workbook whose relationships point its sheet at ``xl/<target>`` (calamine follows them)."""
    source = zipfile.ZipFile(io.BytesIO(small_workbook({"arrests": [["year"]]})))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == SHEET_MEMBER:
                continue
            if info.filename == "xl/_rels/workbook.xml.rels":
                data = data.replace(b"worksheets/sheet1.xml", target.encode())
            archive.writestr(info.filename, data)
        archive.writestr(f"xl/{target}", xml)
    return out.getvalue()


PREFIXED_HEAD = SHEET_HEAD.replace(b"<worksheet ", b'<worksheet xmlns:x="http://schemas.openxmlformats.org/'
                                                 b'spreadsheetml/2006/main" ')
HOSTILE = {
    "lower-case letters": sheet(b'<row r="1"><c r="a1"><v>1</v></c><c r="xfd1048576"><v>1</v></c></row>'),
    "single quotes": sheet(b"<row r='1'><c r='A1'><v>1</v></c><c r='XFD1048576'><v>1</v></c></row>"),
    "spaces around =": sheet(b'<row r="1"><c r = "A1"><v>1</v></c><c\nr\t=\n"XFD1048576"><v>1</v></c></row>'),
    "r not first": sheet(b'<row r="1"><c r="A1"><v>1</v></c><c s="0" r="XFD1048576"><v>1</v></c></row>'),
    "'>' inside a value": sheet(b'<row r="1"><c r="A1"><v>1</v></c><c s=">" r="XFD1048576"><v>1</v></c></row>'),
    "namespace prefix": sheet(b'<x:row r="1"><x:c r="A1"><x:v>1</x:v></x:c><x:c r="XFD1048576"><x:v>1</x:v>'
                              b'</x:c></x:row>', PREFIXED_HEAD),
    # Cells without a position go right of the previous one: 20,000 of them on the last row.
    "unplaced cells": sheet(b'<row r="1"><c r="A1"><v>1</v></c></row><row r="1048576">'
                            + b"<c s='x r=\"A1\"'><v>1</v></c>" * 20_000 + b"</row>"),
    # ... and rows without a position one below the previous row: past Excel's last row.
    "unplaced rows": sheet(b'<row r="1"><c r="A1"><v>1</v></c></row><row r="1048576"><c r="A1048576"><v>1</v>'
                           b'</c></row>' + b"<row><c><v>1</v></c></row>" * 3),
}


@pytest.mark.parametrize("xml", HOSTILE.values(), ids=HOSTILE.keys())
def test_far_cells_are_refused_however_they_are_spelled(xml):
    with pytest.raises(Unreadable, match="spans|beyond Excel's last column"):
        guard(workbook_with(xml))


@pytest.mark.parametrize("target", ["media/image9.png", "worksheets/../data/cells.bin"])
def test_every_part_is_scanned_wherever_the_relationships_point(target):
    far = sheet(b'<row r="1"><c r="A1"><v>1</v></c><c r="%s"><v>1</v></c></row>' % FAR.encode())
    with pytest.raises(Unreadable, match="spans 16,384 columns x 1,048,576 rows"):
        guard(relocated(far, target))


def test_a_relocated_sheet_is_really_read_by_calamine():
    """Why every part is scanned: calamine reads a sheet from wherever the relationships say."""
    small = sheet(b'<row r="1"><c r="A1"><v>7</v></c></row>')
    workbook = relocated(small, "media/image9.png")
    guard(workbook)
    frame = fastexcel.read_excel(workbook).load_sheet(0, header_row=None).to_polars()
    assert frame.rows() == [(7.0,)]


LEGIT = {
    "xlsxwriter": lambda: small_workbook({"arrests": [["year", "month", "value"], [2023, 1, 5]], "b": [["x"]]}),
    "r not first": lambda: workbook_with(sheet(b''.join(b'<row r="%d"><c t="n" r="A%d"><v>1</v></c></row>' % (i, i)
                                                        for i in range(1, 300)))),
    # 20,000 rows: references with five digits leave the fast path; the full bound is 3 x 20,001.
    "20,000 rows": lambda: small_workbook({"arrests": [["year", "month", "value"]]
                                                      + [[2023, 1, i] for i in range(20_000)]}),
    "no positions at all": lambda: workbook_with(sheet(b"<row><c t='inlineStr'><is><t>year</t></is></c></row>"
                                                       b"<row><c><v>2023</v></c></row>" * 50)),
    "namespace prefix": lambda: workbook_with(sheet(b'<x:row r="1"><x:c r="A1"><x:v>1</x:v></x:c></x:row>',
                                                    PREFIXED_HEAD)),
}


@pytest.mark.parametrize("build", LEGIT.values(), ids=LEGIT.keys())
@pytest.mark.parametrize("windows", [False, True], ids=["whole", "windows"])
def test_real_workbooks_pass(build, windows, monkeypatch):
    if windows:
        small_windows(monkeypatch)
    guard(build())


def small_windows(monkeypatch) -> None:
    """Parts over 512 bytes are inflated in 100-byte pieces and scanned in windows of about 512 bytes."""
    monkeypatch.setattr(sheet_extent, "SCAN_CHUNK", 512)
    monkeypatch.setattr(workbook_guard, "_PIECE", 100)


@pytest.mark.parametrize("ref", [FAR, "ZZZZ99999999"])
def test_windows_find_far_cells_too(ref, monkeypatch):
    small_windows(monkeypatch)
    rows = b"".join(b'<row r="%d"><c r="A%d"><v>1</v></c></row>' % (i, i) for i in range(1, 100))
    with pytest.raises(Unreadable, match="spans|beyond Excel's last column"):
        guard(workbook_with(sheet(rows + b'<row r="100"><c r="%s"><v>1</v></c></row>' % ref.encode())))


def test_a_part_without_any_tag_end_is_refused(monkeypatch):
    small_windows(monkeypatch)
    with pytest.raises(Unreadable, match="without any XML tag"):
        guard(workbook_with(SHEET_HEAD + b"<sheetData><row r='1'><c r='A1'><is><t>" + b"x" * 2000 + b"</t></is>"
                            b"</c></row></sheetData></worksheet>"))


def test_a_part_running_past_its_declared_size_is_refused():
    """The directory declares (and the CRC matches) a harmless start; the stream goes on with a far cell, which
    zipfile would never show (it stops at the declared size) but calamine's zip reader inflates."""
    start = SHEET_HEAD + b'<sheetData><row r="1"><c r="A1"><v>1</v></c></row>'
    rest = b'<row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData></worksheet>'
    workbook = bytearray(workbook_with(start + rest))
    info = zipfile.ZipFile(io.BytesIO(bytes(workbook))).getinfo(SHEET_MEMBER)
    central = bytes(workbook).rindex(SHEET_MEMBER.encode()) - 46  # the directory entry, after every part
    for crc_at, size_at in ((info.header_offset + 14, info.header_offset + 22), (central + 16, central + 24)):
        struct.pack_into("<L", workbook, crc_at, zlib.crc32(start))
        struct.pack_into("<L", workbook, size_at, len(start))
    assert zipfile.ZipFile(io.BytesIO(bytes(workbook))).read(SHEET_MEMBER) == start  # zipfile sees no problem
    with pytest.raises(Unreadable, match="holds more than the 183 bytes its zip directory declares"):
        guard(bytes(workbook))


def recompressed(flag_bits: int, compress_type: int) -> bytes:
    """The small workbook with every part stored under another compression method and general-purpose flags."""
    source = zipfile.ZipFile(io.BytesIO(small_workbook({"arrests": [["year"]]})))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            copy = zipfile.ZipInfo(info.filename, info.date_time)
            copy.compress_type = compress_type
            target.writestr(copy, source.read(info))
    data = bytearray(out.getvalue())
    if flag_bits:  # set the flag in every local header and central directory entry
        for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            at = data.find(signature)
            while at >= 0:
                data[at + offset] |= flag_bits
                at = data.find(signature, at + 4)
    return bytes(data)


@pytest.mark.parametrize(("flag_bits", "method", "reason"), [
    (0, zipfile.ZIP_BZIP2, "uses compression method 12, which Excel never writes"),
    (0x1, zipfile.ZIP_DEFLATED, "is encrypted; remove the password"),
])
def test_parts_the_guard_cannot_inflate_are_refused_with_the_fix(flag_bits, method, reason):
    workbook = recompressed(flag_bits, method)
    with pytest.raises(Unreadable, match=reason):
        guard(workbook)
    with pytest.raises(Unreadable, match=reason):  # the zip directory shows it: refused before calamine reads it
        workbook_guard.screen_workbook(Path("w.xlsx"), workbook, workbook[:8])


_XML_PIECES = st.sampled_from([b'<row r="7">', b'<c r="B12" t="s">', b"<v>", b"4711", b"</v></c>", b"</row>", b"\n"])


def zipped(data: bytes, method: int, level: int | None) -> tuple[bytes, zipfile.ZipInfo]:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method, compresslevel=level) as archive:
        archive.writestr(SHEET_MEMBER, data)
    return out.getvalue(), zipfile.ZipFile(io.BytesIO(out.getvalue())).getinfo(SHEET_MEMBER)


@settings(max_examples=80, deadline=None)
@given(data=st.lists(_XML_PIECES, max_size=3000).map(b"".join) | st.binary(max_size=20_000),
       method=st.sampled_from([zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED]), level=st.sampled_from([1, 6, 9]),
       piece=st.integers(1, 5000), raw_read=st.integers(1, 5000))
def test_a_part_inflates_to_its_bytes_whatever_the_piece_sizes(data, method, level, piece, raw_read):
    """ISA-L may hold output back past the piece limit where zlib leaves input unread: every split of input and
    output must give the part's exact bytes (compared with zipfile's zlib), nothing dropped or repeated."""
    workbook, info = zipped(data, method, level)
    with patch.object(workbook_guard, "_PIECE", piece), patch.object(workbook_guard, "_RAW_READ", raw_read):
        pieces = list(workbook_guard._inflate(io.BytesIO(workbook), info))
    assert b"".join(pieces) == zipfile.ZipFile(io.BytesIO(workbook)).read(SHEET_MEMBER) == data
    assert all(0 < len(p) <= piece for p in pieces) or method == zipfile.ZIP_STORED


@settings(max_examples=60, deadline=None)
@given(data=st.lists(_XML_PIECES, min_size=50, max_size=2000).map(b"".join), flip=st.integers(0, 10**6),
       piece=st.integers(1, 5000))
def test_a_damaged_part_is_refused_or_read_right_never_read_wrong(data, flip, piece):
    """A flipped bit in the compressed stream ends in an error (damaged stream, wrong size or CRC), not in other
    bytes than the part's and not in a loop. (A flip in the padding bits after the stream's last block changes
    nothing: then the part reads right.)"""
    workbook, info = zipped(data, zipfile.ZIP_DEFLATED, 6)
    damaged = bytearray(workbook)
    start = info.header_offset + 30 + len(info.filename.encode())
    damaged[start + flip % info.compress_size] ^= 0x10
    with patch.object(workbook_guard, "_PIECE", piece):
        try:
            read = b"".join(workbook_guard._inflate(io.BytesIO(bytes(damaged)), info))
        except (zipfile.BadZipFile, isal_zlib.error):
            return
    assert read == data


# ---- listing the parts: the plain directory reader against zipfile -------------------------------------------

SHARED_WORKBOOKS = sorted((Path(__file__).resolve().parents[2] / "shared/fixtures").rglob("*.xlsx"))


def listed_by_zipfile(data: bytes) -> list:
    return workbook_guard._zip_directory(io.BytesIO(data))


def rezipped(*, name: str | None = None, sheet_xml: bytes | None = None, **shape: bytes) -> bytes:
    """The small workbook written again by zipfile (see :func:`rewritten_zip` for ``shape``), with one more part
    named ``name`` or another worksheet XML."""
    parts = {**({name: b"<x/>"} if name else {}), **({SHEET_MEMBER: sheet_xml} if sheet_xml is not None else {})}
    return rewritten_zip(small_workbook({"arrests": [["year"], [2023]]}), parts=parts, **shape)


def patched_name(data: bytes, name: bytes, new: bytes, *, utf8: bool = False) -> bytes:
    """``data`` with the central directory's copy of the part name ``name`` replaced by ``new`` (same length),
    flagged as UTF-8 when ``utf8``."""
    patched = bytearray(data)
    at = data.rindex(name)  # the central directory comes after every part
    patched[at:at + len(name)] = new
    if utf8:
        patched[at - 46 + 9] |= 0x08  # bit 11 of the flags (their high byte)
    return bytes(patched)


PLAIN_SHAPES = {
    "xlsxwriter": lambda: small_workbook({"arrests": [["year", "value"], [2023, 5]]}),
    "zipfile": lambda: rezipped(),
    "a UTF-8 part name": lambda: rezipped(name="docProps/Übersicht.xml"),
    "a NUL in a part name": lambda: patched_name(rezipped(), b"docProps/app.xml", b"docProps/a\0p.xml"),
}
OTHER_SHAPES = {
    "an archive comment": {"comment": b"made by hand"},
    "extra fields": {"extra": struct.pack("<HH", 0xCAFE, 0)},
    "bytes before the archive": {"prefix": b"#!/bin/sh\n"},
}


@pytest.mark.parametrize("build", PLAIN_SHAPES.values(), ids=PLAIN_SHAPES.keys())
def test_the_usual_zips_are_listed_as_zipfile_lists_them(build):
    data = build()
    listed = workbook_guard._plain_directory(data)
    assert listed is not None and listed == listed_by_zipfile(data)
    guard(data)


@pytest.mark.parametrize("shape", OTHER_SHAPES.values(), ids=OTHER_SHAPES.keys())
def test_other_zips_are_left_to_zipfile_and_still_guarded(shape):
    data = rezipped(**shape)
    assert workbook_guard._plain_directory(data) is None
    assert len(listed_by_zipfile(data)) > 5
    guard(data)
    hostile = rezipped(**shape, sheet_xml=sheet(f'<row r="1"><c r="{FAR}"><v>1</v></c></row>'.encode()))
    assert workbook_guard._plain_directory(hostile) is None
    with pytest.raises(Unreadable, match="spans 16,384 columns"):  # the far cell is still found
        guard(hostile)


@pytest.mark.skipif(not SHARED_WORKBOOKS, reason="shared fixtures folder is absent")
def test_the_shared_workbooks_are_listed_as_zipfile_lists_them():
    plain = [workbook_guard._plain_directory(path.read_bytes()) for path in SHARED_WORKBOOKS]
    assert all(parts is not None for parts in plain)  # real files take the plain reader
    assert plain == [listed_by_zipfile(path.read_bytes()) for path in SHARED_WORKBOOKS]


def test_a_part_name_that_is_not_the_utf8_it_claims_is_refused_as_damage():
    data = patched_name(rezipped(), b"docProps/app.xml", b"docProps/\xffpp.xml", utf8=True)
    with pytest.raises(Unreadable, match="the workbook is damaged"):
        guard(data)


@settings(max_examples=150, deadline=None)
@given(at=st.integers(0, 10**6), value=st.integers(0, 255))
def test_a_damaged_directory_is_listed_as_zipfile_lists_it_or_left_to_zipfile(at, value):
    """Any byte of the central directory or its end record changed: the plain reader gives zipfile's list or
    none (zipfile then lists the zip or refuses it); it never lists what zipfile would not."""
    data = bytearray(rezipped())
    start = bytes(data).index(b"PK\x01\x02")
    data[start + at % (len(data) - start)] = value
    listed = workbook_guard._plain_directory(bytes(data))
    if listed is not None:
        assert listed == listed_by_zipfile(bytes(data))


OLE_HEADER = workbook_guard.OLE_MAGIC + bytes(504)


def test_a_zip_behind_other_bytes_is_guarded_as_calamine_opens_it():
    prefix = b"#!/bin/sh\n"
    assert fastexcel.read_excel(prefix + rezipped()).sheet_names == ["arrests"]  # calamine reads such files
    with pytest.raises(Unreadable, match="spans 16,384 columns"):
        guard(prefix + rezipped(sheet_xml=sheet(f'<row r="1"><c r="{FAR}"><v>1</v></c></row>'.encode())))


def test_a_zip_behind_an_xls_header_is_left_to_the_worker_which_dies_instead_of_the_run():
    """calamine tries an OLE file as .xls first and then as a zip: the guard does not check it as a zip (a legitimate
    .xls may hold one), so it reaches the worker, whose death on the far cell costs that file only."""
    cells = f'<row r="1"><c r="A1"><v>1</v></c><c r="{FAR}"><v>1</v></c></row>'
    far = OLE_HEADER + rezipped(sheet_xml=sheet(cells.encode()))
    guard(far)  # not refused
    with pytest.raises(calamine.WorkerDied):
        calamine.sheets_in_worker(far)


def test_an_xls_holding_a_zip_end_record_that_lists_nothing_is_left_to_calamine():
    not_a_zip = OLE_HEADER + b"PK\x05\x06 inside a cell, not a zip" + bytes(100)
    guard(not_a_zip)  # no zip to check: calamine's .xls reader decides
    with pytest.raises(Unreadable, match="the workbook is damaged"):
        guard(b"<html>" + not_a_zip[8:])  # without the .xls header it is a damaged zip


# ---- the scan a small workbook waits for -----------------------------------------------------------------------


def screen(workbook: bytes) -> bool:
    return workbook_guard.screen_workbook(Path("w.xlsx"), workbook, workbook[:8])


def never_inflated(monkeypatch) -> None:
    def inflate(source, info):
        raise AssertionError(f"{info.filename} inflated before calamine read the workbook")
    monkeypatch.setattr(workbook_guard, "_inflate", inflate)


def test_a_small_workbook_is_read_by_calamine_before_its_parts_are_scanned(monkeypatch):
    """Inflating and scanning every part was ~4 s of CPU of a full ingest of small, ordinary workbooks; calamine's
    worker bounds what a small zip can do, so the scan waits until calamine fails on it."""
    far = workbook_with(far_cells_xml(FAR))
    with monkeypatch.context() as patched:
        never_inflated(patched)
        assert screen(small_workbook({"arrests": [["year", "month", "value"], [2023, 1, 5]]})) is True
        assert screen(far) is True
    with pytest.raises(Unreadable, match="spans 16,384 columns x 1,048,576 rows"):
        guard(far)  # what the reader runs when calamine's worker died on it


def test_a_workbook_over_the_small_size_is_scanned_before_calamine_reads_it(monkeypatch):
    far = workbook_with(far_cells_xml(FAR))
    monkeypatch.setattr(workbook_guard, "SCAN_LATER_BYTES", len(far) - 1)
    with pytest.raises(Unreadable, match="spans 16,384 columns x 1,048,576 rows"):
        screen(far)
    monkeypatch.setattr(workbook_guard, "SCAN_LATER_BYTES", len(far))
    assert screen(far) is True


def with_repeated_sheet(workbook: bytes, copies: int) -> bytes:
    """``workbook`` whose zip directory lists its sheet ``copies`` more times, every copy pointing at the same
    compressed bytes: overlapping parts, as zip bombs reuse one compressed kernel."""
    end = workbook.rindex(b"PK\x05\x06")
    head = workbook_guard._END
    signature, disk, directory_disk, here, total, size, offset, comment = head.unpack_from(workbook, end)
    directory, at = workbook[offset:offset + size], 0
    while True:
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", directory, at + 28)
        length = 46 + name_length + extra_length + comment_length
        if directory[at + 46:at + 46 + name_length] == SHEET_MEMBER.encode():
            entry = directory[at:at + length]
            break
        at += length
    return (workbook[:end] + entry * copies
            + head.pack(signature, disk, directory_disk, here + copies, total + copies, size + len(entry) * copies,
                        offset, comment))


def test_a_small_zip_whose_parts_overlap_is_scanned_before_calamine_reads_it(monkeypatch):
    """Parts whose compressed sizes add up past the file reuse its bytes and could expand without the bound of the
    file's size: such a zip is scanned first, however small."""
    far = with_repeated_sheet(workbook_with(far_cells_xml(FAR)), 200)
    parts = workbook_guard._plain_directory(far)
    assert sum(info.compress_size for info in parts) > len(far) and len(far) <= workbook_guard.SCAN_LATER_BYTES
    with pytest.raises(Unreadable, match="spans 16,384 columns x 1,048,576 rows"):
        screen(far)
