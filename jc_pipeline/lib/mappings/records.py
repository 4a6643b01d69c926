"""Record-level counting rules: one row per event, charge, case or person -> counts per report period (events).

* An event counts in the period of its ``date`` (calls by time received, arrests by arrest date, admissions by
  booking date, releases by release date, filings by filing date, ...): its month, or for a metric the agency
  reports annually, its (fiscal) year.
* With ``id`` several rows are one event (an arrest with several charges, a case with several counts): it is
  dated by its earliest date and classified, per breakdown, by its most serious category: the first in the
  breakdown's ``order`` (for offenses by default person > property > public order > drug > other > unknown);
  between categories of equal rank, the one on the earlier row. A population's rows of one id with the same start
  and end are one stay, classified the same way (``adp.py``).
* ``where`` filters and values mapped to null leave a record out of the metric; they are not errors. A row with a
  finding (an unmapped value, a date that does not parse) is not counted, nor, with ``id``, any row of its event:
  an arrest whose most serious charge has no mapping cannot be classified, nor dated by its earliest row, from
  the rest (helper-41: it was counted a month later, under its lesser charge).

Every metric is planned as a few expressions over the export's per-record frame (:class:`Plan`); counting is a
group-by per breakdown on integer columns of that frame, finished by :func:`finish`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

import polars as pl

from jc_pipeline.lib.mappings.common import BLANK, CODE, EXCLUDED, OTHER_SECTOR, ROW, UNMAPPED, Flag, Periods, \
    Records, any_of
from jc_pipeline.lib.mappings.spec import ETHNICITIES, BreakdownSpec, MetricSpec
from jc_pipeline.lib.periods import add_months

UNMAPPED_MESSAGE = ("'{raw}' in column '{column}' has no mapping ({records}); add it under the "
                    "column's values in the mapping file (a member name, or null to leave such records out)")
DATE_MESSAGE = ("'{raw}' in column '{column}' is not a date the mapping reads ({records}); fix "
                "the export or list its format under date_formats")
SWAPPED_MESSAGE = ("'{raw}' in column '{column}' is not a date the mapping reads ({records}), but it reads with day "
                   "and month the other way round, '{format}': if the export writes the day first, list that format "
                   "first under date_formats; until then its dates with a day of 12 or less are read month first")
TWO_DIGIT_YEAR_MESSAGE = ("'{raw}' in column '{column}' reads as a date in the year 0-99 ({records}): a two-digit "
                          "year? List the format with %y (e.g. '%m/%d/%y') under date_formats")
PERIOD_MESSAGE = ("'{raw}' in column '{column}' falls outside 2000-01 .. the ingest month ({records}); "
                  "check the dates")
AGENCY_MESSAGES = {
    UNMAPPED: ("'{raw}' in column '{column}' is not one of the superagency's child agencies in agencies.csv "
               "({records}); write the child's agency_name or agency_id"),
    BLANK: "Empty '{column}' value ({records}): write the name or id of the agency the record is for",
    OTHER_SECTOR: ("Agency '{raw}' in column '{column}' does not report for the export's sector in agencies.csv "
                   "({records})"),
}
#: How many negative codes a value map produces (EXCLUDED, UNMAPPED, BLANK).
_NEGATIVE = 3


@dataclass
class Plan:
    """How one metric reads the records: which it keeps, its checks, and how it counts the rest."""

    metric: MetricSpec
    live: pl.Expr  # the metric's own rules keep the record (its where filters, no value mapped to null, ...)
    flags: list[Flag]  # its checks (each implies ``live``)
    #: counted records (``keep``, ``live`` and no flag) -> the metric's values, see :func:`finish`
    values: Callable[[pl.LazyFrame], pl.DataFrame]
    #: With ``id``: the rows of one event (a key per reporter and id); a flag on one of them leaves the whole event
    #: uncounted, since it can be neither dated nor classified without that row.
    event: list[pl.Expr] | None = None


@dataclass(frozen=True)
class Category:
    """One breakdown of a metric in the frame: ``column`` holds the index in ``members`` (or a negative code)."""

    breakdown: BreakdownSpec
    column: str
    members: tuple[str, ...]
    sources: tuple[tuple[str, str], ...]  # (code column, logical column) of the value maps read (for N3)


def categories(records: Records, spec: MetricSpec) -> list[Category]:
    """Register each breakdown's category column (race and ethnicity combined into the 24-member cross)."""
    out = []
    for breakdown in spec.breakdowns:
        members = breakdown.dimension.member_names
        if breakdown.race is None:
            column = records.code(breakdown.value_map, members)
            out.append(Category(breakdown, column, members, ((column, breakdown.value_map.column),)))
            continue
        races = tuple(dict.fromkeys(m.race for m in breakdown.dimension.members))
        race = records.code(breakdown.race, races)
        sources = [(race, breakdown.race.column)]
        eth = None
        if breakdown.ethnicity is not None:
            eth = records.code(breakdown.ethnicity, ETHNICITIES)
            sources.append((eth, breakdown.ethnicity.column))
        column = records.derived(("cross", race, eth), lambda b=breakdown, names=races, r=race, e=eth: _cross(
            b, names, r, e))
        out.append(Category(breakdown, column, members, tuple(sources)))
    return out


