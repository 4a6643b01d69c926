"""Collecting the cells of every sheet of a batch into one row frame (one column per role).

Any DataFrame or NumPy operation per sheet costs tens of microseconds, and even an Arrow slice per sheet and
column costs a microsecond, which a state's thousands of sheets (and the calamine read they are measured against)
would multiply. So :meth:`RowCollector.add` only records where a sheet's rows lie in its cells (a workbook's
sheets share one batch, :class:`readers.RawSheet`); :meth:`RowCollector.build` then puts every column of all those
batches end to end once, and takes each role of the sheets that share roles and extra columns (one sheet kind of
many agencies) in one Arrow take, row numbers and sheet indexes computed for all at once. ``extra`` marks rows with
data in a column that has a header but no role, so such rows count as data rows (and are rejected with the sheet's
F6) instead of vanishing as blank; the cells of those columns come along as ``extras`` (a list per row, in the
plan's ``extra_columns`` order), only when some sheet has such columns, so that each F6 row quotes its own cell.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa

from jc_pipeline.lib.ingest.layout import ROLES
from jc_pipeline.lib.ingest.readers import RawSheet

ROW_SCHEMA = {"sheet_idx": pl.Int64, "row_number": pl.Int64, **{role: pl.String for role in ROLES},
              "extra": pl.Boolean}
#: The column of the cells without a role, present only when a sheet of the batch has such columns.
EXTRAS = "extras"
EXTRAS_TYPE = pl.List(pl.String)


@dataclass
class _Kind:
    """Sheets read with the same roles and extra columns: each sheet's index, first data row, height, and where its
    rows start among the collector's cells put end to end."""

    roles: tuple[tuple[str, int], ...]
    extras: tuple[int, ...]
    sheet_idx: list[int] = field(default_factory=list)
    first_row: list[int] = field(default_factory=list)
    height: list[int] = field(default_factory=list)
    source: list[int] = field(default_factory=list)
    first: list[int] = field(default_factory=list)

    def frame(self, column: Callable[[int], pa.Array], offsets: np.ndarray) -> pl.DataFrame:
        """The kind's rows; ``column(j)``: column j of all the collector's cells end to end, the cells of source
        k starting at ``offsets[k]``."""
        height = np.array(self.height, dtype=np.int64)
        total = int(height.sum())
        starts = np.cumsum(height) - height
        position = np.arange(total, dtype=np.int64)
        # Row numbers run from each sheet's first data row, and the rows taken from its first cell below the
        # header: position in the kind, shifted per sheet.
        rows = pa.array(position + np.repeat(offsets[self.source] + np.array(self.first, dtype=np.int64) - starts,
                                             height))
        columns = {"sheet_idx": np.repeat(np.array(self.sheet_idx, dtype=np.int64), height),
                   "row_number": position + np.repeat(np.array(self.first_row, dtype=np.int64) - starts, height)}
        for role, index in self.roles:
            columns[role] = pl.Series(column(index).take(rows))
        frame = pl.DataFrame(columns)
        if not self.extras:
            return frame.with_columns(extra=pl.lit(False))
        cells = [pl.Series(f"x{n}", column(i).take(rows)) for n, i in enumerate(self.extras)]
        return frame.with_columns(extra=pl.any_horizontal(c.str.strip_chars().str.len_bytes() > 0 for c in cells
                                                          ).fill_null(False),
                                  **{EXTRAS: pl.concat_list(cells).cast(EXTRAS_TYPE)})


class RowCollector:
    """Accumulates the data rows of many sheets; :meth:`build` returns them as one frame (``ROW_SCHEMA``)."""

    def __init__(self) -> None:
        self._kinds: dict[tuple, _Kind] = {}
        self._frames: list[pl.DataFrame] = []
        self._sources: list[pa.RecordBatch] = []
        self._source_of: dict[int, int] = {}  # id() of each batch in _sources (kept alive there) -> its position

    def add(self, sheet_idx: int, sheet: RawSheet, roles: dict[str, int], extra_columns: Sequence[int]) -> None:
        """Record the rows below the header of ``sheet``; ``roles`` maps a role to its column index."""
        key = (tuple(roles.items()), tuple(extra_columns))
        kind = self._kinds.get(key)
        if kind is None:
            kind = self._kinds[key] = _Kind(*key)
        source = self._source_of.get(id(sheet.cells))
        if source is None:
            source = self._source_of[id(sheet.cells)] = len(self._sources)
            self._sources.append(sheet.cells)
        kind.sheet_idx.append(sheet_idx)
        kind.first_row.append(sheet.header_row + 1)
        kind.height.append(sheet.height)
        kind.source.append(source)
        kind.first.append(sheet.first)

    def add_frame(self, chunk: pl.DataFrame) -> None:
        """Append rows that already have ``sheet_idx``, ``row_number``, ``extra`` and some role columns."""
        self._frames.append(chunk)

    def build(self) -> pl.DataFrame:
        """All collected rows (grouped by sheet kind; sheet_idx and row_number tell where each comes from)."""
        offsets = np.cumsum([0] + [cells.num_rows for cells in self._sources], dtype=np.int64)
        joined: dict[int, pa.Array] = {}

        def column(index: int) -> pa.Array:
            if index not in joined:
                joined[index] = _end_to_end([cells.column(index) if index < cells.num_columns
                                             else pa.nulls(cells.num_rows, pa.string()) for cells in self._sources])
            return joined[index]

        parts = [kind.frame(column, offsets) for kind in self._kinds.values()] + self._frames
        if not parts:
            return pl.DataFrame(schema=ROW_SCHEMA)
        rows = pl.concat(parts, how="diagonal_relaxed")
        schema = {**ROW_SCHEMA, **({EXTRAS: EXTRAS_TYPE} if EXTRAS in rows.columns else {})}
        return rows.select(pl.col(name).cast(dtype) if name in rows.columns else pl.lit(None, dtype).alias(name)
                           for name, dtype in schema.items())


def _end_to_end(chunks: list[pa.Array]) -> pa.Array:
    """``chunks`` as one array (a sheet's columns past its own width are nulls in its cells, or here)."""
    try:
        return pa.concat_arrays(chunks)
    except pa.ArrowInvalid:
        # Workbook sheets (string) beside big CSVs (large_string), or more text than string's 32-bit offsets hold:
        # the rare case pays the cast, instead of every batch a look at each of its chunks.
        return pa.concat_arrays([chunk.cast(pa.large_string()) for chunk in chunks])
