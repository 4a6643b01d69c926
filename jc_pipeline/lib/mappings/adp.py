"""Average daily population from custody (or supervision) intervals.

One record = one stay: ``start`` (admission) and ``end`` (release; empty = still in custody). For each period (a
month, or for a metric the agency reports annually its fiscal year) the average daily population is the sum
over stays of the days of the period the person was held, divided by the number of days in the period.

Day convention (the "midnight count"): a stay covers the calendar days ``start date <= day < end date``: the
admission day counts, the release day does not, so a same-day booking and release counts 0 days and a person
admitted on the 1st and released on the 3rd counts 2 days. Times of day are ignored. With ``round: true`` the
averages are whole people: the total rounded half up, each breakdown by largest remainder so it adds up to it.

Open stays run to the end of the month of the latest date found in the export for the metric (the extract's
as-of month), and never past the ingest month or the source's ``period.to``. Periods are emitted from the first
one a stay covers (or ``period.from``: set it to the first month the export is complete for, since stays that
ended before an extract's window are usually not in it). An annual period is emitted only when it lies within
``period.from`` .. the as-of month (a year still in progress has no average yet).

Computation, set-based and exact: each stay is clipped to ``[lo, hi)`` (``period.from`` .. the as-of bound) and
falls in periods ``L`` (of ``lo``) to ``H`` (of ``hi - 1 day``). Its days in a period ``[m, m')`` with ``L <= m
<= H`` are ``(m' - m) - [m = L](lo - m) - [m = H](m' - hi)``. Summed over stays, a period's days are its length
times the stays active in it, minus the same two corrections summed over the stays starting and ending in it.
So the records are only grouped by ``(L, H)`` (counts and sums of ``lo`` and ``hi``) -- one pass over the
records per breakdown, whatever the number of stays -- and the periods are summed from those few groups.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from jc_pipeline.lib.mappings.common import ROW, Flag, Periods, Records
from jc_pipeline.lib.mappings.records import (Plan, categories, common_flags, event_rows, excluded, finish,
                                              most_serious, unparsed_date)
from jc_pipeline.lib.mappings.spec import MetricSpec
from jc_pipeline.lib.periods import add_months

ORDER_MESSAGE = ("'{raw}' in column '{column}' is before the stay's start ({records}); fix the "
                 "start or end date")


def plan_population(i: int, spec: MetricSpec, records: Records, periods: Periods) -> Plan:
    ctx = records.ctx
    start, end = pl.col(records.date(spec.start)), pl.col(records.date(spec.end))
    records.suspect(spec.end, lambda: end < start)
    cats = categories(records, spec)
    ident = records.ident(spec.id) if spec.id is not None else None
    live = records.where(spec.where) & ~excluded(cats)
    raw_end = records.raw(spec.end)
    flags = [
        *unparsed_date(records, live, spec.start, start.is_null()),
        *unparsed_date(records, live, spec.end, end.is_null() & raw_end.is_not_null()),
        Flag(live, (end < start).fill_null(False), raw_end, "N6", spec.end, ORDER_MESSAGE),
        *common_flags(records, cats, live),
    ]

    def values(counted: pl.LazyFrame) -> pl.DataFrame:
        if ident is not None:
            # An export with a row per charge repeats the stay on each (helper-41: a booking with two charges was
            # held twice): one stay per id and dates, by its most serious categories.
            counted = counted.group_by(*event_rows(records, ident), start, end).agg(
                pl.col(ROW).min(), *(most_serious(cat).alias(cat.column) for cat in cats))
        earliest, latest = counted.select(start.min().alias("earliest"),
                                          pl.max_horizontal(start.max(), end.max()).alias("latest")).collect().row(0)
        if latest is None:
            return finish(_EMPTY_TOTALS, [_EMPTY_COUNTS] * len(cats), cats, periods, records, ctx.end)
        bound = min(add_months(latest, 1), ctx.end)  # the as-of month's end
        lo = pl.max_horizontal(start, pl.lit(ctx.first))
        hi = pl.min_horizontal(end.fill_null(bound), pl.lit(bound))
        reporter = records.reporter()
        stays = counted.filter(hi > lo).select(
            ROW, *(pl.col(c.column) for c in cats), reporter=reporter, L=periods.start(lo, reporter),
            H=periods.start((hi.cast(pl.Int32) - 1).cast(pl.Date), reporter), lo=_days(lo), hi=_days(hi))
        sums = [pl.len().alias("n"), pl.col("lo").sum(), pl.col("hi").sum()]
        pairs, *groups = pl.collect_all([
            stays.group_by("reporter", "L", "H").agg(*sums, row=pl.col(ROW).min()),
            *(stays.group_by("reporter", "L", "H", code=cat.column).agg(*sums) for cat in cats),
        ])
        totals = _average(pairs, [], periods).join(_first_rows(pairs, periods), on=["reporter", "period_start"])
        counts = [_average(group, ["code"], periods) for group in groups]
        result = finish(totals, counts, cats, periods, records, bound, first_read=earliest)
        return _whole_people(result) if spec.round else result

    return Plan(spec, live, flags, values)


def _days(day: pl.Expr) -> pl.Expr:
    """Days since 1970-01-01."""
    return day.cast(pl.Int64)


_EMPTY_TOTALS = pl.DataFrame(schema={"reporter": pl.Int16, "period_start": pl.Date, "value": pl.Float64,
                                     "row_number": pl.Int64})
_EMPTY_COUNTS = pl.DataFrame(schema={"reporter": pl.Int16, "period_start": pl.Date, "code": pl.Int16,
                                     "value": pl.Float64})


def _periods(groups: pl.DataFrame, periods: Periods) -> pl.DataFrame:
    """``groups`` with ``span``: the list of period starts from ``L`` to ``H`` (each reporter's step)."""
    parts = []
    for months in (1, 12):
        part = groups.filter(periods.lengths() == months)
        parts.append(part.with_columns(span=pl.date_ranges("L", "H", f"{months}mo")))
    return pl.concat(parts)


def _average(groups: pl.DataFrame, extra: Sequence[str], periods: Periods) -> pl.DataFrame:
    """Average daily population per reporter, period (and ``extra`` keys) from stays grouped by ``(L, H)``."""
    keys = ["reporter", *extra]
    spans = _periods(groups.group_by(keys).agg(L=pl.col("L").min(), H=pl.col("H").max()), periods)
    grid = spans.explode("span").rename({"span": "period_start"}).drop("L", "H")
    starting = groups.group_by(*keys, period_start="L").agg(n_lo=pl.col("n").sum(), lo=pl.col("lo").sum())
    ending = groups.group_by(*keys, period_start="H").agg(n_hi=pl.col("n").sum(), hi=pl.col("hi").sum())
    grid = grid.join(starting, on=[*keys, "period_start"], how="left").join(
        ending, on=[*keys, "period_start"], how="left").with_columns(pl.col("n_lo", "lo", "n_hi", "hi").fill_null(0))
    m = _days(pl.col("period_start"))
    following = _days(pl.col("period_start").dt.offset_by(pl.format("{}mo", periods.lengths())))
    grid = grid.sort(*keys, "period_start").with_columns(
        active=pl.col("n_lo").cum_sum().over(keys) - pl.col("n_hi").cum_sum().over(keys) + pl.col("n_hi"))
    days = ((following - m) * pl.col("active") - (pl.col("lo") - m * pl.col("n_lo"))
            - (following * pl.col("n_hi") - pl.col("hi")))
    return grid.filter(pl.col("active") > 0).select(*keys, "period_start", value=days / (following - m))


def _first_rows(pairs: pl.DataFrame, periods: Periods) -> pl.DataFrame:
    """The first row among the stays active in each period (the datapoint's lineage)."""
    return _periods(pairs, periods).explode("span").group_by("reporter", period_start="span").agg(
        row_number=pl.col("row").min())


def _whole_people(values: pl.DataFrame) -> pl.DataFrame:
    """Totals rounded half up; each breakdown by largest remainder, so it still adds up to the rounded total."""
    keys = ["reporter", "period_start"]
    totals = values.filter(pl.col("dimension").is_null()).select(*keys, __total=(pl.col("value") + 0.5).floor())
    group = [*keys, "dimension"]
    floor = pl.col("value").floor()
    # Ties go to the category that sorts first, so the result never depends on row order.
    ordered = values.with_columns(__rest=pl.col("value") - floor).sort(
        *keys, "dimension", "__rest", "category", descending=[False, False, False, True, False], nulls_last=False)
    rank = pl.int_range(1, pl.len() + 1).over(group)
    need = pl.col("__total") - floor.sum().over(group)
    return ordered.join(totals, on=keys, how="left", maintain_order="left").with_columns(
        value=pl.when(pl.col("dimension").is_null()).then(pl.col("__total"))
        .otherwise(floor + (rank <= need).cast(pl.Float64))).drop("__total", "__rest")
