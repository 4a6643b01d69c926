"""Crash safety (DESIGN §6: "a run killed at any point leaves the warehouse as it was or as it should be, and the
next run repairs it"). The real `jc-pipeline run` of a nightly delivery is killed with SIGKILL inside each phase —
ingest, writes to the store, roll-up, publish — and after every kill:

- analysts never saw a torn warehouse: while the run went, at the kill and right after it, the published file
  opened read-only was the old warehouse or the new one, whole;
- the next `jc-pipeline run` completes in spite of what the dead one left behind (Dagster runs left STARTED, the
  slot of the one-slot pool they held, its lease, a half-built warehouse file, a store never checkpointed) and
  publishes exactly the warehouse an uninterrupted run publishes, table for table and view for view.

How a kill lands inside a phase with no hook in the product: the test watches what a run shows anyway — the run
and step in progress and the step's log lines in the instance's event log, DuckDB's write lock on the store in
/proc/locks, the publish temp file — and when the wanted phase shows, it freezes the process group (SIGSTOP), checks
the phase again while nothing can move, and only then sends SIGKILL. Afterwards the instance must name the same run
and step as unfinished: that is the phase recorded for the kill.

Each kill point works on its own copy of the data directory, so they run two at a time (see `scenarios`).
"""

import os
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from jc_pipeline_tests.test_operations_support import (
    OBJECTS_SQL,
    add_late_correction,
    assert_same_contents,
    baseline,
    copy_state,
    fingerprint_of,
    first_law_enforcement_agency,
    jc,
    start_jc,
    warehouse_contents,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux /proc to watch locks and processes"),
]

#: The nightly delivery: corrections of two adjacent months, so one roll-up range (one rollup_job run).
CORRECTED_MONTHS = (3, 4)

UNFINISHED = (dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED)
REPORT_STEPS = ("agency_feedback", "data_quality_report", "state_report")

#: Seconds between two looks at the run, and between two analyst queries. Each look costs the test process about
#: 20 ms of CPU (instance queries), each query about 0.2 s (hashing every contract table): both take CPU from the
#: run watched, so they are spaced; a phase shorter than a poll is caught on another attempt (`kill_and_recover`).
POLL_EVERY = 0.1
VIEW_EVERY = 5.0

#: Generous, because the machine is shared: how long a phase may take to show, and how long any run may take.
PHASE_TIMEOUT = 300
RUN_TIMEOUT = 600


@dataclass(frozen=True)
class Progress:
    """What one `jc-pipeline run` shows at an instant, seen from outside its process."""

    finished: tuple[str, ...]  # jobs of its Dagster runs that succeeded, in order
    job: str | None  # the job of its run in progress; None between runs
    step: str | None  # the step in progress; None between steps
    started: tuple[str, ...]  # every step of the run in progress that has started, finished ones included
    logs: tuple[str, ...]  # what that step has logged so far
    store_open: bool  # its process holds DuckDB's write lock on pipeline/store.duckdb
    building: bool  # a publish temp file (.warehouse.duckdb.*.building) exists


def never(progress: Progress) -> bool:
    return False


@dataclass(frozen=True)
class KillPoint:
    phase: str
    inside: Callable[[Progress], bool]
    #: The phase is close and may be shorter than a poll: watch the store's lock closely (no instance query in
    #: between) and freeze the run the moment it is taken.
    near: Callable[[Progress], bool] = never
    #: The phase is next and may be shorter than a poll, with no lock to watch: look again without sleeping.
    hurry: Callable[[Progress], bool] = never
    swapped: bool = False  # whether the new warehouse is already published inside this phase

    def __str__(self) -> str:
        return self.phase


