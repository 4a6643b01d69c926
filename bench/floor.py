"""The floor: the fastest plain read of the bytes the pipeline reads, everything it does beyond that is overhead.

CSV files are read per group sharing a header, with the columns given (a sniffing read per file costs over 20x
more on thousands of small files), every column materialized as Arrow, by DuckDB ``read_csv`` and by Polars
``scan_csv``; the faster engine counts, of those that read every row (each engine's rows are counted: DuckDB once
dropped the rows of files whose quoting differed from their group's first file). Every sheet of every workbook is
read once by calamine (fastexcel), its cells as text into an Arrow batch, as the ingest must read them (see
docs/decisions.md, "The workbook floor"); a typed read of the same sheets is timed beside it and reported, not
counted.

:func:`measure_floor` times a list of files (the whole inbox, or the nightly increment's files), and :func:`fastest`
keeps the best of several such measurements (the benchmark reads the inbox's floor before and after its runs, and
each round reads its increment's); ``bench.bench_ingest`` times the same reads (:func:`header_groups`,
:func:`read_csv_duckdb`, :func:`read_csv_polars`, :func:`read_workbooks`) round by round beside the ingest.
"""

from __future__ import annotations

import csv
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import fastexcel
import polars as pl


@dataclass(frozen=True)
class Floor:
    """Seconds each engine took to read the inbox, and what it read (data rows below the headers)."""

    csv_files: int
    workbooks: int
    csv_duckdb: float
    csv_polars: float
    workbooks_calamine: float
    csv_rows_duckdb: int = 0
    csv_rows_polars: int = 0
    workbook_rows: int = 0
    workbooks_calamine_typed: float = 0.0  # reported beside the floor, not counted (docs/decisions.md)

    @property
    def csv(self) -> float:
        """The faster CSV engine's time, of those that read every row."""
        complete = max(self.csv_rows_duckdb, self.csv_rows_polars)
        return min(seconds for seconds, rows in ((self.csv_duckdb, self.csv_rows_duckdb),
                                                 (self.csv_polars, self.csv_rows_polars)) if rows == complete)

    @property
    def rows(self) -> int:
        """The data rows the floor read: every CSV row and every workbook sheet's rows below its header."""
        return max(self.csv_rows_duckdb, self.csv_rows_polars) + self.workbook_rows

    @property
    def total(self) -> float:
        return self.csv + self.workbooks_calamine


def measure_floor(files: list[Path], repeats: int = 2) -> Floor:
    """The best of ``repeats`` reads of every CSV (both engines) and every workbook sheet of ``files``."""
    groups = header_groups([p for p in files if p.suffix.lower() == ".csv"])
    books = [p for p in files if p.suffix.lower() in (".xlsx", ".xls")]
    (csv_duckdb, rows_duckdb), (csv_polars, rows_polars), (calamine, book_rows), (typed, _) = (
        _best(read, repeats) for read in (lambda: read_csv_duckdb(groups), lambda: read_csv_polars(groups),
                                          lambda: read_workbooks(books), lambda: read_workbooks(books, typed=True)))
    return Floor(
        csv_files=sum(len(paths) for paths in groups.values()),
        workbooks=len(books),
        csv_duckdb=csv_duckdb,
        csv_polars=csv_polars,
        workbooks_calamine=calamine,
        csv_rows_duckdb=rows_duckdb,
        csv_rows_polars=rows_polars,
        workbook_rows=book_rows,
        workbooks_calamine_typed=typed,
    )


def fastest(*floors: Floor) -> Floor:
    """The best time of each engine over ``floors`` (measurements of the same inbox)."""
    return Floor(
        csv_files=floors[0].csv_files,
        workbooks=floors[0].workbooks,
        csv_duckdb=min(f.csv_duckdb for f in floors),
        csv_polars=min(f.csv_polars for f in floors),
        workbooks_calamine=min(f.workbooks_calamine for f in floors),
        csv_rows_duckdb=floors[0].csv_rows_duckdb,
        csv_rows_polars=floors[0].csv_rows_polars,
        workbook_rows=floors[0].workbook_rows,
        workbooks_calamine_typed=min(f.workbooks_calamine_typed for f in floors),
    )


def header_groups(files: list[Path]) -> dict[tuple[str, ...], list[str]]:
    """The CSV files by their header line (the columns each group's read is given)."""
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for path in files:
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
            header = tuple(next(csv.reader(handle), []))
        if header:
            groups[header].append(str(path))
    return groups


def read_csv_duckdb(groups: dict[tuple[str, ...], list[str]]) -> int:
    """Every group read by DuckDB ``read_csv`` with its columns (and the quote character) given, into Arrow; the
    rows read."""
    with duckdb.connect() as con:
        return sum(con.sql(
            "SELECT * FROM read_csv($paths, columns = $columns, header = true, quote = '\"', escape = '\"', "
            "ignore_errors = true)",
            params={"paths": paths, "columns": dict.fromkeys(header, "VARCHAR")},
        ).to_arrow_table().num_rows for header, paths in groups.items())


def read_csv_polars(groups: dict[tuple[str, ...], list[str]]) -> int:
    """Every group read by Polars ``scan_csv`` with its columns given; the rows read."""
    return sum(pl.scan_csv(
        paths, schema=dict.fromkeys(header, pl.String), encoding="utf8-lossy", truncate_ragged_lines=True,
    ).collect().height for header, paths in groups.items())


def read_workbooks(books: list[Path], *, typed: bool = False) -> int:
    """Every sheet of every workbook read by calamine, cells as text (or as calamine types them), into an Arrow
    batch; the rows read below the sheets' headers."""
    rows = 0
    for path in books:
        reader = fastexcel.read_excel(str(path))
        for name in reader.sheet_names:
            rows += reader.load_sheet(name, dtypes=None if typed else "string", eager=True).num_rows
    return rows


def _best(read: Callable[[], int], repeats: int) -> tuple[float, int]:
    """The shortest of ``repeats`` reads, and the rows read."""
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        rows = read()
        times.append(time.perf_counter() - began)
    return min(times), rows
