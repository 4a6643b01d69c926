"""no_implausible_jumps: robust (median/MAD of up to 12 earlier periods) with a minimum difference, so small
agencies' natural noise is not flagged."""

from __future__ import annotations

import pytest

from jc_pipeline.lib.periods import add_months
from jc_pipeline_tests.test_validation_support import Warehouse, month

MARCH = month(2025, 3)
ARRESTS = "LAW_ENFORCEMENT_ARRESTS"
POPULATION = "JAILS_TOTAL_POPULATION"


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