KILL_POINTS = [
    # The step opens the store before its scan (to list known files) and after it (to write); it logs one
    # progress line when the scan is done (a small delivery takes less than its 15 s between lines).
    KillPoint("ingest: writing the scanned files to the store",
              lambda p: (p.job, p.step) == ("ingest_job", "inbox_files") and p.store_open and bool(p.logs),
              near=lambda p: (p.job, p.step) == ("ingest_job", "inbox_files")),
    KillPoint("roll-up: writing agency_metrics to the store",
              lambda p: (p.job, p.step) == ("rollup_job", "agency_metrics") and p.store_open),
    KillPoint("roll-up: writing state_metrics to the store, agency_metrics committed",
              lambda p: (p.job, p.step) == ("rollup_job", "state_metrics") and p.store_open),
    # No publish step started yet, and no publish finished: between two steps, or after the publish run (a
    # small state's publish can start and end between two polls), step is None too.
    KillPoint("publish: not begun, roll-up committed",
              lambda p: "rollup_job" in p.finished and "publish_job" not in p.finished
              and p.job in (None, "publish_job") and not p.started and not p.building,
              hurry=lambda p: p.job == "rollup_job" and "state_metrics" in p.started),
    KillPoint("publish: building the new warehouse beside the old one",
              lambda p: (p.job, p.step) == ("publish_job", "analyst_warehouse") and p.building),
    KillPoint("publish: new warehouse swapped in, reports being written",
              lambda p: p.job == "publish_job" and p.step in REPORT_STEPS, swapped=True),
]


def home_of(data: Path) -> Path:
    return data / "pipeline" / "dagster_home"


def prepared(source: Path, target: Path) -> Path:
    """A copy of the published baseline, instance and run history included (a nightly run finds them), with the
    night's delivery in the inbox."""
    copy_state(source, target, with_instance=True)
    agency = first_law_enforcement_agency(target / "warehouse.duckdb")
    for month in CORRECTED_MONTHS:
        add_late_correction(target, agency, month=month, value=90000 + month)
    return target


def analyst_view(warehouse: Path) -> dict | None:
    """What an analyst opening the published warehouse read-only gets now: None when there is none, else the names
    of its tables and views and a fingerprint of the contract tables (a torn file fails to open, or differs)."""
    if not warehouse.exists():
        return None
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {"objects": con.execute(OBJECTS_SQL).fetchall(), **fingerprint_of(con)}


def store_write_locked(store: Path, group: int) -> bool:
    """Whether a process of `group` holds DuckDB's write lock on `store` (a read-write connection holds a POSIX
    write lock on the whole file while it is open)."""
    if not store.exists():
        return False
    info = store.stat()
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        # "1: POSIX  ADVISORY  WRITE 4242 fe:00:2252838 0 EOF"; a waiter's line has "->" in second place instead
        if fields[1:4] == ["POSIX", "ADVISORY", "WRITE"] and fields[5] == device and _in_group(int(fields[4]), group):
            return True
    return False


def _in_group(pid: int, group: int) -> bool:
    try:
        return os.getpgid(pid) == group
    except ProcessLookupError:
        return False


def members(group: int) -> dict[int, str]:
    """pid -> state letter of every live process of the process group (zombies are dead)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            found[int(stat.parent.name)] = fields[0]
    return found


def freeze(group: int) -> None:
    """SIGSTOP the group and wait until every member has stopped (signals are delivered asynchronously)."""
    os.killpg(group, signal.SIGSTOP)
    deadline = time.monotonic() + 10
    while not all(state in "Tt" for state in members(group).values()):
        assert time.monotonic() < deadline, f"process group {group} did not stop"
        time.sleep(0.001)


@dataclass
class RunLog:
    """One Dagster run's steps, read incrementally from the event log."""

    cursor: str | None = None
    open_steps: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    logs: dict[str, list[str]] = field(default_factory=dict)


