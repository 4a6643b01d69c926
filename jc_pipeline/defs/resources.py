"""The warehouse resource: where the data directory is, and the only way steps touch DuckDB."""

import functools
import os
import time
from pathlib import Path

import dagster as dg

from jc_pipeline.lib.ingest.batch import STAT_SETTLE_NS
from jc_pipeline.lib.paths import DataLayout
from jc_pipeline.lib.registry import Registry, load_registry
from jc_pipeline.lib.roster import (AGENCIES_FILE, BREAKDOWN_SETTINGS_FILE, SETTINGS_FILE, WITHDRAWALS_FILE, Roster,
                                   load_roster)
from jc_pipeline.lib.warehouse import Store

#: Every step that opens the store claims a slot of this pool; dagster.yaml gives it one slot.
WAREHOUSE_POOL = "duckdb_warehouse"


class WarehouseResource(dg.ConfigurableResource):
    """A state's data directory: inbox, roster, the single-writer store and the published warehouse."""

    data_dir: str
    lock_timeout_seconds: float = 600.0

    @property
    def layout(self) -> DataLayout:
        return DataLayout.from_env(self.data_dir)

    def store(self) -> Store:
        return Store(self.layout.store, self.lock_timeout_seconds)

    def roster(self) -> Roster:
        """The roster files as they are now (read again only when one of them changed since the last read)."""
        root = self.layout.root
        signatures = tuple(_signature(root / name) for name in _ROSTER_FILES)
        # A file changed within the last tick of the file system's clock may change again keeping its stat
        # (the same rule as the inbox's, docs/decisions.md "Trusting the stat of inbox files").
        settled = time.time_ns() - STAT_SETTLE_NS
        if any(s is not None and s[2] > settled for s in signatures):
            return load_roster(root)
        return _roster(root, signatures)

    def registry(self) -> Registry:
        return load_registry()


#: The files a roster is read from; their stats decide whether a cached roster is still current.
_ROSTER_FILES = (AGENCIES_FILE, SETTINGS_FILE, BREAKDOWN_SETTINGS_FILE, WITHDRAWALS_FILE)


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


@functools.lru_cache(maxsize=4)
def _roster(root: Path, signatures: tuple[tuple[int, int, int] | None, ...]) -> Roster:
    # Every step of a `jc-pipeline run` (one process, several runs) asks for the roster: 3,000 agencies take
    # 0.2-0.5 s to read and validate. A Roster is immutable, so sharing one is safe; an edited file changes its
    # signature (size, mtime, ctime) and is read again.
    del signatures  # part of the cache key only
    return load_roster(root)


@dg.definitions
def resources() -> dg.Definitions:
    """Bind `warehouse` to `$JC_DATA_DIR` (default `./data`), resolved once at load."""
    return dg.Definitions(resources={"warehouse": WarehouseResource(data_dir=str(DataLayout.from_env().root))})
