"""Shared by the test_operations_* modules (no tests here): one small demo state per test session, written once
and run once, then copied by every test that needs a data directory, plus helpers to run the command line and
to fingerprint a warehouse."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from jc_pipeline.lib.demo import write_demo_state

#: Small but complete: every sector, monthly, calendar-year and fiscal-year reporters, a few hundred files' worth
#: of quirks. A first run takes ~25 s on 2 cores.
DEMO = {"agencies": 20, "years": 1, "seed": 5}

#: Columns that record when something happened rather than what: they differ between any two runs over the same
#: inputs, so comparisons leave them out. received_at / ingested_at are when a file was first seen and loaded,
#: checked_at when a check ran (wall-clock times; current_source_files is the one view that shows them). Everything
#: else, file ids and sha256 included, is a function of the inputs.
RUN_DEPENDENT = {
    "source_files": ("received_at", "ingested_at"),
    "current_source_files": ("received_at", "ingested_at"),
    "validation_results": ("checked_at",),
}

#: The contract tables `fingerprint` hashes, each without its RUN_DEPENDENT columns.
DETERMINISTIC = {
    table: f"(SELECT * EXCLUDE ({', '.join(RUN_DEPENDENT[table])}) FROM {table})" if table in RUN_DEPENDENT else table
    for table in ("agency_metrics", "state_metrics", "rejected_rows", "source_files", "validation_results")
}

#: The tables and views of a warehouse, by name.
OBJECTS_SQL = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1"

#: One snapshot of every analyst table, in a single statement (so in one transaction).
SNAPSHOT_SQL = "SELECT " + ", ".join(
    f"(SELECT count(*)::VARCHAR || ':' || coalesce(sum(hash(x)::HUGEINT), 0)::VARCHAR FROM {table} x) AS {table}"
    for table in ("source_files", "rejected_rows", "agency_metrics", "validation_results", "state_metrics")
)

JC_PIPELINE = Path(sys.executable).with_name("jc-pipeline")
REPO = Path(__file__).resolve().parents[1]

_CACHE: dict[str, Path] = {}


def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo inbox and roster, never run: copy it, do not write into it."""
    if "template" not in _CACHE:
        root = tmp_path_factory.mktemp("ops_template")
        write_demo_state(root, **DEMO)
        _CACHE["template"] = root
    return _CACHE["template"]


def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo state after one plain `jc-pipeline run` (instance in its default place, pipeline/dagster_home):
    the reference every other way of running must reproduce. Read it, copy it; never write into it."""
    if "baseline" not in _CACHE:
        root = tmp_path_factory.mktemp("ops_baseline")
        copy_state(demo_template(tmp_path_factory), root)
        result = jc("run", data_dir=root, dagster_home=root / "pipeline" / "dagster_home")
        assert result.returncode == 0, result.stderr
        _CACHE["baseline"] = root
    return _CACHE["baseline"]


def corrected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The baseline after one more `jc-pipeline run` that picked up `add_late_correction` (default arguments):
    the reference for runs that start from the baseline with that correction. Read it, copy it. A test that has
    produced exactly this state registers it with `remember_corrected` and saves the others a run."""
    if "corrected" not in _CACHE:
        root = copy_state(baseline(tmp_path_factory), tmp_path_factory.mktemp("ops_corrected"))
        add_late_correction(root, first_law_enforcement_agency(root / "warehouse.duckdb"))
        result = jc("run", data_dir=root, dagster_home=root / "pipeline" / "dagster_home")
        assert result.returncode == 0, result.stderr
        _CACHE["corrected"] = root
    return _CACHE["corrected"]


def remember_corrected(data_dir: Path) -> None:
    _CACHE.setdefault("corrected", data_dir)


def copy_state(source: Path, target: Path, *, with_instance: bool = False) -> Path:
    """A copy of a data directory (inbox, roster, store, warehouse), without its Dagster instance unless
    `with_instance` (then the instance's run history comes along, as a nightly run finds it)."""
    ignored = ("*.lock",) if with_instance else ("dagster_home", "*.lock")
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*ignored), dirs_exist_ok=True)
    return target


