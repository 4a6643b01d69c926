"""The whole-state benchmark at a small scale, so it never breaks (its numbers are reported by `make bench`, not
asserted: speed claims live in the benchmark)."""

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import run as bench
from bench import scale
from bench.floor import Floor, fastest
from bench.memory import ProcessSampler, peak_rss_mib

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    cache = tmp_path_factory.mktemp("bench")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scale, "CACHE", cache / "cache")
        patch.setattr(bench, "RESULTS", cache / "results")
        # 20 agencies over a year deliver ~7k bulk-upload rows and ~120k native records; a booking export tops
        # them up to 200k.
        yield bench.measure(agencies=20, years=1, rows=200_000, seed=3, rounds=2), cache


def test_state_is_generated_once_with_every_kind_of_delivery(results):
    measured, cache = results
    state = measured["state"]
    assert state["csv_files"] > 0 and state["workbooks"] > 0 and state["booking_exports"] == 1
    assert state["rows"] == 200_000  # the booking export tops the bulk uploads up to exactly the rows asked for
    [done] = (cache / "cache").glob("state_*/bench_state.json")
    written = done.stat().st_mtime_ns
    again, _ = scale.large_state(20, 1, 200_000, 3)
    assert again == done.parent and done.stat().st_mtime_ns == written  # cached: no second state written


def test_a_state_written_by_other_generator_code_is_written_again(tmp_path, monkeypatch):
    monkeypatch.setattr(scale, "CACHE", tmp_path)
    root, first = scale.large_state(20, 1, 20_000, 3)
    stale = root / "stale_file_of_an_older_generator.csv"
    stale.write_text("x\n", encoding="utf-8")
    assert scale.large_state(20, 1, 20_000, 3)[0] == root and stale.exists()  # same code: the cache is used
    monkeypatch.setattr(scale, "generator_digest", lambda: "another version of the generator")
    _, size = scale.large_state(20, 1, 20_000, 3)
    assert not stale.exists() and size == first  # written again, the same seeded state
    assert json.loads((root / "bench_state.json").read_text(encoding="utf-8"))["generator"] == (
        "another version of the generator")


def test_every_stage_is_timed_and_the_stages_add_up_to_the_run(results):
    measured, _ = results
    full = measured["full build"]
    assert set(full["stages"]) == set(bench.STAGES)
    for stage in ("ingest", "normalize", "checks", "roll-up", "publish"):
        assert full["stages"][stage] > 0, stage
    assert sum(full["stages"].values()) == pytest.approx(full["wall"], abs=0.01)
    assert full["runs"] >= 3 and full["months"] >= 12
    # Steps say where each job's time went: they cover the jobs' stages (ingest_job's steps are the ingest stage).
    ingest_steps = {step: s for step, s in full["steps"].items() if step.startswith("ingest_job/")}
    assert {"ingest_job/reference_tables", "ingest_job/inbox_files"} <= set(ingest_steps)
    assert sum(ingest_steps.values()) == pytest.approx(full["stages"]["ingest"], abs=0.01)
    assert "publish_job/agency_feedback" in full["steps"]


def test_a_run_counts_only_when_it_read_every_file_and_the_floor_every_row(results):
    """Each run's warehouse lists every inbox file (the runner refuses a run that read fewer); the floor's CSV
    engines read the same rows, every row the state holds."""
    measured, _ = results
    state, floor = measured["state"], measured["floor"]
    delivered = state["csv_files"] + state["workbooks"]
    for r in measured["rounds"]:
        assert r["full build"]["files_read"] == r["nothing new"]["files_read"] == delivered
        assert r["nightly increment"]["files_read"] == delivered + r["nightly increment"]["files"]
    # The floor also reads the blank rows the demo leaves inside a sheet, which are no data rows (rows_total).
    assert floor["rows read"] == state["rows"]
    assert 0 <= floor["rows read"] - measured["full build"]["rows_read"] <= floor["rows read"] / 1000
    assert measured["code"]["commit"] and isinstance(measured["code"]["changed files"], bool)


def test_the_increment_corrects_five_old_months_even_in_a_small_state(results, tmp_path):
    measured, cache = results
    [state] = (cache / "cache").glob("state_*")
    copy = tmp_path / "state"
    shutil.copytree(state, copy)
    written = scale.write_nightly_increment(copy, 20, 1, 3)
    corrections = [p for p in written if "_correction" in p.stem]
    assert len(corrections) == scale.LATE_CORRECTIONS == 5
    rows = {tuple(p.read_text(encoding="utf-8").splitlines()[1].split(",")) for p in corrections}
    assert len(rows) == 5  # five different totals, each one row


