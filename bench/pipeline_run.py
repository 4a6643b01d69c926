"""One `jc-pipeline run` for the benchmark, in its own process: prints what it took as one JSON line.

    python -m bench.pipeline_run DATA_DIR

Run as a child of the benchmark so its peak resident memory is its own (not the generator's or the floor's).
DAGSTER_HOME is the caller's.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import duckdb

from bench.memory import ProcessSampler, peak_rss_mib
from bench.stages import stage_seconds, step_seconds, step_windows
from jc_pipeline.lib.paths import DataLayout
from jc_pipeline.runner import open_instance, run_pipeline


def main() -> None:
    layout = DataLayout.from_env(Path(sys.argv[1]))
    began, started = time.perf_counter(), time.time()
    with ProcessSampler() as sampled:
        summary = run_pipeline(layout, echo=lambda line: print(line, file=sys.stderr))
        # Inside the block: the sampler's last sample comes after the run's end, so its CPU is read between two.
        wall, ended = time.perf_counter() - began, time.time()
    instance = open_instance(layout)
    windows = step_windows(instance, summary.run_ids)
    # What the published warehouse holds, which the benchmark checks against the files it wrote (a faster run
    # that read fewer files would otherwise pass as faster).
    with duckdb.connect(str(layout.warehouse), read_only=True) as con:
        files, rows = con.execute("SELECT count(*), coalesce(sum(rows_total), 0) FROM current_source_files").fetchone()
    report = {
        "files_read": files,
        "rows_read": int(rows),
        "wall": wall,
        "runs": len(summary.run_ids),
        "months": len(summary.months),
        "stages": stage_seconds(instance, summary.run_ids, wall),
        "steps": step_seconds(instance, summary.run_ids),
        "peak_rss_mib": peak_rss_mib(),
        # Sampled every 0.1 s with the workers (calamine's, GX's): the peak of them all, and which step holds it.
        "peak_with_children_mib": sampled.peak,
        "step_peak_mib": {step: max(sampled.peak_between(*window) for window in runs)
                          for step, runs in windows.items()},
        # CPU seconds of this process and its workers: with the wall time, how many cores the run and each step
        # kept busy (two busy cores: only less CPU makes them faster).
        "cpu": sampled.cpu_between(started, ended),
        "step_cpu": {step: sum(sampled.cpu_between(*window) for window in runs) for step, runs in windows.items()},
    }
    # Reading the stage times back is the benchmark's own work, not the run's: the parent leaves it out.
    report["readback"] = time.perf_counter() - began - wall
    print(json.dumps(report))


if __name__ == "__main__":
    main()
