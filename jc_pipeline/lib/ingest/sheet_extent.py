"""Bounding, from a worksheet's XML, the box of cells calamine would allocate for it.

calamine (fastexcel's reader) allocates every cell of a sheet's bounding box at once and **aborts the process**
when that allocation fails: a 5 KB workbook with cells in A1 and XFD1048576 kills the process reading it. So
:mod:`workbook_guard` hands every part of an ``.xlsx`` to :func:`check_extent` (a small one's only when calamine
failed on it or returned a sheet beyond the limits: the worker's death then costs that file only).

How calamine 0.36 places cells, which the scan mirrors whatever the XML's spelling (namespace prefixes, either
quote, spaces around ``=``, lower-case column letters): a ``<c>`` element with an attribute named ``r`` sits at
that reference (read raw: letters, then digits, anything else is an error); a ``<c>`` without one sits one
column right of the previous cell of its row; a row's cells without ``r`` are on the row's own ``r``, or one row
below the previous row (every row end tag moves one row down).

The bound: every attribute named ``r`` is read as a reference, and one with more than 3 letters or 7 digits, or
beyond column XFD (16,384) or row 1,048,576, is refused. Cells whose start tag does not begin with an ``r``
attribute count as *unplaced*; when there are any, every row tag counts too. The box is then at most
(largest column + unplaced cells) x (largest row + row tags), and more than ``MAX_CELLS`` is refused. Every count
over-approximates (tags in comments and empty cells count as well), so at worst an odd but harmless part is
refused with a reason, never a hostile one let through.

Cost: the scan uses regular expressions and NumPy, never Python work per cell. The usual part is decided by a
fast path of two regular expression searches: when every cell start tag is spelled ``<c r="`` plus a
reference of at most 2 letters and 4 digits (what Excel and the libraries we know write for sheets of up to
9,999 rows), every cell lies within ZZ9999, a box of at most 7 million cells. Other parts get the full bound,
in windows of ``SCAN_CHUNK`` bytes cut right after a ``>``, so that no tag spans two windows and memory stays
bounded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from jc_pipeline.lib.ingest.unreadable import Unreadable

#: Excel's own limits; a sheet beyond them was not written by Excel.
MAX_COLUMNS = 16_384
MAX_ROWS = 1_048_576
#: Largest sheet bounding box (rows x columns) handed to calamine, which allocates ~32 bytes per cell of it.
MAX_CELLS = 25_000_000
#: Parts up to this size are scanned whole; bigger ones in windows of about this size.
SCAN_CHUNK = 16 * 1024 * 1024

# XML whitespace is exactly these four bytes, for quick-xml (calamine's parser) too.
_WS = rb"[ \t\r\n]"
_EQUALS_QUOTE = _WS + rb"*=" + _WS + rb"*[\"']"
#: A start tag whose local name is c ("<c", "<x:c", ...; not an end tag) not beginning with an r attribute.
_UNPLACED_CELL = re.compile(rb"<(?:(?!/)[^ \t\r\n:>]*:)?c(?!" + _WS + rb"+r" + _EQUALS_QUOTE + rb")[ \t\r\n/>]")
#: Any row start, empty or end tag.
_ROW_TAG = re.compile(rb"[<:/]row[ \t\r\n/>]")
#: An attribute named exactly r (an r preceded by whitespace or a closing quote). The literal "r" comes first
#: so that the regex engine skips ahead to candidates instead of trying every byte.
_POSITION = re.compile(rb"r(?<=[\s\"']r)" + _EQUALS_QUOTE)
#: Replaces each _POSITION match, so that every reference starts right after one of these bytes.
_MARK = b"\x00"
#: Bytes read after a mark: up to 4 letters and 8 digits (one more than accepted of each, to see the excess).
_REF_WINDOW = 12

# Fast path. Every cell start tag is "<c" or "<prefix:c" followed by whitespace, "/" or ">"; these find those
# not spelled '<c r="' plus a reference within ZZ9999 and its closing quote, and the prefixed ones.
_UNUSUAL_CELL = re.compile(rb'<c(?! r="[A-Za-z]{1,2}[0-9]{1,4}")(?=[ \t\r\n/>])')
_PREFIXED_CELL = re.compile(rb":c[ \t\r\n/>]")


def check_extent(part: str, size: int, pieces: Iterable[bytes]) -> None:
    """Raise :class:`Unreadable` when the cells of the part could span more than Excel allows.

    ``pieces``: the part's bytes in order (``size`` of them, as its zip directory declares)."""
    if size <= SCAN_CHUNK:
        text = b"".join(pieces)
        if _surely_small(text):
            return
        windows: Iterable[bytes] = (text,)
    else:
        windows = _windows(part, pieces)
    extent = _Extent()
    for window in windows:
        extent.add(part, window)
    check_box(part, *extent.bound())


