"""no_implausible_jumps: robust (median/MAD of up to 12 earlier periods) with a minimum difference, so small
agencies' natural noise is not flagged."""

from __future__ import annotations

import pytest

from jc_pipeline.lib.periods import add_months
from jc_pipeline_tests.test_validation_support import Warehouse, month

MARCH = month(2025, 3)
ARRESTS = "LAW_ENFORCEMENT_ARRESTS"
POPULATION = "JAILS_TOTAL_POPULATION"
EXPENSES = "LAW_ENFORCEMENT_EXPENSES"


def _history(wh, agency, metric, values, latest):
    """`values` for the months before March 2025 (oldest first), then `latest` for March."""
    for i, value in enumerate(values):
        wh.add(agency, metric, add_months(MARCH, i - len(values)), value)
    wh.add(agency, metric, MARCH, latest, file_id=f"f-{agency}", row=7)


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    wh = Warehouse(tmp_path_factory.mktemp("jumps") / "w.duckdb")
    usual = [95, 100, 105, 98, 102, 100, 97, 103, 100, 99, 101, 100]
    cases = {
        "STABLE": (ARRESTS, usual, 110),
        "DELTA_OK": (ARRESTS, usual, 140),        # +40 %: events vary more than populations
        "JUMP": (ARRESTS, usual, 400),
        "DROP": (ARRESTS, usual, 0),               # the classic "no data entered as 0"
        "SMALL": (ARRESTS, [2, 4, 3, 5, 2, 3, 4, 3, 2, 3, 4, 3], 15),   # 5x, but only 12 arrests more
        "SHORT": (ARRESTS, [100, 100], 400),       # fewer than 3 earlier periods: no baseline
        "NOISY": (ARRESTS, [50, 150] * 6, 400),    # a volatile series needs a bigger jump
        "POP": (POPULATION, [200] * 12, 260),      # +30 % in a daily population is implausible
        # +40 % in expenses, INSTANT upstream in law enforcement: money is a sum, judged as events are (spec §9.3)
        "MONEY": (EXPENSES, [1000 * v for v in usual], 140_000),
    }
    for agency, (metric, values, latest) in cases.items():
        wh.agency(agency, ["LAW_ENFORCEMENT", "JAILS"])
        _history(wh, agency, metric, values, latest)
    wh.outcomes = wh.validate([MARCH])
    return wh


def test_flags_only_implausible_jumps(wh):
    rows = wh.results("no_implausible_jumps")
    assert {r["agency_id"] for r in rows} == {"JUMP", "DROP", "POP"}
    assert all(r["severity"] == "WARNING" and r["period_start"] == MARCH for r in rows)


def test_jump_reports_value_baseline_and_row(wh):
    [row] = wh.results("no_implausible_jumps", "JUMP")
    assert (row["metric_key"], row["observed"], row["expected"], row["file_id"], row["row_number"]) == (
        ARRESTS, "400", "100", "f-JUMP", 7)
    assert "far from its usual level of about 100" in row["message"]


def test_only_validated_months_are_judged(wh):
    # Earlier months are history, not targets: nothing is stored for them.
    assert {r["period_start"] for r in wh.results("no_implausible_jumps")} == {MARCH}


def test_baseline_reaches_back_past_gaps_and_years(tmp_path):
    """The 12 earlier periods are the series' previous 12, however far back (the query first looks only at the
    last 12 months, then reads further back for the series that have gaps), and annual series use earlier years."""
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.agency("GAPPY", ["LAW_ENFORCEMENT"])
    # Ten months two years ago, nothing since, then March 2025: the baseline is those ten months (median 100).
    for i in range(10):
        wh.add("GAPPY", ARRESTS, month(2023, 1 + i), 100 + (i % 3))
    wh.add("GAPPY", ARRESTS, MARCH, 400)
    # Monthly reporter with 15 months before: the baseline is the last 12 (300s), not the early 100s.
    wh.agency("LONG", ["LAW_ENFORCEMENT"])
    for i in range(15):
        wh.add("LONG", ARRESTS, add_months(MARCH, i - 15), 100 if i < 3 else 300)
    wh.add("LONG", ARRESTS, MARCH, 310)
    # Annual series: four earlier calendar years.
    wh.agency("YEARLY", ["LAW_ENFORCEMENT"])
    for year in range(2020, 2025):
        wh.add("YEARLY", ARRESTS, month(year, 1), 1000 if year < 2024 else 3000, end=month(year + 1, 1))
    validated = [month(2024, 1), MARCH]
    wh.validate(validated, today=month(2026, 1))
    # (The months after January 2024 are judged too, as later months reading it: LONG's jump to 300.)
    flagged = {(r["agency_id"], r["period_start"], r["expected"]) for r in wh.results("no_implausible_jumps")
               if r["period_start"] in validated}
    assert flagged == {("GAPPY", MARCH, "101"), ("YEARLY", month(2024, 1), "1000")}
