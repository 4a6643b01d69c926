"""Native-export benchmark: a large jail booking export through the pipeline's ingest, against the floor.

    python -m bench.bench_native [--rows N] [--seed S]

Writes (once; cached under ``bench/cache/``) a seeded booking export of ``N`` records (default 10,000,000) with
its mapping (:func:`write_booking_export`, reusable by other benchmarks), then times

* the floor: DuckDB ``read_csv`` of the file with its columns given, reading every column (count and min/max of
  each, so every column is parsed);
* the ingest: :func:`jc_pipeline.lib.ingest.parse_inbox` on a data directory holding the export (the code path
  of the pipeline's ingest asset: the file is claimed by the agency's mapping and counted by
  :mod:`jc_pipeline.lib.mappings`) plus :func:`jc_pipeline.lib.ingest.write_batch` into a fresh DuckDB store,

and prints both (best of ``--repeats``, the two alternating), their ratio (also in CPU time, which a busy machine
disturbs less) and the ingest's peak resident memory (``VmHWM`` of the fresh process that ran it). Target:
ratio <= 3, memory well under 4 GiB.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from bench.memory import cpu_seconds, peak_rss_mib

EXPORT_NAME = "bookings_export.csv"
CACHE = Path(__file__).parent / "cache"
AGENCY_ID = "big_jail"
#: The roster of the benchmark's data directory: one county jail.
ROSTER = (("agency_id", "agency_name", "state_code", "sectors", "county_fips", "population",
           "fiscal_year_start_month", "superagency_id"),
          (AGENCY_ID, "Big County Jail", "US_XX", "JAILS", "99001", "2500000", "1", ""))
#: "Now" of the benchmark's ingest: after the export's last admission, so every month is in range.
NOW = datetime(2026, 6, 1)
#: Admissions are spread evenly over these years; the export is "as of" the end of the last one.
FIRST_YEAR, LAST_YEAR = 2015, 2025
#: Records generated (and written) per chunk: bounds the generator's memory.
CHUNK_ROWS = 500_000
HEADER = ("Booking ID", "Admission Date", "Release Date", "Admission Type", "Sex", "Race", "Ethnicity",
          "Top Charge")
# (code, weight) of each coded column; "" is an empty cell (the mapping counts it as UNKNOWN).
ADMISSION_TYPES = (("PRE", 70), ("SENT", 20), ("HOLD", 10))
SEXES = (("M", 77), ("F", 21), ("U", 1), ("", 1))
RACES = (("W", 55), ("B", 30), ("A", 3), ("I", 3), ("P", 1), ("M", 2), ("O", 2), ("U", 2), ("", 2))
ETHNICITIES = (("N", 75), ("H", 17), ("", 8))
OFFENSES = (("13A", 12), ("13B", 10), ("120", 3), ("23C", 9), ("220", 6), ("290", 5), ("240", 4), ("90D", 9),
            ("90C", 4), ("90J", 6), ("35A", 14), ("35B", 5), ("90Z", 8), ("", 5))

MAPPING = """\
# Jail management system booking export: one record per booking (written by bench/bench_native.py).
sources:
  - name: jms_bookings
    pattern: JAILS/bookings_*.csv
    kind: records
    period: {{from: {first_month}}}
    columns: {{booking: Booking ID, admitted: Admission Date, released: Release Date, type: Admission Type,
              sex: Sex, race: Race, ethnicity: Ethnicity, offense: Top Charge}}
    metrics:
      - metric: JAILS_TOTAL_ADMISSIONS
        date: admitted
        breakdowns:
          - dimension: metric/offense/type
            column: offense
            values: {offenses}
      - metric: JAILS_PRE_ADJUDICATION_ADMISSIONS
        date: admitted
        where: {{column: type, in: [PRE]}}
      - metric: JAILS_TOTAL_RELEASES
        date: released
        where: {{column: released, blank: false}}
      - metric: JAILS_TOTAL_POPULATION
        count: population
        start: admitted
        end: released
        breakdowns:
          - dimension: metric/offense/type
            column: offense
            values: {offenses}
          - dimension: global/race_and_ethnicity
            race: {{column: race, values: {{W: WHITE, B: BLACK, A: ASIAN, I: AMERICAN_INDIAN_ALASKAN_NATIVE,
                                          P: NATIVE_HAWAIIAN_PACIFIC_ISLANDER, M: MORE_THAN_ONE_RACE, O: OTHER,
                                          U: UNKNOWN}}}}
            ethnicity: {{column: ethnicity, values: {{H: HISPANIC, N: NOT_HISPANIC}}}}
          - dimension: global/biological_sex
            column: sex
            values: {{M: MALE, F: FEMALE, U: UNKNOWN}}
      - metric: JAILS_PRE_ADJUDICATION_POPULATION
        count: population
        start: admitted
        end: released
        where: {{column: type, in: [PRE]}}
