"""Drive the pipeline through Dagster: every command that computes runs jobs on the instance under DAGSTER_HOME,
so runs, checks and metadata show in the UI exactly as if launched from it. Only its *Re-execute* does not work on
them: they run in this process, not from the code location, so Dagster has no origin to launch them again from."""

from __future__ import annotations

import os
import resource
import shlex
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import dagster as dg
from filelock import FileLock, Timeout

from jc_pipeline.defs.automation.jobs import LAUNCHED_BY_CLI, LAUNCHED_BY_TAG, ingest_run_config
from jc_pipeline.defs.partitions import pending_range_tags, range_tags
from jc_pipeline.defs.resources import WAREHOUSE_POOL
from jc_pipeline.instance.event_log import load_instance
from jc_pipeline.lib import pending, validation
from jc_pipeline.lib.paths import DataLayout
from jc_pipeline.lib.periods import FIRST_PERIOD, contiguous_ranges, months_through

Echo = Callable[[str], None]

#: The full event log (tracebacks included) is on the instance and in the UI; the terminal gets our progress
#: lines and, on failure, one message naming the step and the error.
_QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

#: Tag on every run `jc-pipeline run` starts: "<host>:<lease>", the lease its process holds (see `_lease`).
RUNNER_TAG = "jc/runner"

#: Under DAGSTER_HOME: one lock file per live `jc-pipeline run` process.
_LEASES = "jc-runners"

_UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]

_ORPHAN_MESSAGE = (
    "The jc-pipeline process running this run died before it finished (killed, out of memory, or the machine "
    "stopped). Marked failed by the next jc-pipeline run, which redoes its work."
)


class RunFailed(RuntimeError):
    """A Dagster run failed; the message says which run, which step and what went wrong."""


class RunOutcome(Protocol):
    """What the runner needs from a finished run (ExecuteInProcessResult and JobExecutionResult both fit)."""

    success: bool
    run_id: str

    @property
    def all_events(self) -> list[dg.DagsterEvent]: ...


#: Runs one job of the code location to completion: (definitions, job name, run config, tags, instance) -> outcome.
Launch = Callable[[dg.Definitions, str, Mapping[str, Any], Mapping[str, str], dg.DagsterInstance], RunOutcome]


def execute_in_process(
    definitions: dg.Definitions,
    job_name: str,
    run_config: Mapping[str, Any],
    tags: Mapping[str, str],
    instance: dg.DagsterInstance,
) -> RunOutcome:
    """The default launch: the job's steps one after another in this process (the code location's executor)."""
    return definitions.resolve_job_def(job_name).execute_in_process(
        run_config=dict(run_config), instance=instance, tags=dict(tags), raise_on_error=False
    )


@dataclass
class RunSummary:
    """What one `jc-pipeline run` did."""

    run_ids: list[str] = field(default_factory=list)
    months: list[date] = field(default_factory=list)
    published: bool = False
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per job, summed over its runs


def instance_home(layout: DataLayout) -> Path:
    """The folder of the Dagster instance: DAGSTER_HOME when the caller chose one, else the data directory's; neither
    made nor changed. The caller's choice is read as ``JC_DATA_DIR`` is: empty counts as not set, ``~`` is expanded
    and a relative path is made absolute (Dagster, in this process and in the webserver, refuses a relative one; an
    empty one had put the instance in the working directory)."""
    chosen = os.environ.get("DAGSTER_HOME")
    home = Path(chosen).expanduser().resolve() if chosen else layout.dagster_home
    if home.exists() and not home.is_dir():
        raise NotADirectoryError(f"DAGSTER_HOME={chosen!r} is a file, not a folder; point it at a folder (or unset it "
                                 f"to use {layout.dagster_home})")
    return home


def use_instance(layout: DataLayout) -> Path:
    """Point DAGSTER_HOME at :func:`instance_home` and seed its dagster.yaml.

    The copy is written beside the target and renamed into place, so two commands starting at once never read a
    half-written instance configuration."""
    home = instance_home(layout)
    os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        with resources.as_file(resources.files("jc_pipeline.instance").joinpath("dagster.yaml")) as template:
            fd, tmp = tempfile.mkstemp(dir=home, prefix=".dagster.yaml.")
            os.close(fd)
            shutil.copyfile(template, tmp)
            os.replace(tmp, config)
    return home


def _instance_lock(home: Path) -> FileLock:
    return FileLock(str(home / ".jc-instance-init.lock"), timeout=300)


