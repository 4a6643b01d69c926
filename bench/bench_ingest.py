"""Ingest benchmark: parse_inbox (+ write_batch) against the floor of merely reading the same files.

    python -m bench.bench_ingest [--agencies N] [--years Y] [--workbooks N] [--rounds R]

Generates many small CSV deliveries (one file per sheet, as a state receives them) and multi-sheet workbooks, then
prints, separately for CSVs and workbooks, the floor (the reads of :mod:`bench.floor`: DuckDB ``read_csv`` over
each group of files sharing a header with the columns given, or Polars ``scan_csv`` over the same list, whichever
is faster; calamine reading every sheet of every workbook once), the ingest time and their ratio. Targets: 3x for
both.

Each round times the floor, ``parse_inbox`` and ``parse_inbox`` + ``write_batch`` one after the other, and every
figure is the fastest of its rounds: on a shared machine, load that comes and goes then hits all three alike
instead of whichever phase it happened to meet. ``write_batch`` writes into a fresh in-memory warehouse whose
schema is created before the clock starts (creating it is warehouse set-up, not ingest). Ratios of CPU time
(every thread of the process) are printed beside the wall-time ones: on a machine loaded by other work they are
much steadier. Polars and DuckDB read CSVs on every core while the ingest mostly runs on one, so for CSVs the CPU
ratio is lower than the wall ratio of a quiet machine; calamine and the workbook ingest both run on one.
"""

from __future__ import annotations

import argparse
import csv
import random
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import duckdb
import xlsxwriter

from bench import floor
from bench.memory import cpu_seconds
from jc_pipeline.lib import ingest
from jc_pipeline.lib.registry import load_registry
from jc_pipeline.lib.roster import AGENCY_COLUMNS, load_roster

OFFENSES = ["Person Offenses", "Property Offenses", "Drug Offenses", "Public Order Offenses", "Other Offenses",
            "Unknown Offenses"]
SEXES = ["Male", "Female", "Unknown"]


def _sheets(years: int, rng: random.Random) -> dict[str, list[list[object]]]:
    """The law-enforcement sheets of one agency: monthly metrics with breakdowns, annual money and staff."""
    months = [(2023 - y, m) for y in range(years) for m in range(1, 13)]
    sheets: dict[str, list[list[object]]] = {}
    for metric in ("arrests", "reported_crime", "calls_for_service"):
        sheets[metric] = [["year", "month", "value"], *([y, m, rng.randint(0, 900)] for y, m in months)]
    sheets["arrests_by_type"] = [["year", "month", "offense_type", "value"],
                                 *([y, m, o, rng.randint(0, 150)] for y, m in months for o in OFFENSES)]
    sheets["arrests_by_biological_sex"] = [["year", "month", "biological_sex", "value"],
                                           *([y, m, s, rng.randint(0, 300)] for y, m in months for s in SEXES)]
    sheets["reported_crime_by_type"] = [["year", "month", "offense_type", "value"],
                                        *([y, m, o, rng.randint(0, 150)] for y, m in months for o in OFFENSES)]
    for metric in ("funding", "expenses", "staff"):
        sheets[metric] = [["year", "value"], *([2023 - y, rng.randint(1000, 10**7)] for y in range(years))]
    return sheets


