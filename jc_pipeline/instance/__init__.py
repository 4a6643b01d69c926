"""The Dagster instance template (`dagster.yaml`) and how this code location's SQLite storage commits.

Dagster's SQLite storages run in WAL mode but keep SQLite's default `synchronous=FULL`, so every event a run
writes waits for an fsync. On the disks this runs on that is 15-20 ms per commit, and a roll-up over ten years of
months writes over a thousand events: half a minute of a run spent waiting for the disk. In WAL mode
`synchronous=NORMAL` is still atomic and durable across a process crash (a killed run loses nothing it
committed); only an operating-system crash or power loss can roll back the last commits of the event log, which
records what ran — the data itself lives in DuckDB, which syncs its own commits. Databases not in WAL mode are
left alone.
"""

import sqlite3

from sqlalchemy import event
from sqlalchemy.engine import Engine


def commit_sqlite_storage_without_fsync() -> None:
    """From now on, every SQLAlchemy connection to a SQLite database in WAL mode uses `synchronous=NORMAL`."""
    if not event.contains(Engine, "connect", _wal_commits_without_fsync):
        event.listen(Engine, "connect", _wal_commits_without_fsync)


def _wal_commits_without_fsync(connection: object, _record: object) -> None:
    if isinstance(connection, sqlite3.Connection):
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
        if mode == "wal":
            connection.execute("PRAGMA synchronous=NORMAL")
