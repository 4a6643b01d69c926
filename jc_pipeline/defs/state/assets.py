"""State roll-ups: the numbers policymakers read, with coverage beside every one."""

import dagster as dg

from jc_pipeline.defs.partitions import (
    months_of,
    period_months,
    rebuilds_metadata,
    rebuilds_pending_agencies_only,
    row_count_metadata,
)
from jc_pipeline.defs.resources import WAREHOUSE_POOL, WarehouseResource
from jc_pipeline.lib import pending, state

@dg.asset(
    partitions_def=period_months,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=["agency_metrics", "validation_results"],
    group_name="state",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
)
def state_metrics(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """State-level value of every metric, period and breakdown category, summed only where summing is valid
    (same sector, metric and period window), with agencies reporting of expected, population covered and rate
    per 100,000. Datapoints failing an error-level rule count as missing. A nightly run (`pending_range_tags`)
    re-reads only the months and agencies whose datapoints agency_metrics rebuilt; the sums cover every agency."""
    months = months_of(context)
    with warehouse.store().connect() as con:
        state.ensure_schema(con)
        nightly = rebuilds_pending_agencies_only(context)
        rebuilds = pending.rebuilds_to_roll_up(con, months) if nightly else [pending.Rebuild(months, None)]
        rows = state.rebuild_state_metrics(con, rebuilds)
        pending.mark_rolled_up(con, sorted({month for rebuild in rebuilds for month in rebuild.months}))
    return dg.MaterializeResult(
        metadata={**row_count_metadata(months, rebuilds, rows), **(rebuilds_metadata(rebuilds) if nightly else {})}
    )
