"""The text of a CSV file as spreadsheet programs save it, for every CSV the pipeline reads (agencies' uploads and
the state's roster files alike).

* Decoded as UTF-8 (BOM allowed), else UTF-16 when it starts with a UTF-16 byte order mark ("Unicode text"), else
  Windows-1252, which Excel writes for "CSV (Comma delimited)" on Windows.
* Its delimiter is the most frequent of ``,`` ``;`` (Excel in much of Europe) and tab in the header line.
"""

from __future__ import annotations

DELIMITERS = (",", ";", "\t")
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def decode(data: bytes) -> str:
    """``data`` as text (see the module docstring); UnicodeError when it has a UTF-16 BOM but is not UTF-16."""
    if data.startswith(UTF16_BOMS):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def delimiter(header: str) -> str:
    """The delimiter of a CSV whose header line is ``header`` (``,`` when it has none of them)."""
    counts = [header.count(d) for d in DELIMITERS]
    return DELIMITERS[counts.index(max(counts))] if max(counts) > 0 else ","
