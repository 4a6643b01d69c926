"""The instance's SQLite storage commits without waiting for the disk once the code location is loaded: no fsync
per commit, and no checkpoint per closed connection; the event log of the instance `jc-pipeline` opens keeps one
connection per file."""

import inspect
import os
import shutil
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from sqlalchemy import create_engine, delete, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from jc_pipeline import instance as instance_package
from jc_pipeline.instance import KEPT_OPEN, tune_sqlite_storage
from jc_pipeline.instance.event_log import ENGINES_KEPT, EVENT_BATCH_SIZE, PooledSqliteEventLogStorage, load_instance

NORMAL, FULL = 1, 2
BATCH_SIZE = "DAGSTER_EVENT_BATCH_SIZE"


def _synchronous_levels(instance: dg.DagsterInstance) -> set[int]:
    """The `synchronous` level of each SQLite connection the instance's event log opens."""
    levels: set[int] = set()
    storage = instance.event_log_storage
    with storage.index_connection() as conn:  # type: ignore[attr-defined]
        levels.add(conn.exec_driver_sql("PRAGMA synchronous").scalar())
    return levels


def test_event_log_commits_without_fsync_in_wal_mode(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        tune_sqlite_storage()
        tune_sqlite_storage()  # registering twice is harmless
        assert _synchronous_levels(instance) == {NORMAL}


def test_a_new_database_starts_in_wal_mode(tmp_path):
    tune_sqlite_storage()
    path = tmp_path / "new.db"
    with create_engine(f"sqlite:///{path}", poolclass=NullPool).connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == NORMAL


def test_databases_not_in_wal_mode_keep_full_sync(tmp_path):
    tune_sqlite_storage()
    path = tmp_path / "rollback-journal.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE kept (x INTEGER)")
    conn.close()
    with create_engine(f"sqlite:///{path}").connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "delete"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == FULL


def _write_once(path: Path) -> None:
    """One event's worth of work, as Dagster's SQLite storage does it: connect, insert, commit, close."""
    with create_engine(f"sqlite:///{path}", poolclass=NullPool).begin() as conn:
        conn.exec_driver_sql("INSERT INTO events VALUES (1)")


