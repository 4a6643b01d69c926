"""Partitions: the month in which a report period starts (DESIGN §4).
Monthly datapoints land in their month, annual and fiscal-year datapoints in their first month, so one scheme
covers every frequency. The current month exists (end_offset=1) so that early deliveries are checked, not lost;
it is the state's (JC_TIMEZONE), as the nightly schedule's: in UTC's, Guam's `jc-pipeline run --from` the morning
of the 1st refused the month begun (helper-47).
"""


from collections.abc import Sequence
from datetime import date

import dagster as dg

from jc_pipeline.lib.periods import FIRST_PERIOD
from jc_pipeline.lib.state_clock import state_timezone

period_months = dg.MonthlyPartitionsDefinition(start_date=FIRST_PERIOD.isoformat(), end_offset=1,
                                               timezone=state_timezone())


def months_of(context: dg.AssetExecutionContext) -> list[date]:
    """Month starts covered by this run: one key nightly, a whole range in a single-run backfill."""
    return [date.fromisoformat(key) for key in context.partition_keys]


def range_tags(first: date, last: date) -> dict[str, str]:
    """Run tags that make one run cover the months first..last (inclusive)."""
    return {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
    }


#: Run tag of the nightly roll-ups (`jc-pipeline run` without --from/--to, touched_periods_sensor): rebuild only
#: the agencies with pending uploads in the run's months. Runs without it (backfills, UI launches) rebuild whole
#: months, which is also what repairs a month after a roster, settings or rule change.
PENDING_AGENCIES_TAG = "jc/rebuild"
_PENDING_AGENCIES = "pending_agencies"


def pending_range_tags(first: date, last: date) -> dict[str, str]:
    """`range_tags` of a nightly roll-up: the months first..last, only their agencies with pending uploads."""
    return {**range_tags(first, last), PENDING_AGENCIES_TAG: _PENDING_AGENCIES}


def rebuilds_pending_agencies_only(context: dg.AssetExecutionContext) -> bool:
    """Whether this run was launched with `pending_range_tags` (a nightly roll-up), not as a backfill."""
    return context.run.tags.get(PENDING_AGENCIES_TAG) == _PENDING_AGENCIES


def rebuilds_metadata(rebuilds: Sequence[tuple[Sequence[date], Sequence[str] | None]]) -> dict[str, object]:
    """Metadata of what a nightly roll-up step rebuilt: per range of months (first, last) its agencies ("all": a
    whole-month rebuild), and the totals over the run."""
    ranges = [(months[0], months[-1], agencies) for months, agencies in rebuilds]
    named = {agency for _, _, agencies in ranges for agency in agencies or ()}
    return {
        "rebuilt_months": sum(len(months) for months, _ in rebuilds),
        "rebuilt_agencies": len(named),
        "rebuilds": dg.MetadataValue.json([
            {"first": first.isoformat(), "last": last.isoformat(),
             "agencies": "all" if agencies is None else len(agencies)}
            for first, last, agencies in ranges
        ]),
    }


def row_count_metadata(months: Sequence[date], rebuilds: Sequence[tuple[Sequence[date], object]],
                       rows: int) -> dict[str, int]:
    """``rows``, the rows of the rebuilt months after the step, as metadata. Dagster copies a range run's metadata
    onto every partition of the range, so `dagster/partition_row_count` (shown per partition) is given only when
    the run is one month and that month was rebuilt; otherwise the count is `rows_in_rebuilt_months`."""
    rebuilt = {month for rebuild_months, _ in rebuilds for month in rebuild_months}
    if len(months) == 1 and rebuilt == set(months):
        return {"dagster/partition_row_count": rows}
    return {"rows_in_rebuilt_months": rows}
