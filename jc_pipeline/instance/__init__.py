"""The Dagster instance template (`dagster.yaml`) and how this code location's SQLite storage commits.

Dagster's SQLite storages run in WAL mode and open a new connection for every event they write (SQLAlchemy's
NullPool). With SQLite's defaults each event then waits for the disk twice, at 15-20 ms per fsync on the disks
this runs on, and a roll-up over ten years of months writes over a thousand events:

* `synchronous=FULL` syncs every commit. In WAL mode `synchronous=NORMAL` is still atomic and durable across a
  process crash (a killed run loses nothing it committed); only an operating-system crash or power loss can roll
  back the last commits of the event log, which records what ran — the data itself lives in DuckDB, which syncs
  its own commits.
* Closing the *last* connection to a WAL database checkpoints it (copies the log into the database file and
  syncs both) and deletes the log: with a connection per event, every event. So the process keeps one idle
  connection open to each of the SQLite files it wrote most recently (``KEPT_OPEN``; a run writes its own event
  shard and the shared index), and the log is checkpointed by SQLite's automatic checkpoint every 1,000 pages
  instead (measured here: 20.8 ms -> 0.3 ms per connect-insert-commit-close). The idle connections never open a
  transaction, so they block no writer and no checkpoint, in this process or any other; the oldest is closed
  when a newer file needs the slot, and all of them when the process exits.

A database created through SQLAlchemy is put in WAL mode at its first connection (Dagster does it after
creating its tables, through a dozen synced commits). Other databases not in WAL mode are left alone.
"""

import atexit
import sqlite3
import threading
from collections import OrderedDict

from sqlalchemy import event
from sqlalchemy.engine import Engine

#: SQLite files kept open at once by one process (see the module docstring).
KEPT_OPEN = 8

_kept: OrderedDict[str, sqlite3.Connection] = OrderedDict()
_kept_lock = threading.Lock()


def tune_sqlite_storage() -> None:
    """From now on, every SQLAlchemy connection to a SQLite database in WAL mode uses `synchronous=NORMAL`, and
    its file stays open in this process until ``KEPT_OPEN`` newer ones push it out."""
    if not event.contains(Engine, "connect", _tune_wal_connection):
        event.listen(Engine, "connect", _tune_wal_connection)


def _tune_wal_connection(connection: object, _record: object) -> None:
    if not isinstance(connection, sqlite3.Connection):
        return
    (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
    if mode != "wal" and connection.execute("PRAGMA page_count").fetchone() == (0,):
        # A database being created: Dagster's storage (the only SQLite this code location opens through
        # SQLAlchemy) switches it to WAL after creating its tables; switching first spares the ~10 synced
        # commits of the rollback journal that creating a run's event shard cost (0.2-0.3 s per run).
        (mode,) = connection.execute("PRAGMA journal_mode=WAL").fetchone()
    if mode != "wal":
        return
    connection.execute("PRAGMA synchronous=NORMAL")
    path = next((file for _, name, file in connection.execute("PRAGMA database_list") if name == "main"), "")
    if path:  # "" for in-memory and temporary databases
        _keep_open(path)


def _keep_open(path: str) -> None:
    with _kept_lock:
        if path in _kept:
            _kept.move_to_end(path)
            return
        keeper = sqlite3.connect(path, check_same_thread=False)
        # Reading the schema opens the log and takes the shared lock that makes the event connections non-last.
        keeper.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        _kept[path] = keeper
        while len(_kept) > KEPT_OPEN:
            _kept.popitem(last=False)[1].close()


@atexit.register
def _close_kept() -> None:
    with _kept_lock:
        while _kept:
            _kept.popitem()[1].close()
