"""Refusing hostile workbooks before calamine reads them: password protection, zip bombs and giant sheets.

calamine (fastexcel's reader) aborts the whole process, not with an exception, when a workbook makes it
allocate too much; so every ``.xlsx`` is checked here first, part by part, in bounded memory:

* Zip bombs: the zip directory must declare at most ``MAX_UNCOMPRESSED_BYTES`` in total, and no part larger than
  ``RATIO_FLOOR_BYTES`` may expand more than ``MAX_RATIO`` times.
* Every part is inflated here from the zip's raw data and must hold exactly the size its directory entry
  declares, with a matching CRC. Not through :mod:`zipfile`: it stops at the declared size, while calamine's zip
  reader inflates the whole stream, so a part running past its declared size would hide cells from the scan. The
  inflate is ISA-L's (:mod:`isal`): zlib's format at 1.6-1.8 times zlib's speed (measured on the bench workbooks).
  Only stored and deflated parts (what Excel writes) are read; encrypted parts are refused.
* Every part, not only those named like worksheets, goes through :func:`sheet_extent.check_extent`: the
  workbook's relationships may point a sheet at any part, and calamine follows them.
* Password-protected workbooks are OLE compound files (magic ``D0 CF 11 E0``) holding a stream named
  ``EncryptionInfo``; such a file whose first MiB holds that name in UTF-16-LE is refused (a heuristic, which
  also catches encrypted .xls saved by recent Excel versions). Other .xls files are not scanned.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from isal import isal_zlib

from jc_pipeline.lib.ingest.sheet_extent import check_extent
from jc_pipeline.lib.ingest.unreadable import Unreadable

#: A workbook whose parts expand to more than this is refused (zip bomb).
MAX_UNCOMPRESSED_BYTES = 1024 * 1024 * 1024
#: A workbook part bigger than RATIO_FLOOR_BYTES expanding more than MAX_RATIO times is refused (zip bomb;
#: real sheet XML compresses 5-30 times, repetitive XML rarely above 100).
MAX_RATIO = 200
RATIO_FLOOR_BYTES = 8 * 1024 * 1024
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"

_ENCRYPTED_OOXML = "EncryptionInfo".encode("utf-16-le")
#: A zip local file header: signature, 22 bytes, name length, extra field length; the part's data follows.
_LOCAL_HEADER = struct.Struct("<4s22xHH")
#: Compressed bytes read at a time, and the most inflated at a time.
_RAW_READ = 1024 * 1024
_PIECE = 1024 * 1024


def refuse_hostile_workbook(path: Path, data: bytes | None, head: bytes) -> None:
    """Raise :class:`Unreadable` for password-protected workbooks, zip bombs and giant sheets (see the module
    docstring). ``data``: the file's bytes when already in memory; ``head``: its first 8 bytes."""
    if head == OLE_MAGIC:
        if data is not None:
            body = data
        else:
            with path.open("rb") as handle:
                body = handle.read(1 << 20)
        if _ENCRYPTED_OOXML in body:
            raise Unreadable("the workbook is password-protected (encrypted); remove the password "
                             "(File > Info > Protect Workbook) and deliver it again")
    if head[:4] == ZIP_MAGIC:
        try:
            with io.BytesIO(data) if data is not None else path.open("rb") as source:
                _check_parts(source)
        except (zipfile.BadZipFile, struct.error, isal_zlib.error) as exc:
            raise Unreadable(f"the workbook is damaged ({exc}); save it again from Excel and deliver it again") from exc
        except (zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, OSError) as exc:
            raise Unreadable(f"the workbook cannot be unpacked ({exc}); save it again from Excel as .xlsx and "
                             f"deliver it again") from exc


def _check_parts(source: BinaryIO) -> None:
    with zipfile.ZipFile(source) as archive:
        parts = archive.infolist()
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
    for info in parts:
        check_extent(info.filename, info.file_size, _inflate(source, info))


def _inflate(source: BinaryIO, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """The part's bytes in pieces of at most ``_PIECE``, checked against its directory entry (see the module
    docstring): never more than one byte past the declared size is inflated."""
    if info.flag_bits & 0x1:
        raise Unreadable(f"the workbook part {info.filename!r} is encrypted; remove the password and deliver it "
                         f"again")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise Unreadable(f"the workbook part {info.filename!r} uses compression method {info.compress_type}, which "
                         f"Excel never writes; save it again from Excel as .xlsx and deliver it again")
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


def _refuse_part(info: zipfile.ZipInfo, crc: int, problem: str) -> None:
    # A part whose declared start already fails its CRC is damaged in the ordinary way; say it the same way.
    if crc != info.CRC:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")
    raise zipfile.BadZipFile(f"the part {info.filename!r} " + problem.format(info.file_size))
