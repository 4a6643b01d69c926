"""Reading many small CSVs with one parser call: files sharing a header line are parsed together.

A state delivers thousands of small CSVs, and any per-file parser call (Polars ~0.5 ms, the stdlib csv module
~0.2 ms for a few hundred rows) would dominate ingest. Plain files, which are almost all of them, are therefore
grouped by their exact header line, their bodies concatenated and parsed by one Polars call; each file's rows
are then told apart by counting its line ends.

Counting line ends equals counting records only for plain files, so a file takes this path only when it is
UTF-8 (BOM allowed), comma-separated, without any quote character, with ``\\n`` or ``\\r\\n`` line ends and its
header on the first line. Every other file is read on its own by :mod:`readers` with identical results. If a
group's parsed row count ever disagrees with the counted line ends, :func:`parse_group` returns None and the
caller reads those files one by one; so it does when a line has more cells than the header (the readers keep
them, where the group's width would cut them off).

Files with very wide headers (more than ``MAX_PLAIN_COLUMNS`` columns) or a cell longer than the readers' cell
limit are not plain either: the readers refuse or cut those (see :mod:`readers`), so they are read on their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from jc_pipeline.lib.ingest.readers import MAX_CELL_BYTES

#: Justice Counts sheets have a handful of columns; wider CSVs are read on their own (and limited there).
MAX_PLAIN_COLUMNS = 256
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class PlainCsv:
    """A file eligible for grouped parsing: its header line (bytes, without line end) and body."""

    header: bytes
    body: bytes

    @property
    def header_cells(self) -> tuple[str, ...]:
        return tuple(self.header.decode("utf-8").split(","))


def plain_csv(data: bytes) -> PlainCsv | None:
    """Split a plain CSV (see the module docstring) into header and body; None if it is not plain."""
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    if b'"' in data or b"\x00" in data or data.count(b"\r") != data.count(b"\r\n"):
        return None
    header, _, body = data.partition(b"\n")
    header = header.removesuffix(b"\r")
    # A first line of empty cells (",,", as Excel writes a blank row) is not the header: read alone.
    if not header.strip(b" \t,;") or header.count(b",") < max(header.count(b";"), header.count(b"\t")):
        return None
    if header.count(b",") >= MAX_PLAIN_COLUMNS:
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    # Trailing blank lines are blank rows: dropping them changes neither row numbers nor counts.
    body = body.rstrip(b"\r\n")
    return PlainCsv(header, body + b"\n" if body else b"")


def parse_group(files: list[PlainCsv]) -> tuple[pl.DataFrame, list[int]] | None:
    """The rows of ``files`` (all with the same header) as one frame of text columns ``c0..cN``, and each
    file's row count in order; None when the parser and the line counts disagree."""
    schema = {f"c{i}": pl.String for i in range(len(files[0].header_cells))}
    counts = [file.body.count(b"\n") for file in files]
    if not sum(counts):
        return pl.DataFrame(schema=schema), counts
    try:
        frame = pl.read_csv(b"".join(file.body for file in files), has_header=False, quote_char=None,
                            truncate_ragged_lines=False, missing_columns="insert", schema=schema)
    except pl.exceptions.PolarsError:  # also a line with a cell past the header's last column: read on its own
        return None
    if frame.height != sum(counts):
        return None
    if any(len(file.body) > MAX_CELL_BYTES for file in files) and (
            frame.select(pl.all().str.len_bytes().max()).max_horizontal().item() or 0) > MAX_CELL_BYTES:
        return None  # a giant cell: the readers cut it (see :mod:`readers`)
    return frame, counts
