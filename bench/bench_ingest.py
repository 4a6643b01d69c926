"""Ingest benchmark: parse_inbox (+ write_batch) against the floor of merely reading the same files.

    python -m bench.bench_ingest [--agencies N] [--years Y] [--workbooks N]

Generates many small CSV deliveries (one file per sheet, as a state receives them) and multi-sheet workbooks, then
prints, separately for CSVs and workbooks, the floor (fastest plain read: DuckDB ``read_csv`` over each group of
files sharing a header with the columns given, or Polars ``scan_csv`` over the same list; calamine reading every
sheet), the ingest time and their ratio. Targets: 3x for both.
"""

from __future__ import annotations

import argparse
import csv
import random
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import duckdb
import fastexcel
import polars as pl
import xlsxwriter

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


def _best(run: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def csv_floor(data_dir: Path) -> float:
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for path in sorted((data_dir / "inbox").rglob("*.csv")):
        with path.open(newline="") as handle:
            groups[tuple(next(csv.reader(handle)))].append(str(path))

    def duck() -> None:
        for header, files in groups.items():
            columns = {name: "VARCHAR" for name in header}
            duckdb.sql("SELECT * FROM read_csv($files, columns=$columns, header=true)",
                       params={"files": files, "columns": columns}).fetchall()

    def scan() -> None:
        for header, files in groups.items():
            pl.scan_csv(files, schema={name: pl.String for name in header}).collect()

    return min(_best(duck), _best(scan))


def workbook_floor(data_dir: Path) -> float:
    def read() -> None:
        for path in sorted((data_dir / "inbox").rglob("*.xlsx")):
            reader = fastexcel.read_excel(str(path))
            for name in reader.sheet_names:
                reader.load_sheet(name).to_polars()

    return _best(read)


def ingest_seconds(data_dir: Path, write: bool) -> tuple[float, int]:
    registry = load_registry()
    roster = load_roster(data_dir, registry)
    rows = 0

    def run() -> None:
        nonlocal rows
        batch = ingest.parse_inbox(data_dir, {}, roster, registry, now=datetime(2024, 6, 1))
        rows = int(batch.files["rows_total"].sum())
        if write:
            with duckdb.connect() as con:
                ingest.ensure_schema(con)
                ingest.write_batch(con, batch)

    return _best(run), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agencies", type=int, default=300, help="agencies delivering CSVs (9 files each)")
    parser.add_argument("--workbooks", type=int, default=100, help="agencies delivering one 9-sheet workbook")
    parser.add_argument("--years", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        csv_dir, xlsx_dir = generate(Path(tmp), args.agencies, args.workbooks, args.years)
        load_registry()  # registry parsing is start-up cost, not ingest
        for label, data_dir, floor in (("CSV", csv_dir, csv_floor), ("workbooks", xlsx_dir, workbook_floor)):
            base = floor(data_dir)
            files = sum(1 for p in (data_dir / "inbox").rglob("*") if p.is_file())
            parse, rows = ingest_seconds(data_dir, write=False)
            parse_write, _ = ingest_seconds(data_dir, write=True)
            print(f"{label}: {files} files, {rows} rows | floor {base:.3f}s | parse_inbox {parse:.3f}s "
                  f"({parse / base:.2f}x) | parse+write_batch {parse_write:.3f}s ({parse_write / base:.2f}x)")


if __name__ == "__main__":
    main()