def _cross(breakdown: BreakdownSpec, races: Sequence[str], race: str, eth: str | None) -> pl.Expr:
    """The member index of a race and an ethnicity code, by one lookup in a table of every pair of codes
    (negative codes included: a problem or exclusion of the race wins over one of the ethnicity)."""
    index = {(m.ethnicity, m.race): i for i, m in enumerate(breakdown.dimension.members)}
    table = [r if r < 0 else e if e < 0 else index.get((ETHNICITIES[e], races[r]), UNMAPPED)
             for e in range(-_NEGATIVE, len(ETHNICITIES)) for r in range(-_NEGATIVE, len(races))]
    eth_code = pl.col(eth) if eth is not None else pl.lit(ETHNICITIES.index("UNKNOWN_ETHNICITY"), CODE)
    position = (eth_code.cast(pl.Int32) + _NEGATIVE) * (len(races) + _NEGATIVE) + pl.col(race) + _NEGATIVE
    return pl.lit(pl.Series(table, dtype=CODE)).gather(position)


def excluded(cats: Sequence[Category]) -> pl.Expr:
    return any_of(pl.col(c.column) == EXCLUDED for c in cats)


def common_flags(records: Records, cats: Sequence[Category], live: pl.Expr) -> list[Flag]:
    """N3 for unmapped values of each value map read, and R6 for child agencies the roster does not know."""
    flags = [Flag(live, pl.col(code) <= UNMAPPED, records.raw(column), "N3", column, UNMAPPED_MESSAGE)
             for cat in cats for code, column in cat.sources]
    if records.agency is not None:
        column = records.ctx.source.agency
        flags += [Flag(live, pl.col(records.agency) == code, records.raw(column), "R6", column, message)
                  for code, message in AGENCY_MESSAGES.items()]
    return flags


def unparsed_date(records: Records, live: pl.Expr, logical: str, unparsed: pl.Expr) -> list[Flag]:
    """N4 for the records whose date in ``logical`` did not parse (``unparsed``). A two-digit year read with %Y says
    so (helper-47: read as the year 24, it was an N5 "before 2000-01", and a population's stay began in 2000), and a
    text that reads with day and month the other way round too: the column's ambiguous dates were then read
    swapped, without a finding (helper-41)."""
    raw = records.raw(logical)
    short = records.short_year(logical)
    flags, other = [Flag(live, unparsed & short, raw, "N4", logical, TWO_DIGIT_YEAR_MESSAGE)], unparsed & ~short
    for swapped, reads in records.swapped_formats(logical):
        hint = SWAPPED_MESSAGE.replace("{format}", swapped.replace("{", "(").replace("}", ")"))  # a template
        flags.append(Flag(live, other & reads, raw, "N4", logical, hint))
        other = other & ~reads
    return [Flag(live, other, raw, "N4", logical, DATE_MESSAGE), *flags]