class Watcher:
    """Reads a command's progress from its instance and the file system, never from the process itself."""

    def __init__(self, data: Path, group: int):
        self.data, self.group = data, group
        self.instance = dg.DagsterInstance.from_config(str(home_of(data)))
        self.since = datetime.now(timezone.utc)
        self.run_logs: dict[str, RunLog] = {}

    def runs(self) -> list[dg.DagsterRun]:
        """This command's Dagster runs, oldest first."""
        return list(reversed(self.instance.get_runs(filters=dg.RunsFilter(created_after=self.since))))

    def step_in_progress(self, run_id: str) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
        """The step of the run that started last and has not ended, the lines it logged, and every step that
        started."""
        log = self.run_logs.setdefault(run_id, RunLog())
        while True:
            page = self.instance.get_records_for_run(run_id, cursor=log.cursor, limit=500)
            for record in page.records:
                entry = record.event_log_entry
                event = entry.dagster_event
                if event is None:
                    log.logs.setdefault(entry.step_key, []).append(entry.user_message)
                elif event.event_type == dg.DagsterEventType.STEP_START:
                    log.open_steps.append(entry.step_key)
                    log.started.append(entry.step_key)
                elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
                    log.open_steps.remove(entry.step_key)
            log.cursor = page.cursor
            if not page.has_more:
                break
        if not log.open_steps:
            return None, (), tuple(log.started)
        step = log.open_steps[-1]
        return step, tuple(log.logs.get(step, ())), tuple(log.started)

    def progress(self) -> Progress:
        runs = self.runs()
        job = step = None
        logs: tuple[str, ...] = ()
        started: tuple[str, ...] = ()
        current = [run for run in runs if run.status in UNFINISHED]
        if current:
            job = current[-1].job_name
            step, logs, started = self.step_in_progress(current[-1].run_id)
        return Progress(
            finished=tuple(run.job_name for run in runs if run.status == dg.DagsterRunStatus.SUCCESS),
            job=job,
            step=step,
            started=started,
            logs=logs,
            store_open=store_write_locked(self.data / "pipeline" / "store.duckdb", self.group),
            building=any(self.data.glob(".warehouse.duckdb.*.building")),
        )

    def store_locked_within(self, seconds: float) -> bool:
        """Wait up to `seconds` for the run to write-lock the store, looking every millisecond."""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            if store_write_locked(self.data / "pipeline" / "store.duckdb", self.group):
                return True
            time.sleep(0.001)
        return False

    def unfinished(self) -> list[tuple[str, str | None]]:
        """(job, step in progress) of every run of this command the instance shows unfinished."""
        return [(run.job_name, self.step_in_progress(run.run_id)[0])
                for run in self.runs() if run.status in UNFINISHED]


@dataclass
class Kill:
    progress: Progress  # what the frozen run showed when it was killed
    unfinished: list[tuple[str, str | None]]  # what the instance shows unfinished after the kill
    survivors: dict[int, str]  # processes of the killed group still alive after it
    views: list[dict | None]  # every analyst view taken while the run went, at the kill and after it


def kill_inside(point: KillPoint, data: Path) -> Kill | None:
    """Start `jc-pipeline run` on `data` and SIGKILL its process group inside `point`'s phase; None when the run
    finished without the phase showing at any poll (shorter than a poll this time)."""
    warehouse = data / "warehouse.duckdb"
    run = start_jc("run", data_dir=data, dagster_home=home_of(data), new_session=True)
    group = run.pid
    try:
        watcher = Watcher(data, group)
        views = [analyst_view(warehouse)]
        deadline, next_view = time.monotonic() + PHASE_TIMEOUT, 0.0
        while run.poll() is None:
            assert time.monotonic() < deadline, f"the run never reached {point} in {PHASE_TIMEOUT} s"
            progress = watcher.progress()
            near = point.near(progress)
            if watcher.store_locked_within(POLL_EVERY) if near else point.inside(progress):
                freeze(group)
                frozen = watcher.progress()
                if point.inside(frozen):
                    views.append(analyst_view(warehouse))
                    os.killpg(group, signal.SIGKILL)
                    run.communicate(timeout=60)
                    views.append(analyst_view(warehouse))
                    return Kill(frozen, watcher.unfinished(), members(group), views)
                os.killpg(group, signal.SIGCONT)
            if time.monotonic() >= next_view:  # an analyst querying throughout, not only at the kill
                views.append(analyst_view(warehouse))
                next_view = time.monotonic() + VIEW_EVERY
            if not (near or point.hurry(progress)):
                time.sleep(POLL_EVERY)
        out, err = run.communicate()
        assert run.returncode == 0, f"stdout:\n{out}\nstderr:\n{err}"
        return None
    finally:
        if run.poll() is None:
            os.killpg(group, signal.SIGKILL)
            run.communicate()


@dataclass
class Outcome:
    """One kill point: the kill, the next run, and what that run left."""

    kill: Kill
    recovery: subprocess.CompletedProcess
    contents: dict  # warehouse_contents after the next run
    leftovers: list[str]  # temp files and leases nobody removed
    unfinished: list[dg.DagsterRun]  # runs the instance still shows unfinished
    pool: object  # the duckdb_warehouse pool's claimed slots and pending steps


