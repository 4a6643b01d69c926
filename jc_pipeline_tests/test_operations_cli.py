"""`jc-pipeline run` and `status` as an operator meets them: failures exit non-zero with a message naming the file
and line (no traceback), status shows the instance's runs beside the warehouse, backfills are idempotent."""

import csv
import errno
import os
import shlex
import signal
import subprocess
import time
from datetime import date

import dagster as dg
import duckdb
import pytest

from jc_pipeline.cli import main
from jc_pipeline.lib.paths import DataLayout
from jc_pipeline.lib.periods import contiguous_ranges
from jc_pipeline.runner import use_instance
from jc_pipeline_tests.test_operations_support import (
    REPO,
    baseline,
    copy_state,
    demo_template,
    fingerprint,
    jc,
    start_jc,
    warehouse_contents,
)

ROSTER_LINE = 4  # 1-based, header = line 1


def _break_population(roster_path, line: int) -> str:
    rows = list(csv.reader(roster_path.read_text().splitlines()))
    header = rows[0]
    rows[line - 1][header.index("population")] = "lots"
    roster_path.write_text("\n".join(",".join(row) for row in rows) + "\n")
    return rows[line - 1][0]


def test_bad_roster_fails_naming_file_and_line_without_traceback(tmp_path_factory, tmp_path, monkeypatch, capsys):
    data = copy_state(demo_template(tmp_path_factory), tmp_path / "data")
    home = tmp_path / "dagster_home"
    _break_population(data / "agencies.csv", ROSTER_LINE)

    result = jc("run", data_dir=data, dagster_home=home)

    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert "agencies.csv" in result.stderr and f"line {ROSTER_LINE}" in result.stderr
    assert "population" in result.stderr
    assert "reference_tables" in result.stderr  # the failing step
    # The failed run is on the instance (visible in the UI) and `status` names it.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        assert (run.job_name, run.status) == ("ingest_job", dg.DagsterRunStatus.FAILURE)
    assert run.run_id in result.stderr
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert main(["status", "--data-dir", str(data)]) != 0  # no warehouse yet
    status = capsys.readouterr()
    assert run.run_id[:8] in status.out and "FAILURE" in status.out
    assert "no warehouse" in status.err and "Traceback" not in status.err


def test_dagster_home_is_read_as_the_data_directory_is(tmp_path, monkeypatch):
    """DAGSTER_HOME empty counts as not set (it had put the instance in the working directory), `~` is expanded,
    a relative one is made absolute (Dagster refuses a relative one), and the process then holds the absolute
    path; a file in its place is refused naming the variable."""
    layout = DataLayout.from_env(tmp_path / "data")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    for chosen, expected in [("", layout.dagster_home), ("~/instance", tmp_path / "user" / "instance"),
                             ("relative/home", work / "relative" / "home")]:
        monkeypatch.setenv("DAGSTER_HOME", chosen)
        assert use_instance(layout) == expected
        assert os.environ["DAGSTER_HOME"] == str(expected) and (expected / "dagster.yaml").is_file()
    assert sorted(p.name for p in work.iterdir()) == ["relative"]  # nothing of the instance's in the cwd
    (tmp_path / "a_file").write_text("x")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "a_file"))
    with pytest.raises(NotADirectoryError, match="DAGSTER_HOME=.* is a file, not a folder"):
        use_instance(layout)


