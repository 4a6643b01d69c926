"""Collecting the cells of every sheet of a batch into one row frame (one column per role).

Any DataFrame or NumPy operation per sheet costs tens of microseconds, which a state's thousands of sheets
(and the calamine read they are measured against) would multiply. So :meth:`RowCollector.add` only records a
sheet; :meth:`RowCollector.build` then assembles the sheets that share roles and extra columns (one sheet kind
of many agencies) with one concatenation per role, row numbers and sheet indexes computed for all at once.
``extra`` marks rows with data in a column that has a header but no role, so such rows count as data rows (and
are rejected with the sheet's F6) instead of vanishing as blank.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa

from jc_pipeline.lib.ingest.layout import ROLES
from jc_pipeline.lib.ingest.readers import RawSheet

ROW_SCHEMA = {"sheet_idx": pl.Int64, "row_number": pl.Int64, **{role: pl.String for role in ROLES},
              "extra": pl.Boolean}


@dataclass
class _Kind:
    """Sheets read with the same roles and extra columns."""

    roles: tuple[tuple[str, int], ...]
    extras: tuple[int, ...]
    sheet_idx: list[int] = field(default_factory=list)
    first_row: list[int] = field(default_factory=list)
    height: list[int] = field(default_factory=list)
    columns: list[tuple[pa.Array, ...]] = field(default_factory=list)

    def frame(self) -> pl.DataFrame:
        height = np.array(self.height, dtype=np.int64)
        starts = np.cumsum(height) - height
        # Row numbers run from each sheet's first data row: position in the kind, shifted per sheet.
        shift = np.repeat(np.array(self.first_row, dtype=np.int64) - starts, height)
        columns = {"sheet_idx": np.repeat(np.array(self.sheet_idx, dtype=np.int64), height),
                   "row_number": np.arange(int(height.sum()), dtype=np.int64) + shift}
        for role, index in self.roles:
            columns[role] = self._concat(index)
        frame = pl.DataFrame(columns)
        if not self.extras:
            return frame.with_columns(extra=pl.lit(False))
        filled = [self._concat(i).str.strip_chars().str.len_bytes() > 0 for i in self.extras]
        return frame.with_columns(extra=pl.any_horizontal(filled).fill_null(False))

    def _concat(self, index: int) -> pl.Series:
        """Column ``index`` of every sheet, one after the other (nulls where a sheet has no such column)."""
        chunks = [columns[index] if index < len(columns) else pa.nulls(rows, pa.string())
                  for columns, rows in zip(self.columns, self.height, strict=True)]
        # One Arrow concatenation and one conversion to Polars for the whole kind (Polars converting a chunked
        # array chunk by chunk costs 3 times more).
        try:
            return pl.Series(pa.concat_arrays(chunks))
        except pa.ArrowInvalid:
            # Workbook sheets (string) beside big CSVs (large_string), or more text than string's 32-bit offsets
            # hold: the rare case pays the cast, instead of every kind a look at each of its chunks.
            return pl.Series(pa.concat_arrays([chunk.cast(pa.large_string()) for chunk in chunks]))


class RowCollector:
    """Accumulates the data rows of many sheets; :meth:`build` returns them as one frame (``ROW_SCHEMA``)."""

    def __init__(self) -> None:
        self._kinds: dict[tuple, _Kind] = {}
        self._frames: list[pl.DataFrame] = []

    def add(self, sheet_idx: int, sheet: RawSheet, roles: dict[str, int], extra_columns: Sequence[int]) -> None:
        """Record the rows below the header of ``sheet``; ``roles`` maps a role to its column index."""
        key = (tuple(roles.items()), tuple(extra_columns))
        kind = self._kinds.get(key)
        if kind is None:
            kind = self._kinds[key] = _Kind(*key)
        kind.sheet_idx.append(sheet_idx)
        kind.first_row.append(sheet.header_row + 1)
        kind.height.append(sheet.height)
        kind.columns.append(sheet.columns)

    def add_frame(self, chunk: pl.DataFrame) -> None:
        """Append rows that already have ``sheet_idx``, ``row_number``, ``extra`` and some role columns."""
        self._frames.append(chunk)

    def build(self) -> pl.DataFrame:
        """All collected rows (grouped by sheet kind; sheet_idx and row_number tell where each comes from)."""
        parts = [kind.frame() for kind in self._kinds.values()] + self._frames
        if not parts:
            return pl.DataFrame(schema=ROW_SCHEMA)
        rows = pl.concat(parts, how="diagonal_relaxed")
        return rows.select(pl.col(name).cast(dtype) if name in rows.columns else pl.lit(None, dtype).alias(name)
                           for name, dtype in ROW_SCHEMA.items())
