"""Sums and identities: breakdowns vs totals, required breakdowns, staff with vacancies, jail pre + post vs
total population, admissions - releases vs population change."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from jc_pipeline_tests.test_validation_support import REGISTRY, Warehouse, month

FEB, MARCH = month(2025, 2), month(2025, 3)
ARRESTS = "LAW_ENFORCEMENT_ARRESTS"
CRIME = "LAW_ENFORCEMENT_REPORTED_CRIME"
FUNDING = "LAW_ENFORCEMENT_FUNDING"
STAFF = "LAW_ENFORCEMENT_TOTAL_STAFF"
OFFENSE, RACE, SEX = "metric/offense/type", "global/race_and_ethnicity", "global/biological_sex"
FUNDING_TYPE = "metric/law_enforcement/funding/type"
STAFF_TYPE = "metric/law_enforcement/staff/type"
Y2024 = date(2024, 1, 1), date(2025, 1, 1)


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    wh = Warehouse(tmp_path_factory.mktemp("sums") / "w.duckdb")
    for agency in ("SUM_OK", "SUM_BAD", "SUM_LOW", "SUM_TWO_FILES", "USD_OK", "USD_BAD", "REQ_OK", "REQ_BAD",
                   "STAFF_OK", "STAFF_BAD", "STAFF_RACE"):
        wh.agency(agency, ["LAW_ENFORCEMENT"])
    for agency in ("JAIL_OK", "JAIL_BAD"):
        wh.agency(agency, ["JAILS"])
    wh.agency("PRIS_BAD", ["PRISONS"])
    wh.agency("PROS_BAD", ["PROSECUTION"])

    # breakdowns_sum_to_total: counts within 1 pass, beyond fail; dollars within 0.5 % pass.
    wh.add("SUM_OK", ARRESTS, MARCH, 10)
    wh.add_breakdown("SUM_OK", ARRESTS, MARCH, OFFENSE, {"PERSON": 4, "PROPERTY": 7})
    wh.add("SUM_BAD", ARRESTS, MARCH, 10, file_id="f-sum", sheet="arrests", row=2)
    wh.add_breakdown("SUM_BAD", ARRESTS, MARCH, OFFENSE, {"PERSON": 4, "PROPERTY": 8}, file_id="f-sum",
                     sheet="arrests_by_type")
    # Parts short of the total fail as parts over it do (helper-40: a one-sided comparison passed every test here).
    wh.add("SUM_LOW", ARRESTS, MARCH, 10)
    wh.add_breakdown("SUM_LOW", ARRESTS, MARCH, OFFENSE, {"PERSON": 4, "PROPERTY": 4})
    # A later file corrected the total only: its own row is named as well (helper-60).
    wh.add_breakdown("SUM_TWO_FILES", ARRESTS, MARCH, OFFENSE, {"PERSON": 4, "PROPERTY": 8}, file_id="f-parts",
                     sheet="arrests_by_type", row=3)
    wh.add("SUM_TWO_FILES", ARRESTS, MARCH, 10, file_id="f-total", sheet="arrests", row=7)
    wh.sent("f-total", datetime(2025, 4, 2, 12, 0))
    wh.add_breakdown("SUM_TWO_FILES", ARRESTS, MARCH, SEX, {"MALE": 4, "FEMALE": 4}, file_id="f-sex",
                     sheet="arrests_by_sex", row=2)
    wh.add("SUM_TWO_FILES", CRIME, MARCH, 10, file_id="f-csv", sheet="f-csv.csv", row=4)  # a CSV: no sheet said
    wh.add_breakdown("SUM_TWO_FILES", CRIME, MARCH, OFFENSE, {"PERSON": 1}, file_id="f-parts", row=5)
    wh.sent("f-csv", datetime(2025, 4, 2, 12, 0))
    wh.add("USD_OK", FUNDING, Y2024[0], 100_000, end=Y2024[1])
    wh.add_breakdown("USD_OK", FUNDING, Y2024[0], FUNDING_TYPE, {"GRANTS": 60_000, "OTHER": 40_400}, end=Y2024[1])
    wh.add("USD_BAD", FUNDING, Y2024[0], 100_000, end=Y2024[1])
    wh.add_breakdown("USD_BAD", FUNDING, Y2024[0], FUNDING_TYPE, {"GRANTS": 60_000, "OTHER": 41_000}, end=Y2024[1])

    # required_breakdowns_present: arrests require offense, race and sex.
    wh.add("REQ_OK", ARRESTS, MARCH, 2)
    wh.add_breakdown("REQ_OK", ARRESTS, MARCH, OFFENSE, {"PERSON": 2})
    wh.add_breakdown("REQ_OK", ARRESTS, MARCH, RACE, {"NOT_HISPANIC_BLACK": 2})
    wh.add_breakdown("REQ_OK", ARRESTS, MARCH, SEX, {"MALE": 2})
    wh.add("REQ_BAD", ARRESTS, MARCH, 2, file_id="f-req", sheet="arrests", row=5)

    # staff_breakdown_matches_total: the total counts vacant positions too.
    wh.add("STAFF_OK", STAFF, Y2024[0], 10, end=Y2024[1])
    wh.add_breakdown("STAFF_OK", STAFF, Y2024[0], STAFF_TYPE, {"LAW_ENFORCEMENT_OFFICERS": 8, "VACANT": 2},
                     end=Y2024[1])
    wh.add("STAFF_BAD", STAFF, Y2024[0], 8, end=Y2024[1])
    wh.add_breakdown("STAFF_BAD", STAFF, Y2024[0], STAFF_TYPE, {"LAW_ENFORCEMENT_OFFICERS": 8, "VACANT": 2},
                     end=Y2024[1])
    # Staff by sex counts people: it may add up to the filled positions only.
    wh.add("STAFF_RACE", STAFF, Y2024[0], 10, end=Y2024[1])
    wh.add_breakdown("STAFF_RACE", STAFF, Y2024[0], STAFF_TYPE, {"LAW_ENFORCEMENT_OFFICERS": 8, "VACANT": 2},
                     end=Y2024[1])
    wh.add_breakdown("STAFF_RACE", STAFF, Y2024[0], SEX, {"MALE": 5, "FEMALE": 3}, end=Y2024[1])
    # Prosecution names its vacancy member VACANT_POSITIONS.
    wh.add("PROS_BAD", "PROSECUTION_TOTAL_STAFF", Y2024[0], 8, end=Y2024[1])
    wh.add_breakdown("PROS_BAD", "PROSECUTION_TOTAL_STAFF", Y2024[0], "metric/staff/prosecution_defense/type",
                     {"LEGAL_STAFF": 8, "VACANT_POSITIONS": 2}, end=Y2024[1])

    # jail_population_parts_match_total and admissions_releases_match_population_change.
    for agency, post, admissions in (("JAIL_OK", 40.5, 50), ("JAIL_BAD", 30, 300)):
        wh.add(agency, "JAILS_TOTAL_POPULATION", FEB, 100)
        wh.add(agency, "JAILS_TOTAL_POPULATION", MARCH, 100, file_id=f"f-{agency}", sheet="total_population", row=3)
        wh.add(agency, "JAILS_PRE_ADJUDICATION_POPULATION", MARCH, 60)
        wh.add(agency, "JAILS_POST_ADJUDICATION_POPULATION", MARCH, post)
        wh.add(agency, "JAILS_TOTAL_ADMISSIONS", MARCH, admissions)
        wh.add(agency, "JAILS_TOTAL_RELEASES", MARCH, 45)
    # jail_flow_parts_match_total: JAIL_OK's admissions 30 + 20 = 50; JAIL_BAD's 30 + 20 = 50 against 300, and its
    # releases 25 + 20 = 45 as they should.
    for agency in ("JAIL_OK", "JAIL_BAD"):
        wh.add(agency, "JAILS_PRE_ADJUDICATION_ADMISSIONS", MARCH, 30)
        wh.add(agency, "JAILS_POST_ADJUDICATION_ADMISSIONS", MARCH, 20)
        wh.add(agency, "JAILS_PRE_ADJUDICATION_RELEASES", MARCH, 25)
        wh.add(agency, "JAILS_POST_ADJUDICATION_RELEASES", MARCH, 20)
    wh.add("PRIS_BAD", "PRISONS_POPULATION", FEB, 500)
    wh.add("PRIS_BAD", "PRISONS_POPULATION", MARCH, 500)
    wh.add("PRIS_BAD", "PRISONS_ADMISSIONS", MARCH, 200)
    wh.add("PRIS_BAD", "PRISONS_RELEASES", MARCH, 10)
    wh.outcomes = wh.validate([MARCH, Y2024[0]])
    return wh


def test_breakdowns_sum_to_total(wh):
    rows = wh.results("breakdowns_sum_to_total")
    assert {(r["agency_id"], r["metric_key"], r["dimension"]) for r in rows} == {
        ("SUM_BAD", ARRESTS, OFFENSE), ("SUM_LOW", ARRESTS, OFFENSE), ("SUM_TWO_FILES", ARRESTS, OFFENSE),
        ("SUM_TWO_FILES", ARRESTS, SEX), ("SUM_TWO_FILES", CRIME, OFFENSE), ("USD_BAD", FUNDING, FUNDING_TYPE)}
    bad = next(r for r in rows if r["agency_id"] == "SUM_BAD")
    assert (bad["severity"], bad["period_start"], bad["observed"], bad["expected"]) == ("WARNING", MARCH, "12", "10")
    assert (bad["file_id"], bad["sheet"]) == ("f-sum", "arrests_by_type")
    assert bad["message"].endswith("offense type breakdown adds up to 12, but the total is 10.")  # one file: no more
    two = {r["dimension"]: r for r in rows if r["agency_id"] == "SUM_TWO_FILES" and r["metric_key"] == ARRESTS}
    assert (two[OFFENSE]["file_id"], two[OFFENSE]["sheet"], two[OFFENSE]["row_number"]) == (
        "f-parts", "arrests_by_type", 3)
    assert two[OFFENSE]["message"].endswith(
        "but the total is 10. The total is on row 7 of sheet 'arrests' of inbox/f-total.csv.")
    assert two[SEX]["message"].endswith("The total is on row 7 of sheet 'arrests' of inbox/f-total.csv.")
    crime = next(r for r in rows if r["metric_key"] == CRIME)
    assert crime["message"].endswith("but the total is 10. The total is on row 4 of inbox/f-csv.csv.")


def test_required_breakdowns_present(wh):
    rows = wh.results("required_breakdowns_present")
    assert "REQ_OK" not in {r["agency_id"] for r in rows}
    bad = [r for r in wh.results("required_breakdowns_present", "REQ_BAD")]
    assert {r["dimension"] for r in bad} == {OFFENSE, RACE, SEX}
    # One finding per calendar year, dated to the year; the lineage is the total of the first period without it.
    assert all((r["severity"], r["period_start"], r["period_end"], r["row_number"], r["observed"], r["expected"])
               == ("WARNING", date(2025, 1, 1), date(2026, 1, 1), 5, "1", "1") for r in bad)
    assert all(r["message"].endswith("for 1 of the 1 periods reported in 2025, which Justice Counts requires. "
                                     "Periods without it: 2025-03.") for r in bad)
    required = {b.dimension.identifier for b in REGISTRY.metrics[ARRESTS].breakdowns if b.required}
    assert required == {OFFENSE, RACE, SEX}


def test_staff_breakdown_matches_total(wh):
    rows = wh.results("staff_breakdown_matches_total")
    assert [(r["agency_id"], r["metric_key"], r["dimension"], r["severity"]) for r in rows] == [
        ("PROS_BAD", "PROSECUTION_TOTAL_STAFF", "metric/staff/prosecution_defense/type", "WARNING"),
        ("STAFF_BAD", STAFF, STAFF_TYPE, "WARNING")]
    assert all("leave out the 2 vacant positions" in r["message"] for r in rows)
    # The staff-type dimension is this rule's, not breakdowns_sum_to_total's; staff by sex may exclude vacancies.
    assert not {"PROS_BAD", "STAFF_BAD", "STAFF_OK", "STAFF_RACE"} & wh.failing_agencies("breakdowns_sum_to_total")


def test_jail_population_parts_match_total(wh):
    [row] = wh.results("jail_population_parts_match_total")
    assert (row["agency_id"], row["metric_key"], row["period_start"], row["severity"]) == (
        "JAIL_BAD", "JAILS_TOTAL_POPULATION", MARCH, "WARNING")
    assert (row["observed"], row["expected"]) == ("90", "100")
    assert (row["file_id"], row["row_number"]) == ("f-JAIL_BAD", 3)


def test_jail_flow_parts_match_total(wh):
    [row] = wh.results("jail_flow_parts_match_total")
    assert (row["agency_id"], row["metric_key"], row["period_start"], row["severity"]) == (
        "JAIL_BAD", "JAILS_TOTAL_ADMISSIONS", MARCH, "WARNING")
    assert (row["observed"], row["expected"]) == ("50", "300")
    assert "pre- plus post-adjudication is 50, but the total is 300" in row["message"]


def test_admissions_releases_match_population_change(wh):
    rows = wh.results("admissions_releases_match_population_change")
    assert {(r["agency_id"], r["metric_key"]) for r in rows} == {
        ("JAIL_BAD", "JAILS_TOTAL_POPULATION"), ("PRIS_BAD", "PRISONS_POPULATION")}
    jail = next(r for r in rows if r["agency_id"] == "JAIL_BAD")
    assert (jail["period_start"], jail["observed"], jail["expected"]) == (MARCH, "255", "0")
    assert jail["severity"] == "WARNING" and "population changed by 0" in jail["message"]
    assert wh.outcomes["admissions_releases_match_population_change"].checked_rows == 3


def test_required_breakdowns_are_one_finding_per_year(tmp_path):
    """Months without a required breakdown are one finding per agency, metric, dimension and calendar year."""
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.agency("A", ["LAW_ENFORCEMENT"])
    for m in range(1, 13):
        wh.add("A", ARRESTS, month(2024, m), 2, file_id=f"f-{m}")
        wh.add_breakdown("A", ARRESTS, month(2024, m), OFFENSE, {"PERSON": 2})
        wh.add_breakdown("A", ARRESTS, month(2024, m), SEX, {"MALE": 2})
        if m not in (3, 4, 9):
            wh.add_breakdown("A", ARRESTS, month(2024, m), RACE, {"NOT_HISPANIC_BLACK": 2})
    wh.validate([month(2024, 6)])  # one month of the year: the whole year is judged
    [row] = wh.results("required_breakdowns_present")
    assert (row["dimension"], row["period_start"], row["period_end"], row["observed"], row["expected"],
            row["file_id"]) == (RACE, date(2024, 1, 1), date(2025, 1, 1), "3", "12", "f-3")
    assert "Periods without it: 2024-03, 2024-04, 2024-09." in row["message"]
    # The race sheet arrives for the missing months: the year's finding goes away.
    for m in (3, 4, 9):
        wh.add_breakdown("A", ARRESTS, month(2024, m), RACE, {"NOT_HISPANIC_BLACK": 2})
    wh.validate([month(2024, 3), month(2024, 4), month(2024, 9)])
    assert wh.results("required_breakdowns_present") == []
