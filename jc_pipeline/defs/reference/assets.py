"""Reference tables: what Justice Counts Tier 1 means, and who the state's agencies are."""

from collections.abc import Iterator

import dagster as dg

from jc_pipeline.defs.resources import WAREHOUSE_POOL, WarehouseResource
from jc_pipeline.lib.reference import write_reference_tables
from jc_pipeline.lib.warehouse import ensure_contract_schema


def _reference_specs() -> list[dg.AssetSpec]:
    specs = [
        dg.AssetSpec(
            "metric_definitions",
            description="Every Justice Counts Tier 1 metric (70 sector metrics, 44 supervision subsystem copies, "
            "3 superagency metrics) with its unit, measurement type, default frequency and category.",
        ),
        dg.AssetSpec(
            "metric_categories",
            description="Every breakdown category of every metric: dimension identifier, member NAME and the display "
            "value agencies write in bulk uploads.",
        ),
        dg.AssetSpec(
            "agencies",
            description="The state's roster (agencies.csv): sectors, population served, fiscal year, superagency.",
        ),
        dg.AssetSpec(
            "agency_metric_settings",
            description="Effective reporting settings per agency and metric: registry defaults overridden by "
            "metric_settings.csv (enabled, frequency, fiscal start month, supervision subsystems).",
        ),
        dg.AssetSpec(
            "agency_breakdown_settings",
            description="Breakdown categories an agency turned off in breakdown_settings.csv (subsystem keys "
            "inherit their combined SUPERVISION_* metric's rows); every other category is enabled. Disabled "
            "categories are left out of upload templates; data for them is kept and flagged (category_enabled).",
        ),
    ]
    return [spec.replace_attributes(group_name="reference", kinds={"duckdb"}) for spec in specs]


@dg.multi_asset(
    specs=_reference_specs(),
    pool=WAREHOUSE_POOL,
)
def reference_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[dg.MaterializeResult]:
    """Load the packaged metric registry and the state's roster into the warehouse; a table whose rows did not
    change is left as it is (`rewritten` false)."""
    registry, roster = warehouse.registry(), warehouse.roster()
    with warehouse.store().connect() as con:
        ensure_contract_schema(con)
        written = write_reference_tables(con, registry, roster)
    for table, result in written.items():
        yield dg.MaterializeResult(asset_key=table,
                                   metadata={"dagster/row_count": result.rows, "rewritten": result.rewritten})
