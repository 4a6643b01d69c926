"""Dagster's SQLite event log with one pooled connection per database file instead of a new engine per query.

Dagster's ``SqliteEventLogStorage`` builds a SQLAlchemy engine, opens a connection and disposes of both around
every statement it runs: a roll-up run stores ~75 events and makes ~400 such connections. A connection and a
query cost 0.37-0.42 ms that way, 0.024-0.028 ms on a kept connection (1,000 of each on the index file, this
machine; docs/benchmarks-history.md). This storage keeps one engine with one connection
(``StaticPool``) for each of the :data:`ENGINES_KEPT` database files it used last: Dagster already serializes
every use of them under its own lock (``_db_lock``), so one connection per file is all it ever needs.

Dagster hands a storage the materializations of a partition range, planned and done, as batches when
``DAGSTER_EVENT_BATCH_SIZE`` is set (:data:`EVENT_BATCH_SIZE`; :func:`load_instance` sets it for this storage).
Dagster's SQLite storage stores a batch event by event; this one stores it in one transaction per file, and
commits nothing of it when storing one event fails (Dagster then stores the events one by one). A nightly
roll-up over a range of 89 months writes ~540 such events: its run took 0.4-0.6 s less (docs/benchmarks-history.md).

Dagster stores the planned run of a check over a range of partitions as a row per partition, serializing the
same event again for each row; this storage serializes it once (``_store_asset_check_evaluation_planned``): the
nightly increment at 3,000 agencies (a roll-up over 89 months planning 18 checks) spent 0.26-0.28 s less in
Dagster, three runs each (docs/benchmarks-history.md). The rows are the same.

Before storing the tags of each asset event, Dagster asks whether the index holds their table, and its SQLite
storage answers through a new engine and connection to the index file every time: this storage remembers a yes
(``has_table``). The nightly increment's roll-up over 89 months stores 178 materializations (docs/benchmarks.md).

Everything else is Dagster's: the files, their schema, the queries. Only ``_connect``, ``has_table`` and
``_store_asset_check_evaluation_planned`` (the first and last private, so Dagster's version is pinned and the
tests check that they still exist and that the rows stored are Dagster's), ``store_event_batch`` and the places
that remove database files are overridden: a connection is never kept to a file that ``wipe`` deletes, nor across
a fork.

:func:`load_instance` puts it in place of Dagster's default when the instance's dagster.yaml leaves the storage
to that default, over the same files (``<instance folder>/history/runs``), as an override computed from the
folder each time: never a path written into a file, which a copied or moved instance would still point at. An
instance with its own storage (PostgreSQL: docs/operations.md) is opened as configured. The webserver and the
daemon open the instance themselves, with Dagster's class, on the same files.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster._core.events.log import EventLogEntry
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import serialize_value
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

#: Database files with a connection kept open by one storage: a run writes its own file and the shared index.
ENGINES_KEPT = 4
#: Events Dagster collects before handing them to ``store_event_batch`` (``DAGSTER_EVENT_BATCH_SIZE``): more
#: than the planned materializations of a ten-year roll-up (3 assets x 122 months), so a run plans in one batch.
EVENT_BATCH_SIZE = 1000
#: Keys of dagster.yaml that choose the storage: with any of them, the instance's own choice stands.
_STORAGE_KEYS = ("storage", "run_storage", "event_log_storage", "schedule_storage", "instance_class")


def load_instance(home: Path) -> dg.DagsterInstance:
    """The Dagster instance of the folder ``home`` (its dagster.yaml), with this event log in place of Dagster's
    default SQLite one when the file leaves the storage to that default. Batches of events are then turned on
    for this process (``DAGSTER_EVENT_BATCH_SIZE``, read by Dagster at every event), unless already set."""
    config_file = Path(home) / "dagster.yaml"
    configured = (yaml.safe_load(config_file.read_text(encoding="utf-8")) if config_file.exists() else None) or {}
    if any(key in configured for key in _STORAGE_KEYS):
        return dg.DagsterInstance.from_config(str(home))
    pooled = {"module": __name__, "class": PooledSqliteEventLogStorage.__name__,
              "config": {"base_dir": os.path.join(home, "history", "runs")}}
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", str(EVENT_BATCH_SIZE))
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home), overrides={"event_log_storage": pooled}))


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` keeping a connection per database file (see the module docstring)."""

    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        self._batch: dict[str, Connection] | None = None  # the open transactions of the batch being stored
        self._tables_found: set[str] = set()  # of the index file (has_table)
        super().__init__(base_dir, inst_data)
        # Reentrant: a batch holds the lock while each event's storing takes it again (_connect).
        self._db_lock = threading.RLock()

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Store ``events`` as ``store_event`` does, in one transaction per database file; when storing one fails,
        none is committed and the error is raised (Dagster then stores them one by one). Other threads wait."""
        with self._db_lock:
            self._batch = {}
            try:
                for event in events:
                    self.store_event(event)
                for conn in self._batch.values():
                    conn.commit()
            finally:
                for conn in self._batch.values():
                    conn.close()  # rolls back what was not committed
                self._batch = None

    def _store_asset_check_evaluation_planned(self, event: EventLogEntry, event_id: int | None) -> None:
        """Dagster's rows, one per partition of the run, each holding the planned event: serialized once here,
        where Dagster serializes it again for every partition (a nightly roll-up over 89 months plans 18 checks:
        1,602 serializations of the same 18 events)."""
        planned = event.dagster_event.event_specific_data
        partition_keys = planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        if not partition_keys:  # an empty range plans nothing (an insert given no rows would write one empty row)
            return
        row = {"asset_key": planned.asset_key.to_string(), "check_name": planned.check_name, "run_id": event.run_id,
               "execution_status": AssetCheckExecutionRecordStatus.PLANNED.value,
               "evaluation_event": serialize_value(event),
               "evaluation_event_timestamp": self._event_insert_timestamp(event),
               "evaluation_event_storage_id": event_id}
        with self.index_connection() as conn:
            conn.execute(AssetCheckExecutionsTable.insert(), [{**row, "partition": key} for key in partition_keys])

    def has_table(self, table_name: str) -> bool:
        """Whether the index file holds ``table_name``: Dagster's answer, remembered once it is yes. A table is
        only ever added to the index (by Dagster's migrations); ``wipe`` forgets every answer."""
        if table_name in self._tables_found:
            return True
        found = super().has_table(table_name)
        if found:
            self._tables_found.add(table_name)
        return found

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
            if self._batch is not None:  # within store_event_batch, which commits
                if shard not in self._batch:
                    self._batch[shard] = engine.connect()
                    self._batch[shard].begin()
                yield self._batch[shard]
                return
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
        self._tables_found.clear()
        super().wipe()

    def dispose(self) -> None:
        self._close_engines()
        super().dispose()