def _wal_database(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=wal")
        conn.execute("CREATE TABLE events (x INTEGER)")
    conn.close()
    assert not Path(f"{path}-wal").exists()  # the last connection closed: checkpointed, log deleted
    return path


def test_closing_an_event_connection_does_not_checkpoint(tmp_path):
    tune_sqlite_storage()
    path = _wal_database(tmp_path / "events.db")
    for _ in range(3):
        _write_once(path)
    # Not the last connection: the log (holding the three commits) was neither checkpointed nor deleted.
    assert Path(f"{path}-wal").stat().st_size > 0
    with sqlite3.connect(path) as reader:
        assert reader.execute("SELECT count(*) FROM events").fetchone() == (3,)
    reader.close()


def test_only_the_most_recent_files_stay_open(tmp_path):
    tune_sqlite_storage()
    paths = [_wal_database(tmp_path / f"run{i}.db") for i in range(KEPT_OPEN + 3)]
    for path in paths:
        _write_once(path)
    # The oldest files were closed (checkpointed, their logs deleted) as newer ones took their places.
    still_logging = [path for path in paths if Path(f"{path}-wal").exists()]
    assert still_logging == paths[-KEPT_OPEN:]
    for path in paths[:3]:
        with sqlite3.connect(path) as reader:
            assert reader.execute("SELECT count(*) FROM events").fetchone() == (1,)
        reader.close()


# ---- the event log keeps a connection per file ------------------------------------------------------------------


@dg.asset
def counted() -> int:
    """One materialization: a run's worth of events (run shard and index)."""
    return 1


@pytest.fixture
def batch_size_unset(monkeypatch):
    """DAGSTER_EVENT_BATCH_SIZE unset, and as it was again after the test (load_instance sets it)."""
    monkeypatch.setenv(BATCH_SIZE, "0")  # monkeypatch now restores the variable's first state after the test
    monkeypatch.delenv(BATCH_SIZE)


@pytest.fixture
def template_instance(tmp_path, monkeypatch, batch_size_unset):
    """An instance with the shipped dagster.yaml, opened as `jc-pipeline` opens it (whatever DAGSTER_HOME says)."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(Path(instance_package.__file__).with_name("dagster.yaml"), home / "dagster.yaml")
    instance = load_instance(home)
    yield instance
    instance.dispose()


@contextmanager
def _connections_opened() -> Iterator[Counter]:
    """Counts the new SQLite connections opened meanwhile, by database file."""
    opened: Counter = Counter()

    def count(dbapi: sqlite3.Connection, _record: object) -> None:
        opened[next(file for _, name, file in dbapi.execute("PRAGMA database_list") if name == "main")] += 1

    event.listen(Engine, "connect", count)
    try:
        yield opened
    finally:
        event.remove(Engine, "connect", count)


def test_the_pooled_event_log_takes_the_place_of_dagsters_default_in_the_instance_folder(template_instance, tmp_path):
    storage = template_instance.event_log_storage
    assert type(storage) is PooledSqliteEventLogStorage
    assert Path(storage._base_dir) == tmp_path / "dagster_home" / "history" / "runs"  # Dagster's default folder
    # The private methods overridden still exist, with the same contracts, in the pinned Dagster.
    assert list(inspect.signature(SqliteEventLogStorage._connect).parameters) == ["self", "shard"]
    assert list(inspect.signature(SqliteEventLogStorage._store_asset_check_evaluation_planned).parameters) == [
        "self", "event", "event_id"]


def test_a_copied_instance_writes_its_own_files(template_instance, tmp_path):
    dg.materialize([counted], instance=template_instance)
    template_instance.dispose()
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "dagster_home", copy)
    with load_instance(copy) as copied:
        run_id = dg.materialize([counted], instance=copied).run_id
    assert (copy / "history" / "runs" / f"{run_id}.db").exists()
    assert not (tmp_path / "dagster_home" / "history" / "runs" / f"{run_id}.db").exists()


def test_an_instance_with_its_own_storage_keeps_it(tmp_path):
    home = tmp_path / "own"
    home.mkdir()
    (home / "dagster.yaml").write_text(f"storage:\n  sqlite:\n    base_dir: {tmp_path / 'elsewhere'}\n")
    with load_instance(home) as instance:
        assert type(instance.event_log_storage) is SqliteEventLogStorage
        assert Path(instance.event_log_storage._base_dir) == tmp_path / "elsewhere" / "history" / "runs"


def test_each_run_file_is_opened_once_and_the_events_round_trip(template_instance):
    storage = template_instance.event_log_storage
    with _connections_opened() as opened:
        for _ in range(3):
            assert dg.materialize([counted], instance=template_instance).success
    runs = template_instance.get_runs()  # newest first
    assert len(runs) == 3
    # Dagster's own storage opens a run's file for every query (over 30 times for this run); this one once.
    for run in runs:
        assert opened[storage.path_for_shard(run.run_id)] == 1
        kinds = {e.dagster_event.event_type for e in template_instance.all_logs(run.run_id) if e.dagster_event}
        assert {dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.ASSET_MATERIALIZATION} <= kinds
    assert len(storage._engines) <= ENGINES_KEPT
    latest = template_instance.get_latest_materialization_event(dg.AssetKey("counted"))
    assert latest is not None and latest.run_id == runs[0].run_id


def test_files_past_the_kept_ones_are_closed_and_reopened_when_used_again(template_instance):
    storage = template_instance.event_log_storage
    run_ids = [dg.materialize([counted], instance=template_instance).run_id for _ in range(ENGINES_KEPT + 2)]
    assert len(storage._engines) == ENGINES_KEPT
    assert storage.path_for_shard(run_ids[0]) not in {e.url.database for e in storage._engines.values()}
    with _connections_opened() as opened:
        assert len(template_instance.all_logs(run_ids[0])) > 5  # read again through a new connection
    assert opened[storage.path_for_shard(run_ids[0])] == 1


def test_other_processes_see_every_committed_event(template_instance, tmp_path):
    """Dagster's webserver and daemon read the same files through their own connections."""
    run_id = dg.materialize([counted], instance=template_instance).run_id
    reader = SqliteEventLogStorage(template_instance.event_log_storage._base_dir)  # Dagster's class, own engines
    assert [e.dagster_event_type for e in reader.get_logs_for_run(run_id)] == [
        e.dagster_event_type for e in template_instance.all_logs(run_id)]
    assert reader.get_latest_materialization_events([dg.AssetKey("counted")])[dg.AssetKey("counted")].run_id == run_id


def test_wipe_closes_the_kept_connections_before_deleting_the_files(template_instance):
    storage = template_instance.event_log_storage
    wiped = dg.materialize([counted], instance=template_instance).run_id
    assert wiped in storage._engines
    storage.wipe()  # deletes every run's file (and empties the index, which stays)
    assert not Path(storage.path_for_shard(wiped)).exists()
    assert set(storage._engines) <= {"index"}
    run_id = dg.materialize([counted], instance=template_instance).run_id
    assert any(e.dagster_event_type == dg.DagsterEventType.RUN_SUCCESS for e in template_instance.all_logs(run_id))


def test_a_forked_child_opens_its_own_connections(template_instance):
    storage = template_instance.event_log_storage
    dg.materialize([counted], instance=template_instance)
    parent_engines = dict(storage._engines)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write an event, report what it used, exit without running pytest's teardown
        try:
            run_id = dg.materialize([counted], instance=template_instance).run_id
            shared = any(storage._engines.get(shard) is engine for shard, engine in parent_engines.items())
            os.write(write, f"{run_id} {int(shared)}".encode())
        finally:
            os._exit(0)
    os.close(write)
    run_id, shared = os.read(read, 200).decode().split()
    os.waitpid(pid, 0)
    assert shared == "0"
    # The parent's kept connections still work, and see what the child wrote.
    assert any(e.dagster_event_type == dg.DagsterEventType.RUN_SUCCESS for e in template_instance.all_logs(run_id))


# ---- batches of events: one transaction per file ------------------------------------------------------------------

months = dg.MonthlyPartitionsDefinition(start_date="2024-01-01", end_date="2025-01-01")


@dg.asset(partitions_def=months)
def monthly(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """A range of months in one run, as the nightly roll-up materializes them."""
    return dg.MaterializeResult(metadata={"months": len(context.partition_keys)})


def _materialize_the_year(instance: dg.DagsterInstance) -> str:
    tags = {"dagster/asset_partition_range_start": "2024-01-01", "dagster/asset_partition_range_end": "2024-12-01"}
    result = dg.materialize([monthly], instance=instance, tags=tags)
    assert result.success
    return result.run_id


@contextmanager
def _commits() -> Iterator[Counter]:
    """Counts the commits meanwhile, by database file."""
    counted: Counter = Counter()

    def count(conn) -> None:
        counted[Path(conn.engine.url.database).name] += 1

    event.listen(Engine, "commit", count)
    try:
        yield counted
    finally:
        event.remove(Engine, "commit", count)


def _asset_events(instance: dg.DagsterInstance, run_id: str) -> list[tuple]:
    return [(e.dagster_event_type, e.dagster_event.partition) for e in instance.all_logs(run_id)
            if e.dagster_event_type in (dg.DagsterEventType.ASSET_MATERIALIZATION,
                                        dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)]


def test_load_instance_turns_batches_on_unless_set(tmp_path, batch_size_unset, monkeypatch):
    (tmp_path / "pooled").mkdir()
    with load_instance(tmp_path / "pooled"):
        assert os.environ[BATCH_SIZE] == str(EVENT_BATCH_SIZE)
    monkeypatch.setenv(BATCH_SIZE, "7")
    with load_instance(tmp_path / "pooled"):
        assert os.environ[BATCH_SIZE] == "7"  # the operator's own choice stands


def test_a_range_stores_its_events_in_a_transaction_per_batch_and_file(template_instance, monkeypatch):
    """The same events as one by one, with far fewer commits: the planned and the done materializations of the
    twelve months are a batch each."""
    with _commits() as batched:
        batched_run = _materialize_the_year(template_instance)
    monkeypatch.setenv(BATCH_SIZE, "0")  # Dagster's own way: event by event
    with _commits() as single:
        single_run = _materialize_the_year(template_instance)
    events = _asset_events(template_instance, batched_run)
    assert events == _asset_events(template_instance, single_run)
    assert sorted(p for kind, p in events if kind == dg.DagsterEventType.ASSET_MATERIALIZATION) == [
        f"2024-{m:02d}-01" for m in range(1, 13)]
    # 24 asset events, each committed to the run's file and to the index when one by one; two batches.
    assert single["index.db"] - batched["index.db"] >= 24 - 2
    assert single[f"{single_run}.db"] - batched[f"{batched_run}.db"] >= 24 - 2
    assert template_instance.get_materialized_partitions(dg.AssetKey("monthly")) == set(months.get_partition_keys())


def test_a_batch_that_fails_stores_none_of_its_events_and_dagster_stores_them_one_by_one(template_instance,
                                                                                         monkeypatch):
    storage = template_instance.event_log_storage
    calls: list[int] = []
    store_asset_event = storage._store_asset_event

    def fail_once_within_a_batch(conn, event, event_id):
        if storage._batch is not None:
            calls.append(event_id)
            if len(calls) == 5:  # the fifth event of the first batch (the planned ones): four are stored already
                raise RuntimeError("disk full")
        return store_asset_event(conn, event, event_id)

    monkeypatch.setattr(storage, "_store_asset_event", fail_once_within_a_batch)
    run_id = _materialize_the_year(template_instance)
    assert len(calls) > 5  # the first batch failed; Dagster stored its events one by one, and the next batch worked
    events = _asset_events(template_instance, run_id)
    planned = [p for kind, p in events if kind == dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED]
    assert sorted(planned) == [f"2024-{m:02d}-01" for m in range(1, 13)]  # each once: nothing stored twice
    assert storage._batch is None
    assert template_instance.get_materialized_partitions(dg.AssetKey("monthly")) == set(months.get_partition_keys())


def test_a_range_opens_no_connection_to_ask_whether_the_index_has_a_table(template_instance):
    """Dagster asks before storing the tags of each materialization; its storage answers through a new connection
    to the index file each time (twelve here), this one from what it found before."""
    _materialize_the_year(template_instance)  # the index and its engine exist, and its tables were found once
    with _connections_opened() as opened:
        run_id = _materialize_the_year(template_instance)
    index = str(Path(template_instance.event_log_storage._base_dir) / "index.db")
    assert opened[index] == 0
    assert opened[template_instance.event_log_storage.path_for_shard(run_id)] == 1
    tags = template_instance.get_latest_materialization_event(dg.AssetKey("monthly")).tags
    assert "dagster/data_version" in tags  # the tags stored as Dagster stores them


def test_a_missing_table_is_asked_about_every_time_and_a_wipe_forgets_the_tables_found(template_instance):
    storage = template_instance.event_log_storage
    index = Path(storage._base_dir) / "index.db"
    assert not storage.has_table("scratch")
    with sqlite3.connect(index) as db:
        db.execute("CREATE TABLE scratch (x INTEGER)")
    assert storage.has_table("scratch")  # asked again: it is there now
    with sqlite3.connect(index) as db:
        db.execute("DROP TABLE scratch")
    with _connections_opened() as opened:
        assert storage.has_table("scratch")  # remembered (only Dagster's migrations add tables, none drops one)
    assert opened[str(index)] == 0
    storage.wipe()
    assert not storage.has_table("scratch")


# ---- planned checks: Dagster's rows, the event serialized once -------------------------------------------------------

@dg.asset(partitions_def=months, check_specs=[dg.AssetCheckSpec("filled", asset="checked_monthly"),
                                              dg.AssetCheckSpec("recent", asset="checked_monthly")])
def checked_monthly(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """A range of months with two checks, as the nightly roll-up plans its checks."""
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(check_name="filled", passed=True),
                                               dg.AssetCheckResult(check_name="recent", passed=False)])


def test_planned_checks_are_stored_as_dagsters_own_method_stores_them(template_instance):
    """One row per check and partition of the run, the same rows as Dagster's method writes (which serializes the
    event again for every partition)."""
    tags = {"dagster/asset_partition_range_start": "2024-01-01", "dagster/asset_partition_range_end": "2024-12-01"}
    run_id = dg.materialize([checked_monthly], instance=template_instance, tags=tags).run_id
    storage = template_instance.event_log_storage
    table = AssetCheckExecutionsTable
    columns = [c for c in table.columns if c.name not in ("id", "create_timestamp")]

    def stored() -> list[tuple]:
        with storage.index_connection() as conn:
            return sorted((tuple(r) for r in conn.execute(select(*columns).where(table.c.run_id == run_id))), key=repr)

    def stored_again(store) -> list[tuple]:
        with storage.index_connection() as conn:
            conn.execute(delete(table).where(table.c.run_id == run_id))
        for record in planned:
            store(record.event_log_entry, record.storage_id)
        return stored()

    after_run = stored()
    # A planned row per check and month; Dagster records each result of a range's run on a row of its own, without
    # a partition.
    assert sorted((r[1], r[2]) for r in after_run if r[4] == "PLANNED") == [
        (check, f"2024-{m:02d}-01") for check in ("filled", "recent") for m in range(1, 13)]
    assert sorted((r[1], r[4]) for r in after_run if r[2] is None) == [("filled", "SUCCEEDED"), ("recent", "FAILED")]
    planned = template_instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED).records
    assert len(planned) == 2
    ours = stored_again(storage._store_asset_check_evaluation_planned)
    dagsters = stored_again(partial(SqliteEventLogStorage._store_asset_check_evaluation_planned, storage))
    assert ours == dagsters and len(ours) == 24
    assert {r[4] for r in ours} == {"PLANNED"}