"""
#: NIBRS code -> offense type member, as the agency maps its top charge.
OFFENSE_TYPES = {"13A": "PERSON", "13B": "PERSON", "120": "PERSON", "23C": "PROPERTY", "220": "PROPERTY",
                 "290": "PROPERTY", "240": "PROPERTY", "90D": "PUBLIC_ORDER", "90C": "PUBLIC_ORDER",
                 "90J": "PUBLIC_ORDER", "35A": "DRUG", "35B": "DRUG", "90Z": "OTHER"}


def write_booking_export(data_dir: Path, agency_id: str, rows: int, seed: int) -> Path:
    """Write a jail booking export of ``rows`` records and the agency's mapping into ``data_dir``.

    The export is ``inbox/<agency_id>/JAILS/bookings_export.csv`` (UTF-8, ISO datetimes, empty release date
    while in custody), ordered by admission like a real extract; the mapping is ``mappings/<agency_id>.yaml``
    (admissions by offense, pre-adjudication admissions, releases, average daily population by offense,
    race/ethnicity and sex, pre-adjudication population). The same ``rows`` and ``seed`` give the same bytes.
    The roster (``agencies.csv``) is the caller's: the agency must have the JAILS sector. Returns the export.
    """
    export = Path(data_dir) / "inbox" / agency_id / "JAILS" / EXPORT_NAME
    export.parent.mkdir(parents=True, exist_ok=True)
    mappings = Path(data_dir) / "mappings"
    mappings.mkdir(parents=True, exist_ok=True)
    offenses = "{" + ", ".join(f'"{code}": {member}' for code, member in OFFENSE_TYPES.items()) + "}"
    (mappings / f"{agency_id}.yaml").write_text(
        MAPPING.format(first_month=f"{FIRST_YEAR + 1}-01", offenses=offenses), encoding="utf-8")
    rng = np.random.default_rng(seed)
    first = int(datetime(FIRST_YEAR, 1, 1, tzinfo=UTC).timestamp())
    as_of = int(datetime(LAST_YEAR + 1, 1, 1, tzinfo=UTC).timestamp())
    with export.open("wb") as handle:
        handle.write((",".join(HEADER) + "\n").encode())
        for start in range(0, rows, CHUNK_ROWS):
            n = min(CHUNK_ROWS, rows - start)
            # Chunk k holds the k-th slice of the time span, sorted: admissions ascend through the file.
            lo = first + (as_of - first) * start // max(rows, 1)
            hi = first + (as_of - first) * (start + n) // max(rows, 1)
            _bookings(rng, start, n, lo, max(hi, lo + 1), as_of).write_csv(
                handle, include_header=False, datetime_format="%Y-%m-%d %H:%M:%S")
    return export


def _bookings(rng: np.random.Generator, first_id: int, n: int, lo: int, hi: int, as_of: int) -> pl.DataFrame:
    admitted = np.sort(rng.integers(lo, hi, n))
    # Stays: most people leave within days, some stay weeks, a few many months (sentenced, long holds).
    kind = rng.random(n)
    days = np.where(kind < 0.45, rng.exponential(1.5, n), np.where(kind < 0.93, rng.exponential(25, n),
                                                                   rng.exponential(240, n)))
    released = admitted + (days * 86400).astype(np.int64)
    frame = pl.DataFrame({
        "id": np.arange(first_id + 1, first_id + n + 1),
        "admitted": admitted,
        "released": np.where(released < as_of, released, -1),
        **{name: _codes(rng, n, choices) for name, choices in (
            ("type", ADMISSION_TYPES), ("sex", SEXES), ("race", RACES), ("ethnicity", ETHNICITIES),
            ("offense", OFFENSES))},
    })
    return frame.select(
        pl.lit("BK") + pl.col("id").cast(pl.String).str.zfill(10),
        pl.from_epoch("admitted", time_unit="s"),
        pl.when(pl.col("released") >= 0).then(pl.from_epoch("released", time_unit="s")),
        "type", "sex", "race", "ethnicity", "offense",
    )


def _codes(rng: np.random.Generator, n: int, choices: tuple[tuple[str, int], ...]) -> np.ndarray:
    codes = np.array([code for code, _ in choices])
    weights = np.array([weight for _, weight in choices], dtype=float)
    return codes[rng.choice(len(codes), size=n, p=weights / weights.sum())]


def data_dir(rows: int, seed: int, cache: Path = CACHE) -> Path:
    """The benchmark's data directory (roster, mapping, export), generated once per ``rows`` and ``seed``."""
    folder = cache / f"native-{rows}-{seed}"
    done = folder / "complete"
    if not done.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "agencies.csv").open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(ROSTER)
        write_booking_export(folder, AGENCY_ID, rows, seed)
        done.touch()  # written last: an interrupted generation is redone
    return folder