def kill_and_recover(point: KillPoint, source: Path, workdir: Path) -> Outcome:
    for attempt in range(3):  # a phase can be shorter than a poll; a missed one is tried again on a fresh copy
        data = prepared(source, workdir / f"attempt{attempt}")
        kill = kill_inside(point, data)
        if kill is not None:
            break
    else:
        raise AssertionError(f"three runs went by without {point} showing at a poll")
    home = home_of(data)
    recovery = jc("run", data_dir=data, dagster_home=home, timeout=RUN_TIMEOUT)
    leftovers = [*data.glob(".warehouse.duckdb.*"), *(home / "jc-runners").iterdir()]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        unfinished = instance.get_runs(filters=dg.RunsFilter(statuses=list(UNFINISHED)))
        slots = instance.event_log_storage.get_concurrency_info("duckdb_warehouse")
    contents = warehouse_contents(data / "warehouse.duckdb") if recovery.returncode == 0 else {}
    return Outcome(kill, recovery, contents, [p.name for p in leftovers], unfinished,
                   (slots.claimed_slots, slots.pending_steps))


@dataclass
class Reference:
    before: dict  # analyst view of the warehouse before the night's run
    after: dict  # ... and after an uninterrupted one
    contents: dict  # warehouse_contents after an uninterrupted run


def uninterrupted(source: Path, data: Path) -> Reference:
    prepared(source, data)
    before = analyst_view(data / "warehouse.duckdb")
    result = jc("run", data_dir=data, dagster_home=home_of(data), timeout=RUN_TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("[2/3] roll-up") == 1, result.stdout
    return Reference(before, analyst_view(data / "warehouse.duckdb"), warehouse_contents(data / "warehouse.duckdb"))


@pytest.fixture(scope="module")
def scenarios(request, tmp_path_factory):
    """The uninterrupted reference run and every selected kill point, two at a time: each works on its own copy
    of the data directory with its own processes, and most of a run's time is one core, so two in parallel take
    about half as long on two cores. Each test waits for its own kill point only."""
    selected = {item.callspec.params["point"].phase for item in request.session.items
                if item.module is request.module and hasattr(item, "callspec")}
    source = baseline(tmp_path_factory)
    root = tmp_path_factory.mktemp("crash")
    with ThreadPoolExecutor(max_workers=2) as pool:
        reference = pool.submit(uninterrupted, source, root / "reference")
        kills = {point.phase: pool.submit(kill_and_recover, point, source, root / f"point{number}")
                 for number, point in enumerate(KILL_POINTS) if point.phase in selected}
        yield reference, kills
        for future in kills.values():
            future.cancel()


@pytest.mark.parametrize("point", KILL_POINTS, ids=str)
def test_killed_run_leaves_old_or_new_warehouse_and_next_run_repairs_it(point, scenarios):
    """SIGKILL inside `point`'s phase: analysts only ever read the old or the new warehouse, whole; no process of
    the run survives; the next run ends the dead run's Dagster runs and frees their pool slot, completes, leaves
    no temp file or lease behind and publishes exactly what an uninterrupted run publishes."""
    reference_future, kills = scenarios
    outcome: Outcome = kills[point.phase].result(timeout=2 * PHASE_TIMEOUT + 3 * RUN_TIMEOUT)
    reference: Reference = reference_future.result(timeout=RUN_TIMEOUT)
    kill = outcome.kill

    # The phase is what the frozen run showed, and the instance, read after the kill, agrees on what was cut short.
    assert point.inside(kill.progress)
    assert kill.unfinished == ([(kill.progress.job, kill.progress.step)] if kill.progress.job else [])
    assert kill.survivors == {}, "a process of the killed run survived"
    assert len(kill.views) >= 3
    assert all(view in (reference.before, reference.after) for view in kill.views), "an analyst read a torn warehouse"
    # As it was, or as it should be: the old warehouse until the swap, the new one from then on.
    assert kill.views[-1] == (reference.after if point.swapped else reference.before)

    recovery = outcome.recovery
    assert recovery.returncode == 0, f"stdout:\n{recovery.stdout}\nstderr:\n{recovery.stderr}"
    assert ("marked failed" in recovery.stdout) == bool(kill.unfinished), recovery.stdout
    assert_same_contents(outcome.contents, reference.contents)
    assert outcome.leftovers == [], "the dead run's half-built warehouse or lease was left behind"
    assert outcome.unfinished == [], "a run is still shown unfinished"
    assert outcome.pool == ([], []), "the pool slot is still held"