def check_box(sheet: str, columns: int, rows: int) -> None:
    """Raise :class:`Unreadable` when the box of ``sheet`` (its name, or its part's) is beyond the limits."""
    if columns > MAX_COLUMNS or rows > MAX_ROWS or columns * rows > MAX_CELLS:
        raise Unreadable(f"the worksheet {sheet!r} spans {columns:,} columns x {rows:,} rows, more than the "
                         f"{MAX_COLUMNS:,} columns, {MAX_ROWS:,} rows and {MAX_CELLS:,} cells accepted; delete the "
                         f"cells far outside the data (Ctrl+End shows the last one), save and deliver it again")


def _surely_small(text: bytes) -> bool:
    """The fast path: every cell start tag is ``<c r="`` plus a reference within ZZ9999."""
    return _UNUSUAL_CELL.search(text) is None and _PREFIXED_CELL.search(text) is None


def _windows(part: str, pieces: Iterable[bytes]) -> Iterator[bytes]:
    """``pieces`` regrouped into windows of about ``SCAN_CHUNK`` bytes, each ending right after a ``>``."""
    pending: list[bytes] = []
    pending_size = 0
    for piece in pieces:
        pending.append(piece)
        pending_size += len(piece)
        if pending_size < SCAN_CHUNK:
            continue
        text = b"".join(pending)
        cut = text.rfind(b">") + 1
        if cut == 0:
            raise Unreadable(f"the workbook part {part!r} holds {len(text):,} bytes without any XML tag, which no "
                             f"spreadsheet program writes; save it again from Excel and deliver it again")
        yield text[:cut]
        pending, pending_size = [text[cut:]], len(text) - cut
    if pending_size:
        yield b"".join(pending)


@dataclass
class _Extent:
    """What bounds one part's bounding box, summed over its windows."""

    column: int = 0  # largest column of any reference
    row: int = 0  # largest row of any reference
    unplaced: int = 0  # cell start tags not beginning with an r attribute
    row_tags: int = 0

    def add(self, part: str, window: bytes) -> None:
        self.unplaced += len(_UNPLACED_CELL.findall(window))
        self.row_tags += len(_ROW_TAG.findall(window))
        column, row = _largest_reference(part, _POSITION.sub(_MARK, window))
        self.column, self.row = max(self.column, column), max(self.row, row)

    def bound(self) -> tuple[int, int]:
        """(columns, rows) that calamine's box cannot exceed."""
        # Unplaced cells move right of the previous cell, and down with every row end (see the module docstring).
        return self.column + self.unplaced, self.row + (self.row_tags if self.unplaced else 0)


def _largest_reference(part: str, marked: bytes) -> tuple[int, int]:
    """(largest column, largest row) of the references after each ``_MARK``, vectorized; refuses bad ones."""
    raw = np.frombuffer(marked, dtype=np.uint8)
    at = np.flatnonzero(raw == _MARK[0]) + 1
    if at.size == 0:
        return 0, 0
    padded = np.concatenate([raw, np.zeros(_REF_WINDOW, dtype=np.uint8)])
    window = np.lib.stride_tricks.sliding_window_view(padded, _REF_WINDOW)[at].astype(np.int64)
    folded = window | 0x20  # lower case: calamine reads "a1" as "A1"
    letters = _leading_run((folded >= ord("a")) & (folded <= ord("z")), 4)
    after_letters = np.minimum(letters, 3)[:, None] + np.arange(8)
    digits = _leading_run(np.take_along_axis((window >= ord("0")) & (window <= ord("9")), after_letters, axis=1), 8)
    too_long = np.flatnonzero((letters > 3) | (digits > 7))
    if too_long.size:
        _refuse_reference(part, padded, int(at[too_long[0]]))
    column = np.zeros(at.size, dtype=np.int64)
    for k in range(3):
        column = np.where(k < letters, column * 26 + folded[:, k] - ord("a") + 1, column)
    row = np.zeros(at.size, dtype=np.int64)
    digit_bytes = np.take_along_axis(window, after_letters, axis=1) - ord("0")
    for k in range(7):
        row = np.where(k < digits, row * 10 + digit_bytes[:, k], row)
    for largest in (int(np.argmax(column)), int(np.argmax(row))):
        if column[largest] > MAX_COLUMNS or row[largest] > MAX_ROWS:
            _refuse_reference(part, padded, int(at[largest]))
    return int(column.max()), int(row.max())


def _leading_run(mask: np.ndarray, width: int) -> np.ndarray:
    """Per row of ``mask``, how many of its first ``width`` values are True before the first False."""
    head = mask[:, :width]
    return np.where(head.all(axis=1), width, np.argmin(head, axis=1))


def _refuse_reference(part: str, padded: np.ndarray, at: int) -> None:
    text = bytes(padded[at:at + 20]).split(b'"')[0].split(b"'")[0].rstrip(b"\x00")
    raise Unreadable(f"the worksheet {part!r} has a row or cell at {text.decode('ascii', 'replace')!r}, beyond "
                     f"Excel's last column XFD ({MAX_COLUMNS:,}) or row {MAX_ROWS:,}; delete the cells far outside "
                     f"the data, save and deliver it again")