def generate(root: Path, agencies: int, workbooks: int, years: int) -> tuple[Path, Path]:
    """Two data directories (CSV deliveries, workbook deliveries) sharing one roster."""
    rng = random.Random(7)
    dirs = (root / "csv", root / "xlsx")
    for data_dir in dirs:
        (data_dir / "inbox").mkdir(parents=True)
        with (data_dir / "agencies.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(AGENCY_COLUMNS)
            writer.writerows((f"le{i}", f"Police {i}", "US_XX", "LAW_ENFORCEMENT", "", "1000", "1", "")
                             for i in range(max(agencies, workbooks)))
    for i in range(agencies):
        folder = dirs[0] / "inbox" / f"le{i}" / "LAW_ENFORCEMENT"
        folder.mkdir(parents=True)
        for name, rows in _sheets(years, rng).items():
            with (folder / f"{name}.csv").open("w", newline="") as handle:
                csv.writer(handle).writerows(rows)
    for i in range(workbooks):
        folder = dirs[1] / "inbox" / f"le{i}" / "LAW_ENFORCEMENT"
        folder.mkdir(parents=True)
        with xlsxwriter.Workbook(str(folder / "upload.xlsx")) as workbook:
            for name, rows in _sheets(years, rng).items():
                sheet = workbook.add_worksheet(name)
                for r, row in enumerate(rows):
                    sheet.write_row(r, 0, row)
    return dirs


def _seconds(run: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of ``run``; CPU time counts every thread of the process and calamine's worker."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    run()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def _fastest(*timings: tuple[float, float]) -> tuple[float, float]:
    """The fastest wall time and the fastest CPU time of ``timings``, each on its own."""
    return min(wall for wall, _ in timings), min(cpu for _, cpu in timings)


def csv_floor(data_dir: Path) -> Callable[[], tuple[float, float]]:
    """One timing of the CSV floor: the faster of the two plain reads of :mod:`bench.floor`."""
    groups = floor.header_groups(sorted((data_dir / "inbox").rglob("*.csv")))
    return lambda: _fastest(_seconds(lambda: floor.read_csv_duckdb(groups)),
                            _seconds(lambda: floor.read_csv_polars(groups)))


def workbook_floor(data_dir: Path) -> Callable[[], tuple[float, float]]:
    """One timing of the workbook floor: calamine reading every sheet of every workbook once (:mod:`bench.floor`)."""
    books = sorted((data_dir / "inbox").rglob("*.xlsx"))
    return lambda: _seconds(lambda: floor.read_workbooks(books))


def measure(data_dir: Path, read_floor: Callable[[], tuple[float, float]], rounds: int) -> tuple:
    """(floor, parse_inbox, parse_inbox + write_batch) as (wall, CPU) seconds, each the fastest of ``rounds``;
    and the data rows."""
    registry = load_registry()
    roster = load_roster(data_dir, registry)

    def parse() -> ingest.IngestBatch:
        return ingest.parse_inbox(data_dir, {}, roster, registry, now=datetime(2024, 6, 1))

    best = [(float("inf"), float("inf"))] * 3
    for _ in range(rounds):
        parse_seconds = _seconds(parse)
        # A store on disk: the staged datapoints are Parquet files beside it.
        with tempfile.TemporaryDirectory(prefix="bench_ingest_") as scratch, \
                duckdb.connect(str(Path(scratch) / "store.duckdb")) as con:
            ingest.ensure_schema(con)
            write_seconds = _seconds(lambda con=con: ingest.write_batch(con, parse()))
        best = [_fastest(b, t) for b, t in zip(best, (read_floor(), parse_seconds, write_seconds), strict=True)]
    return *best, int(parse().files["rows_total"].sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agencies", type=int, default=300, help="agencies delivering CSVs (9 files each)")
    parser.add_argument("--workbooks", type=int, default=100, help="agencies delivering one 9-sheet workbook")
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (the fastest of each figure is kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        csv_dir, xlsx_dir = generate(Path(tmp), args.agencies, args.workbooks, args.years)
        load_registry()  # registry parsing is start-up cost, not ingest
        for label, data_dir, read_floor in (("CSV", csv_dir, csv_floor), ("workbooks", xlsx_dir, workbook_floor)):
            base, parse, parse_write, rows = measure(data_dir, read_floor(data_dir), args.rounds)
            files = sum(1 for p in (data_dir / "inbox").rglob("*") if p.is_file())
            print(f"{label}: {files} files, {rows} rows | floor {base[0]:.3f}s | parse_inbox {parse[0]:.3f}s "
                  f"({parse[0] / base[0]:.2f}x; CPU {parse[1] / base[1]:.2f}x) | parse+write_batch "
                  f"{parse_write[0]:.3f}s ({parse_write[0] / base[0]:.2f}x; CPU {parse_write[1] / base[1]:.2f}x)")


if __name__ == "__main__":
    main()
