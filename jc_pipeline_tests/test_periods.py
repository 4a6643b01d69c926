"""Period maths: the end-year convention of fiscal years is the easiest place to be off by a year."""

from datetime import date

import pytest

from jc_pipeline.lib.periods import (
    add_months,
    annual_period,
    contiguous_ranges,
    monthly_period,
    months_between,
    period_label,
)


@pytest.mark.parametrize(
    ("end_year", "starting_month", "expected"),
    [
        (2023, 1, (date(2023, 1, 1), date(2024, 1, 1))),
        # FY July 2022 - June 2023 is labelled 2023 (spec §5.4).
        (2023, 7, (date(2022, 7, 1), date(2023, 7, 1))),
        (2024, 10, (date(2023, 10, 1), date(2024, 10, 1))),
        (2020, 12, (date(2019, 12, 1), date(2020, 12, 1))),
    ],
)
def test_annual_period_uses_the_year_the_period_ends(end_year, starting_month, expected):
    assert annual_period(end_year, starting_month) == expected


@pytest.mark.parametrize("bad", [0, 13, -1])
def test_annual_period_rejects_impossible_start_months(bad):
    with pytest.raises(ValueError, match="starting month"):
        annual_period(2023, bad)


def test_monthly_period_wraps_december():
    assert monthly_period(2023, 12) == (date(2023, 12, 1), date(2024, 1, 1))


def test_add_months_crosses_years_both_ways():
    assert add_months(date(2023, 11, 15), 3) == date(2024, 2, 1)
    assert add_months(date(2023, 1, 1), -1) == date(2022, 12, 1)


def test_months_between_is_half_open():
    assert months_between(date(2023, 11, 1), date(2024, 2, 1)) == [date(2023, 11, 1), date(2023, 12, 1), date(2024, 1, 1)]


def test_contiguous_ranges_splits_on_gaps_and_ignores_order_and_duplicates():
    months = [date(2025, 3, 1), date(2021, 3, 1), date(2025, 1, 1), date(2025, 2, 1), date(2025, 2, 1)]
    assert contiguous_ranges(months) == [
        (date(2021, 3, 1), date(2021, 3, 1)),
        (date(2025, 1, 1), date(2025, 3, 1)),
    ]


def test_contiguous_ranges_join_only_across_gaps_wholly_empty():
    fiscal, october, january = date(2015, 7, 1), date(2015, 10, 1), date(2016, 1, 1)
    empty = [date(2015, 8, 1), date(2015, 9, 1), date(2015, 11, 1), date(2015, 12, 1)]
    assert contiguous_ranges([fiscal, october, january, date(2016, 2, 1)], empty=empty) == [
        (fiscal, date(2016, 2, 1))]
    # One month of the gap holds data: the ranges stay apart there.
    assert contiguous_ranges([fiscal, october, january], empty=empty[:3]) == [(fiscal, october), (january, january)]
    assert contiguous_ranges([fiscal, january], empty=[date(2020, 1, 1)]) == [(fiscal, fiscal), (january, january)]


@pytest.mark.parametrize(
    ("start", "end", "label"),
    [
        (date(2023, 4, 1), date(2023, 5, 1), "2023-04"),
        (date(2023, 1, 1), date(2024, 1, 1), "CY2023"),
        (date(2022, 7, 1), date(2023, 7, 1), "FY2023 (Jul-Jun)"),
    ],
)
def test_period_label(start, end, label):
    assert period_label(start, end) == label
