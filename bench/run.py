"""Benchmark: a large state through the whole pipeline (Dagster), stage by stage, against the floor.

    python -m bench.run [--agencies 3000] [--years 10] [--rows 10000000] [--seed 7]      (make bench)

1. The state (:mod:`bench.scale`): bulk uploads in every layout plus record-level booking exports, about
   ``--rows`` data rows, generated once and cached in bench/cache/.
2. The floor (:mod:`bench.floor`): the fastest plain read of the same files, read before the runs and again after
   them; each engine's best time counts, so a slow minute before the runs does not set the floor on its own.
3. Rounds (``--rounds``, default 2) of three `jc-pipeline run`s, each in its own process (:mod:`bench.pipeline_run`),
   each round on its own hard-linked copy of the state with a fresh Dagster instance: the full build, a run with
   nothing new (the fixed cost), and the nightly increment (one new month from every agency and five late
   corrections), its files' own floor read before it. Each kind of run counts with its best round, as each floor
   engine does with its best read: a slow minute during one run does not set the result on its own (every round is
   printed and kept in the results).

Prints stage times, peak resident memory and the ratios to the floor, checks the targets (pass/fail; never a
unit-test assertion) and writes bench/results/latest.json. docs/benchmarks.md explains the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import scale
from bench.floor import Floor, fastest, measure_floor
from bench.stages import STAGES

RESULTS = Path(__file__).parent / "results"
#: The runs of a round, in order.
RUNS = ("full build", "nothing new", "nightly increment")
#: name -> (target, how it is computed); checked by the runner, reported pass or fail.
TARGETS = {
    "ingest+normalize / floor": 2.0,
    "whole run / floor": 4.0,
    "nothing-new run seconds": 10.0,
    "increment / full build (fixed cost removed)": 0.05,
    "peak memory GiB": 4.0,
}


def measure(agencies: int, years: int, rows: int, seed: int, rounds: int = 2) -> dict[str, object]:
    """Everything the benchmark reports, as one dict (also written to bench/results/latest.json)."""
    began = time.perf_counter()
    state, size = scale.large_state(agencies, years, rows, seed)
    generated = time.perf_counter() - began
    inbox = sorted(p for p in (state / "inbox").rglob("*") if p.is_file())
    before = measure_floor(inbox)
    measured, increment_floors = zip(*(_round(state, agencies, years, seed, len(inbox)) for _ in range(rounds)), strict=True)
    after = measure_floor(inbox)
    floor, increment_floor = fastest(before, after), fastest(*increment_floors)
    full, nothing_new, increment = (min((r[name] for r in measured), key=lambda run: run["process"])
                                    for name in RUNS)
    fixed = nothing_new["process"]
    # The increment's share is a ratio of three runs of one round: the best round's (runs of several rounds
    # combined would be a ratio nobody measured).
    shares = [(r["nightly increment"]["process"] - r["nothing new"]["process"])
              / (r["full build"]["process"] - r["nothing new"]["process"]) for r in measured]
    results: dict[str, object] = {
        "state": {"agencies": agencies, "years": years, "seed": seed, **size.__dict__, "rows": size.rows,
                  "generated_or_cached_seconds": round(generated, 1)},
        "machine": _machine(),
        "floor": {**_engines(floor), "before the runs": before.total, "after the runs": after.total,
                  "rows read": floor.rows, "workbooks calamine typed (not counted)": floor.workbooks_calamine_typed},
        "increment floor": {"csv files": increment_floor.csv_files, "workbooks": increment_floor.workbooks,
                            **_engines(increment_floor)},
        "full build": full,
        "nothing new": nothing_new,
        "nightly increment": increment,
        "rounds": list(measured),
    }
    # Each run beyond the fixed cost against the floor of the files it brings: the full build's and the nightly
    # increment's costs per byte read, side by side (reported, not a target).
    results["beyond the fixed cost / own floor"] = {
        "full build": (full["process"] - fixed) / floor.total,
        "nightly increment": (increment["process"] - fixed) / increment_floor.total,
    }
    stages = full["stages"]
    results["targets"] = {
        "ingest+normalize / floor": min(_ingest_normalize(r["full build"]) for r in measured) / floor.total,
        "whole run / floor": full["process"] / floor.total,
        "nothing-new run seconds": fixed,
        "increment / full build (fixed cost removed)": min(shares),
        "peak memory GiB": max(_peak_mib(r[name]) for r in measured for name in RUNS) / 1024,
    }
    results["checks share of the full build"] = stages["checks"] / full["process"]
    results["code"] = _code()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return results


def _round(state: Path, agencies: int, years: int, seed: int, delivered: int) -> tuple[dict[str, dict], Floor]:
    """The three runs of one round (:data:`RUNS`), on a hard-linked copy of ``state`` (``delivered`` inbox files) with
    a fresh instance, and the floor of the increment's files (read between the run with nothing new and the
    increment's)."""
    with tempfile.TemporaryDirectory(prefix="run-", dir=state.parent) as scratch:
        data_dir = Path(scratch) / "state"
        shutil.copytree(state, data_dir, copy_function=os.link)  # the pipeline never writes into the inbox
        env = {**os.environ, "DAGSTER_HOME": str(Path(scratch) / "dagster_home")}
        full = _pipeline_run(data_dir, env, delivered)
        nothing_new = _pipeline_run(data_dir, env, delivered)
        files = scale.write_nightly_increment(data_dir, agencies, years, seed)
        increment_floor = measure_floor(files)
        increment = {**_pipeline_run(data_dir, env, delivered + len(files)), "files": len(files)}
    return dict(zip(RUNS, (full, nothing_new, increment), strict=True)), increment_floor


