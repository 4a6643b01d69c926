"""Datapoint-level rules run by Great Expectations: numeric, non-negative, category, duplicates, whole counts."""

from __future__ import annotations

import json
import math
from datetime import date

import pytest

from jc_pipeline_tests.test_validation_support import Warehouse, month

MARCH = month(2025, 3)
ARRESTS = "LAW_ENFORCEMENT_ARRESTS"
OFFENSE = "metric/offense/type"


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    wh = Warehouse(tmp_path_factory.mktemp("rows") / "w.duckdb")
    for agency in ("OK", "NUM", "NEG", "CAT", "DIM", "DUP", "FRAC"):
        wh.agency(agency, ["LAW_ENFORCEMENT"])
    # A clean agency: total, a breakdown that adds up, fractional money and staff (allowed).
    wh.add("OK", ARRESTS, MARCH, 10)
    wh.add_breakdown("OK", ARRESTS, MARCH, OFFENSE, {"PERSON": 4, "PROPERTY": 6})
    wh.add("OK", "LAW_ENFORCEMENT_FUNDING", date(2024, 1, 1), 1234.56, end=date(2025, 1, 1))
    wh.add("OK", "LAW_ENFORCEMENT_TOTAL_STAFF", MARCH, 3.5, end=date(2026, 3, 1), frequency="ANNUAL")
    wh.add("NUM", ARRESTS, MARCH, math.nan, file_id="f-num", sheet="arrests", row=4)
    wh.add("NUM", "LAW_ENFORCEMENT_CALLS_FOR_SERVICE", MARCH, math.inf, file_id="f-num", sheet="calls", row=2)
    wh.add("NEG", ARRESTS, MARCH, -3, file_id="f-neg", sheet="arrests", row=9)
    wh.add("CAT", ARRESTS, MARCH, 5)
    wh.add("CAT", ARRESTS, MARCH, 5, dimension=OFFENSE, category="BOGUS", file_id="f-cat",
           sheet="arrests_by_type", row=7)
    # A real dimension, but not one of this metric's breakdowns.
    wh.add("DIM", ARRESTS, MARCH, 5, dimension="metric/prisons/release/type", category="DEATH")
    wh.add("DUP", ARRESTS, MARCH, 5, file_id="f-dup", row=2)
    wh.add("DUP", ARRESTS, MARCH, 6, file_id="f-dup", row=3)
    wh.add("FRAC", ARRESTS, MARCH, 10.5, file_id="f-frac", row=2)
    wh.outcomes = wh.validate([MARCH])
    return wh


def _key(row):
    return row["agency_id"], row["metric_key"], row["period_start"], row["severity"]


ROW_RULES = {"value_is_numeric", "value_not_negative", "category_is_member", "no_duplicate_datapoints",
             "counts_are_whole_numbers"}


def test_clean_agency_passes_every_row_rule(wh):
    assert [r["check_name"] for r in wh.results(agency_id="OK") if r["check_name"] in ROW_RULES] == []


def test_value_is_numeric(wh):
    rows = wh.results("value_is_numeric")
    assert {(r["agency_id"], r["metric_key"], r["observed"]) for r in rows} == {
        ("NUM", ARRESTS, "nan"), ("NUM", "LAW_ENFORCEMENT_CALLS_FOR_SERVICE", "inf")}
    assert all(r["severity"] == "ERROR" and r["period_start"] == MARCH for r in rows)
    assert "not a number" in rows[0]["message"]


def test_value_not_negative_maps_back_to_the_file_row(wh):
    [row] = wh.results("value_not_negative")
    assert _key(row) == ("NEG", ARRESTS, MARCH, "ERROR")
    # The GX unexpected index came back to the exact datapoint and its lineage.
    assert (row["file_id"], row["sheet"], row["row_number"]) == ("f-neg", "arrests", 9)
    assert "negative (-3)" in row["message"]


def test_category_is_member(wh):
    rows = wh.results("category_is_member")
    assert {(r["agency_id"], r["dimension"], r["category"]) for r in rows} == {
        ("CAT", OFFENSE, "BOGUS"), ("DIM", "metric/prisons/release/type", "DEATH")}
    cat = next(r for r in rows if r["agency_id"] == "CAT")
    assert (cat["file_id"], cat["sheet"], cat["row_number"]) == ("f-cat", "arrests_by_type", 7)
    assert _key(cat) == ("CAT", ARRESTS, MARCH, "ERROR")
    assert "'BOGUS' is not a category of Arrests" in cat["message"]


def test_no_duplicate_datapoints_one_group_per_key(wh):
    [row] = wh.results("no_duplicate_datapoints")
    assert _key(row) == ("DUP", ARRESTS, MARCH, "ERROR")
    assert row["row_number"] == 2 and "appears 2 times" in row["message"]


def test_counts_are_whole_numbers_only_for_counts(wh):
    [row] = wh.results("counts_are_whole_numbers")
    assert (row["agency_id"], row["severity"], row["observed"]) == ("FRAC", "WARNING", "10.5")


def test_outcomes_carry_counts_and_json_samples(wh):
    outcome = wh.outcomes["category_is_member"]
    assert not outcome.passed and outcome.error is None
    assert outcome.failing_groups == 2
    assert outcome.checked_rows == wh.con.execute("SELECT count(*) FROM agency_metrics WHERE period_start = ?",
                                                  [MARCH]).fetchall()[0][0]
    json.dumps([o.sample for o in wh.outcomes.values()])  # must not raise
    assert wh.outcomes["no_duplicate_datapoints"].sample[0]["agency_id"] == "DUP"


def test_revalidating_replaces_instead_of_appending(wh):
    before = len(wh.results())
    wh.validate([MARCH])
    assert len(wh.results()) == before