def cli_env(data_dir: Path, dagster_home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "JC_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(dagster_home), **(extra or {})}
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def jc(
    *args: str, data_dir: Path, dagster_home: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """`jc-pipeline <args> --data-dir <data_dir>` in a fresh process, with its own DAGSTER_HOME."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [str(JC_PIPELINE), *args, "--data-dir", str(data_dir)],
        env=cli_env(data_dir, dagster_home, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=data_dir,
    )


def start_jc(*args: str, data_dir: Path, dagster_home: Path, new_session: bool = False) -> subprocess.Popen:
    """`jc-pipeline <args>` started in the background; `new_session` makes it lead a process group of its own,
    so that the whole group can be signalled (os.killpg(proc.pid, ...))."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [str(JC_PIPELINE), *args, "--data-dir", str(data_dir)],
        env=cli_env(data_dir, dagster_home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=data_dir,
        start_new_session=new_session,
    )


def fingerprint(warehouse: Path, tables: dict[str, str] = DETERMINISTIC) -> dict[str, tuple[int, int]]:
    """Row count and an order-independent hash of every row, per table."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return fingerprint_of(con, tables)


def fingerprint_of(con: duckdb.DuckDBPyConnection, tables: dict[str, str] = DETERMINISTIC) -> dict[str, tuple]:
    """`fingerprint` over an open connection."""
    return {
        name: tuple(con.execute(f"SELECT count(*), coalesce(sum(hash(x)::HUGEINT), 0) FROM {source} x").fetchall()[0])
        for name, source in tables.items()
    }


def warehouse_contents(warehouse: Path) -> dict[str, tuple[tuple[str, ...], list[tuple]]]:
    """Every table and view of a warehouse: its column names and all its rows, sorted, without the RUN_DEPENDENT
    columns. Two warehouses with equal contents answer every analyst query alike (timestamps aside)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        names = [row[0] for row in con.execute(OBJECTS_SQL).fetchall()]
        contents = {}
        for name in names:
            dropped = RUN_DEPENDENT.get(name)
            columns = f"* EXCLUDE ({', '.join(dropped)})" if dropped else "*"
            result = con.execute(f'SELECT {columns} FROM "{name}" ORDER BY ALL')
            contents[name] = (tuple(column[0] for column in result.description), result.fetchall())
    return contents


def assert_same_contents(actual: dict, expected: dict) -> None:
    """Table for table, with a short message naming what differs (the full rows would drown it)."""
    assert sorted(actual) == sorted(expected), "the warehouses hold different tables or views"
    for name, (columns, rows) in expected.items():
        got_columns, got_rows = actual[name]
        assert got_columns == columns, f"{name}: columns {got_columns} != {columns}"
        if got_rows != rows:
            first = next((i for i, (a, b) in enumerate(zip(got_rows, rows)) if a != b), min(len(rows), len(got_rows)))
            raise AssertionError(
                f"{name}: {len(got_rows)} rows, expected {len(rows)}; first difference at sorted row {first}: "
                f"{got_rows[first] if first < len(got_rows) else None} != {rows[first] if first < len(rows) else None}"
            )


def snapshot(warehouse: Path) -> tuple[str, ...]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return tuple(con.execute(SNAPSHOT_SQL).fetchall()[0])


def first_law_enforcement_agency(warehouse: Path) -> str:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("""
            SELECT agency_id FROM agencies
            WHERE list_contains(sectors, 'LAW_ENFORCEMENT') AND superagency_id IS NULL
            ORDER BY agency_id LIMIT 1""").fetchall()[0][0]


def add_late_correction(data_dir: Path, agency_id: str, year: int = 2025, month: int = 3, value: int = 99999) -> Path:
    """A one-row correction of an old month, delivered late (DESIGN §4)."""
    path = data_dir / "inbox" / agency_id / "LAW_ENFORCEMENT" / f"correction_{year}_{month:02d}_{value}.csv"
    path.write_text(f"metric,year,month,breakdown_category,breakdown,value\narrests,{year},{month},,,{value}\n")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