def open_instance(layout: DataLayout) -> dg.DagsterInstance:
    """The instance under DAGSTER_HOME (see `use_instance`; its SQLite event log keeping a connection per file:
    `load_instance`), opened under a lock: the first open creates and stamps the SQLite storages, and two
    commands doing that at once leave two schema versions recorded (alembic "more than one head"), after which
    every later command fails."""
    home = use_instance(layout)
    with _instance_lock(home):
        return load_instance(home)


@contextmanager
def _lease(home: Path) -> Iterator[str]:
    """This process's lease: a lock file held until the block ends, or until the kernel drops it because the
    process died (SIGKILL, out of memory, power). Its name tags every run the process starts, so a later command
    can tell a run still in progress from one nobody will ever finish."""
    folder = home / _LEASES
    folder.mkdir(exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.lock"
    with FileLock(str(path)):
        try:
            yield f"{socket.gethostname()}:{path.stem}"
        finally:
            path.unlink(missing_ok=True)  # before the release, so no other process ever takes a removed lease


def _live_leases(folder: Path) -> set[str]:
    """Names of the leases a live process holds. The files of dead ones are removed (while locked, so a process
    that created one an instant ago and has not locked it yet notices and starts over: filelock checks)."""
    alive = set()
    for path in folder.glob("*.lock"):
        probe = FileLock(str(path), timeout=0)
        try:
            probe.acquire()
        except Timeout:
            alive.add(path.stem)
            continue
        path.unlink(missing_ok=True)
        probe.release()
    return alive


def end_orphaned_runs(instance: dg.DagsterInstance, home: Path) -> list[str]:
    """Mark failed the runs that a `jc-pipeline run` process left unfinished when it died, free the pool slots
    they held, and return their ids.

    A killed process never reports its run's end: the run stays STARTED and keeps its slot of the one-slot pool
    `duckdb_warehouse`, so every later step would wait for that slot forever (the daemon frees slots only of runs
    that have ended, and no daemon watches runs executed in a command's own process). Runs of a live process, of
    another machine sharing the instance, or not started by `jc-pipeline run` are left alone."""
    host = socket.gethostname()
    ended: list[str] = []
    with _instance_lock(home):  # one command at a time decides, so no run is reported failed twice
        alive = _live_leases(home / _LEASES)
        runs = instance.get_runs(
            filters=dg.RunsFilter(statuses=_UNFINISHED, tags={LAUNCHED_BY_TAG: LAUNCHED_BY_CLI})
        )
        for run in runs:
            owner, _, lease = run.tags.get(RUNNER_TAG, "").partition(":")
            if owner != host or not lease or lease in alive:
                continue
            instance.report_run_failed(run, _ORPHAN_MESSAGE)
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            ended.append(run.run_id)
    return ended


def _pool_runs(instance: dg.DagsterInstance) -> list[tuple[str, dg.DagsterRun | None]]:
    """The runs holding a slot of the warehouse pool, by id (None: the instance has no such run)."""
    return [(run_id, instance.get_run_by_id(run_id))
            for run_id in sorted(instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).active_run_ids)]


def free_ended_holders(instance: dg.DagsterInstance) -> list[str]:
    """Free the warehouse pool's slot where a run that has ended, or that the instance no longer has (deleted in the
    UI), still holds it, and return those runs' ids. The daemon frees an ended run's slots only after
    `free_slots_after_run_end_seconds` and only while it runs, and never a deleted run's (helper-31)."""
    freed = [run_id for run_id, run in _pool_runs(instance) if run is None or run.is_finished]
    for run_id in freed:
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    return freed


def pool_holders(instance: dg.DagsterInstance) -> list[str]:
    """What a run of this command would wait for: each run holding the slot of the warehouse pool, as "<run id>
    (<job>, <status>, started by <who>)". A run killed outside `jc-pipeline run` keeps its slot until the daemon's
    run monitoring or the UI ends it, and the step waiting for it says nothing."""
    holders = []
    for run_id, run in _pool_runs(instance):
        if run is None:
            holders.append(f"{run_id} (no such run in this instance)")
            continue
        who = run.tags.get(LAUNCHED_BY_TAG) or run.tags.get("dagster/sensor_name") or \
            run.tags.get("dagster/schedule_name") or "Dagster"
        holders.append(f"{run_id} ({run.job_name}, {run.status.value}, started by {who})")
    return holders


def load_definitions(layout: DataLayout) -> dg.Definitions:
    """The code location bound to this data directory."""
    os.environ["JC_DATA_DIR"] = str(layout.root)
    from jc_pipeline.definitions import defs

    return defs()