def test_nothing_new_and_the_nightly_increment(results):
    measured, _ = results
    assert measured["nothing new"]["runs"] == 1 and measured["nothing new"]["months"] == 0
    increment = measured["nightly increment"]
    # one file per uploader and sector for the new month, and five late corrections of old months
    assert increment["files"] > scale.LATE_CORRECTIONS
    assert increment["months"] > 1 and increment["runs"] >= 3
    # The increment's own floor reads exactly its files (single-page CSVs), and the runs beyond the fixed cost are
    # set against their own files' floors.
    night = measured["increment floor"]
    assert (night["csv files"], night["workbooks"]) == (increment["files"], 0)
    assert night["total"] == min(night["csv duckdb"], night["csv polars"]) + night["workbooks calamine"]
    assert 0 < night["total"] < measured["floor"]["total"]
    fixed = measured["nothing new"]["process"]
    assert measured["beyond the fixed cost / own floor"] == {
        "full build": (measured["full build"]["process"] - fixed) / measured["floor"]["total"],
        "nightly increment": (increment["process"] - fixed) / night["total"]}
    assert f"the nightly increment's files ({increment['files']} CSV, 0 workbooks): floor " in bench.report(measured)


def test_targets_are_computed_and_reported(results, capsys):
    measured, cache = results
    assert set(measured["targets"]) == set(bench.TARGETS)
    assert measured["targets"]["whole run / floor"] > 1  # the pipeline does more than read the bytes
    # The floor is read before and after the runs, and the ratios take each engine's best of both.
    floor = measured["floor"]
    assert 0 < floor["total"] <= min(floor["before the runs"], floor["after the runs"])
    assert measured["targets"]["whole run / floor"] == measured["full build"]["process"] / floor["total"]
    text = bench.report(measured)
    assert all(name in text for name in bench.TARGETS)
    assert json.loads((cache / "results" / "latest.json").read_text())["targets"] == measured["targets"]


def test_each_run_counts_its_best_round_and_every_round_is_reported(results):
    """Each kind of run counts with its best round, as each floor engine counts with its best read; peak memory
    with the highest of any run. Every round's runs are kept and printed, the counted one marked."""
    measured, _ = results
    rounds = measured["rounds"]
    assert len(rounds) == 2
    assert rounds[0]["full build"]["wall"] != rounds[1]["full build"]["wall"]  # two runs, not one counted twice
    for name in bench.RUNS:
        assert measured[name]["process"] == min(r[name]["process"] for r in rounds)
        assert any(r[name] is measured[name] for r in rounds)
    floor = measured["floor"]["total"]
    best = min(r["full build"]["stages"]["ingest"] + r["full build"]["stages"]["normalize"] for r in rounds)
    assert measured["targets"]["ingest+normalize / floor"] == best / floor
    # The increment's share is the best round's ratio of its own three runs.
    assert measured["targets"]["increment / full build (fixed cost removed)"] == min(
        (r["nightly increment"]["process"] - r["nothing new"]["process"])
        / (r["full build"]["process"] - r["nothing new"]["process"]) for r in rounds)
    peaks = [max(r[name]["peak_rss_mib"], r[name]["peak_with_children_mib"]) for r in rounds for name in bench.RUNS]
    assert measured["targets"]["peak memory GiB"] == max(peaks) / 1024
    run_row = re.compile(rf"(?:{'|'.join(bench.RUNS)}) \d\*? ")
    labels = [line[:20].strip() for line in bench.report(measured).splitlines() if run_row.match(line)]
    assert labels == [f"{name} {n}{'*' if rounds[n - 1][name] is measured[name] else ''}"
                      for name in bench.RUNS for n in (1, 2)]


def test_the_floor_keeps_each_engines_best_time():
    """A machine slower after the runs than before them (or the other way round) must not lower the floor's bar:
    each engine's best read counts, whichever measurement it came from."""
    before = Floor(csv_files=3, workbooks=2, csv_duckdb=4.0, csv_polars=2.5, workbooks_calamine=20.0)
    after = Floor(csv_files=3, workbooks=2, csv_duckdb=3.5, csv_polars=3.0, workbooks_calamine=16.0)
    best = fastest(before, after)
    assert (best.csv_duckdb, best.csv_polars, best.workbooks_calamine) == (3.5, 2.5, 16.0)
    assert best.total == 18.5 < min(before.total, after.total)
    assert (best.csv_files, best.workbooks) == (3, 2)


