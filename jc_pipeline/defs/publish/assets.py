"""Publish: the analyst warehouse, swapped into place whole (the reports read from it: reports.py), and the
store's record of what the warehouse and the reports of a publish hold."""

from collections.abc import Iterator

import dagster as dg
import duckdb

from jc_pipeline.defs.resources import WAREHOUSE_POOL, WarehouseResource
from jc_pipeline.lib import pending, state
from jc_pipeline.lib.warehouse import PUBLISHED_TABLES, ensure_contract_schema

#: analyst_warehouse's metadata: the roll-ups and the latest upload of the store it copied (`pending.Generations`).
HELD_ROLLUPS = "store_rollups_held"
HELD_UPLOADS = "store_uploads_held"


def _prepare(con: duckdb.DuckDBPyConnection) -> None:
    ensure_contract_schema(con)
    state.ensure_schema(con)


@dg.asset(
    deps=["state_metrics"],
    group_name="publish",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    output_required=False,
)
def analyst_warehouse(context: dg.AssetExecutionContext, warehouse: WarehouseResource
                      ) -> Iterator[dg.MaterializeResult]:
    """`warehouse.duckdb`: every analyst table and view, rebuilt beside the old file and renamed into place, so a
    reader never sees half a run and never blocks one (`duckdb -readonly data/warehouse.duckdb`). Not while a
    roll-up is half done (another run's, between its steps, or one that stopped there): the warehouse stays as it
    is, the reports of this run are skipped, and the roll-up's own publish follows (`jc-pipeline run` finishes a
    roll-up that stopped)."""
    target = warehouse.layout.warehouse
    store = warehouse.store()
    # Read before the copy, so a roll-up or an ingest another process commits meanwhile stays counted as
    # unpublished (publish_generations, below, records these). No roll-up step can run between the check and the
    # copy: each holds the warehouse pool's slot, as this one does (but for a run on a temporary instance, without
    # DAGSTER_HOME, which takes no slot: docs/operations.md).
    with store.connect() as con:
        seen, halfway = pending.generations(con), pending.rolled_up_halfway(con)
    if halfway:
        # helper-61: a publish queued behind a roll-up's first step published its new agency rows beside the old
        # state sums for 23 s.
        context.log.warning(f"not published: a roll-up of {len(halfway)} month(s) ({halfway[0]:%Y-%m} .. "
                            f"{halfway[-1]:%Y-%m}) has rebuilt the agency rows but not yet the state sums; its own "
                            f"publish follows it (a roll-up that stopped is finished by `jc-pipeline run`)")
        return
    counts = store.publish(target, PUBLISHED_TABLES + state.PUBLISHED_TABLES, prepare=_prepare,
                           finish=state.apply_views)
    yield dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(target)),
        **{f"rows/{t}": n for t, n in counts.items()},
        HELD_ROLLUPS: seen.rolled_up,
        HELD_UPLOADS: seen.uploaded,
    })


#: What a publish writes, the warehouse first (publish_generations records it all or nothing).
_PUBLISHED = ("analyst_warehouse", "data_quality_report", "agency_feedback", "state_report")


@dg.asset(
    deps=list(_PUBLISHED),
    group_name="publish",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
)
def publish_generations(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Records in the store (table `publish_generations`) that the warehouse and every report of this run are
    published, with the roll-ups and uploads the warehouse holds. `jc-pipeline run` publishes again only when the
    store holds more, so a publish that the sensors, the schedule or the UI launched is not repeated by the next
    command. Runs last: a publish that failed or was killed before its reports were written records nothing, and
    the next run publishes again. Records nothing either when `analyst_warehouse` or one of the reports was not
    built by this run (a run from the UI that left the reports out)."""
    # Another run's warehouse (a publish that overlapped this one) is not this run's to vouch for, nor are reports
    # this run did not write.
    events = [context.instance.get_latest_materialization_event(dg.AssetKey(key)) for key in _PUBLISHED]
    if any(event is None or event.run_id != context.run.run_id for event in events):
        return dg.MaterializeResult(metadata={"recorded": False})
    metadata = events[0].asset_materialization.metadata if events[0].asset_materialization else {}
    if HELD_ROLLUPS not in metadata:
        return dg.MaterializeResult(metadata={"recorded": False})
    rolled_up, uploaded = metadata[HELD_ROLLUPS].value, metadata[HELD_UPLOADS].value
    with warehouse.store().connect() as con:
        pending.mark_published(con, rolled_up=rolled_up, uploaded=uploaded)
    return dg.MaterializeResult(metadata={"recorded": True, HELD_ROLLUPS: rolled_up, HELD_UPLOADS: uploaded})
