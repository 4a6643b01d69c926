"""Partitions: the month in which a report period starts (DESIGN §4).
Monthly datapoints land in their month, annual and fiscal-year datapoints in their first month, so one scheme
covers every frequency. The current month exists (end_offset=1) so that early deliveries are checked, not lost.
"""


from datetime import date

import dagster as dg

from jc_pipeline.lib.periods import FIRST_PERIOD

period_months = dg.MonthlyPartitionsDefinition(start_date=FIRST_PERIOD.isoformat(), end_offset=1)


def months_of(context: dg.AssetExecutionContext) -> list[date]:
    """Month starts covered by this run: one key nightly, a whole range in a single-run backfill."""
    return [date.fromisoformat(key) for key in context.partition_keys]


def range_tags(first: date, last: date) -> dict[str, str]:
    """Run tags that make one run cover the months first..last (inclusive)."""
    return {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
    }
