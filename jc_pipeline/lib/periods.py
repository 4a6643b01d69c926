"""Report periods: months, calendar years and fiscal years as explicit [start, end) dates.

Justice Counts labels an annual period by the year in which it *ends* (spec §5.4): with a July fiscal year,
``year = 2023`` means 2022-07-01 .. 2023-07-01. Everything downstream works on explicit dates, never on a label.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

#: First month the pipeline keeps partitions for; older periods are rejected at ingest.
FIRST_PERIOD = date(2000, 1, 1)


def add_months(day: date, months: int) -> date:
    """The first of the month ``months`` after the month of ``day``."""
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def month_start(day: date) -> date:
    """First day of the month containing ``day``."""
    return date(day.year, day.month, 1)


def monthly_period(year: int, month: int) -> tuple[date, date]:
    """[first of the month, first of the next month)."""
    start = date(year, month, 1)
    return start, add_months(start, 1)


def annual_period(end_year: int, starting_month: int) -> tuple[date, date]:
    """The twelve months labelled ``end_year`` for an agency whose year starts in ``starting_month``.

    Calendar years (starting month 1) run Jan..Dec of ``end_year``; fiscal years end in ``end_year``.
    """
    if not 1 <= starting_month <= 12:
        raise ValueError(f"starting month must be 1..12, got {starting_month}")
    if starting_month == 1:
        start = date(end_year, 1, 1)
    else:
        start = date(end_year - 1, starting_month, 1)
    return start, add_months(start, 12)


def months_between(start: date, end: date) -> list[date]:
    """Month starts m with start <= m < end (both taken as month starts)."""
    months, current = [], month_start(start)
    while current < end:
        months.append(current)
        current = add_months(current, 1)
    return months


def months_through(first: date, last: date) -> list[date]:
    """Month starts first..last, both included (an inclusive range as `contiguous_ranges` gives them)."""
    return months_between(first, add_months(last, 1))


def contiguous_ranges(months: Iterable[date], *, empty: Iterable[date] = ()) -> list[tuple[date, date]]:
    """Group month starts into inclusive (first, last) runs of consecutive months.

    Months of ``empty`` fill a gap: two runs whose months between are all in ``empty`` become one. For roll-ups,
    ``empty`` holds the months without any datapoint, where a run covering them has nothing to do."""
    fillers = set(empty)
    ranges: list[tuple[date, date]] = []
    for month in sorted(set(months)):
        if ranges and all(gap in fillers for gap in months_between(add_months(ranges[-1][1], 1), month)):
            ranges[-1] = (ranges[-1][0], month)
        else:
            ranges.append((month, month))
    return ranges


def period_label(start: date, end: date) -> str:
    """Short human label: '2023-04' for a month, 'CY2023' for a calendar year, 'FY2023 (Jul-Jun)' for a fiscal year."""
    if add_months(start, 1) == end:
        return f"{start:%Y-%m}"
    if add_months(start, 12) == end:
        if start.month == 1:
            return f"CY{start.year}"
        last = add_months(end, -1)
        return f"FY{end.year} ({start:%b}-{last:%b})"
    return f"{start.isoformat()}..{end.isoformat()}"
