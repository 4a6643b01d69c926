"""Publish: the analyst warehouse, swapped into place whole (the reports read from it: reports.py)."""

import dagster as dg
import duckdb

from jc_pipeline.defs.resources import WAREHOUSE_POOL, WarehouseResource
from jc_pipeline.defs.state.assets import NIGHTLY_FRESHNESS
from jc_pipeline.lib import state
from jc_pipeline.lib.warehouse import PUBLISHED_TABLES, ensure_contract_schema


def _prepare(con: duckdb.DuckDBPyConnection) -> None:
    ensure_contract_schema(con)
    state.ensure_schema(con)


@dg.asset(
    deps=["state_metrics"],
    group_name="publish",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    freshness_policy=NIGHTLY_FRESHNESS,
)
def analyst_warehouse(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """`warehouse.duckdb`: every analyst table and view, rebuilt beside the old file and renamed into place, so a
    reader never sees half a run and never blocks one (`duckdb -readonly data/warehouse.duckdb`)."""
    target = warehouse.layout.warehouse
    counts = warehouse.store().publish(
        target, PUBLISHED_TABLES + state.PUBLISHED_TABLES, prepare=_prepare, finish=state.apply_views
    )
    return dg.MaterializeResult(
        metadata={"path": dg.MetadataValue.path(str(target)), **{f"rows/{t}": n for t, n in counts.items()}}
    )
