"""Record-level counting rules: one row per event, charge, case or person -> monthly counts (events).

* An event counts in the month of its ``date`` (calls by time received, arrests by arrest date, admissions by
  booking date, releases by release date, filings by filing date, ...).
* With ``id`` several rows are one event (an arrest with several charges, a case with several counts): it is
  dated by its earliest date and classified, per breakdown, by its most serious category: the first in the
  breakdown's ``order`` (for offenses by default person > property > public order > drug > other > unknown).
* ``where`` filters and values mapped to null leave a record out of the metric; they are not errors.

Every metric is planned as a few Polars expressions over the one lazy frame of the export (see :class:`Plan`),
so the whole export is read once and grouped lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import polars as pl

from jc_pipeline.lib.mappings.common import ROW, Context, is_excluded, is_problem, map_values, month_of, \
    parse_date, period_bounds
from jc_pipeline.lib.mappings.spec import EXCLUDED, BreakdownSpec, MetricSpec

Values = Callable[[pl.LazyFrame], pl.LazyFrame]
#: (flag column, raw column, rule, logical column, message template for common.grouped_finding)
FindingSpec = tuple[str, str | None, str, str, str]

UNMAPPED_MESSAGE = ("'{raw}' in column '{column}' has no mapping ({n} records, rows {rows}); add it under the "
                    "column's values in the mapping file (a member name, or null to leave such records out)")
DATE_MESSAGE = ("'{raw}' in column '{column}' is not a date the mapping reads ({n} records, rows {rows}); fix "
                "the export or list its format under date_formats")
PERIOD_MESSAGE = ("'{raw}' in column '{column}' falls outside 2000-01 .. the ingest month ({n} records, rows "
                  "{rows}); check the dates")


@dataclass
class Plan:
    """How one metric reads the records: helper columns in stages, flags, findings and the counting query."""

    stages: list[dict[str, pl.Expr]]
    skip: str  # flag column: the record is not counted by the metric's own rules (no error)
    error: str  # flag column: the record has an error for this metric
    findings: list[FindingSpec]
    values: Values  # enriched frame -> period_start, dimension, category, value
    outputs: list[str] = field(default_factory=list)


def breakdown_columns(prefix: str, spec: MetricSpec) -> tuple[dict[str, pl.Expr], dict[str, pl.Expr],
                                                               list[tuple[str, str]]]:
    """(stage-1 mapped columns, stage-2 category columns ``{prefix}cat{j}``, [(mapped column, source column)])."""
    mapped: dict[str, pl.Expr] = {}
    cats: dict[str, pl.Expr] = {}
    sources: list[tuple[str, str]] = []
    for j, breakdown in enumerate(spec.breakdowns):
        if breakdown.race is not None:
            race, eth = f"{prefix}b{j}_race", f"{prefix}b{j}_eth"
            mapped[race] = map_values(breakdown.race)
            sources.append((race, breakdown.race.column))
            if breakdown.ethnicity is not None:
                mapped[eth] = map_values(breakdown.ethnicity)
                sources.append((eth, breakdown.ethnicity.column))
                eth_expr = pl.col(eth)
            else:
                eth_expr = pl.lit("UNKNOWN_ETHNICITY")
            problem = lambda c: is_problem(c) | is_excluded(c)  # noqa: E731
            cats[f"{prefix}cat{j}"] = (pl.when(problem(pl.col(race))).then(pl.col(race))
                                       .when(problem(eth_expr)).then(eth_expr)
                                       .otherwise(eth_expr + pl.lit("_") + pl.col(race)))
        else:
            column = f"{prefix}b{j}_value"
            mapped[column] = map_values(breakdown.value_map)
            sources.append((column, breakdown.value_map.column))
            cats[f"{prefix}cat{j}"] = pl.col(column)
    return mapped, cats, sources


def where_expr(spec: MetricSpec) -> pl.Expr:
    keep = pl.lit(True)
    for where in spec.where:
        if where.blank is not None:
            keep = keep & (pl.col(where.column).is_null() if where.blank else pl.col(where.column).is_not_null())
            continue
        inside = pl.col(where.column).str.to_lowercase().is_in(list(where.keep)).fill_null(False)
        keep = keep & (~inside if where.negate else inside)
    return keep


def zero_filled(counts: pl.LazyFrame, months: pl.LazyFrame, breakdown: BreakdownSpec, cat: str) -> pl.LazyFrame:
    """Every mapped member of the breakdown in every month that has a total (0 where no record fell)."""
    members = pl.LazyFrame({cat: list(breakdown.targets)}, schema={cat: pl.String})
    return months.join(members, how="cross").join(counts, on=["period_start", cat], how="left").select(
        "period_start", dimension=pl.lit(breakdown.dimension.identifier), category=pl.col(cat),
        value=pl.col("value").fill_null(0).cast(pl.Float64), row_number="row_number")


def plan_events(i: int, spec: MetricSpec, ctx: Context) -> Plan:
    p = f"m{i}_"
    _, last = period_bounds(ctx)
    mapped, cats, sources = breakdown_columns(p, spec)
    moment, month = f"{p}date", f"{p}month"
    stage1 = {moment: parse_date(spec.date, ctx.source.date_formats), f"{p}keep": where_expr(spec), **mapped}
    stage2 = {month: month_of(pl.col(moment)), **cats}
    excluded = pl.any_horizontal(pl.lit(False), *(is_excluded(pl.col(c)) for c in cats))
    in_window = pl.col(month).is_between(ctx.source.period_from or date(1, 1, 1),
                                         ctx.source.period_to or date(9999, 1, 1)).fill_null(True)
    skip = ~pl.col(f"{p}keep") | excluded | ~in_window
    stage3 = {f"{p}skip": skip}
    flags = {
        f"{p}bad_date": ~pl.col(f"{p}skip") & pl.col(moment).is_null(),
        f"{p}bad_period": ~pl.col(f"{p}skip") & ~pl.col(month).is_between(date(2000, 1, 1), last).fill_null(True),
        **{f"{m}_bad": ~pl.col(f"{p}skip") & is_problem(pl.col(m)) for m, _ in sources},
    }
    stage4 = {**flags}
    stage5 = {f"{p}error": pl.any_horizontal(*(pl.col(f) for f in flags))}
    findings: list[FindingSpec] = [
        (f"{p}bad_date", spec.date, "N4", spec.date, DATE_MESSAGE),
        (f"{p}bad_period", spec.date, "N5", spec.date, PERIOD_MESSAGE),
        *((f"{m}_bad", column, "N3", column, UNMAPPED_MESSAGE) for m, column in sources),
    ]

    def values(frame: pl.LazyFrame) -> pl.LazyFrame:
        counted = frame.filter(~pl.col(f"{p}skip") & ~pl.col(f"{p}error"))
        if spec.id is not None:
            event_id = pl.coalesce(pl.col(spec.id), pl.lit("\x00row") + pl.col(ROW).cast(pl.String))
            ranks = {c: _rank(b, pl.col(c)) for c, b in zip(cats, spec.breakdowns, strict=True)}
            counted = counted.group_by(event_id.alias("__event")).agg(
                month_of(pl.col(moment).min()).alias(month), pl.col(ROW).min(),
                *(pl.col(c).sort_by(rank).first().alias(c) for c, rank in ranks.items()))
        totals = counted.group_by(pl.col(month).alias("period_start")).agg(value=pl.len(),
                                                                          row_number=pl.col(ROW).min())
        parts = [totals.select("period_start", dimension=pl.lit(None, pl.String), category=pl.lit(None, pl.String),
                               value=pl.col("value").cast(pl.Float64), row_number="row_number")]
        months = totals.select("period_start", "row_number")
        for cat, breakdown in zip(cats, spec.breakdowns, strict=True):
            counts = counted.group_by(pl.col(month).alias("period_start"), cat).agg(value=pl.len())
            parts.append(zero_filled(counts, months, breakdown, cat))
        return pl.concat(parts)

    return Plan([stage1, stage2, stage3, stage4, stage5], f"{p}skip", f"{p}error", findings, values)


def _rank(breakdown: BreakdownSpec, cat: pl.Expr) -> pl.Expr:
    order = list(breakdown.order) or list(breakdown.dimension.member_names)
    return cat.replace_strict(order, list(range(len(order))), default=len(order), return_dtype=pl.Int64)


__all__ = ["EXCLUDED", "Plan", "plan_events"]
