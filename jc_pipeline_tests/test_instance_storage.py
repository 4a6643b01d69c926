"""The instance's SQLite storage commits without waiting for the disk once the code location is loaded: no fsync
per commit, and no checkpoint per closed connection."""

import sqlite3
from pathlib import Path

import dagster as dg
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from jc_pipeline.instance import KEPT_OPEN, tune_sqlite_storage

NORMAL, FULL = 1, 2


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
