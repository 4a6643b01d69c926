"""The instance's SQLite storage commits without waiting for fsync once the code location is loaded."""

import sqlite3

import dagster as dg
from sqlalchemy import create_engine

from jc_pipeline.instance import commit_sqlite_storage_without_fsync

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
        commit_sqlite_storage_without_fsync()
        commit_sqlite_storage_without_fsync()  # registering twice is harmless
        assert _synchronous_levels(instance) == {NORMAL}


def test_databases_not_in_wal_mode_keep_full_sync(tmp_path):
    commit_sqlite_storage_without_fsync()
    path = tmp_path / "rollback-journal.db"
    sqlite3.connect(path).close()
    with create_engine(f"sqlite:///{path}").connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "delete"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == FULL
