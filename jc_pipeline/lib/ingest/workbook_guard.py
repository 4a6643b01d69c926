"""Refusing hostile workbooks with a reason: password protection, zip bombs and giant sheets.

calamine (fastexcel's reader) aborts its process, not with an exception, when a workbook makes it allocate too
much. It reads in a worker process (:mod:`jc_pipeline.lib.calamine`), so such a file costs only itself; but a
worker that died says little, and a zip bomb would keep it busy for minutes. So every ``.xlsx`` is checked here,
part by part, in bounded memory, and refused with a reason the agency can act on. :func:`screen_workbook` runs
before calamine reads the file; the scan of the parts' cells waits in a small zip (below), and
:func:`refuse_hostile_workbook` runs all of it:

* A small zip (at most ``SCAN_LATER_BYTES``, listed by the plain reader below, its parts' compressed sizes adding
  up to no more than the file) is read by calamine before its parts are inflated and scanned here: deflate
  expands at most 1,032 times, so whatever its directory declares it holds at most ~258 MiB of XML, a few seconds
  of the worker's time at worst, within the worker's bounds. Its scan runs when calamine fails on it (the worker
  died, or calamine's own error) or returns a sheet beyond Excel's limits, and its reason then replaces the
  worker's. The scan was ~4 s of CPU of a full ingest at 3,000 agencies, where every workbook is small and
  ordinary (docs/decisions.md, "Small workbooks are scanned only when calamine fails on them").

* Zip bombs: the zip directory must declare at most ``MAX_UNCOMPRESSED_BYTES`` in total, and no part larger than
  ``RATIO_FLOOR_BYTES`` may expand more than ``MAX_RATIO`` times.
* Every file whose last 64 KiB hold a zip end record is checked as a zip, whatever its first bytes: calamine
  opens any file holding a zip as .xlsx (bytes before the archive). An .xls (OLE) file is not checked as a zip:
  calamine tries it as .xls first and as a zip after, so it is read in the worker whichever it turns out to be
  (a legitimate .xls may hold an embedded zip that is not contiguous in the file, which a zip check would refuse).
* The parts are listed from the zip's central directory by a plain reader of its usual shape (what Excel and
  the libraries write: no comment, no zip64, no extra fields, nothing before the archive), at a third to half
  of :mod:`zipfile`'s cost (3,000 bench workbooks: 0.08-0.13 s against 0.23 s); any other zip is listed by
  :mod:`zipfile` itself, so both give the same list.
* Every part is inflated here from the zip's raw data and must hold exactly the size its directory entry
  declares, with a matching CRC. Not through :mod:`zipfile`: it stops at the declared size, while calamine's zip
  reader inflates the whole stream, so a part running past its declared size would hide cells from the scan. The
  inflate is ISA-L's (:mod:`isal`): zlib's format at 1.6-1.8 times zlib's speed (measured on the bench workbooks).
  Only stored and deflated parts (what Excel writes) are read; encrypted parts are refused.
* Every part, not only those named like worksheets, goes through :func:`sheet_extent.check_extent`: the
  workbook's relationships may point a sheet at any part, and calamine follows them.
* What the scan cannot vouch for (a file calamine may read as .xls, .xlsb or .ods) is left to the worker's
  bounds, not refused.
* Password-protected workbooks are OLE compound files (magic ``D0 CF 11 E0``) holding a stream named
  ``EncryptionInfo``; such a file whose first MiB holds that name in UTF-16-LE is refused (a heuristic, which
  also catches encrypted .xls saved by recent Excel versions). Other .xls files are not scanned (calamine reads
  them in its worker).
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

from isal import isal_zlib

from jc_pipeline.lib.ingest.sheet_extent import check_extent
from jc_pipeline.lib.ingest.unreadable import Unreadable
from jc_pipeline.lib.regular_files import open_regular, reopen_failed

#: A workbook whose parts expand to more than this is refused (zip bomb).
MAX_UNCOMPRESSED_BYTES = 1024 * 1024 * 1024
#: A workbook part bigger than RATIO_FLOOR_BYTES expanding more than MAX_RATIO times is refused (zip bomb;
#: real sheet XML compresses 5-30 times, repetitive XML rarely above 100).
MAX_RATIO = 200
RATIO_FLOOR_BYTES = 8 * 1024 * 1024
#: A zip of at most this many bytes is scanned only when calamine fails on it (see the module docstring).
SCAN_LATER_BYTES = 256 * 1024
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"

_ENCRYPTED_OOXML = "EncryptionInfo".encode("utf-16-le")
#: A zip local file header: signature, 22 bytes, name length, extra field length; the part's data follows.
_LOCAL_HEADER = struct.Struct("<4s22xHH")
#: Compressed bytes read at a time, and the most inflated at a time.
_RAW_READ = 1024 * 1024
_PIECE = 1024 * 1024
#: The end of central directory record: signature, this disk, the directory's disk, its entries on this disk and
#: in all, its size and offset, the comment's length.
_END = struct.Struct("<4sHHHHIIH")
#: A central directory entry: signature, version needed (its low byte; zipfile reads the high byte as reserved),
#: flags, method, CRC, compressed and uncompressed sizes, name, extra field and comment lengths, first disk, local
#: header offset.
_ENTRY = struct.Struct("<4s2xBxHH4xIIIHHHH6xI")
_ZIP64_LOCATOR = b"PK\x06\x07"
_END_SIGNATURE = b"PK\x05\x06"
#: The end record lies in the last 22 bytes of a zip plus its comment (at most 64 KiB).
_END_SEARCH = _END.size + 65535
#: The highest "version needed to extract" zipfile reads (it raises NotImplementedError above it).
_MAX_VERSION = zipfile.MAX_EXTRACT_VERSION


class _Part(NamedTuple):
    """What the guard needs of a zip directory entry (the fields of :class:`zipfile.ZipInfo` of the same names)."""

    filename: str
    flag_bits: int
    compress_type: int
    CRC: int
    compress_size: int
    file_size: int
    header_offset: int


def screen_workbook(path: Path, data: bytes | None, head: bytes) -> bool:
    """The checks before calamine reads the workbook: :func:`refuse_hostile_workbook`, except that the scan of a
    small zip's parts is left for later (see the module docstring). Returns whether it was: then call
    :func:`refuse_hostile_workbook` when calamine fails on the workbook or returns a sheet beyond the limits."""
    return _guard(path, data, head, scan_small=False)


def refuse_hostile_workbook(path: Path, data: bytes | None, head: bytes) -> None:
    """Raise :class:`Unreadable` for password-protected workbooks, zip bombs and giant sheets (see the module
    docstring). ``data``: the file's bytes when already in memory; ``head``: its first 8 bytes."""
    _guard(path, data, head, scan_small=True)