def in_window(records: Records, day: pl.Expr, *, earlier: bool = False) -> pl.Expr:
    """The day's month lies within the source's ``period`` (unknown days are left to the date checks); with
    ``earlier``, before its end only (the rows of an event dated by its earliest row, judged once grouped)."""
    source = records.ctx.source
    until = add_months(source.period_to, 1) if source.period_to else date(9999, 1, 1)
    since = date(1, 1, 1) if earlier or source.period_from is None else source.period_from
    return day.is_between(since, until, closed="left").fill_null(True)


def in_range(records: Records, day: pl.Expr) -> pl.Expr:
    """The day's month lies within 2000-01 .. the last month that may be emitted (rule N5; unknown: True)."""
    return day.is_between(date(2000, 1, 1), records.ctx.end, closed="left").fill_null(True)


def plan_events(i: int, spec: MetricSpec, records: Records, periods: Periods) -> Plan:
    ctx = records.ctx
    day = pl.col(records.date(spec.date))
    cats = categories(records, spec)
    ident = records.ident(spec.id) if spec.id is not None else None
    # An event is dated by its earliest row: its rows before the period's first month are read, and the event is
    # left out when that earliest date falls before it (below), rather than dated and classified without them.
    live = records.where(spec.where) & ~excluded(cats) & in_window(records, day, earlier=ident is not None)
    raw = records.raw(spec.date)
    flags = [
        *unparsed_date(records, live, spec.date, day.is_null()),
        Flag(live, ~in_range(records, day), raw, "N5", spec.date, PERIOD_MESSAGE),
        *common_flags(records, cats, live),
    ]

    def values(counted: pl.LazyFrame) -> pl.DataFrame:
        if ident is not None:
            counted = _events(counted, records, pl.col(ident), day, cats).filter(in_window(records, pl.col("day")))
        else:
            counted = counted.select(reporter=records.reporter(), day=day, row=pl.col(ROW),
                                     **{f"k{j}": pl.col(c.column) for j, c in enumerate(cats)})
        counted = counted.with_columns(period_start=periods.start(pl.col("day"), pl.col("reporter")))
        keys = ["reporter", "period_start"]
        totals, *counts = pl.collect_all([
            counted.group_by(keys).agg(value=pl.len().cast(pl.Float64), row_number=pl.col("row").min(),
                                       earliest=pl.col("day").min(), latest=pl.col("day").max()),
            *(counted.group_by(*keys, code=f"k{j}").agg(value=pl.len().cast(pl.Float64)) for j in range(len(cats))),
        ])
        as_of = min(add_months(totals["latest"].max(), 1), ctx.end) if totals.height else ctx.end
        return finish(totals.drop("earliest", "latest"), counts, cats, periods, records, as_of,
                      first_read=totals["earliest"].min())

    return Plan(spec, live, flags, values, None if ident is None else event_rows(records, ident))


def _events(counted: pl.LazyFrame, records: Records, ident: pl.Expr, day: pl.Expr, cats: Sequence[Category]
            ) -> pl.LazyFrame:
    """One row per event (reporter and id): earliest date (``day``), first row (``row``), and per breakdown
    ``k{j}`` the most serious category (lowest rank in the breakdown's order; the earlier row between equals).

    Records without an id are events of their own.
    """
    classified = {f"k{j}": most_serious(cat) for j, cat in enumerate(cats)}
    return counted.group_by(reporter=records.reporter(), event=one_per_id(ident)).agg(
        day=day.min(), row=pl.col(ROW).min(), **classified).drop("event")


