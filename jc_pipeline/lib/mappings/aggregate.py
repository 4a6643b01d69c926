"""Aggregated exports: one row per period and category (and possibly more category columns), with a count.

The metric's total for a month is the sum of the values of the month's rows; each breakdown sums the rows by
its mapped member (several source categories may map to one member). Values: numbers of zero or more, "1,234"
accepted. A row with a problem (date, value, unmapped category) is left out of the totals and reported.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from jc_pipeline.lib.mappings.common import ROW, Context, is_excluded, is_problem, parse_date, period_bounds
from jc_pipeline.lib.mappings.records import DATE_MESSAGE, PERIOD_MESSAGE, UNMAPPED_MESSAGE, FindingSpec, Plan, \
    breakdown_columns, where_expr
from jc_pipeline.lib.mappings.spec import MetricSpec

VALUE_MESSAGE = ("'{raw}' in column '{column}' is not a count of zero or more ({n} rows, rows {rows}); write a "
                 "number")
_MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}


def plan_aggregated(i: int, spec: MetricSpec, ctx: Context) -> Plan:
    p = f"m{i}_"
    _, last = period_bounds(ctx)
    mapped, cats, sources = breakdown_columns(p, spec)
    month, number = f"{p}month", f"{p}value"
    if spec.date is not None:
        period = parse_date(spec.date, ctx.source.date_formats).dt.date().dt.truncate("1mo")
        date_column = spec.date
    else:
        text = pl.col(spec.month).str.to_lowercase()
        month_number = pl.coalesce(text.str.strip_suffix(".0").cast(pl.Int32, strict=False),
                                   text.str.slice(0, 3).replace_strict(_MONTHS, default=None,
                                                                       return_dtype=pl.Int32))
        year = pl.col(spec.year).str.strip_suffix(".0").cast(pl.Int32, strict=False)
        ok = month_number.is_between(1, 12) & year.is_between(1600, 9999)
        period = pl.when(ok).then(pl.date(year, month_number, 1))
        date_column = spec.month
    stage1 = {month: period, number: pl.col(spec.value).str.replace_all(",", "").cast(pl.Float64, strict=False),
              f"{p}keep": where_expr(spec), **mapped}
    excluded = pl.any_horizontal(pl.lit(False), *(is_excluded(pl.col(c)) for c in cats))
    in_window = pl.col(month).is_between(ctx.source.period_from or date(1, 1, 1),
                                         ctx.source.period_to or date(9999, 1, 1)).fill_null(True)
    stage3 = {f"{p}skip": ~pl.col(f"{p}keep") | excluded | ~in_window}
    live = ~pl.col(f"{p}skip")
    flags = {
        f"{p}bad_date": live & pl.col(month).is_null(),
        f"{p}bad_period": live & ~pl.col(month).is_between(date(2000, 1, 1), last).fill_null(True),
        f"{p}bad_value": live & ~(pl.col(number) >= 0).fill_null(False),
        **{f"{m}_bad": live & is_problem(pl.col(m)) for m, _ in sources},
    }
    findings: list[FindingSpec] = [
        (f"{p}bad_date", date_column, "N4", date_column, DATE_MESSAGE),
        (f"{p}bad_period", date_column, "N5", date_column, PERIOD_MESSAGE),
        (f"{p}bad_value", spec.value, "N6", spec.value, VALUE_MESSAGE),
        *((f"{m}_bad", column, "N3", column, UNMAPPED_MESSAGE) for m, column in sources),
    ]

    def values(frame: pl.LazyFrame) -> pl.LazyFrame:
        counted = frame.filter(~pl.col(f"{p}skip") & ~pl.col(f"{p}error"))
        parts = [counted.group_by(pl.col(month).alias("period_start")).agg(
            dimension=pl.lit(None, pl.String), category=pl.lit(None, pl.String), value=pl.col(number).sum(),
            row_number=pl.col(ROW).min())]
        for cat, breakdown in zip(cats, spec.breakdowns, strict=True):
            parts.append(counted.group_by(pl.col(month).alias("period_start"), pl.col(cat).alias("category")).agg(
                dimension=pl.lit(breakdown.dimension.identifier), value=pl.col(number).sum(),
                row_number=pl.col(ROW).min()).select("period_start", "dimension", "category", "value", "row_number"))
        return pl.concat(parts)

    return Plan([stage1, cats, stage3, flags, {f"{p}error": pl.any_horizontal(*(pl.col(f) for f in flags))}],
                f"{p}skip", f"{p}error", findings, values)
