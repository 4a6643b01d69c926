"""Normalize: resolve staged uploads into current datapoints, then check them against the technical guides."""

import time
from collections.abc import Iterator

import dagster as dg

from jc_pipeline.defs.normalize.checks import (
    rule_check_result,
    rule_check_specs,
    skipped_rule_results,
    structure_check_result,
)
from jc_pipeline.defs.partitions import (
    months_of,
    period_months,
    rebuilds_metadata,
    rebuilds_pending_agencies_only,
    row_count_metadata,
)
from jc_pipeline.defs.resources import WAREHOUSE_POOL, WarehouseResource
from jc_pipeline.lib import ingest, pending, validation
from jc_pipeline.lib.state_clock import state_today

_COMMON = {"group_name": "normalize", "kinds": {"duckdb", "polars"}}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "agency_metrics",
            description="Current datapoints, one per agency x metric x period x breakdown category, keyed by the "
            "month their period starts: the latest upload wins, missing totals are inferred from a breakdown, and "
            "every value keeps the file, sheet and row it came from.",
            deps=["source_files", "rejected_rows"],
            **_COMMON,
        ),
        dg.AssetSpec(
            "validation_results",
            description="One row per group of datapoints failing a technical-guide rule. ERROR rows keep that "
            "agency, metric and period out of the state roll-up; WARNING rows are published with a flag.",
            deps=["agency_metrics"],
            **_COMMON,
        ),
    ],
    partitions_def=period_months,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=rule_check_specs(),
    pool=WAREHOUSE_POOL,
)
def agency_metrics(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Rebuild the datapoints of the run's months, then run every rule on them (Great Expectations + SQL). A
    nightly run (`pending_range_tags`) rebuilds and re-checks only the months holding pending uploads, and in
    them only the agencies those uploads are for."""
    months = months_of(context)
    registry, roster = warehouse.registry(), warehouse.roster()
    with warehouse.store().connect() as con:
        ingest.ensure_schema(con)  # a store from before this version's staged tables, rolled up before any ingest
        began = time.perf_counter()
        validation.preload()  # Great Expectations' worker imports it (~2.4 s) while DuckDB resolves, if not yet
        today = state_today()  # a period ends at the state's midnight
        # Only uploads change datapoints and their verdicts, so in a nightly run the other agencies' rows and results
        # are current already: one corrected row costs one agency's rebuild in its months, not the whole range's.
        # (no_missing_months reads today for the periods due: a backfill brings it up to date, docs/operations.md.)
        nightly = rebuilds_pending_agencies_only(context)
        rebuilds = pending.pending_rebuilds(con, months) if nightly else [pending.Rebuild(months, None)]
        rows = sum(ingest.resolve_agency_metrics(con, rebuild_months, roster, registry, agencies)
                   for rebuild_months, agencies in rebuilds)
        pending.record_rebuilt(con, rebuilds)
        resolved = time.perf_counter()
        problems = validation.check_structure(con, registry)
        outcomes = [] if problems else validation.validate_scopes(con, rebuilds, today=today, registry=registry)
        # Only checked uploads are resolved: after a crash or a broken structure they stay pending, so the next
        # roll-up resolves and checks them again (a state_metrics run alone, from the UI, meanwhile rolls up
        # agency_metrics as it stands, but leaves them pending).
        if not problems:
            pending.mark_resolved(con, rebuilds)
        checked = time.perf_counter()
    # The two halves of this step are timed apart: the benchmark (bench/) reports normalize and checks as stages.
    yield dg.MaterializeResult(
        asset_key="agency_metrics",
        metadata={
            **row_count_metadata(months, rebuilds, rows),
            "resolve_seconds": round(resolved - began, 3),
            **(rebuilds_metadata(rebuilds) if nightly else {}),
        },
    )
    yield dg.MaterializeResult(
        asset_key="validation_results",
        metadata={
            "failing_groups": sum(o.failing_groups for o in outcomes),
            "error_groups": sum(o.failing_groups for o in outcomes if o.rule.severity == "ERROR"),
            "checks_seconds": round(checked - resolved, 3),
        },
    )
    if problems:
        yield from skipped_rule_results("warehouse structure is broken; see warehouse_structure_intact")
    yield from (rule_check_result(outcome) for outcome in outcomes)
    yield structure_check_result(problems)