def ui_command(layout: DataLayout) -> str:
    """The command, run in the repository, that opens this data directory's instance in the Dagster UI (helper-52:
    a bare `make dev` opened ./data's instance, where the runs of another data directory are not)."""
    command = f"make dev DATA_DIR={shlex.quote(str(layout.root))}"
    home = instance_home(layout)
    return command if home == layout.dagster_home else f"{command} DAGSTER_HOME={shlex.quote(str(home))}"


def failure_message(outcome: RunOutcome, job_name: str, ui: str) -> str:
    """Which steps failed and the error each raised (the innermost cause: the one that names the input), without
    Dagster's wrapper exceptions or stack traces; ``ui``: :func:`ui_command`."""
    problems: list[str] = []
    for event in outcome.all_events:
        if event.is_step_failure:
            problems.append(f"  step {event.step_key}: {_root_cause(event.step_failure_data.error)}")
    if not problems:
        for event in outcome.all_events:
            if event.is_run_failure and event.job_failure_data.error is not None:
                problems.append(f"  {_root_cause(event.job_failure_data.error)}")
    detail = "\n".join(problems) or "  (no step reported an error; see the run's event log)"
    return (
        f"Dagster run {outcome.run_id} ({job_name}) failed:\n{detail}\n"
        "Fix what the message names and run `jc-pipeline run` again: files already ingested are not read twice, and "
        f"the months not yet rolled up are picked up again. Full event log: `{ui}`, then Runs > {outcome.run_id} "
        "(a run this command started cannot be re-executed from the UI: run the command again)."
    )


#: What a step fails with when Ctrl-C (SIGINT) lands in it: Dagster's own error, or DuckDB's interrupted query.
_INTERRUPTIONS = ("DagsterExecutionInterruptedError", "KeyboardInterrupt", "InterruptException")


def _interrupted(outcome: RunOutcome) -> bool:
    """Whether the run failed because it was interrupted (SIGINT), not because of anything to fix."""
    for event in outcome.all_events:
        error = (event.step_failure_data.error if event.is_step_failure else
                 event.job_failure_data.error if event.is_run_failure else None)
        while error is not None:
            if error.cls_name in _INTERRUPTIONS or "Query interrupted" in error.message:
                return True
            error = error.cause
    return False


def _root_cause(error: Any) -> str:
    if error is None:
        return "unknown error"
    while error.cause is not None:
        error = error.cause
    # Errors relayed from step processes embed their stack in the message: keep the words, drop the stack.
    text = error.message.split("Stack Trace:")[0]
    message = "\n    ".join(line.strip() for line in text.strip().splitlines()[:20] if line.strip())
    if error.cls_name:
        # The stored message repeats the qualified class name ("pkg.module.RosterError: ..."); keep it once, short.
        prefix, _, rest = message.partition(": ")
        if rest and prefix.rsplit(".", 1)[-1] == error.cls_name:
            message = rest
        return f"{message} ({error.cls_name})"
    return message


def _materialization_metadata(outcome: RunOutcome, asset: str) -> dict[str, Any]:
    for event in outcome.all_events:
        if event.is_step_materialization:
            materialization = event.step_materialization_data.materialization
            if materialization.asset_key == dg.AssetKey(asset):
                return {key: value.value for key, value in materialization.metadata.items()}
    return {}


#: The least address space to run with: a large state's peak is 2.8 GiB resident at 3,000 agencies
#: (docs/benchmarks.md), and a process maps more than it holds.
NEEDED_ADDRESS_SPACE = 4 * 1024**3


