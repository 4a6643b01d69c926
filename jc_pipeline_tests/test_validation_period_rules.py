"""Period and roster rules: alignment (monthly, calendar and fiscal years), future periods, roster membership,
disabled metrics and missing months."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from jc_pipeline.lib.periods import months_between
from jc_pipeline_tests.test_validation_support import TODAY, Warehouse, month

ARRESTS = "LAW_ENFORCEMENT_ARRESTS"
CALLS = "LAW_ENFORCEMENT_CALLS_FOR_SERVICE"
FUNDING = "LAW_ENFORCEMENT_FUNDING"
ALL_MONTHS = months_between(date(2023, 1, 1), date(2025, 7, 1))
assert TODAY == date(2025, 6, 15)


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    wh = Warehouse(tmp_path_factory.mktemp("periods") / "w.duckdb")
    for agency in ("MIS", "CY", "FUT", "LE", "GAP", "FULL", "ANN"):
        wh.agency(agency, ["LAW_ENFORCEMENT"])
    wh.agency("FY", ["LAW_ENFORCEMENT"], fiscal_start=7)
    wh.agency("DIS", ["LAW_ENFORCEMENT"], settings={ARRESTS: {"enabled": False}})
    wh.agency("SUP", ["SUPERVISION", "PAROLE"], settings={"SUPERVISION_POPULATION": {"disaggregated": True}})
    # Reports supervision combined: its parole keys are off (as the roster resolves them).
    wh.agency("COMB", ["SUPERVISION", "PAROLE"], settings={"PAROLE_POPULATION": {"enabled": False}})

    # period_aligned
    wh.add("MIS", ARRESTS, month(2025, 3), 5, end=date(2025, 5, 1), frequency="MONTHLY")   # two months
    wh.add("MIS", CALLS, month(2025, 3), 5, end=date(2025, 4, 15), frequency="MONTHLY")    # not a month end
    wh.add("CY", FUNDING, month(2024, 1), 100, end=date(2025, 1, 1))                      # calendar year: ok
    wh.add("CY", "LAW_ENFORCEMENT_EXPENSES", month(2024, 1), 100, end=date(2024, 12, 1))  # eleven months
    wh.add("FY", FUNDING, month(2023, 7), 100, end=date(2024, 7, 1))                      # FY Jul-Jun: ok
    wh.add("FY", "LAW_ENFORCEMENT_EXPENSES", month(2024, 1), 100, end=date(2025, 1, 1))   # calendar, not FY
    wh.add("FY", ARRESTS, month(2023, 7), 100, end=date(2024, 7, 1))   # monthly metric sent as a fiscal year: ok
    wh.add("FY", CALLS, month(2023, 4), 100, end=date(2024, 4, 1))     # ... but not an April year

    # period_not_in_future (today = 2025-06-15)
    wh.add("FUT", ARRESTS, month(2025, 5), 5)                                # May is over: ok
    wh.add("FUT", CALLS, month(2025, 6), 5)                                  # June is still running
    wh.add("FUT", FUNDING, month(2025, 1), 5, end=date(2026, 1, 1))          # 2025 is not over

    # agency_in_roster
    wh.add("GHOST", ARRESTS, month(2025, 3), 5, file_id="f-ghost", row=2)
    wh.add("LE", ARRESTS, month(2025, 3), 5)
    wh.add("LE", "JAILS_TOTAL_POPULATION", month(2025, 3), 5)

    # metric_enabled
    wh.add("DIS", ARRESTS, month(2025, 3), 5)
    wh.add("DIS", CALLS, month(2025, 3), 5)
    wh.add("SUP", "SUPERVISION_POPULATION", month(2025, 3), 5)   # reported by subsystem: combined not expected
    wh.add("SUP", "PAROLE_POPULATION", month(2025, 3), 5)
    wh.add("COMB", "PAROLE_POPULATION", month(2025, 3), 5)     # by subsystem, but the agency reports combined

    # no_missing_months: 2024 is over (all 12 expected), 2025 runs up to the last month reported (March).
    for m in (1, 2, 3):  # funding is annual (the registry's default): months sent are at the wrong cadence (F6m)
        wh.add("ANN", FUNDING, month(2024, m), 5)
    for m in (1, 3, 4, 5, 6, 7, 8, 9, 10, 11):
        wh.add("GAP", ARRESTS, month(2024, m), 5)
    for m in (1, 3):
        wh.add("GAP", ARRESTS, month(2025, m), 5)
    for m in range(1, 13):
        wh.add("FULL", ARRESTS, month(2024, m), 5)
    wh.outcomes = wh.validate(ALL_MONTHS)
    return wh


def test_period_aligned(wh):
    rows = wh.results("period_aligned")
    assert {(r["agency_id"], r["metric_key"], r["period_start"]) for r in rows} == {
        ("MIS", ARRESTS, month(2025, 3)), ("MIS", CALLS, month(2025, 3)),
        ("CY", "LAW_ENFORCEMENT_EXPENSES", month(2024, 1)),
        ("FY", "LAW_ENFORCEMENT_EXPENSES", month(2024, 1)), ("FY", CALLS, month(2023, 4)),
    }
    assert all(r["severity"] == "ERROR" for r in rows)
    fiscal = next(r for r in rows if r["agency_id"] == "FY" and r["metric_key"] == "LAW_ENFORCEMENT_EXPENSES")
    assert "starts in January" in fiscal["message"] and "starts in July" in fiscal["message"]


def test_period_not_in_future(wh):
    rows = wh.results("period_not_in_future")
    assert {(r["agency_id"], r["metric_key"], r["period_start"]) for r in rows} == {
        ("FUT", CALLS, month(2025, 6)), ("FUT", FUNDING, month(2025, 1))}
    assert all(r["severity"] == "ERROR" for r in rows)
    assert "had not ended when its file was sent" in rows[0]["message"]


def test_agency_in_roster(wh):
    rows = wh.results("agency_in_roster")
    assert {(r["agency_id"], r["metric_key"]) for r in rows} == {("GHOST", ARRESTS), ("LE", "JAILS_TOTAL_POPULATION")}
    ghost = next(r for r in rows if r["agency_id"] == "GHOST")
    assert (ghost["severity"], ghost["period_start"], ghost["file_id"]) == ("ERROR", month(2025, 3), "f-ghost")
    assert "not on the state roster" in ghost["message"]
    le = next(r for r in rows if r["agency_id"] == "LE")
    assert "does not list sector JAILS" in le["message"]


def test_metric_enabled(wh):
    rows = {(r["agency_id"], r["metric_key"]): r for r in wh.results("metric_enabled")}
    assert set(rows) == {("DIS", ARRESTS), ("SUP", "SUPERVISION_POPULATION"), ("COMB", "PAROLE_POPULATION")}
    assert {r["severity"] for r in rows.values()} == {"WARNING"}
    assert "disabled in your settings" in rows["DIS", ARRESTS]["message"]
    assert "by supervision subsystem" in rows["SUP", "SUPERVISION_POPULATION"]["message"]
    assert "for supervision as a whole (combined), not by subsystem" in rows["COMB", "PAROLE_POPULATION"]["message"]


def test_no_missing_months(wh):
    rows = [r for r in wh.results("no_missing_months") if r["agency_id"] in ("GAP", "FULL")]
    assert {(r["agency_id"], r["metric_key"], r["period_start"]) for r in rows} == {
        ("GAP", ARRESTS, month(2024, 2)), ("GAP", ARRESTS, month(2024, 12)), ("GAP", ARRESTS, month(2025, 2))}
    assert all(r["severity"] == "WARNING" for r in rows)
    # An agency whose only 2025 month is March is expected to have January and February too.
    assert {r["period_start"] for r in wh.results("no_missing_months", "LE")} == {month(2025, 1), month(2025, 2)}
    # ANN reports funding annually: its three months are not a series missing nine (ingest warned F6m, and the
    # roll-up does not count them); asking for more months would contradict the F6m advice.
    assert wh.results("no_missing_months", "ANN") == []
    # SUP reports the population by subsystem: the combined key it sent in March is metric_enabled's to flag, not
    # a series with missing months; its parole population is.
    assert {(r["metric_key"], r["period_start"]) for r in wh.results("no_missing_months", "SUP")} == {
        ("PAROLE_POPULATION", month(2025, 1)), ("PAROLE_POPULATION", month(2025, 2))}


def test_findings_name_the_sector_of_a_metric_name_two_sectors_share(tmp_path):
    """A department of corrections reports prisons and supervision, each with a "Daily Population": its findings
    say which one is missing a month."""
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.agency("DOC", ["PRISONS", "SUPERVISION"])
    for m in (1, 3):
        wh.add("DOC", "PRISONS_POPULATION", month(2025, m), 900)
        wh.add("DOC", "SUPERVISION_POPULATION", month(2025, m), 400)
    wh.add("DOC", "PRISONS_POPULATION", month(2025, 2), 900)
    wh.validate([month(2025, m) for m in (1, 2, 3)])
    [missing] = wh.results("no_missing_months", "DOC")
    assert missing["message"].startswith("Daily Population (Supervision): no data for 2025-02")


def test_missing_month_clears_when_it_arrives(wh):
    wh.add("GAP", ARRESTS, month(2024, 2), 5)
    wh.validate([month(2024, 2)])
    missing = {r["period_start"] for r in wh.results("no_missing_months", "GAP") if r["metric_key"] == ARRESTS}
    assert missing == {month(2024, 12), month(2025, 2)}


def test_a_month_is_over_on_the_first_day_of_the_next(wh):
    # period_end is exclusive: June 2025 ends on 2025-07-01, so it is complete on that day, not the day before.
    wh.validate([month(2025, 6)], today=date(2025, 6, 30))
    assert {r["metric_key"] for r in wh.results("period_not_in_future", "FUT")
            if r["period_start"] == month(2025, 6)} == {CALLS}
    wh.validate([month(2025, 6)], today=date(2025, 7, 1))
    assert [r for r in wh.results("period_not_in_future", "FUT") if r["period_start"] == month(2025, 6)] == []


def test_a_period_sent_before_it_ended_fails_until_a_file_sent_after_its_end_replaces_it(tmp_path, monkeypatch):
    """helper-47: judged on today, a month sent while it ran passed the night it ended with no upload, and its part
    of the month was published as the month. Judged on the state's date of the day its file was sent, it fails on
    every later day too; a file sent once the month is over passes."""
    monkeypatch.setenv("JC_TIMEZONE", "America/New_York")
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.agency("A", ["LAW_ENFORCEMENT"])
    june = month(2025, 6)
    wh.sent("early", datetime(2025, 6, 20, 15))
    wh.add("A", ARRESTS, june, 200, file_id="early")
    for today in (date(2025, 6, 21), date(2025, 7, 1), date(2026, 1, 1)):
        wh.validate([june], today=today)
        [failure] = wh.results("period_not_in_future")
        assert (failure["agency_id"], failure["observed"], failure["file_id"]) == ("A", "2025-06-20", "early")
        assert failure["message"].endswith(": the period 2025-06 had not ended when its file was sent (2025-06-20).")
    # 02:00 UTC on July 1 is 22:00 on June 30 in New York: sent on the month's last evening, before its end.
    wh.sent("last_evening", datetime(2025, 7, 1, 2))
    wh.sent("after", datetime(2025, 7, 1, 5))  # 01:00 on July 1 there
    for file_id, failing in (("last_evening", {"A"}), ("after", set())):
        wh.con.execute("UPDATE agency_metrics SET file_id = ?", [file_id])
        wh.validate([june], today=date(2025, 7, 2))
        assert wh.failing_agencies("period_not_in_future") == failing