def _guard(path: Path, data: bytes | None, head: bytes, *, scan_small: bool) -> bool:
    try:
        return _checks(path, data, head, scan_small=scan_small)
    except OSError as exc:  # not the file hashed any more: swapped for a symlink or a pipe since
        raise Unreadable(reopen_failed(exc)) from exc


def _checks(path: Path, data: bytes | None, head: bytes, *, scan_small: bool) -> bool:
    if head == OLE_MAGIC:
        if data is not None:
            body = data
        else:
            with open_regular(path) as handle:
                body = handle.read(1 << 20)
        if _ENCRYPTED_OOXML in body:
            raise Unreadable("the workbook is password-protected (encrypted); remove the password "
                             "(File > Info > Protect Workbook) and deliver it again")
        return False  # calamine tries .xls first, and the zip formats after: the worker bounds it, whichever
    # calamine opens any file holding a zip as .xlsx, whatever its first bytes (bytes before the archive), so every
    # file whose tail holds a zip end record is checked as a zip too.
    if not (head[:4] == ZIP_MAGIC or _has_zip_end(path, data)):
        return False
    try:
        with io.BytesIO(data) if data is not None else open_regular(path) as source:
            plain = _plain_directory(data) if data is not None else None
            parts = plain or _zip_directory(source)
            _check_directory(parts)
            if not scan_small and plain is not None and _small(data, plain):
                return True
            for info in parts:
                check_extent(info.filename, info.file_size, _inflate(source, info))
    except (zipfile.BadZipFile, struct.error, isal_zlib.error, UnicodeDecodeError) as exc:
        raise Unreadable(f"the workbook is damaged ({exc}); save it again from Excel and deliver it again") from exc
    except (zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, OSError) as exc:
        raise Unreadable(f"the workbook cannot be unpacked ({exc}); save it again from Excel as .xlsx and "
                         f"deliver it again") from exc
    return False


def _small(data: bytes, parts: list[_Part]) -> bool:
    # calamine's zip reader reads at most a part's compressed size from its directory entry: parts whose sizes add
    # up to no more than the file expand at most 1,032 times the file however they overlap or lie.
    return len(data) <= SCAN_LATER_BYTES and sum(info.compress_size for info in parts) <= len(data)


def _has_zip_end(path: Path, data: bytes | None) -> bool:
    if data is None:
        with open_regular(path) as handle:
            handle.seek(max(0, handle.seek(0, io.SEEK_END) - _END_SEARCH))
            data = handle.read()
    return _END_SIGNATURE in data[-_END_SEARCH:]


