"""Average daily population from custody (or supervision) intervals.

One record = one stay: ``start`` (admission) and ``end`` (release; empty = still in custody). For each month the
average daily population is the sum over stays of the days of the month the person was held, divided by the
number of days in the month.

Day convention (the "midnight count"): a stay covers the calendar days ``start date <= day < end date``: the
admission day counts, the release day does not, so a same-day booking and release counts 0 days and a person
admitted on the 1st and released on the 3rd counts 2 days. Times of day are ignored. With ``round: true`` the
averages are whole people: the total rounded half up, each breakdown by largest remainder so it adds up to it.

Open stays run to the end of the month of the latest date found in the export for the metric (the extract's
as-of month), and never past the ingest month or the source's ``period.to``. Months are emitted from the first
month a stay covers (or ``period.from``: set it to the first month the export is complete for, since stays
that ended before an extract's window are usually not in it).
"""

from __future__ import annotations

from datetime import date

import polars as pl

from jc_pipeline.lib.mappings.common import ROW, Context, is_excluded, is_problem, parse_date, period_bounds
from jc_pipeline.lib.mappings.records import DATE_MESSAGE, UNMAPPED_MESSAGE, FindingSpec, Plan, \
    breakdown_columns, where_expr, zero_filled
from jc_pipeline.lib.mappings.spec import MetricSpec

ORDER_MESSAGE = ("'{raw}' in column '{column}' is before the stay's start ({n} records, rows {rows}); fix the "
                 "start or end date")


def plan_population(i: int, spec: MetricSpec, ctx: Context) -> Plan:
    p = f"m{i}_"
    first, last = period_bounds(ctx)
    mapped, cats, sources = breakdown_columns(p, spec)
    start, end = f"{p}start", f"{p}end"
    stage1 = {start: parse_date(spec.start, ctx.source.date_formats),
              end: parse_date(spec.end, ctx.source.date_formats), f"{p}keep": where_expr(spec), **mapped}
    excluded = pl.any_horizontal(pl.lit(False), *(is_excluded(pl.col(c)) for c in cats))
    stage2 = {**cats}
    stage3 = {f"{p}skip": ~pl.col(f"{p}keep") | excluded}
    live = ~pl.col(f"{p}skip")
    flags = {
        f"{p}bad_start": live & pl.col(start).is_null(),
        f"{p}bad_end": live & pl.col(end).is_null() & pl.col(spec.end).is_not_null(),
        f"{p}bad_order": live & (pl.col(end).dt.date() < pl.col(start).dt.date()).fill_null(False),
        **{f"{m}_bad": live & is_problem(pl.col(m)) for m, _ in sources},
    }
    stage5 = {f"{p}error": pl.any_horizontal(*(pl.col(f) for f in flags))}
    findings: list[FindingSpec] = [
        (f"{p}bad_start", spec.start, "N4", spec.start, DATE_MESSAGE),
        (f"{p}bad_end", spec.end, "N4", spec.end, DATE_MESSAGE),
        (f"{p}bad_order", spec.end, "N6", spec.end, ORDER_MESSAGE),
        *((f"{m}_bad", column, "N3", column, UNMAPPED_MESSAGE) for m, column in sources),
    ]
    last_excl = _next_month(last)

    def values(frame: pl.LazyFrame) -> pl.LazyFrame:
        counted = frame.filter(~pl.col(f"{p}skip") & ~pl.col(f"{p}error"))
        latest = pl.max_horizontal(pl.col(start).max(), pl.col(end).max()).dt.date()
        as_of = latest.dt.truncate("1mo").dt.offset_by("1mo")
        lo = pl.max_horizontal(pl.col(start).dt.date(), pl.lit(first))
        hi = pl.min_horizontal(pl.coalesce(pl.col(end).dt.date(), as_of), as_of, pl.lit(last_excl))
        stays = counted.select(ROW, *cats, __lo=lo, __hi=hi).filter(pl.col("__hi") > pl.col("__lo"))
        stays = stays.with_columns(period_start=pl.date_ranges(
            pl.col("__lo").dt.truncate("1mo"), pl.col("__hi").dt.offset_by("-1d").dt.truncate("1mo"), "1mo"))
        days = stays.explode("period_start").with_columns(
            __days=(pl.min_horizontal(pl.col("__hi"), pl.col("period_start").dt.offset_by("1mo"))
                    - pl.max_horizontal(pl.col("__lo"), pl.col("period_start"))).dt.total_days())
        in_month = (pl.col("period_start").dt.offset_by("1mo") - pl.col("period_start")).dt.total_days()
        average = pl.col("__days").sum() / in_month.first()
        totals = days.group_by("period_start").agg(value=average, row_number=pl.col(ROW).min())
        parts = [totals.select("period_start", dimension=pl.lit(None, pl.String), category=pl.lit(None, pl.String),
                               value="value", row_number="row_number")]
        months = totals.select("period_start", "row_number")
        for cat, breakdown in zip(cats, spec.breakdowns, strict=True):
            parts.append(zero_filled(days.group_by("period_start", cat).agg(value=average), months, breakdown, cat))
        result = pl.concat(parts)
        return _whole_people(result) if spec.round else result

    return Plan([stage1, stage2, stage3, flags, stage5], f"{p}skip", f"{p}error", findings, values)


def _whole_people(values: pl.LazyFrame) -> pl.LazyFrame:
    """Totals rounded half up; each breakdown by largest remainder, so it still adds up to the rounded total."""
    totals = values.filter(pl.col("dimension").is_null()).select(
        "period_start", __total=(pl.col("value") + 0.5).floor())
    group = ["period_start", "dimension"]
    floor = pl.col("value").floor()
    # Ties go to the category that sorts first, so the result never depends on row order.
    ordered = values.with_columns(__rest=pl.col("value") - floor).sort(
        "period_start", "dimension", "__rest", "category", descending=[False, False, True, False], nulls_last=False)
    rank = pl.int_range(1, pl.len() + 1).over(group)
    need = pl.col("__total") - floor.sum().over(group)
    return ordered.join(totals, on="period_start", how="left", maintain_order="left").with_columns(
        value=pl.when(pl.col("dimension").is_null()).then(pl.col("__total"))
        .otherwise(floor + (rank <= need).cast(pl.Float64))).drop("__total", "__rest")


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)