def test_a_child_reports_its_own_peak_memory_not_the_parents():
    """Each run's peak is measured in its own process, started by a benchmark that may hold gigabytes (it just
    generated the state): the child must report its own peak. ru_maxrss reported the parent's (it survives exec)."""
    held = bytearray(300 * 1024 * 1024)
    held[::4096] = b"\x01" * len(held[::4096])  # touched, so it is resident
    code = "from bench.memory import ProcessSampler, peak_rss_mib; print(peak_rss_mib())"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           cwd=Path(bench.__file__).parents[1])
    assert 0 < float(child.stdout) < 150
    assert peak_rss_mib() >= 300  # the parent's own peak holds what it touched


def test_each_step_reports_the_peak_sampled_while_it_ran(results):
    measured, _ = results
    for name in ("full build", "nightly increment"):
        run = measured[name]
        assert set(run["step_peak_mib"]) == set(run["steps"])
        # The samples count calamine's worker too, and VmHWM lags VmRSS by the kernel's batched per-thread
        # counters: a sample may exceed the process's own exact peak.
        peaks = run["step_peak_mib"].values()
        assert 0 < min(peaks) <= max(peaks) <= run["peak_with_children_mib"]
        assert f"{name} peak MiB by step (sampled): " in bench.report(measured)


def test_each_run_and_step_reports_the_cpu_it_used(results):
    measured, _ = results
    for name in ("full build", "nothing new", "nightly increment"):
        run = measured[name]
        assert set(run["step_cpu"]) == set(run["steps"])
        # Two cores at most, and the steps ran inside the run's window.
        assert 0 < run["cpu"] <= 2.2 * run["wall"] + 0.5
        assert sum(run["step_cpu"].values()) <= run["cpu"] + 0.05
    full = measured["full build"]
    assert full["step_cpu"]["ingest_job/inbox_files"] > 0
    line = next(line for line in bench.report(measured).splitlines()
                if line.startswith("full build CPU s by step (cores busy): "))
    assert f"ingest_job/inbox_files {full['step_cpu']['ingest_job/inbox_files']:.1f} (" in line


def test_the_sampler_tells_which_window_held_the_memory():
    with ProcessSampler(interval=0.01) as resident:
        time.sleep(0.1)
        began = time.time()
        held = bytearray(200 * 1024 * 1024)
        held[::4096] = b"\x01" * len(held[::4096])  # touched, so it is resident
        resident_from = time.time()  # allocating and touching took over 50 ms on a loaded machine
        time.sleep(0.1)
        ended = time.time()
        del held
        time.sleep(0.1)
    before = resident.peak_between(0, began - 0.03)
    # 200 MiB held, counted at 180: the process may give back a few MiB it held before meanwhile (a CI run measured
    # 189.0 MiB more), and the kernel's resident counters lag by a batch per thread.
    assert resident.peak_between(began, ended) >= before + 180
    assert resident.peak_between(ended + 0.05, time.time()) < before + 50
    assert resident.peak_between(resident_from + 0.05, resident_from + 0.051) >= before + 180  # between two samples


def _burn(seconds: float) -> None:
    until = time.process_time() + seconds
    while time.process_time() < until:
        pass


def test_the_sampler_tells_which_window_used_the_cpu():
    with ProcessSampler(interval=0.01) as sampled:
        time.sleep(0.2)
        began = time.time()
        _burn(0.3)
        ended = time.time()
        time.sleep(0.2)
    assert 0.25 <= sampled.cpu_between(began, ended) <= 0.4
    assert sampled.cpu_between(ended + 0.05, ended + 0.15) < 0.05  # asleep


def test_the_sampler_counts_the_cpu_of_child_processes():
    """calamine's and Great Expectations' workers are child processes: their CPU is the run's too."""
    code = "import time; t = time.process_time() + 0.5\nwhile time.process_time() < t: pass"
    with ProcessSampler(interval=0.01) as sampled:
        time.sleep(0.05)
        began = time.time()
        subprocess.run([sys.executable, "-c", code], check=True)
        ended = time.time()
        time.sleep(0.05)
    # The child's last ~0.01 s before it ended can fall after its last sample.
    assert sampled.cpu_between(began, ended) >= 0.45


def test_the_sampler_counts_child_processes():
    """calamine's worker is a child process: its memory is the run's too."""
    code = "import sys, time; held = bytearray(200 * 1024 * 1024); held[::4096] = b'1' * len(held[::4096]); " \
           "print('ready', flush=True); time.sleep(0.3)"
    with ProcessSampler(interval=0.01) as resident:
        time.sleep(0.05)
        before = resident.peak
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline() == "ready\n"
        time.sleep(0.1)
        child.wait()
    assert resident.peak >= before + 190
