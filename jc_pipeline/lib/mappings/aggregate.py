"""Aggregated exports: one row per period and category (and possibly more category columns), with a count.

A metric's total for a period is the sum of the values of the period's rows; each breakdown sums the rows by
its mapped member (several source categories may map to one member). Values: numbers of zero or more, "1,234"
accepted. A row with a problem (date, value, unmapped category) is left out of the totals and reported.

The period of a row: for a metric the agency reports monthly, the month of its ``date`` or of its ``year`` and
``month``; for one it reports annually, the (fiscal) year containing that month, or, with ``year`` alone, the
year labelled by it: the year in which the fiscal year ends (spec §5.4, as in bulk uploads), which may also be
written as a range (``2022-2023``, a July-June year ending in 2023). Rows of an annual metric in several months
make up the year: their sum for events and money, for levels (``Metric.is_level``) their monthly totals' average.
By year and month, a year counts when all twelve of its months have rows (missing is not zero); by date, a row
may be a whole year's, and a year still running on the ingest day is left out (docs/mappings.md).
"""

from __future__ import annotations

import re
import polars as pl

from jc_pipeline.lib.mappings.common import ROW, Flag, Periods, Records
from jc_pipeline.lib.mappings.records import PERIOD_MESSAGE, Plan, categories, common_flags, excluded, finish, \
    in_range, in_window, unparsed_date
from jc_pipeline.lib.mappings.spec import MetricSpec

VALUE_MESSAGE = ("'{raw}' in column '{column}' is not a count of zero or more ({records}); write a "
                 "number")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_RANGE = re.compile(r"(\d{4})\s*[-/]\s*(\d{4})")


def _whole(value: str | None) -> int | None:
    """A whole number written in a cell ("2024", or "2024.0" from a spreadsheet), else None."""
    if value is None:
        return None
    text = value.removesuffix(".0")
    return int(text) if text.isascii() and text.isdigit() else None


def month_number(value: str | None) -> int | None:
    """1-12 from "3", "03", "3.0", "March" or "mar" (None otherwise)."""
    number = _whole(value)
    if number is None and value is not None:
        number = _MONTHS.index(value[:3].casefold()) + 1 if value[:3].casefold() in _MONTHS else None
    return number if number is not None and 1 <= number <= 12 else None


def year_number(value: str | None) -> int | None:
    number = _whole(value)
    return number if number is not None and 1600 <= number <= 9999 else None


def fiscal_year(value: str | None) -> int | None:
    """The year a labelled year ends in: "2023", or a range of two consecutive years "2022-2023" -> 2023; a range
    is negative (it names a fiscal year, never a calendar year; see :func:`plan_aggregated`)."""
    number = year_number(value)
    if number is not None or value is None:
        return number
    found = _RANGE.fullmatch(value)
    if found and int(found[2]) == int(found[1]) + 1 and 1600 <= int(found[2]) <= 9999:
        return -int(found[2])
    return None


def plan_aggregated(i: int, spec: MetricSpec, records: Records, periods: Periods) -> Plan:
    ctx = records.ctx
    cats = categories(records, spec)
    reporter = records.reporter()
    if spec.date is not None:
        day = pl.col(records.date(spec.date))
        month, date_column = day, spec.date
        start = periods.start(day, reporter)
    elif spec.month is not None:
        year = pl.col(records.mapped(("year", spec.year), spec.year, year_number, pl.Int32))
        number = pl.col(records.mapped(("month", spec.month), spec.month, month_number, pl.Int32))
        month = pl.date(year, number, 1)
        start, date_column = periods.start(month, reporter), spec.month
    else:  # the year alone, for annual metrics
        label = pl.col(records.mapped(("fiscal_year", spec.year), spec.year, fiscal_year, pl.Int32))
        start = periods.labelled(label.abs(), reporter)
        # A range names a fiscal year: for a calendar-year reporter it is not a period.
        start = pl.when((label < 0) & (start.dt.month() == 1)).then(None).otherwise(start)
        month, date_column = start, spec.year
    number = pl.col(records.scanned(f"v:{spec.value}", records.cell(spec.value).str.strip_chars().str.replace_all(
        ",", "").cast(pl.Float64, strict=False)))
    live = records.where(spec.where) & ~excluded(cats) & in_window(records, month)
    raw = records.raw(date_column)
    flags = [
        *unparsed_date(records, live, date_column, start.is_null()),
        Flag(live, ~in_range(records, month), raw, "N5", date_column, PERIOD_MESSAGE),
        # NaN sorts above every number, so `>= 0` alone would let "NaN" and "inf" through.
        Flag(live, ~(number.is_finite() & (number >= 0)).fill_null(False), records.raw(spec.value), "N6", spec.value,
             VALUE_MESSAGE),
        *common_flags(records, cats, live),
    ]

    def values(counted: pl.LazyFrame) -> pl.DataFrame:
        counted = counted.select(ROW, number.alias("value"), *(pl.col(c.column) for c in cats),
                                 reporter=reporter, period_start=start, month=month.dt.month_start())
        keys = ["reporter", "period_start"]
        totals, *counts = pl.collect_all([
            counted.group_by(keys).agg(pl.col("value").sum(), row_number=pl.col(ROW).min(),
                                       months=pl.col("month").n_unique()),
            *(counted.group_by(*keys, code=cat.column).agg(pl.col("value").sum(), row_number=pl.col(ROW).min())
              for cat in cats),
        ])
        if spec.metric.is_level:  # a year of monthly levels is their average, not their sum
            counts = [c.join(totals.select(*keys, "months"), on=keys).with_columns(pl.col("value") / pl.col("months"))
                      for c in counts]
            totals = totals.with_columns(pl.col("value") / pl.col("months"))
        if spec.month is not None:  # monthly rows: a year counts with all its months (missing is not zero)
            totals = totals.filter((periods.lengths() == 1) | (pl.col("months") == 12))
        totals = totals.drop("months")
        # By date, a row places its value in the year containing it (one row a year will do): a year is kept once
        # it has ended; by the year alone, the agency names the year.
        return finish(totals, counts, cats, periods, records, ctx.end, complete=spec.date is not None,
                      zero_fill=False)

    return Plan(spec, live, flags, values)