def address_space_limit() -> str:
    """What to say when this process may map less than :data:`NEEDED_ADDRESS_SPACE` ("" otherwise): under such a
    limit a big file stops the run with only "memory allocation of N bytes failed" (helper-49)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft >= NEEDED_ADDRESS_SPACE:
        return ""
    return (f"this process may map only {soft / 1024**3:.1f} GiB of address space (ulimit -v, systemd's LimitAS=): a "
            f"large state's run needs more, and past the limit it stops without naming the file; raise the limit to "
            f"at least {NEEDED_ADDRESS_SPACE // 1024**3} GiB or remove it (docs/operations.md, Memory)")


def run_pipeline(
    layout: DataLayout,
    *,
    first: date | None = None,
    last: date | None = None,
    echo: Echo = print,
    launch: Launch = execute_in_process,
    run_config: Mapping[str, Any] | None = None,
    settle_seconds: float = 0,
) -> RunSummary:
    """Ingest what is new, then roll up exactly the months it touched, or first..last as a backfill (`first` None:
    from the first month with data), then publish.

    `launch` runs one job; the default runs its steps in this process. `run_config` is merged over the quiet
    console configuration (for example an executor's config when `launch` uses another executor). Files modified
    in the last `settle_seconds` are left for the next run (`ingest_run_config`). Runs left unfinished by a
    `jc-pipeline run` that died are marked failed first (`end_orphaned_runs`)."""
    instance = open_instance(layout)
    home = use_instance(layout)
    limited = address_space_limit()
    if limited:
        echo(f"[0/3] {limited}")
    with _lease(home) as runner:
        orphans = end_orphaned_runs(instance, home)
        if orphans:
            echo(
                # Also a run whose end Dagster could not record (helper-49: a DAGSTER_HOME full that night).
                f"[0/3] {len(orphans)} run(s) a jc-pipeline process left unfinished (it died, or could not record "
                f"their end) marked failed ({', '.join(orphans)}); this run redoes their work"
            )
        run_tags = {LAUNCHED_BY_TAG: LAUNCHED_BY_CLI, RUNNER_TAG: runner}
        config = {**_QUIET_CONSOLE, **(run_config or {})}
        definitions = load_definitions(layout)
        summary = RunSummary()

        def execute(job_name: str, tags: dict[str, str] | None = None, ops: Mapping[str, Any] | None = None
                    ) -> RunOutcome:
            began = time.perf_counter()
            # A job's op config (the ingest's settle window) beside the caller's, not over it.
            job_config = {**config, "ops": {**config.get("ops", {}), **ops}} if ops else config
            for run_id in free_ended_holders(instance):
                echo(f"      freed the warehouse's slot that Dagster run {run_id} kept after it ended")
            for holder in pool_holders(instance):
                echo(f"      waiting for the warehouse: Dagster run {holder} holds it. If that run's process is gone, "
                     f"end it in the UI ({ui_command(layout)}, then Runs > the run > Terminate, forcing it), then "
                     f"stop this run (Ctrl-C) and start it again: it frees the slot an ended run kept")
            outcome = launch(definitions, job_name, job_config, {**run_tags, **(tags or {})}, instance)
            seconds = time.perf_counter() - began
            summary.seconds[job_name] = summary.seconds.get(job_name, 0.0) + seconds
            summary.run_ids.append(outcome.run_id)
            if not outcome.success:
                if _interrupted(outcome):
                    raise KeyboardInterrupt  # Ctrl-C during a step: the command's "interrupted", exit code 130
                raise RunFailed(failure_message(outcome, job_name, ui_command(layout)))
            return outcome

        started = time.perf_counter()
        # Great Expectations' worker imports it (~2.4 s of CPU) on the other core while the ingest reads: the
        # roll-up that usually follows then validates at once (a run with nothing new only wasted that core's time).
        validation.preload()
        echo("[1/3] ingest: reading new and changed inbox files")
        ingested = _materialization_metadata(execute("ingest_job", ops=ingest_run_config(settle_seconds)["ops"]),
                                             "source_files")
        if ingested:
            echo(
                f"      {ingested.get('files_new', 0)} new, {ingested.get('files_changed', 0)} changed, "
                f"{ingested.get('files_unchanged', 0)} unchanged, "
                + (f"{ingested['files_kept']} kept, " if ingested.get("files_kept") else "")
                + (f"{ingested['files_duplicate']} duplicate, " if ingested.get("files_duplicate") else "")
                + f"{ingested.get('files_unreadable', 0)} unreadable file(s) ({summary.seconds['ingest_job']:.1f} s)"
            )
            if ingested.get("inbox_empty"):
                echo(f"      {ingested['inbox_empty']}")
            if ingested.get("files_arriving"):
                echo(f"      {ingested['files_arriving']} file(s) modified in the last {settle_seconds:g} s may still "
                     f"be arriving: left for the next run")
            if ingested.get("files_reread"):
                echo(f"      {ingested['files_reread']} file(s) read again: the roster changed how their agency's "
                     f"files are read (fiscal year, settings, sectors or child agencies), their mapping changed, or "
                     f"this version of jc_pipeline reads files differently (an upgrade: docs/operations.md)")
            if ingested.get("files_duplicate"):
                echo(f"      {ingested['files_duplicate']} file(s) hold bytes the agency delivered at another path of "
                     f"the folder (moved, renamed or copied): not read again, their numbers count from there "
                     f"(source_files: DUPLICATE)")
            if ingested.get("files_kept"):
                example = ingested["kept"][0]  # not `first`: the run's first month (helper-52: backfills failed)
                echo(f"      {ingested['files_kept']} export(s) keep what they loaded, not read again: e.g. "
                     f"{example['path']}: {example['why']}; fix the mapping (docs/mappings.md), or withdraw the export "
                     f"(docs/operations.md)")
            if ingested.get("files_withdrawn") or ingested.get("files_restored"):
                echo(f"      withdrawals.csv: {ingested.get('files_withdrawn', 0)} file version(s) withdrawn, "
                     f"{ingested.get('files_restored', 0)} given back; {ingested.get('withdrawal_months', 0)} "
                     f"month(s) to rebuild")
            for message in ingested.get("withdrawals_unmatched", []):
                echo(f"      {message}")
            if ingested.get("files_gone"):
                echo(f"      {ingested['files_gone']} file(s) to read again after the roster change are no longer in "
                     f"the inbox (folder(s) {', '.join(ingested['folders_gone'])}): what they loaded keeps the old "
                     f"roster's reading; see docs/operations.md, \"Renaming or removing an agency\"")
        store = definitions.resources["warehouse"].store()  # type: ignore[union-attr]
        with store.connect() as con:
            months = pending.pending_months(con)  # of new uploads
            whole = pending.whole_months(con)
            if whole:
                echo(f"      {len(whole)} month(s) with data ({whole[0]:%Y-%m} .. {whole[-1]:%Y-%m}) are rebuilt for "
                     f"every agency: the roster, its settings, the metric registry, the roll-up's rules or "
                     f"withdrawals.csv changed, or a backfill stopped before its roll-up")
            unpublished = pending.generations(con).unpublished
            # A nightly run is one roll-up from the first to the last of these months, however far apart: it
            # rebuilds only the months with work and in them only their agencies (`pending.pending_rebuilds`),
            # where a run per range paid Dagster's and the checks' fixed costs again (docs/decisions.md). A
            # backfill rebuilds its months whole, one run per range, joined across months without any datapoint,
            # where a run over them does nothing.
            ranges = [(months[0], months[-1])] if months else []
            tags_of = pending_range_tags
            if last:
                if first is None:  # a range given by its end reaches back to the first month with data
                    empty = pending.months_without_datapoints(con, FIRST_PERIOD, last)
                    first = next((m for m in months_through(FIRST_PERIOD, last) if m not in empty), last)
                requested = months_through(first, last)
                months = sorted(set(months) | set(requested))
                empty = pending.months_without_datapoints(con, months[0], months[-1])
                if all(month in empty for month in requested):  # helper-53: a mistyped year looked like success
                    echo(f"      no upload holds a period starting in {first:%Y-%m} .. {last:%Y-%m}: nothing there "
                         f"to recompute (a mistyped year?)")
                ranges = contiguous_ranges(months, empty=empty)
                tags_of = range_tags
                # Pending like a roster change's until rolled up: a backfill killed half-way leaves its months to
                # the next run, which said it redoes their work and found nothing new (helper-30).
                pending.mark_whole_months(con, [month for month in months if month not in empty])
        summary.months = months
        if not ranges:
            echo("[2/3] roll-up: nothing new since the last run")
            if not unpublished and layout.warehouse.exists():
                echo("[3/3] publish: warehouse unchanged")
                return summary
        for number, (start, end) in enumerate(ranges, 1):
            echo(f"[2/3] roll-up {number}/{len(ranges)}: periods starting {start:%Y-%m} .. {end:%Y-%m}")
            began = time.perf_counter()
            execute("rollup_job", tags_of(start, end))
            echo(f"      done in {time.perf_counter() - began:.1f} s")
        if not ranges and unpublished:
            echo("[3/3] publish: the warehouse lacks what no roll-up follows (files that touch no period: all their "
                 "rows rejected, or unreadable; a roster change; files read again), a roll-up a run stopped before "
                 "publishing, or one run outside this command (`dagster asset materialize`); publishing them now")
        else:
            echo("[3/3] publish: swapping in the new warehouse, writing the reports and the agency feedback")
        # Its last step records what it published (publish_generations). It publishes nothing while another run's
        # roll-up is half done (analyst_warehouse), whose own publish follows.
        summary.published = bool(_materialization_metadata(execute("publish_job"), "analyst_warehouse"))
        if not summary.published:
            echo("      not published: a roll-up in another run has rebuilt agency rows but not yet the state sums; "
                 "the publish that follows it brings this run's work too")
        echo(f"      done; whole run {time.perf_counter() - started:.1f} s")
        return summary