def event_rows(records: Records, ident: str) -> list[pl.Expr]:
    """The keys of one event's (or one stay's) rows: its reporter, when the source names child agencies, and the id
    in column ``ident``."""
    return [*([pl.col(records.agency)] if records.agency is not None else []), one_per_id(pl.col(ident))]


def one_per_id(ident: pl.Expr) -> pl.Expr:
    """A grouping key: the id, or for a record without one, its own row."""
    return pl.coalesce(ident, pl.lit("\x00row") + pl.col(ROW).cast(pl.String))


def most_serious(cat: Category) -> pl.Expr:
    """In a group of rows, ``cat``'s most serious category: the lowest rank in the breakdown's order, the earlier
    row between equals."""
    order = list(cat.breakdown.order) or list(cat.members)
    ranks = pl.Series([order.index(m) if m in order else len(order) for m in cat.members], dtype=pl.Int64)
    seriousness = pl.lit(ranks).gather(pl.col(cat.column)) * _ROWS + pl.col(ROW).cast(pl.Int64)
    return pl.col(cat.column).get(seriousness.arg_min())


#: Above any row number: rank * _ROWS + row orders by rank, then by row.
_ROWS = 1 << 40


def finish(totals: pl.DataFrame, counts: Sequence[pl.DataFrame], cats: Sequence[Category], periods: Periods,
           records: Records, as_of: date, *, first_read: date | None = None, complete: bool = True,
           zero_fill: bool = True) -> pl.DataFrame:
    """Datapoint values from the group-by results: totals, and each breakdown's members.

    ``totals``: reporter, period_start, value, row_number; ``counts[j]``: reporter, period_start, code, value
    (and row_number without ``zero_fill``). With ``zero_fill`` every member a breakdown can produce gets a value
    in every period that has a total (0 when no record fell in it) and carries the total's row; without it, the
    members found are emitted with their own first row. With ``complete``, annual periods are kept only when the
    export covers them: from the source's ``period.from`` on (without it, from the month of ``first_read``, the
    earliest date the metric read: a fiscal year that began before the export's first record is not whole) and
    ending by ``as_of`` (a year in progress has no count yet).
    """
    lengths = periods.lengths()
    totals = totals.with_columns(period_end=pl.col("period_start").dt.offset_by(pl.format("{}mo", lengths)),
                                 frequency=pl.when(lengths == 1).then(pl.lit("MONTHLY")).otherwise(pl.lit("ANNUAL")))
    if complete and periods.annual:
        since = records.ctx.source.period_from or (first_read.replace(day=1) if first_read else date(1, 1, 1))
        totals = totals.filter((lengths == 1) | ((pl.col("period_start") >= since) & (pl.col("period_end") <= as_of)))
    keys = ["reporter", "period_start", "period_end", "frequency"]
    parts = [totals.select(*keys, dimension=pl.lit(None, pl.String), category=pl.lit(None, pl.String),
                           value=pl.col("value").cast(pl.Float64), row_number="row_number")]
    for cat, count in zip(cats, counts, strict=True):
        named = count.filter(pl.col("code") >= 0).with_columns(category=pl.col("code").replace_strict(
            list(range(len(cat.members))), list(cat.members), return_dtype=pl.String))
        if zero_fill:
            targets = pl.DataFrame({"category": list(cat.breakdown.targets)}, schema={"category": pl.String})
            named = totals.select(*keys, "row_number").join(targets, how="cross").join(
                named.select("reporter", "period_start", "category", "value"),
                on=["reporter", "period_start", "category"], how="left")
        else:
            named = named.join(totals.select(keys), on=["reporter", "period_start"])
        parts.append(named.select(*keys, dimension=pl.lit(cat.breakdown.dimension.identifier), category="category",
                                  value=pl.col("value").fill_null(0).cast(pl.Float64),
                                  row_number=pl.col("row_number").cast(pl.Int64)))
    return pl.concat(parts, how="vertical_relaxed")


__all__ = ["Plan", "event_rows", "finish", "most_serious", "plan_events", "unparsed_date"]
