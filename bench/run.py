"""Benchmark: the whole pipeline through Dagster against the floor of merely reading the same files.

    python -m bench.run [--agencies N] [--years Y] [--seed S]

The floor is the fastest plain read of the same bytes: DuckDB `read_csv` over each group of CSVs that share a
header (columns given, no per-file sniffing) or Polars `scan_csv` over the same lists, whichever is faster, plus
every workbook sheet read once by calamine (fastexcel). Everything the pipeline does above that is overhead, so
results are printed as ratios. The generated state is cached in bench/cache/ between runs.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import duckdb
import fastexcel
import polars as pl

from jc_pipeline.lib.demo import write_demo_state
from jc_pipeline.lib.paths import DataLayout
from jc_pipeline.runner import run_pipeline

CACHE = Path(__file__).parent / "cache"
#: Targets of the benchmark (checked here, reported pass/fail; never asserted in unit tests).
TARGETS = {"ingest / floor": 3.0, "whole run / floor": 4.0, "nothing-new run seconds": 10.0}


def generated_state(agencies: int, years: int, seed: int) -> Path:
    """The cached demo state for these parameters (written once)."""
    root = CACHE / f"state_a{agencies}_y{years}_s{seed}"
    if not (root / "agencies.csv").exists():
        shutil.rmtree(root, ignore_errors=True)
        write_demo_state(root, agencies=agencies, years=years, seed=seed)
    return root


def _csv_groups(files: list[Path]) -> dict[tuple[str, ...], list[str]]:
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for path in files:
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
            header = tuple(next(csv.reader(handle), []))
        groups[header].append(str(path))
    return groups


def floor_seconds(inbox: Path) -> dict[str, float]:
    """Fastest plain read of every CSV (DuckDB vs Polars) and of every workbook sheet (calamine)."""
    files = sorted(p for p in inbox.rglob("*") if p.is_file())
    csvs = [p for p in files if p.suffix.lower() == ".csv"]
    books = [p for p in files if p.suffix.lower() in (".xlsx", ".xls")]
    groups = _csv_groups(csvs)

    began = time.perf_counter()
    with duckdb.connect() as con:
        for header, paths in groups.items():
            if header:
                columns = {name: "VARCHAR" for name in header}
                con.execute(
                    "SELECT count(*) FROM read_csv(?, columns = ?, header = true, ignore_errors = true)",
                    [paths, columns],
                ).fetchall()
    duck = time.perf_counter() - began

    began = time.perf_counter()
    for header, paths in groups.items():
        if header:
            pl.scan_csv(
                paths, schema={name: pl.String for name in header}, encoding="utf8-lossy", truncate_ragged_lines=True
            ).select(pl.len()).collect()
    polars_seconds = time.perf_counter() - began

    began = time.perf_counter()
    for path in books:
        reader = fastexcel.read_excel(str(path))
        for name in reader.sheet_names:
            reader.load_sheet_by_name(name, dtypes="string").to_polars()
    calamine = time.perf_counter() - began
    return {
        "csv files": len(csvs),
        "workbooks": len(books),
        "csv floor (best of duckdb/polars)": min(duck, polars_seconds),
        "csv duckdb": duck,
        "csv polars": polars_seconds,
        "workbook floor (calamine)": calamine,
        "floor total": min(duck, polars_seconds) + calamine,
    }


def measure(agencies: int, years: int, seed: int) -> dict[str, float]:
    """Floor and pipeline timings (seconds), ratios, and peak resident memory (MiB) for one generated state."""
    source = generated_state(agencies, years, seed)
    results: dict[str, float] = floor_seconds(source / "inbox")
    with tempfile.TemporaryDirectory(prefix="jc-bench-") as scratch:
        root = Path(scratch) / "state"
        shutil.copytree(source, root)
        previous_home = os.environ.get("DAGSTER_HOME")
        os.environ["DAGSTER_HOME"] = str(Path(scratch) / "dagster_home")
        try:
            layout = DataLayout.from_env(root)
            began = time.perf_counter()
            full = run_pipeline(layout, echo=lambda line: None)
            results["pipeline whole run"] = time.perf_counter() - began
            results.update({f"pipeline {job}": seconds for job, seconds in full.seconds.items()})
            began = time.perf_counter()
            run_pipeline(layout, echo=lambda line: None)
            results["pipeline run with nothing new"] = time.perf_counter() - began
        finally:
            if previous_home is None:
                os.environ.pop("DAGSTER_HOME", None)
            else:
                os.environ["DAGSTER_HOME"] = previous_home
    results["ingest / floor"] = results.get("pipeline ingest_job", 0.0) / results["floor total"]
    results["whole run / floor"] = results["pipeline whole run"] / results["floor total"]
    results["nothing-new run seconds"] = results["pipeline run with nothing new"]
    results["peak resident memory MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agencies", type=int, default=240)
    parser.add_argument("--years", type=int, default=6)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    results = measure(args.agencies, args.years, args.seed)
    print(f"state: {args.agencies} agencies, {args.years} years, seed {args.seed} "
          f"({results['csv files']:.0f} CSV files, {results['workbooks']:.0f} workbooks)")
    for name, value in results.items():
        if name in TARGETS or name in ("csv files", "workbooks"):
            continue
        print(f"  {name:38s} {value:10.2f}")
    for name, target in TARGETS.items():
        verdict = "pass" if results[name] <= target else "FAIL"
        print(f"  {name:38s} {results[name]:10.2f}   target <= {target:<5} {verdict}")


if __name__ == "__main__":
    main()