def floor_once(export: Path) -> dict[str, float]:
    """DuckDB reading the export with its columns given, every column parsed (count and min/max of each, so no
    column can be skipped): wall and CPU seconds (CPU of this process, all threads)."""
    columns = {name: "VARCHAR" for name in HEADER}
    extremes = ", ".join(f'min("{name}"), max("{name}")' for name in HEADER)  # our own header constants
    query = f"SELECT count(*), {extremes} FROM read_csv($path, header = true, columns = $columns)"
    with duckdb.connect() as con:
        cpu, began = cpu_seconds(), time.perf_counter()
        con.execute(query, {"path": str(export), "columns": columns}).fetchall()
        return {"seconds": time.perf_counter() - began, "cpu_seconds": cpu_seconds() - cpu}


def ingest_once(folder: Path) -> dict[str, float | int]:
    """One ingest as the pipeline's ingest asset runs it (parse_inbox, then write_batch into a fresh store),
    timed; with this process's peak resident memory (call it in a fresh process: :func:`ingest_in_subprocess`)."""
    from jc_pipeline.lib import ingest
    from jc_pipeline.lib.registry import load_registry
    from jc_pipeline.lib.roster import load_roster

    registry = load_registry()
    roster = load_roster(folder, registry)
    baseline = peak_rss_mib()
    with tempfile.TemporaryDirectory(prefix="bench_native_") as scratch:
        cpu, began = cpu_seconds(), time.perf_counter()
        batch = ingest.parse_inbox(folder, {}, roster, registry, now=NOW)
        parsed = time.perf_counter()
        with duckdb.connect(str(Path(scratch) / "store.duckdb")) as con:
            ingest.ensure_schema(con)
            ingest.write_batch(con, batch)
        ended = time.perf_counter()
    peak = peak_rss_mib()
    return {"seconds": ended - began, "cpu_seconds": cpu_seconds() - cpu, "parse_seconds": parsed - began,
            "rows": int(batch.files["rows_total"].sum()),
            "rejected": int(batch.files["rows_rejected"].sum()), "datapoints": batch.datapoints.height,
            "peak_rss_mib": peak, "baseline_rss_mib": baseline}


def ingest_in_subprocess(folder: Path) -> dict[str, float | int]:
    """:func:`ingest_once` in a fresh Python process, so its peak memory is the ingest's alone."""
    done = subprocess.run([sys.executable, "-m", "bench.bench_native", "--ingest-once", str(folder)],
                          capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(rows: int, seed: int, repeats: int, cache: Path = CACHE) -> dict[str, object]:
    """Floor and ingest, best of ``repeats`` each, their ratios (wall and CPU time) and the ingest's peak memory.

    Floor and ingest runs alternate, so a machine shared with other work slows both alike.
    """
    folder = data_dir(rows, seed, cache)
    export = folder / "inbox" / AGENCY_ID / "JAILS" / EXPORT_NAME
    floors, runs = [], []
    for _ in range(repeats):
        floors.append(floor_once(export))
        runs.append(ingest_in_subprocess(folder))
    floor, best = min(f["seconds"] for f in floors), min(runs, key=lambda r: r["seconds"])
    floor_cpu, ingest_cpu = min(f["cpu_seconds"] for f in floors), min(r["cpu_seconds"] for r in runs)
    return {"rows": rows, "seed": seed, "bytes": export.stat().st_size, "floor_seconds": floor,
            "ingest_seconds": best["seconds"], "parse_seconds": best["parse_seconds"],
            "ratio": best["seconds"] / floor, "floor_cpu_seconds": floor_cpu, "ingest_cpu_seconds": ingest_cpu,
            "cpu_ratio": ingest_cpu / floor_cpu, "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
            "baseline_rss_mib": best["baseline_rss_mib"], "records": best["rows"], "rejected": best["rejected"],
            "datapoints": best["datapoints"], "data_dir": str(folder)}


def report(measured: dict[str, object]) -> str:
    return (f"{measured['rows']:,} bookings, {measured['bytes'] / 2**20:,.0f} MiB | floor (DuckDB read_csv, every "
            f"column) {measured['floor_seconds']:.2f}s | ingest (parse_inbox + write_batch) "
            f"{measured['ingest_seconds']:.2f}s (parse {measured['parse_seconds']:.2f}s) | ratio "
            f"{measured['ratio']:.2f}x (target 3x; CPU time {measured['ingest_cpu_seconds']:.1f}s / "
            f"{measured['floor_cpu_seconds']:.1f}s = {measured['cpu_ratio']:.2f}x) | peak RSS "
            f"{measured['peak_rss_mib']:,.0f} MiB (fresh process, VmHWM; {measured['baseline_rss_mib']:,.0f} MiB "
            f"after imports) | {measured['datapoints']:,} datapoints, {measured['rejected']:,} records rejected")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="bookings in the export")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs (the machine is shared)")
    parser.add_argument("--ingest-once", type=Path, help=argparse.SUPPRESS)  # the measured child process
    args = parser.parse_args()
    if args.ingest_once is not None:
        print(json.dumps(ingest_once(args.ingest_once)))
        return
    print(report(measure(args.rows, args.seed, args.repeats)))


if __name__ == "__main__":
    main()