def _check_directory(parts: list[_Part]) -> None:
    """What the zip directory shows: zip bombs declaring their size, encrypted parts, compression Excel never
    writes."""
    expanded = sum(info.file_size for info in parts)
    if expanded > MAX_UNCOMPRESSED_BYTES:
        raise Unreadable(f"the workbook expands to {expanded / 2**30:.1f} GiB, more than the "
                         f"{MAX_UNCOMPRESSED_BYTES / 2**30:.0f} GiB accepted (a zip bomb or a giant sheet); "
                         f"split it into smaller files")
    for info in parts:
        if info.file_size > RATIO_FLOOR_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            ratio = info.file_size // max(info.compress_size, 1)
            raise Unreadable(f"the workbook part {info.filename!r} expands {ratio:,} times ({info.compress_size:,} to "
                             f"{info.file_size:,} bytes), more than the {MAX_RATIO} times real workbooks do (a zip "
                             f"bomb); save it again from Excel and deliver it again")
        if info.flag_bits & 0x1:
            raise Unreadable(f"the workbook part {info.filename!r} is encrypted; remove the password and deliver it "
                             f"again")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise Unreadable(f"the workbook part {info.filename!r} uses compression method {info.compress_type}, "
                             f"which Excel never writes; save it again from Excel as .xlsx and deliver it again")


def _zip_directory(source: BinaryIO) -> list[_Part]:
    with zipfile.ZipFile(source) as archive:
        return [_Part(i.filename, i.flag_bits, i.compress_type, i.CRC, i.compress_size, i.file_size, i.header_offset)
                for i in archive.infolist()]


def _plain_directory(data: bytes) -> list[_Part] | None:
    """The parts of a zip of the usual shape (see the module docstring), read as :mod:`zipfile` reads them; None
    for any other zip (or damage), which :func:`_zip_directory` then lists or refuses."""
    end = len(data) - _END.size
    if end < 0 or data[end - 20:end - 16] == _ZIP64_LOCATOR:
        return None
    signature, disk, directory_disk, here, total, size, offset, comment = _END.unpack_from(data, end)
    if signature != _END_SIGNATURE or comment or disk or directory_disk or here != total or offset + size != end:
        return None
    parts = []
    at = offset
    for _ in range(total):
        if at + _ENTRY.size > end:
            return None
        (signature, version, flags, method, crc, compressed, expanded, name_length, extra_length, comment_length,
         first_disk, header_offset) = _ENTRY.unpack_from(data, at)
        if (signature != b"PK\x01\x02" or version > _MAX_VERSION or extra_length or comment_length or first_disk
                or 0xFFFFFFFF in (compressed, expanded, header_offset)):
            return None
        at += _ENTRY.size
        name = data[at:at + name_length].decode("utf-8" if flags & 0x800 else "cp437")
        # zipfile.ZipInfo cuts a name at its first NUL.
        parts.append(_Part(name.split("\0", 1)[0], flags, method, crc, compressed, expanded, header_offset))
        at += name_length
    return parts if at == end else None


def _inflate(source: BinaryIO, info: _Part) -> Iterator[bytes]:
    """The part's bytes in pieces of at most ``_PIECE``, checked against its directory entry (see the module
    docstring): never more than one byte past the declared size is inflated. Stored or deflated parts only, not
    encrypted (:func:`_check_directory`)."""
    source.seek(info.header_offset)
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(source.read(_LOCAL_HEADER.size))
    if signature != ZIP_MAGIC:
        raise zipfile.BadZipFile(f"no local header for {info.filename!r}")
    source.seek(info.header_offset + _LOCAL_HEADER.size + name_length + extra_length)
    inflater = isal_zlib.decompressobj(-isal_zlib.MAX_WBITS) if info.compress_type == zipfile.ZIP_DEFLATED else None
    size = crc = 0
    unread, raw = info.compress_size, b""
    while True:
        if not raw and unread:
            raw = source.read(min(unread, _RAW_READ))
            if not raw:
                raise zipfile.BadZipFile(f"the part {info.filename!r} is truncated")
            unread -= len(raw)
        limit = min(_PIECE, info.file_size + 1 - size)
        # ISA-L may take in all of ``raw`` and keep output beyond ``limit`` for the next call (zlib leaves such
        # input in unconsumed_tail): so the loop ends on the stream's end or on a call that yields nothing.
        given = len(raw)
        piece, raw = (inflater.decompress(raw, limit), inflater.unconsumed_tail) if inflater else (raw, b"")
        if not piece and given and len(raw) == given:  # no progress: never spin on a hostile stream
            raise zipfile.BadZipFile(f"the part {info.filename!r} cannot be inflated")
        if size + len(piece) > info.file_size:  # the data runs past the declared size
            crc = isal_zlib.crc32(piece[:info.file_size - size], crc)
            _refuse_part(info, crc, "holds more than the {:,} bytes its zip directory declares")
        size, crc = size + len(piece), isal_zlib.crc32(piece, crc)
        if piece:
            yield piece
        if (inflater is not None and inflater.eof) or not (piece or raw or unread):
            break
    if size != info.file_size or (inflater is not None and not inflater.eof):
        _refuse_part(info, crc, "is truncated: it holds fewer than the {:,} bytes its zip directory declares")
    if crc != info.CRC:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")


def _refuse_part(info: _Part, crc: int, problem: str) -> None:
    # A part whose declared start already fails its CRC is damaged in the ordinary way; say it the same way.
    if crc != info.CRC:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")
    raise zipfile.BadZipFile(f"the part {info.filename!r} " + problem.format(info.file_size))