def _engines(floor: Floor) -> dict[str, float]:
    return {"csv duckdb": floor.csv_duckdb, "csv polars": floor.csv_polars,
            "workbooks calamine": floor.workbooks_calamine, "total": floor.total}


def _ingest_normalize(run: dict) -> float:
    return run["stages"]["ingest"] + run["stages"]["normalize"]


def _pipeline_run(data_dir: Path, env: dict[str, str], delivered: int) -> dict:
    """One `jc-pipeline run` in a child process: its JSON report plus ``process``, the wall time of the child up to
    the end of the run (imports, instance and Dagster included; the stage read-back after it left out). Refused
    unless the published warehouse lists every one of the ``delivered`` inbox files: a run is timed only when it
    read what the floor reads."""
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench.pipeline_run", str(data_dir)], env=env,
                          capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    if done.returncode:
        raise RuntimeError(f"the pipeline run on {data_dir} failed:\n{done.stderr[-5000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["process"] = time.perf_counter() - began - report["readback"]
    if report["files_read"] != delivered:
        raise RuntimeError(f"the pipeline run on {data_dir} lists {report['files_read']} files in source_files, not "
                           f"the {delivered} of the inbox: its times do not measure the state")
    return report


def _code() -> dict[str, object]:
    """The commit measured, whether the checkout had changes, and the load before the runs' end."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent.parent)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"), "changed files": bool(git("status", "--porcelain")),
            "load average": os.getloadavg()}


def _peak_mib(run: dict) -> float:
    """A run's peak resident memory: its process's exact peak, or the sampled peak of it with its children
    (calamine's worker), whichever is higher."""
    return max(run["peak_rss_mib"], run["peak_with_children_mib"])


def _machine() -> dict[str, object]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "system": platform.platform(),
            "memory GiB": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def report(results: dict) -> str:
    """The results as the text `make bench` prints."""
    s, f = results["state"], results["floor"]
    lines = [
        f"state: {s['agencies']} agencies, {s['years']} years, seed {s['seed']}: {s['csv_files']} CSV files, "
        f"{s['workbooks']} workbooks, {s['rows']:,} data rows ({s['bulk_rows']:,} bulk-upload, "
        f"{s['native_rows']:,} native records in {s['booking_exports']} booking exports)",
        f"floor: CSV duckdb {f['csv duckdb']:.2f} s, polars {f['csv polars']:.2f} s; workbooks calamine "
        f"{f['workbooks calamine']:.2f} s; total {f['total']:.2f} s (each engine's best of the reads before the runs, "
        f"{f['before the runs']:.2f} s, and after them, {f['after the runs']:.2f} s); {f['rows read']:,} rows read "
        f"(the full build counted {results['full build']['rows_read']:,}); a typed calamine read "
        f"{f['workbooks calamine typed (not counted)']:.2f} s (docs/decisions.md, \"The workbook floor\")",
        f"{'run':20s} {'process s':>9s} {'CPU s':>6s} {'runs':>5s} {'months':>6s} {'peak MiB':>8s}  "
        + " ".join(f"{stage:>9s}" for stage in STAGES),
    ]
    for name in RUNS:
        for number, measured in enumerate(results["rounds"], 1):
            r = measured[name]
            label = f"{name} {number}{'*' if r is results[name] else ''}"
            lines.append(f"{label:20s} {r['process']:9.1f} {r['cpu']:6.1f} {r['runs']:5d} {r['months']:6d} "
                         f"{_peak_mib(r):8.0f}  " + " ".join(f"{r['stages'][stage]:9.1f}" for stage in STAGES))
    lines.append("* the round counted for that run (its best process time); ingest+normalize counts its best round "
                 "on its own, peak memory its highest")
    for name in ("full build", "nightly increment"):
        steps, cpu = results[name]["steps"], results[name]["step_cpu"]
        lines.append(f"{name} steps: " + ", ".join(f"{step} {seconds:.1f}" for step, seconds in steps.items()))
        # Cores busy: a step at ~2 on two cores is bound by CPU; one well below waits (on a lock, a worker, I/O).
        lines.append(f"{name} CPU s by step (cores busy): " + ", ".join(
            f"{step} {cpu[step]:.1f} ({cpu[step] / seconds:.2f})" if seconds else f"{step} {cpu[step]:.1f}"
            for step, seconds in steps.items()))
        peaks = results[name]["step_peak_mib"]
        lines.append(f"{name} peak MiB by step (sampled): "
                     + ", ".join(f"{step} {mib:,.0f}" for step, mib in peaks.items()))
    lines.append(f"checks share of the full build: {results['checks share of the full build']:.1%}")
    night, beyond = results["increment floor"], results["beyond the fixed cost / own floor"]
    lines.append(f"the nightly increment's files ({night['csv files']} CSV, {night['workbooks']} workbooks): floor "
                 f"{night['total']:.2f} s (CSV duckdb {night['csv duckdb']:.2f} s, polars {night['csv polars']:.2f} s; "
                 f"workbooks calamine {night['workbooks calamine']:.2f} s; each engine's best of the rounds)")
    lines.append(f"beyond the fixed cost, against its own files' floor (not a target): full build "
                 f"{beyond['full build']:.1f}x, nightly increment {beyond['nightly increment']:.1f}x")
    for name, target in TARGETS.items():
        value = results["targets"][name]
        verdict = "pass" if value <= target else "FAIL"
        lines.append(f"  {name:46s} {value:8.3f}   target <= {target:<6} {verdict}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agencies", type=int, default=3000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--rows", type=int, default=10_000_000, help="data rows in total (bulk + native)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the three runs; each run's best counts")
    args = parser.parse_args()
    print(report(measure(args.agencies, args.years, args.rows, args.seed, args.rounds)))


if __name__ == "__main__":
    main()
