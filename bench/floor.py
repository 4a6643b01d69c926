"""The floor: the fastest plain read of the bytes the pipeline reads, everything it does beyond that is overhead.

CSV files are read per group sharing a header, with the columns given (a sniffing read per file costs over 20x
more on thousands of small files), every column materialized as Arrow, by DuckDB ``read_csv`` and by Polars
``scan_csv``; the faster engine counts. Every sheet of every workbook is read once by calamine (fastexcel), its
cells as text into an Arrow batch, as the ingest must read them (see docs/decisions.md, "The workbook floor").

:func:`measure_floor` times a list of files (the whole inbox, or the nightly increment's files), and :func:`fastest`
keeps the best of several such measurements (the benchmark reads the inbox's floor before and after its runs, and
each round reads its increment's); ``bench.bench_ingest`` times the same reads (:func:`header_groups`,
:func:`read_csv_duckdb`, :func:`read_csv_polars`, :func:`read_workbooks`) round by round beside the ingest.
"""

from __future__ import annotations

import csv
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import duckdb
import fastexcel
import polars as pl


@dataclass(frozen=True)
class Floor:
    """Seconds each engine took to read the inbox, and what it read."""

    csv_files: int
    workbooks: int
    csv_duckdb: float
    csv_polars: float
    workbooks_calamine: float

    @property
    def csv(self) -> float:
        return min(self.csv_duckdb, self.csv_polars)

    @property
    def total(self) -> float:
        return self.csv + self.workbooks_calamine


def measure_floor(files: list[Path], repeats: int = 2) -> Floor:
    """The best of ``repeats`` reads of every CSV (both engines) and every workbook sheet of ``files``."""
    groups = header_groups([p for p in files if p.suffix.lower() == ".csv"])
    books = [p for p in files if p.suffix.lower() in (".xlsx", ".xls")]
    return Floor(
        csv_files=sum(len(paths) for paths in groups.values()),
        workbooks=len(books),
        csv_duckdb=_best(lambda: read_csv_duckdb(groups), repeats),
        csv_polars=_best(lambda: read_csv_polars(groups), repeats),
        workbooks_calamine=_best(lambda: read_workbooks(books), repeats),
    )


def fastest(*floors: Floor) -> Floor:
    """The best time of each engine over ``floors`` (measurements of the same inbox)."""
    return Floor(
        csv_files=floors[0].csv_files,
        workbooks=floors[0].workbooks,
        csv_duckdb=min(f.csv_duckdb for f in floors),
        csv_polars=min(f.csv_polars for f in floors),
        workbooks_calamine=min(f.workbooks_calamine for f in floors),
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


def read_csv_duckdb(groups: dict[tuple[str, ...], list[str]]) -> None:
    """Every group read by DuckDB ``read_csv`` with its columns given, into Arrow."""
    with duckdb.connect() as con:
        for header, paths in groups.items():
            con.sql(
                "SELECT * FROM read_csv($paths, columns = $columns, header = true, ignore_errors = true)",
                params={"paths": paths, "columns": dict.fromkeys(header, "VARCHAR")},
            ).to_arrow_table()


def read_csv_polars(groups: dict[tuple[str, ...], list[str]]) -> None:
    """Every group read by Polars ``scan_csv`` with its columns given."""
    for header, paths in groups.items():
        pl.scan_csv(
            paths, schema=dict.fromkeys(header, pl.String), encoding="utf8-lossy",
            truncate_ragged_lines=True,
        ).collect()


def read_workbooks(books: list[Path]) -> None:
    """Every sheet of every workbook read by calamine, cells as text, into an Arrow batch."""
    for path in books:
        reader = fastexcel.read_excel(str(path))
        for name in reader.sheet_names:
            reader.load_sheet(name, dtypes="string", eager=True)


def _best(read, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        read()
        times.append(time.perf_counter() - began)
    return min(times)
