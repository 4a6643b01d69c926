"""Dagster's SQLite event log with one pooled connection per database file instead of a new engine per query.

Dagster's ``SqliteEventLogStorage`` builds a SQLAlchemy engine, opens a connection and disposes of both around
every statement it runs: a roll-up run stores ~75 events and makes ~400 such connections. A connection and a
query cost 0.37-0.42 ms that way, 0.024-0.028 ms on a kept connection (1,000 of each on the index file, this
machine; docs/benchmarks.md). This storage keeps one engine with one connection
(``StaticPool``) for each of the :data:`ENGINES_KEPT` database files it used last: Dagster already serializes
every use of them under its own lock (``_db_lock``), so one connection per file is all it ever needs.

Everything else is Dagster's: the files, their schema, the queries. Only ``_connect`` (a private method, so
Dagster's version is pinned and the tests check the method still exists) and the places that remove database
files are overridden: a connection is never kept to a file that ``wipe`` deletes, nor across a fork.

:func:`load_instance` puts it in place of Dagster's default when the instance's dagster.yaml leaves the storage
to that default, over the same files (``<instance folder>/history/runs``), as an override computed from the
folder each time: never a path written into a file, which a copied or moved instance would still point at. An
instance with its own storage (PostgreSQL: docs/operations.md) is opened as configured. The webserver and the
daemon open the instance themselves, with Dagster's class, on the same files.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

#: Database files with a connection kept open by one storage: a run writes its own file and the shared index.
ENGINES_KEPT = 4
#: Keys of dagster.yaml that choose the storage: with any of them, the instance's own choice stands.
_STORAGE_KEYS = ("storage", "run_storage", "event_log_storage", "schedule_storage", "instance_class")


def load_instance(home: Path) -> dg.DagsterInstance:
    """The Dagster instance of the folder ``home`` (its dagster.yaml), with this event log in place of Dagster's
    default SQLite one when the file leaves the storage to that default."""
    config_file = Path(home) / "dagster.yaml"
    configured = (yaml.safe_load(config_file.read_text(encoding="utf-8")) if config_file.exists() else None) or {}
    if any(key in configured for key in _STORAGE_KEYS):
        return dg.DagsterInstance.from_config(str(home))
    pooled = {"module": __name__, "class": PooledSqliteEventLogStorage.__name__,
              "config": {"base_dir": os.path.join(home, "history", "runs")}}
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home), overrides={"event_log_storage": pooled}))


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` keeping a connection per database file (see the module docstring)."""

    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: dict) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _engine(self, shard: str) -> Engine:
        """The kept engine of ``shard``'s file; the least recently used one is closed past ENGINES_KEPT. Called
        under ``_db_lock``."""
        if self._engines_pid != os.getpid():
            # A forked child must not share its parent's SQLite connections: forget them (closing them here
            # would act on the parent's file handles) and open its own.
            self._engines = OrderedDict()
            self._engines_pid = os.getpid()
        engine = self._engines.get(shard)
        if engine is None:
            engine = self._engines[shard] = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=StaticPool,
                # Used by one thread at a time (under _db_lock), from whichever thread Dagster calls in.
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            while len(self._engines) > ENGINES_KEPT:
                self._engines.popitem(last=False)[1].dispose()
        else:
            self._engines.move_to_end(shard)
        return engine

    def _close_engines(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        self._close_engines()  # before the files go, so no connection writes to a deleted file
        super().wipe()

    def dispose(self) -> None:
        self._close_engines()
        super().dispose()
