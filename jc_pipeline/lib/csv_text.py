"""The text of a CSV file as spreadsheet programs save it, for every CSV the pipeline reads (agencies' uploads and
the state's roster files alike).

* Decoded as UTF-8 (BOM allowed), else UTF-16 when it starts with a UTF-16 byte order mark ("Unicode text"), else
  Windows-1252, which Excel writes for "CSV (Comma delimited)" on Windows. UTF-8 text with a stray byte from
  another program stays UTF-8, the stray byte a replacement character: read as Windows-1252, every accented
  character of it was garbled without a word.
* Its delimiter is the most frequent of ``,`` ``;`` (Excel in much of Europe) and tab in the header line.
"""

from __future__ import annotations

import re
from typing import AnyStr

DELIMITERS = (",", ";", "\t")
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
#: A line of a CSV (text or bytes): ``\r`` alone ends one too (Excel's "CSV (Macintosh)"), as in the ``csv`` module.
_LINE = {str: re.compile(r"[^\r\n]+"), bytes: re.compile(rb"[^\r\n]+")}
#: A multi-byte UTF-8 character: text that holds one is UTF-8, whatever else it holds.
_UTF8_CHARACTER = re.compile(rb"[\xc2-\xf4][\x80-\xbf]+")


def decode(data: bytes, *, mixed: bool = True) -> str:
    """``data`` as text (see the module docstring); UnicodeError when it has a UTF-16 BOM but is not UTF-16.

    ``mixed=False``: UnicodeDecodeError for UTF-8 text with a stray byte, where a replacement character would pass
    unseen (the roster: its cells are matched, never shown to an agency as a finding)."""
    if data.startswith(UTF16_BOMS):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        if not _UTF8_CHARACTER.search(data):
            return data.decode("cp1252", errors="replace")
        if not mixed:
            raise
        return data.decode("utf-8-sig", errors="replace")


def header_line(text: AnyStr) -> AnyStr:
    """The header's line: the first holding anything but blanks and delimiters (a row of empty cells, as Excel
    writes one, is blank); empty when there is none."""
    blank = " \t,;" if isinstance(text, str) else b" \t,;"
    return next((line for line in (m.group() for m in _LINE[type(text)].finditer(text)) if line.strip(blank)),
                text[:0])


def delimiter(header: str) -> str:
    """The delimiter of a CSV whose header line is ``header`` (``,`` when it has none of them)."""
    counts = [header.count(d) for d in DELIMITERS]
    return DELIMITERS[counts.index(max(counts))] if max(counts) > 0 else ","
