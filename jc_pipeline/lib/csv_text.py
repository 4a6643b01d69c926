"""The text of a CSV file as spreadsheet programs save it, for every CSV the pipeline reads (agencies' uploads and
the state's roster files alike).

* Decoded as UTF-8 (BOM allowed), else UTF-16 when it starts with a UTF-16 byte order mark ("Unicode text"), else
  Windows-1252, which Excel writes for "CSV (Comma delimited)" on Windows. UTF-8 text with a stray byte from
  another program (at least as many well-formed UTF-8 characters as bytes outside them) stays UTF-8, the stray byte a
  replacement character: read as Windows-1252, every accented character of it was garbled without a word.
* Its delimiter is the most frequent of ``,`` ``;`` (Excel in much of Europe) and tab in the header line.
"""

from __future__ import annotations

import re
from typing import AnyStr

DELIMITERS = (",", ";", "\t")
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
#: A line of a CSV (text or bytes): ``\r`` alone ends one too (Excel's "CSV (Macintosh)"), as in the ``csv`` module.
_LINE = {str: re.compile(r"[^\r\n]+"), bytes: re.compile(rb"[^\r\n]+")}
#: A well-formed multi-byte UTF-8 character, and a byte outside ASCII.
_UTF8_CHARACTER = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
_HIGH_BYTE = re.compile(rb"[\x80-\xff]")


def decode(data: bytes, *, mixed: bool = True) -> str:
    """``data`` as text (see the module docstring); UnicodeError when it has a UTF-16 BOM but is not UTF-16.

    ``mixed=False``: UnicodeDecodeError for UTF-8 text with a stray byte, where a replacement character would pass
    unseen (the roster: its cells are matched, never shown to an agency as a finding)."""
    if data.startswith(UTF16_BOMS):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        characters = [len(match.group()) for match in _UTF8_CHARACTER.finditer(data)]
        if characters and not mixed:
            raise
        # Windows-1252 text can hold a pair that reads as one UTF-8 character ("É»"); UTF-8 with a stray byte holds
        # at least as many well-formed characters as bytes outside them (helper-31: "Montréal" beside "«Libéré»"
        # was read as UTF-8, every accent a replacement character).
        stray = sum(1 for _ in _HIGH_BYTE.finditer(data)) - sum(characters)
        if len(characters) >= stray:
            return data.decode("utf-8-sig", errors="replace")
        return data.decode("cp1252", errors="replace")


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