def test_a_run_names_an_address_space_limit_below_what_it_needs(monkeypatch):
    """helper-49: under `ulimit -v` a big file stopped the run with only "memory allocation of N bytes failed"; the run
    now says at its start that the limit is there, and what to do."""
    import resource

    from jc_pipeline import runner

    given = {"limit": (3 * 1024**3, resource.RLIM_INFINITY)}
    monkeypatch.setattr(resource, "getrlimit", lambda which: given["limit"] if which == resource.RLIMIT_AS else
                        (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert runner.address_space_limit().startswith("this process may map only 3.0 GiB of address space (ulimit -v")
    for limit in ((resource.RLIM_INFINITY, resource.RLIM_INFINITY), (8 * 1024**3, 8 * 1024**3)):
        given["limit"] = limit
        assert runner.address_space_limit() == ""


def test_make_takes_the_data_directory_from_its_command_line_only(tmp_path):
    """A DATA_DIR in the environment, a generic name other tools set, is not read (make says so): it had `make run`
    write the demo state into that folder. One given to make is read. (`make -n`: the commands, not run.)"""
    env = {key: value for key, value in os.environ.items() if key not in ("DATA_DIR", "MAKEFLAGS", "MAKELEVEL")}

    def make_run(*args, **extra):
        return subprocess.run(["make", "-n", "run", *args], cwd=REPO, env={**env, **extra}, capture_output=True,
                              text=True, check=True)

    stray = make_run(DATA_DIR=str(tmp_path / "other"))
    assert stray.stdout.splitlines()[-1].endswith("jc-pipeline run --data-dir data")
    assert f"DATA_DIR={tmp_path / 'other'} in the environment is not read; give it to make instead" in stray.stderr
    given = make_run(f"DATA_DIR={tmp_path / 'given'}")
    assert given.stdout.splitlines()[-1].endswith(f"jc-pipeline run --data-dir {tmp_path / 'given'}")
    assert given.stderr == ""


def test_a_backfill_range_that_cannot_run_is_refused(capsys, tmp_path):
    with pytest.raises(SystemExit) as refused:  # --from alone reaches to the current month
        main(["run", "--data-dir", str(tmp_path), "--from", "2025-01", "--to", "2024-12"])
    assert str(refused.value) == "jc-pipeline run: --from must not be after --to"
    # Months without a partition are refused before any run: before 2000 Dagster failed the run on an invariant,
    # after the current month it recorded months that do not exist yet.
    with pytest.raises(SystemExit) as refused:
        main(["run", "--data-dir", str(tmp_path), "--from", "1999-12", "--to", "2000-02"])
    assert str(refused.value) == "jc-pipeline run: --from 1999-12 is before 2000-01, the first month the pipeline keeps"
    later = date(date.today().year + 2, 1, 1)  # after the current month whatever the machine's zone (helper-47)
    with pytest.raises(SystemExit) as refused:
        main(["run", "--data-dir", str(tmp_path), "--from", "2020-01", "--to", f"{later:%Y-%m}"])
    assert f"--to {later:%Y-%m} is after the current month" in str(refused.value)
    with pytest.raises(SystemExit) as refused:  # --from alone: named as itself, not as "after --to"
        main(["run", "--data-dir", str(tmp_path), "--from", f"{later:%Y-%m}"])
    assert f"--from {later:%Y-%m} is after the current month" in str(refused.value)
    with pytest.raises(SystemExit) as refused:  # --to alone (helper-30: ingested, then failed on an invariant)
        main(["run", "--data-dir", str(tmp_path), "--to", "1999-12"])
    assert str(refused.value) == "jc-pipeline run: --to 1999-12 is before 2000-01, the first month the pipeline keeps"
    assert not (tmp_path / "pipeline").exists()  # nothing ran
    with pytest.raises(SystemExit):
        main(["run", "--data-dir", str(tmp_path), "--from", "2025-13", "--to", "2025-14"])
    assert "expected YYYY-MM" in capsys.readouterr().err


def test_control_characters_from_names_reach_the_terminal_as_escapes(tmp_path, capsys):
    """helper-63: names an agency chose (inbox folders) are printed; an escape sequence in one could retitle the
    terminal or erase the lines above. Every line the command writes shows control characters as escapes."""
    odd = tmp_path / "nx\x1b]0;PWNED\x07\x1b[1A\x1b[2Kd"
    assert main(["status", "--data-dir", str(odd)]) != 0
    out, err = capsys.readouterr()
    assert "nx\\x1b]0;PWNED\\x07\\x1b[1A\\x1b[2Kd" in out + err
    assert not any(c in out + err for c in "\x1b\x07")


@pytest.mark.slow
def test_status_shows_runs_files_checks_and_coverage(tmp_path_factory):
    data = baseline(tmp_path_factory)
    result = jc("status", data_dir=data, dagster_home=data / "pipeline" / "dagster_home")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for section in ("recent runs", "files (the latest version of each):", "ingest findings (in those versions):",
                    "failing checks:", "coverage"):
        assert section in out
    for job in ("ingest_job", "rollup_job", "publish_job"):
        assert job in out
    assert "SUCCESS" in out and "FAILURE" not in out
    # The latest month each sector reported, and whether it is complete (the demo's last month is not, for some).
    coverage = out[out.index("coverage (latest month reported"):].splitlines()[1:]
    assert coverage[0].split() == ["sector", "month", "pct_reporting", "metrics", "complete"]
    rows = {line.split()[0]: line.split() for line in coverage[1:] if line.strip()}
    assert rows and {row[4] for row in rows.values()} <= {"True", "False"}
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        for sector, month, *_, complete in rows.values():
            assert con.execute("SELECT bool_and(is_complete)::VARCHAR FROM state_metrics WHERE sector = ? AND "
                               "strftime(period_start, '%Y-%m') = ? AND dimension IS NULL AND frequency = 'MONTHLY'",
                               [sector, month]).fetchone()[0] == complete.lower()


@pytest.mark.slow
def test_status_shows_the_warehouse_when_the_instance_cannot_be_opened(tmp_path_factory, tmp_path, monkeypatch,
                                                                       capsys):
    """helper-61: with a team install's PostgreSQL down, `status` stopped at the instance and showed nothing. An
    instance whose storage cannot be opened (here: a storage class that does not exist) is named, and the
    warehouse's sections follow."""
    data = copy_state(baseline(tmp_path_factory), tmp_path / "data")
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("run_storage:\n  module: no_such_module\n  class: NoSuchStorage\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert main(["status", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert f"Dagster instance {home}: its runs cannot be read here (" in out
    assert f"warehouse {data / 'warehouse.duckdb'}" in out and "failing checks:" in out


@pytest.mark.slow
def test_a_data_directory_whose_path_has_spaces_quotes_and_accents_runs_as_any_other(tmp_path_factory, tmp_path):
    """The data directory's path reaches DuckDB, Dagster's instance and the printed commands: it is data, never part
    of SQL or of a command line. The run loads what the baseline loads, and the command it prints to open the
    warehouse is one a shell reads back as that path."""
    data = copy_state(demo_template(tmp_path_factory), tmp_path / "state data (Ü 'q\"; x)")
    result = jc("run", data_dir=data, dagster_home=data / "pipeline" / "dagster_home")
    assert result.returncode == 0, result.stderr
    suggested = next(line for line in result.stdout.splitlines() if line.startswith("warehouse:"))
    command = shlex.split(suggested[suggested.index("(duckdb -readonly ") + 1:suggested.rindex(")")])
    assert command == ["duckdb", "-readonly", str(data / "warehouse.duckdb")]
    counts = "SELECT (SELECT count(*) FROM agency_metrics), (SELECT count(*) FROM state_metrics)"
    with duckdb.connect(str(command[-1]), read_only=True) as odd, \
            duckdb.connect(str(baseline(tmp_path_factory) / "warehouse.duckdb"), read_only=True) as plain:
        assert odd.execute(counts).fetchall() == plain.execute(counts).fetchall()


@pytest.mark.slow
def test_a_first_build_rolls_up_in_one_run_across_months_without_data(tmp_path_factory):
    """The demo's fiscal years starting in July and October come before its first January with months without any
    datapoint between them: those months join the ranges, so the first run rolls up in one run over the span."""
    data = baseline(tmp_path_factory)
    with duckdb.connect(str(data / "pipeline" / "store.duckdb"), read_only=True) as con:
        months = [m for (m,) in con.execute(
            "SELECT DISTINCT CAST(date_trunc('month', period_start) AS DATE) FROM ingest_datapoints").fetchall()]
    assert len(contiguous_ranges(months)) >= 3  # without the empty months: one run per range
    with dg.DagsterInstance.from_config(str(data / "pipeline" / "dagster_home")) as instance:
        (rollup,) = instance.get_runs(dg.RunsFilter(job_name="rollup_job"))
    assert (rollup.tags["dagster/asset_partition_range_start"], rollup.tags["dagster/asset_partition_range_end"]) == (
        min(months).isoformat(), max(months).isoformat())


@pytest.mark.slow
def test_backfill_twice_or_as_single_months_gives_identical_tables(tmp_path_factory, tmp_path, monkeypatch, capsys):
    """`run --from --to` over a range holding an empty month, calendar-year and monthly data: twice, then its
    months with data one by one; agency_metrics and state_metrics never move (nothing changed in the inputs)."""
    data = copy_state(baseline(tmp_path_factory), tmp_path / "data")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("JC_DATA_DIR", str(data))
    tables = {"agency_metrics": "agency_metrics", "state_metrics": "state_metrics"}
    before = fingerprint(data / "warehouse.duckdb", tables)

    for _ in range(2):
        assert main(["run", "--data-dir", str(data), "--from", "2024-12", "--to", "2025-02"]) == 0
        out = capsys.readouterr().out
        assert "roll-up 1/1: periods starting 2024-12 .. 2025-02" in out and "done in" in out
        assert "3 period month(s) recomputed" in out and "no upload holds" not in out
        assert fingerprint(data / "warehouse.duckdb", tables) == before
    # helper-53: a range without data (a mistyped year) looked like a success.
    assert main(["run", "--data-dir", str(data), "--from", "2001-01", "--to", "2001-02"]) == 0
    assert "no upload holds a period starting in 2001-01 .. 2001-02" in capsys.readouterr().out
    for month in ("2025-01", "2025-02"):
        assert main(["run", "--data-dir", str(data), "--from", month, "--to", month]) == 0
        assert f"periods starting {month} .. {month}" in capsys.readouterr().out
    assert fingerprint(data / "warehouse.duckdb", tables) == before

    # Each backfill was one roll-up run over its range, recorded on the instance like a UI backfill.
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        rollups = instance.get_runs(dg.RunsFilter(job_name="rollup_job"))
    ranges = sorted(
        (run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"])
        for run in rollups
    )
    assert ranges == sorted(
        [("2024-12-01", "2025-02-01")] * 2 + [("2001-01-01", "2001-02-01")]
        + [(m, m) for m in ("2025-01-01", "2025-02-01")]
    )
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in rollups)


def test_every_partitioned_asset_backfills_a_range_in_one_run(tmp_path, monkeypatch):
    """UI backfills of any range of rollup_job become one run (BackfillPolicy.single_run), like `run --from --to`."""
    monkeypatch.setenv("JC_DATA_DIR", str(tmp_path))
    from jc_pipeline.definitions import defs

    graph = defs().resolve_asset_graph()
    partitioned = [graph.get(key) for key in graph.get_all_asset_keys() if graph.get(key).is_partitioned]
    assert {node.key.to_user_string() for node in partitioned} == {
        "agency_metrics",
        "validation_results",
        "state_metrics",
    }
    assert all(node.backfill_policy == dg.BackfillPolicy.single_run() for node in partitioned)
    assert date.fromisoformat(partitioned[0].partitions_def.get_first_partition_key()).day == 1


def test_demo_data_counts_every_file_it_writes_and_names_the_flag_to_overwrite(capsys, tmp_path):
    assert main(["demo-data", "--data-dir", str(tmp_path), "--agencies", "20", "--years", "1"]) == 0
    written = sum(1 for path in (tmp_path / "inbox").rglob("*") if path.is_file())
    assert f": {written} files in {tmp_path / 'inbox'} (" in capsys.readouterr().out
    assert main(["demo-data", "--data-dir", str(tmp_path), "--agencies", "20", "--years", "1"]) != 0
    assert "jc-pipeline demo-data --overwrite" in capsys.readouterr().err


def test_export_help_names_the_default_tables(capsys):
    from jc_pipeline.lib.export import DEFAULT_TABLES

    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "default: " + ", ".join(DEFAULT_TABLES) in " ".join(capsys.readouterr().out.split())


#: Roster edits a state team makes at once: (line of agencies.csv, column, new value from the old one). An
#: agency's population changes what the roll-up reads; the department of corrections' fiscal year, how its files
#: are read (its annual rows, bulk uploads and native exports, move).
ROSTER_EDITS = [
    (ROSTER_LINE, "population", lambda value: str(int(value) * 2)),
    (2, "fiscal_year_start_month", lambda value: "1" if value != "1" else "10"),
]


@pytest.mark.slow
def test_a_roster_change_is_applied_to_every_month_by_the_next_plain_run(tmp_path_factory, tmp_path):
    """A state team edits agencies.csv (an agency's population, another's fiscal year) and lets the nightly run go:
    every month with data is rebuilt with the new roster, the files the new fiscal year reads otherwise are read
    again, and the warehouse is the one a fresh build of the edited state gives."""
    edited = copy_state(baseline(tmp_path_factory), tmp_path / "edited", with_instance=True)
    fresh = copy_state(demo_template(tmp_path_factory), tmp_path / "fresh")
    for root in (edited, fresh):
        path = root / "agencies.csv"
        rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
        for line, name, new_value in ROSTER_EDITS:
            column = rows[0].index(name)
            rows[line - 1][column] = new_value(rows[line - 1][column])
        path.write_text("\n".join(",".join(row) for row in rows) + "\n", encoding="utf-8")
    result = jc("run", data_dir=edited, dagster_home=edited / "pipeline" / "dagster_home")
    assert result.returncode == 0, result.stderr
    assert "0 new, 0 changed" in result.stdout and "are rebuilt for every agency" in result.stdout
    assert "file(s) read again" in result.stdout
    assert jc("run", data_dir=fresh, dagster_home=fresh / "pipeline" / "dagster_home").returncode == 0
    assert warehouse_contents(edited / "warehouse.duckdb") == warehouse_contents(fresh / "warehouse.duckdb")
    again = jc("run", data_dir=edited, dagster_home=edited / "pipeline" / "dagster_home")
    assert "nothing new" in again.stdout and "rebuilt for every agency" not in again.stdout


def test_an_empty_inbox_where_files_were_read_is_named_and_loses_nothing(tmp_path_factory, tmp_path):
    """helper-48: a share not mounted (an empty inbox/) ran as "0 new, 0 changed, 0 unchanged", exit 0, without a
    word. It still exits 0 and keeps everything, but says what it found."""
    data = copy_state(baseline(tmp_path_factory), tmp_path / "data", with_instance=True)
    before = warehouse_contents(data / "warehouse.duckdb")
    (data / "inbox").rename(tmp_path / "unmounted")
    (data / "inbox").mkdir()
    result = jc("run", data_dir=data, dagster_home=data / "pipeline" / "dagster_home")
    assert result.returncode == 0, result.stderr
    assert "the inbox holds no file, but " in result.stdout and "is the share mounted? Nothing is lost" in result.stdout
    assert warehouse_contents(data / "warehouse.duckdb") == before


@pytest.mark.slow
def test_ctrl_c_during_a_step_says_interrupted_and_the_next_run_finishes(tmp_path_factory, tmp_path):
    """Ctrl-C (SIGINT to the command's process group, as a terminal sends it) a second into the ingest of a new
    state, inside a step: the command says "interrupted" and exits 130, as it does before any job starts, not 1
    with the step's DagsterExecutionInterruptedError and "Fix what the message names" (review); the next run
    builds the warehouse."""
    data = copy_state(demo_template(tmp_path_factory), tmp_path / "data")
    home = data / "pipeline" / "dagster_home"
    run = start_jc("run", data_dir=data, dagster_home=home, new_session=True)
    for line in run.stdout:
        if line.startswith("[1/3] ingest"):
            break
    time.sleep(1)
    # Pressed again while the command goes on, as a user would: Dagster drops a SIGINT that lands in its own
    # bookkeeping between steps.
    for _ in range(10):
        os.killpg(run.pid, signal.SIGINT)
        try:
            run.wait(timeout=5)
            break
        except subprocess.TimeoutExpired:
            continue
    _, err = run.communicate(timeout=300)
    assert run.returncode == 130, err
    assert "interrupted" in err and "Fix what the message names" not in err
    again = jc("run", data_dir=data, dagster_home=home)
    assert again.returncode == 0, again.stderr
    assert (data / "warehouse.duckdb").is_file()


def test_a_full_disk_or_a_folder_it_may_not_write_gets_the_way_out_also_from_a_run_step(monkeypatch):
    """The hint follows the error whether the command met it or a step of its run did (review: a read-only
    reports folder gave `run` only the step's "[Errno 30] ... .partial" and "Fix what the message names"; SQLite's
    "database or disk is full" from the instance, no hint at all)."""
    import sqlite3

    from jc_pipeline.cli import _parser, _way_out
    from jc_pipeline.runner import RunFailed

    run, report = _parser().parse_args(["run"]), _parser().parse_args(["report"])
    for full in (sqlite3.OperationalError("database or disk is full"), OSError(errno.ENOSPC, "No space left"),
                 RunFailed("Dagster run r (publish_job) failed:\n  step analyst_warehouse: [Errno 28] No space left "
                           "on device: 'store.duckdb' -> '.warehouse.duckdb.1.a.building' (OSError)"),
                 duckdb.IOException('Failed to commit: Could not write file "/d/pipeline/store.duckdb": No space left '
                                    'on device')):  # helper-49: DuckDB's own words, no errno
        assert "the disk is full: free space" in _way_out(run, full)
    read_only = RunFailed("Dagster run r (publish_job) failed:\n  step agency_feedback: [Errno 30] Read-only file "
                          "system: '/d/reports/agencies/a.xlsx.partial' (OSError)")
    assert _way_out(run, read_only) == "; run it as a user who may write to the data directory"
    # helper-49: a read-only DAGSTER_HOME of its own was blamed on the data directory.
    monkeypatch.setenv("DAGSTER_HOME", "/srv/dagster")
    assert _way_out(run, read_only) == "; run it as a user who may write to the data directory"
    instance = PermissionError(errno.EACCES, "Permission denied", "/srv/dagster/.dagster.yaml.c3rubh4r")
    assert "who may write to DAGSTER_HOME (/srv/dagster)" in _way_out(run, instance)
    assert "who may write to DAGSTER_HOME" in _way_out(run, RunFailed(f"step x: {instance} (PermissionError)"))
    assert _way_out(report, OSError(errno.EROFS, "Read-only file system")).startswith("; give --out a folder")
    assert _way_out(run, RunFailed("step x: [Errno 2] No such file or directory: 'a' (FileNotFoundError)")) == ""
    # helper-61: a team install's PostgreSQL down or restarted, as psycopg2 and Dagster say it.
    for down in ("(psycopg2.OperationalError) server closed the connection unexpectedly\n\tThis probably means",
                 'connection to server at "db" (10.0.0.5), port 5432 failed: Connection refused'):
        assert "the Dagster instance's database cannot be reached" in _way_out(run, RuntimeError(down))
    # Not an outage (helper-65): a setting the server refused, or Dagster's retries given up whatever the reason.
    for refused in ('connection to server at "db", port 5432 failed: FATAL:  database "jc_dagster" does not exist',
                    "too many retries for DB connection"):
        assert "could not be opened" in _way_out(run, RuntimeError(refused))


def test_an_error_of_dagsters_instance_is_said_without_its_sql():
    """helper-49: a full DAGSTER_HOME's error quoted SQLAlchemy's INSERT and its parameters (the run's event)."""
    import sqlite3

    import sqlalchemy.exc

    from jc_pipeline.cli import _message, _parser

    full = sqlalchemy.exc.OperationalError("INSERT INTO event_logs (run_id, event) VALUES (?, ?)", ("r", "{...}"),
                                           sqlite3.OperationalError("database or disk is full"))
    said = _message(_parser().parse_args(["run"]), full)
    assert said.startswith("jc-pipeline run: (sqlite3.OperationalError) database or disk is full; the disk is full")
    assert "INSERT" not in said and "parameters" not in said and "\n" not in said


def test_the_ui_command_opens_the_instance_of_the_data_directory_it_ran_on(tmp_path, monkeypatch):
    """helper-52: every message said a bare `make dev`, which opens ./data's instance, not the one of the data
    directory (or DAGSTER_HOME) the command ran on, where its runs are."""
    from jc_pipeline.runner import ui_command

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    layout = DataLayout.from_env(str(tmp_path / "state"))
    command = shlex.split(ui_command(layout))
    assert command == ["make", "dev", f"DATA_DIR={layout.root}"]
    planned = subprocess.run([*command[:2], "--dry-run", *command[2:]], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout
    assert f"cd {layout.dagster_home} && " in planned and f"JC_DATA_DIR={layout.root} " in planned
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "instance"))
    assert shlex.split(ui_command(layout))[3] == f"DAGSTER_HOME={tmp_path / 'instance'}"
