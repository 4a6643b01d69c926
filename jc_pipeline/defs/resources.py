"""The warehouse resource: where the data directory is, and the only way steps touch DuckDB."""

import dagster as dg

from jc_pipeline.lib.paths import DataLayout
from jc_pipeline.lib.registry import Registry, load_registry
from jc_pipeline.lib.roster import Roster, load_roster
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
        return load_roster(self.layout.root)

    def registry(self) -> Registry:
        return load_registry()


@dg.definitions
def resources() -> dg.Definitions:
    """Bind `warehouse` to `$JC_DATA_DIR` (default `./data`), resolved once at load."""
    return dg.Definitions(resources={"warehouse": WarehouseResource(data_dir=str(DataLayout.from_env().root))})
