"""The floor: the fastest plain read of the bytes the pipeline reads, everything it does beyond that is overhead.

CSV files are read per group sharing a header, with the columns given (a sniffing read per file costs over 20x
more on thousands of small files), every column materialized as Arrow, by DuckDB ``read_csv`` and by Polars
``scan_csv``; the faster engine counts. Every sheet of every workbook is read once by calamine (fastexcel).
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


def measure_floor(inbox: Path, repeats: int = 2) -> Floor:
    """The best of ``repeats`` reads of every CSV (both engines) and every workbook sheet under ``inbox``."""
    files = sorted(p for p in inbox.rglob("*") if p.is_file())
    groups = _header_groups([p for p in files if p.suffix.lower() == ".csv"])
    books = [p for p in files if p.suffix.lower() in (".xlsx", ".xls")]
    return Floor(
        csv_files=sum(len(paths) for paths in groups.values()),
        workbooks=len(books),
        csv_duckdb=_best(lambda: _duckdb(groups), repeats),
        csv_polars=_best(lambda: _polars(groups), repeats),
        workbooks_calamine=_best(lambda: _calamine(books), repeats),
    )


def _header_groups(files: list[Path]) -> dict[tuple[str, ...], list[str]]:
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for path in files:
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
            header = tuple(next(csv.reader(handle), []))
        if header:
            groups[header].append(str(path))
    return groups


def _duckdb(groups: dict[tuple[str, ...], list[str]]) -> None:
    with duckdb.connect() as con:
        for header, paths in groups.items():
            con.sql(
                "SELECT * FROM read_csv($paths, columns = $columns, header = true, ignore_errors = true)",
                params={"paths": paths, "columns": dict.fromkeys(header, "VARCHAR")},
            ).to_arrow_table()


def _polars(groups: dict[tuple[str, ...], list[str]]) -> None:
    for header, paths in groups.items():
        pl.scan_csv(
            paths, schema=dict.fromkeys(header, pl.String), encoding="utf8-lossy",
            truncate_ragged_lines=True,
        ).collect()


def _calamine(books: list[Path]) -> None:
    for path in books:
        reader = fastexcel.read_excel(str(path))
        for name in reader.sheet_names:
            reader.load_sheet_by_name(name, dtypes="string").to_arrow()


def _best(read, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        read()
        times.append(time.perf_counter() - began)
    return min(times)
