"""Drive the pipeline through Dagster: every command that computes runs jobs on the instance under DAGSTER_HOME,
so runs, checks and metadata show in the UI exactly as if launched from it."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path

import dagster as dg

from jc_pipeline.defs.partitions import range_tags
from jc_pipeline.lib import pending
from jc_pipeline.lib.paths import DataLayout
from jc_pipeline.lib.periods import add_months, contiguous_ranges, months_between

Echo = Callable[[str], None]

#: The full event log is on the instance (and in the UI); the terminal gets warnings and our progress lines.
_QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class RunFailed(RuntimeError):
    """A Dagster run failed; the message says which run and which step."""


@dataclass
class RunSummary:
    """What one `jc-pipeline run` did."""

    run_ids: list[str] = field(default_factory=list)
    months: list[date] = field(default_factory=list)
    published: bool = False
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per job, summed over its runs


def use_instance(layout: DataLayout) -> Path:
    """Point DAGSTER_HOME at the data directory's instance unless the caller chose one; seed its dagster.yaml."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(layout.dagster_home)))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        with resources.as_file(resources.files("jc_pipeline.instance").joinpath("dagster.yaml")) as template:
            shutil.copyfile(template, config)
    return home


def load_definitions(layout: DataLayout) -> dg.Definitions:
    """The code location bound to this data directory."""
    os.environ["JC_DATA_DIR"] = str(layout.root)
    from jc_pipeline.definitions import defs

    return defs()


def run_pipeline(
    layout: DataLayout,
    *,
    first: date | None = None,
    last: date | None = None,
    echo: Echo = print,
) -> RunSummary:
    """Ingest what is new, then roll up exactly the months it touched (or first..last as a backfill), then publish."""
    use_instance(layout)
    definitions = load_definitions(layout)
    instance = dg.DagsterInstance.get()
    summary = RunSummary()

    def execute(job_name: str, tags: dict[str, str] | None = None) -> None:
        began = time.perf_counter()
        result = definitions.resolve_job_def(job_name).execute_in_process(
            run_config=_QUIET_CONSOLE, instance=instance, tags=tags or {}, raise_on_error=False
        )
        summary.seconds[job_name] = summary.seconds.get(job_name, 0.0) + time.perf_counter() - began
        summary.run_ids.append(result.run_id)
        if not result.success:
            failed = [event.step_key for event in result.all_events if event.is_step_failure]
            raise RunFailed(
                f"Dagster run {result.run_id} ({job_name}) failed in step(s) {', '.join(failed) or 'unknown'}; "
                f"open the run in the UI (make dev) for the error."
            )

    echo("[1/3] ingest: reading new and changed inbox files")
    execute("ingest_job")
    with definitions.resources["warehouse"].store().connect() as con:  # type: ignore[union-attr]
        months = pending.pending_months(con)
    if first and last:
        months = sorted(set(months) | set(months_between(first, add_months(last, 1))))
    summary.months = months
    ranges = contiguous_ranges(months)
    if not ranges and layout.warehouse.exists():
        echo("[2/3] roll-up: nothing new since the last run")
        echo("[3/3] publish: warehouse unchanged")
        return summary
    for number, (start, end) in enumerate(ranges, 1):
        echo(f"[2/3] roll-up {number}/{len(ranges)}: periods starting {start:%Y-%m} .. {end:%Y-%m}")
        execute("rollup_job", range_tags(start, end))
    echo("[3/3] publish: swapping in the new warehouse and data-quality report")
    execute("publish_job")
    summary.published = True
    return summary
