"""state_metrics on the small hand-made state of test_state_fixture.

Every expected number is written out by hand from the fixture rows (see the fixture module docstring); the
comments show the arithmetic.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from jc_pipeline.lib import state
from jc_pipeline_tests.test_state_fixture import (  # noqa: F401  (small_state, fresh_state are pytest fixtures)
    ALL_MONTHS,
    ARRESTS,
    CASE_STAFF,
    FUNDING,
    JAIL_POP,
    OFFENSE,
    OPEN_CASES,
    PAROLE_POP,
    PROBATION_POP,
    RACE,
    REGISTRY,
    SUP_POP,
    build_small_state,
    fresh_state,
    load_inputs,
    small_state,
)

JAN_2023 = date(2023, 1, 1)
COLUMNS = (
    "value, agencies_reporting, agencies_expected, population_covered, coverage_population_pct, "
    "rate_per_100k, is_complete"
)


def total_row(con, metric, start, *, derived=False, frequency=None, state_code="US_XX", columns=COLUMNS):
    """The single total row of a metric and period (fails when there is not exactly one).

    ``frequency`` defaults to ANNUAL for derived rows, else MONTHLY (a January month row and a calendar-year row
    share their period_start).
    """
    frequency = frequency or ("ANNUAL" if derived else "MONTHLY")
    rows = con.execute(
        f"SELECT {columns} FROM state_metrics WHERE state_code = ? AND metric_key = ? AND period_start = ?"
        " AND is_derived_annual = ? AND frequency = ? AND dimension IS NULL",
        [state_code, metric, start, derived, frequency],
    ).fetchall()
    assert len(rows) == 1, rows
    return rows[0]


def breakdown_row(con, metric, start, dimension, category, columns):
    rows = con.execute(
        f"SELECT {columns} FROM state_metrics WHERE state_code = 'US_XX' AND metric_key = ? AND period_start = ?"
        " AND frequency = 'MONTHLY' AND dimension = ? AND category = ?",
        [metric, start, dimension, category],
    ).fetchall()
    assert len(rows) == 1, rows
    return rows[0]


# --- sums, coverage, rates -------------------------------------------------------------------------------


def test_delta_sum_over_identical_month_with_coverage_and_rate(small_state):
    # Jan 2023 arrests: LE1 101 + LE2 50 + LE4 20 = 171; LE3's monthly upload (45) is not counted because LE3
    # reports arrests annually. Population 100,000 + 50,000 + 20,000 = 170,000 of 170,000 expected.
    value, reporting, expected, population, pct, rate, complete = total_row(small_state, ARRESTS, JAN_2023)
    assert (value, reporting, expected, population, complete) == (171.0, 3, 3, 170_000, True)
    assert pct == pytest.approx(100.0)
    assert rate == pytest.approx(171 / 170_000 * 100_000)  # 100.588...


def test_missing_agency_lowers_coverage(small_state):
    # Dec 2023: only LE1 (112); LE2 stopped after November, LE4 only reported January and March.
    value, reporting, expected, population, pct, rate, complete = total_row(small_state, ARRESTS, date(2023, 12, 1))
    assert (value, reporting, expected, population, complete) == (112.0, 1, 3, 100_000, False)
    assert pct == pytest.approx(100_000 / 170_000 * 100)  # 58.82 %
    assert rate == pytest.approx(112.0)
    missing = total_row(small_state, ARRESTS, date(2023, 12, 1), columns="agencies_missing, agencies_excluded")
    assert missing == (["LE2", "LE4"], [])


def test_instant_metric_summed_per_snapshot(small_state):
    # Jail population Jan 2023: JL1 300 + JL2 100 = 400; Jul 2023: 360 + 100 = 460. Never summed over months.
    assert total_row(small_state, JAIL_POP, JAN_2023)[:3] == (400.0, 2, 2)
    assert total_row(small_state, JAIL_POP, date(2023, 7, 1))[:3] == (460.0, 2, 2)
    rule = total_row(small_state, JAIL_POP, JAN_2023, columns="aggregation_rule, measurement_type")
    assert rule == ("SUM_OF_SNAPSHOTS", "INSTANT")


def test_no_sum_across_sectors_metrics_or_states(small_state):
    # Each (state, metric) keeps its own rows: US_YY's LE9 (7) is not in US_XX; arrests are not added to
    # funding, jail population to supervision, open cases to staff.
    assert total_row(small_state, ARRESTS, JAN_2023, state_code="US_YY")[:3] == (7.0, 1, 1)
    assert total_row(small_state, OPEN_CASES, JAN_2023)[:2] == (300.0, 2)  # 200 + 100
    assert total_row(small_state, CASE_STAFF, JAN_2023)[:2] == (30.0, 2)  # 10 + 20
    sectors = small_state.execute(
        "SELECT DISTINCT s.metric_key, s.sector, d.sector FROM state_metrics s JOIN metric_definitions d USING (metric_key)"
    ).fetchall()
    assert all(row[1] == row[2] for row in sectors)
    keys = {row[0] for row in small_state.execute("SELECT DISTINCT metric_key FROM state_metrics").fetchall()}
    assert keys == {ARRESTS, FUNDING, JAIL_POP, OPEN_CASES, CASE_STAFF, SUP_POP, PAROLE_POP, PROBATION_POP}


def test_validation_error_excludes_agency_and_counts_it_missing(small_state):
    # Mar 2023: LE4's 999 (and its PERSON breakdown of 999) fail an ERROR -> LE1 103 + LE2 50 = 153.
    value, reporting, expected, *_ = total_row(small_state, ARRESTS, date(2023, 3, 1))
    assert (value, reporting, expected) == (153.0, 2, 3)
    missing = total_row(small_state, ARRESTS, date(2023, 3, 1), columns="agencies_missing, agencies_excluded")
    assert missing == (["LE4"], ["LE4"])
    breakdowns = small_state.execute(
        "SELECT count(*) FROM state_metrics WHERE metric_key = ? AND period_start = ? AND dimension IS NOT NULL",
        [ARRESTS, date(2023, 3, 1)],
    ).fetchall()
    assert breakdowns == [(0,)]
    # A passed ERROR (LE1 Jan) and a failed WARNING (LE1 Feb) exclude nothing: Feb = LE1 102 + LE2 50.
    assert total_row(small_state, ARRESTS, date(2023, 2, 1))[:2] == (152.0, 2)
    reasons = small_state.execute(
        "SELECT reason FROM state_coverage WHERE metric_key = ? AND period_start = ? AND agency_id = 'LE4'",
        [ARRESTS, date(2023, 3, 1)],
    ).fetchall()
    assert reasons == [("VALIDATION_ERROR",)]


def test_period_whose_only_data_failed_shows_null_not_zero(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    load_inputs(con)
    con.execute(
        "INSERT INTO validation_results (check_name, severity, passed, agency_id, metric_key, period_start, message, checked_at)"
        " VALUES ('c', 'ERROR', FALSE, 'LE9', ?, ?, 'bad', TIMESTAMP '2024-01-01')",
        [ARRESTS, JAN_2023],
    )
    state.ensure_schema(con)
    state.build_state_metrics(con, [JAN_2023])
    value, reporting, expected, population, _pct, rate, complete = total_row(con, ARRESTS, JAN_2023, state_code="US_YY")
    assert (value, reporting, expected, population, rate, complete) == (None, 0, 1, 0, None, False)


# --- fiscal years and calendar-year roll-ups -------------------------------------------------------------


def test_fiscal_year_reporters_are_separate_rows(small_state):
    rows = small_state.execute(
        "SELECT period_kind, period_label, period_start, period_end, value, agencies_reporting, agencies_expected"
        " FROM state_metrics WHERE metric_key = ? AND state_code = 'US_XX' ORDER BY period_start",
        [FUNDING],
    ).fetchall()
    assert rows == [
        # LE3 on a July fiscal year: its own row, expected = the July reporters only.
        ("FISCAL_YEAR", "FY2023 (Jul-Jun)", date(2022, 7, 1), date(2023, 7, 1), 300_000.0, 1, 1),
        # LE1 1,000,000 + LE2 500,000; LE3 (fiscal) and LE4 (disabled; its upload of 77 ignored) not expected.
        ("CALENDAR_YEAR", "CY2023", date(2023, 1, 1), date(2024, 1, 1), 1_500_000.0, 2, 2),
    ]


def test_calendar_year_of_monthly_reporters_needs_all_12_months(small_state):
    # LE1: 101 + 102 + ... + 112 = 1278. LE2 has 11 months (no December) and LE4 two months (one excluded):
    # neither contributes, both count as expected but missing.
    value, reporting, expected, population, pct, rate, complete = total_row(small_state, ARRESTS, JAN_2023, derived=True)
    assert (value, reporting, expected, population, complete) == (1278.0, 1, 3, 100_000, False)
    assert pct == pytest.approx(100_000 / 170_000 * 100)
    assert rate == pytest.approx(1278.0)
    extra = total_row(
        small_state, ARRESTS, JAN_2023, derived=True,
        columns="period_kind, frequency, period_end, aggregation_rule, agencies_missing, agencies_excluded",
    )
    assert extra == ("CALENDAR_YEAR", "ANNUAL", date(2024, 1, 1), "SUM_OF_12_MONTHS", ["LE2", "LE4"], ["LE4"])
    coverage = small_state.execute(
        "SELECT agency_id, reason, months_counted FROM state_coverage"
        " WHERE state_code = 'US_XX' AND metric_key = ? AND period_start = ? AND is_derived_annual ORDER BY agency_id",
        [ARRESTS, JAN_2023],
    ).fetchall()
    assert coverage == [("LE2", "INCOMPLETE_YEAR", 11), ("LE4", "VALIDATION_ERROR", 1)]


def test_annual_reporters_and_derived_years_are_different_rows(small_state):
    # LE3 reports calendar-year arrests itself (500): its own row (expected: the one annual reporter), not
    # mixed with the roll-up of the monthly reporters (1278, 3 expected) nor with the January month row (171).
    annual = total_row(small_state, ARRESTS, JAN_2023, frequency="ANNUAL", columns="value, agencies_reporting, agencies_expected, period_kind")
    assert annual == (500.0, 1, 1, "CALENDAR_YEAR")
    assert total_row(small_state, ARRESTS, JAN_2023, derived=True)[:3] == (1278.0, 1, 3)
    assert total_row(small_state, ARRESTS, JAN_2023)[:3] == (171.0, 3, 3)
    # The combined view adds both kinds: 500 + 1278 = 1778, 2 of 4 agencies (LE1, LE3 of LE1-LE4).
    combined = small_state.execute(
        "SELECT value, agencies_reporting, agencies_reporting_annual, agencies_reporting_monthly, agencies_expected,"
        " population_covered, is_complete FROM state_calendar_years"
        " WHERE state_code = 'US_XX' AND metric_key = ? AND period_start = ? AND dimension IS NULL",
        [ARRESTS, JAN_2023],
    ).fetchall()
    assert combined == [(1778.0, 2, 1, 1, 4, 130_000, False)]


def test_instant_calendar_year_is_the_average_of_the_months(small_state):
    # JL1: (6 x 300 + 6 x 360) / 12 = 330; JL2: 100 -> 430.
    value, reporting, expected, *_ = total_row(small_state, JAIL_POP, JAN_2023, derived=True)
    assert (value, reporting, expected) == (430.0, 2, 2)
    assert total_row(small_state, JAIL_POP, JAN_2023, derived=True, columns="aggregation_rule") == ("SUM_OF_12_MONTH_MEANS",)


def test_money_reported_monthly_makes_a_year_of_its_sum_whatever_its_measurement_type(fresh_state):
    """Funding is INSTANT upstream in prosecution (DELTA in law enforcement), yet money is an annual sum in every
    sector (spec §9.3): a monthly reporter's year is the sum of its 12 months, not their average."""
    funding = "PROSECUTION_FUNDING"
    fresh_state.execute(
        "INSERT INTO metric_definitions VALUES (?, 'PROSECUTION', 'PROSECUTION', 'Funding', 'USD', 'USD', 'INSTANT',"
        " 'ANNUAL', 'CAPACITY_AND_COST', 'sheet', NULL, NULL, NULL, ?)", [funding, REGISTRY.metrics[funding].is_level])
    fresh_state.execute("INSERT INTO agency_metric_settings VALUES ('PR1', ?, TRUE, 'MONTHLY', 1, FALSE, FALSE),"
                        " ('PR2', ?, TRUE, 'ANNUAL', 1, FALSE, FALSE)", [funding, funding])
    months = [date(2023, m, 1) for m in range(1, 13)]
    rows = [("PR1", "MONTHLY", start, date(2023 + m // 12, m % 12 + 1, 1), 100_000.0)
            for m, start in enumerate(months, 1)]
    rows.append(("PR2", "ANNUAL", JAN_2023, date(2024, 1, 1), 1_200_000.0))
    fresh_state.executemany(
        "INSERT INTO agency_metrics VALUES ('US_XX', ?, 'PROSECUTION', ?, ?, ?, ?, NULL, NULL, ?, FALSE, NULL, NULL,"
        " NULL)", [(agency, funding, frequency, start, end, value) for agency, frequency, start, end, value in rows])
    state.build_state_metrics(fresh_state, months)
    # PR1: 12 x 100,000 = 1,200,000 (the average would be 100,000); PR2 reports the calendar year itself.
    derived = total_row(fresh_state, funding, JAN_2023, derived=True, columns="value, agencies_reporting, aggregation_rule")
    assert derived == (1_200_000.0, 1, "SUM_OF_12_MONTHS")
    # A month of it is money, summed, not a snapshot of a level.
    assert total_row(fresh_state, funding, JAN_2023, columns="aggregation_rule") == ("SUM",)
    combined = fresh_state.execute(
        "SELECT value, agencies_reporting FROM state_calendar_years WHERE metric_key = ? AND period_start = ?"
        " AND dimension IS NULL", [funding, JAN_2023]).fetchall()
    assert combined == [(2_400_000.0, 2)]
    # A level reported monthly still averages its months (JL1 330 + JL2 100, above).
    assert total_row(fresh_state, JAIL_POP, JAN_2023, derived=True)[0] == 430.0


def test_a_year_of_averaged_months_is_exact_to_six_decimals(fresh_state):
    """Each jail's January 4 higher: each year's mean rises by 1/3, the state's by 2/3. Rounded one agency at a time
    before the sum, 330.333333 + 100.333333 gave 430.666666 (helper-29: a year of 27 read 26.999999)."""
    fresh_state.execute("UPDATE agency_metrics SET value = value + 4 WHERE metric_key = ? AND period_start = ?"
                        " AND dimension IS NULL", [JAIL_POP, JAN_2023])
    state.build_state_metrics(fresh_state, [JAN_2023])
    assert total_row(fresh_state, JAIL_POP, JAN_2023, derived=True)[:2] == (430.666667, 2)


def test_calendar_year_breakdown_share_counts_every_agency_that_reported_the_dimension(fresh_state):
    """state_calendar_years adds the annual reporters' and the monthly reporters' rows: a breakdown's share counts
    the agencies of both kinds that reported the dimension, also in categories only the other kind reported."""
    rows = [("LE1", "MONTHLY", date(2023, m, 1), date(2023 + m // 12, m % 12 + 1, 1), "PROPERTY", 60.0)
            for m in range(2, 13)]
    rows.append(("LE3", "ANNUAL", JAN_2023, date(2024, 1, 1), "PERSON", 200.0))
    fresh_state.executemany(
        "INSERT INTO agency_metrics VALUES ('US_XX', ?, 'LAW_ENFORCEMENT', ?, ?, ?, ?, ?, ?, ?, FALSE, NULL, NULL,"
        " NULL)", [(agency, ARRESTS, frequency, start, end, OFFENSE, category, value)
                   for agency, frequency, start, end, category, value in rows])
    state.build_state_metrics(fresh_state, ALL_MONTHS)
    # LE3 (annual, total 500) reported PERSON only; LE1 (monthly, 1278 over 2023) the offense dimension in all 12
    # months: PROPERTY in each (61 + 11 x 60 = 721), PERSON in January only (40, its other months adding nothing,
    # as in their month rows). Both reported the offense dimension: 1778 of 1778.
    shares = fresh_state.execute(
        "SELECT category, value, breakdown_share_pct, is_breakdown_published FROM state_calendar_years"
        " WHERE state_code = 'US_XX' AND metric_key = ? AND period_start = ? AND dimension = ? ORDER BY category",
        [ARRESTS, JAN_2023, OFFENSE]).fetchall()
    assert shares == [("PERSON", 240.0, 100.0, True), ("PROPERTY", 721.0, 100.0, True)]


def test_a_derived_years_categories_sum_the_agencies_and_months_of_its_month_rows(fresh_state):
    """helper-29: a jail's category missing from one month dropped the jail's whole year from that category alone
    (10 agencies in it, 11 in the others). Now a category counts the months it has, if the agency reported the
    dimension every month; an agency with a month of no breakdown at all leaves the dimension's year."""
    sex = "global/biological_sex"
    months = [(date(2023, m, 1), date(2023 + m // 12, m % 12 + 1, 1)) for m in range(1, 13)]
    rows = [(agency, start, end, category, value) for start, end in months
            for agency, category, value in (("JL1", "MALE", 240.0), ("JL1", "FEMALE", 60.0),
                                            ("JL2", "MALE", 80.0), ("JL2", "FEMALE", 20.0))
            if not (agency == "JL1" and category == "FEMALE" and start.month == 3)  # JL1: no FEMALE row in March
            and not (agency == "JL2" and start.month == 5)]  # JL2: no breakdown at all in May
    fresh_state.executemany(
        "INSERT INTO agency_metrics VALUES ('US_XX', ?, 'JAILS', ?, 'MONTHLY', ?, ?, ?, ?, ?, FALSE, NULL, NULL,"
        " NULL)", [(agency, JAIL_POP, start, end, sex, category, value)
                   for agency, start, end, category, value in rows])
    state.build_state_metrics(fresh_state, ALL_MONTHS)
    year = fresh_state.execute(
        "SELECT category, value, agencies_reporting FROM state_metrics WHERE metric_key = ? AND period_start = ?"
        " AND is_derived_annual AND dimension = ? ORDER BY category", [JAIL_POP, JAN_2023, sex]).fetchall()
    # JL1 alone (JL2 left the dimension's year): MALE 240; FEMALE 11 x 60 / 12 = 55, the mean of its month rows.
    assert year == [("FEMALE", 55.0, 1), ("MALE", 240.0, 1)]
    months_of_female = fresh_state.execute(
        "SELECT sum(value) / 12 FROM state_metric_contributions WHERE agency_id = 'JL1' AND metric_key = ?"
        " AND NOT is_derived_annual AND category = 'FEMALE' AND year(period_start) = 2023", [JAIL_POP]).fetchall()
    assert months_of_female == [(55.0,)]


def test_derived_year_without_any_complete_agency_is_null(small_state):
    # Prosecution open cases: only January and February reported -> no agency has 12 months.
    value, reporting, expected, *_ = total_row(small_state, OPEN_CASES, JAN_2023, derived=True)
    assert (value, reporting, expected) == (None, 0, 2)



def test_derived_year_sums_only_the_counted_months_of_a_few_month_build(fresh_state):
    """A derived year aggregates the year's datapoints before joining the roster: its agencies and values must
    still be exactly those of the counted monthly rows of state_metric_inputs, also when a build of one month
    (not its January) refreshes the year, rather than a build of the whole history."""
    june, march = date(2023, 6, 1), date(2023, 3, 1)
    # JL2's June population is NaN: 11 counted months, so JL2 leaves CY2023 (JL1 alone: 330) as excluded.
    fresh_state.execute("UPDATE agency_metrics SET value = 'NaN'::DOUBLE WHERE agency_id = 'JL2' AND metric_key = ?"
                        " AND period_start = ?", [JAIL_POP, june])
    state.build_state_metrics(fresh_state, [june])
    extra = "value, agencies_reporting, agencies_expected, agencies_missing, agencies_excluded"
    assert total_row(fresh_state, JAIL_POP, JAN_2023, derived=True, columns=extra) == (330.0, 1, 2, ["JL2"], ["JL2"])
    # A failed ERROR on JL1's March (no period_end: the whole period) leaves nobody with 12 counted months.
    fresh_state.execute(
        "INSERT INTO validation_results (check_name, severity, passed, agency_id, metric_key, period_start, message,"
        " checked_at) VALUES ('c', 'ERROR', FALSE, 'JL1', ?, ?, 'bad', TIMESTAMP '2024-01-01')",
        [JAIL_POP, march],
    )
    state.build_state_metrics(fresh_state, [march])
    assert total_row(fresh_state, JAIL_POP, JAN_2023, derived=True, columns=extra) == (
        None, 0, 2, ["JL1", "JL2"], ["JL1", "JL2"]
    )
    # Every derived contribution is the 12 counted months of state_metric_inputs (whole-history view), and the
    # few-month builds above left the tables as a build of every month leaves them.
    derived = "SELECT agency_id, metric_key, period_start, dimension, category, value, months_combined FROM " \
              "state_metric_contributions WHERE is_derived_annual ORDER BY ALL"
    from_inputs = fresh_state.execute(
        "SELECT agency_id, metric_key, make_date(year(period_start), 1, 1), dimension, category,"
        " CASE WHEN measurement_type = 'INSTANT' THEN avg(value::DECIMAL(38, 6))"
        " ELSE sum(value::DECIMAL(38, 6))::DOUBLE END, count(DISTINCT period_start)"
        " FROM state_metric_inputs WHERE is_counted AND frequency = 'MONTHLY'"
        " GROUP BY agency_id, metric_key, measurement_type, year(period_start), dimension, category"
        " HAVING count(DISTINCT period_start) = 12 ORDER BY ALL"
    ).fetchall()
    assert fresh_state.execute(derived).fetchall() == from_inputs
    assert ("JL1", JAIL_POP) not in {row[:2] for row in from_inputs}
    few_months = _snapshot(fresh_state)
    state.build_state_metrics(fresh_state, ALL_MONTHS)
    assert _snapshot(fresh_state) == few_months


def test_the_build_reads_the_comparable_rows_of_state_metric_inputs(small_state):
    """The build reads state_comparable_of, the join of state_metric_inputs_of without its explanations: the same
    rows as the view's comparable ones, over the whole history and over a slice."""
    columns = ("state_code, sector, agency_id, metric_key, measurement_type, frequency, period_kind, period_start,"
               " period_end, dimension, category, value, population, is_excluded")
    for months in (None, [JAN_2023, date(2023, 7, 1)]):
        comparable = small_state.execute(
            f"SELECT {columns} FROM state_comparable_of($months::DATE[]) ORDER BY ALL", {"months": months}
        ).fetchall()
        judged = small_state.execute(
            f"SELECT {columns} FROM state_metric_inputs_of($months::DATE[]) WHERE is_comparable ORDER BY ALL",
            {"months": months},
        ).fetchall()
        assert comparable == judged
        assert len(comparable) < small_state.execute(
            "SELECT count(*) FROM state_metric_inputs_of($months::DATE[])", {"months": months}
        ).fetchone()[0]

def test_a_row_says_how_many_agencies_report_its_metric_at_another_cadence(small_state):
    """helper-29: a month row read "1 of 1, complete" while 37 agencies report the metric yearly. Arrests: LE1, LE2
    and LE4 monthly, LE3 for calendar years; funding: LE1 and LE2 for calendar years, LE3 for July fiscal years."""
    other = "agencies_expected, agencies_expected_other_cadence"
    assert total_row(small_state, ARRESTS, JAN_2023, columns=other) == (3, 1)
    assert total_row(small_state, ARRESTS, JAN_2023, derived=True, columns=other) == (3, 1)
    assert total_row(small_state, FUNDING, JAN_2023, frequency="ANNUAL", columns=other) == (2, 1)
    assert total_row(small_state, FUNDING, date(2022, 7, 1), frequency="ANNUAL", columns=other) == (1, 2)
    breakdowns = small_state.execute(
        "SELECT DISTINCT agencies_expected_other_cadence FROM state_metrics WHERE dimension IS NOT NULL").fetchall()
    assert breakdowns == [(None,)]
    fiscal = small_state.execute(
        "SELECT metric_key, agencies_expected, agencies_expected_fiscal_year FROM state_calendar_years"
        " WHERE state_code = 'US_XX' AND period_start = ? AND dimension IS NULL AND metric_key IN (?, ?) ORDER BY 1",
        [JAN_2023, ARRESTS, FUNDING]).fetchall()
    assert fiscal == [(ARRESTS, 4, 0), (FUNDING, 2, 1)]


# --- supervision and caseloads -----------------------------------------------------------------------------


def test_supervision_without_double_counting(small_state):
    # Combined key: only SUP2 (250); SUP1's stray combined 1300 is ignored because SUP1 reports by subsystem.
    assert total_row(small_state, SUP_POP, JAN_2023)[:3] == (250.0, 1, 1)
    # "1 of 1, complete" says so: SUP1 reports this metric by subsystem, elsewhere.
    assert total_row(small_state, SUP_POP, JAN_2023, columns="is_complete, agencies_expected_by_subsystem") == (True, 1)
    assert total_row(small_state, PAROLE_POP, JAN_2023, columns="agencies_expected_by_subsystem") == (None,)
    assert total_row(small_state, PAROLE_POP, JAN_2023)[:3] == (400.0, 1, 1)
    assert total_row(small_state, PROBATION_POP, JAN_2023)[:3] == (900.0, 1, 1)
    reason = small_state.execute(
        "SELECT uncounted_reason FROM state_metric_inputs WHERE agency_id = 'SUP1' AND metric_key = ?", [SUP_POP]
    ).fetchall()
    assert reason == [("SUPERVISION_REPORTED_BY_SUBSYSTEM",)]
    # Whole state: SUP2 250 + SUP1 (400 + 900) = 1550 over 2 agencies, never 2850.
    totals = small_state.execute(
        "SELECT value, agencies_reporting, agencies_reporting_combined, agencies_reporting_by_subsystem,"
        " subsystems_reported, agencies_expected, population_covered, is_complete, rate_per_100k"
        " FROM state_supervision_totals"
        " WHERE metric_key = ? AND period_start = ? AND NOT is_derived_annual AND dimension IS NULL",
        [SUP_POP, JAN_2023],
    ).fetchall()
    assert totals == [(1550.0, 2, 1, 1, ["PAROLE", "PROBATION"], 2, 700_000, True,
                       pytest.approx(1550 / 700_000 * 100_000))]


def test_an_agency_missing_one_of_its_subsystems_makes_the_supervision_total_partial(fresh_state):
    """SUP1 reports parole and probation by subsystem; its month without probation is a partial value, not a
    complete whole state (helper-29: 3 of 3 agencies, complete, at half the population)."""
    fresh_state.execute("DELETE FROM agency_metrics WHERE agency_id = 'SUP1' AND metric_key = ? AND period_start = ?",
                        [PROBATION_POP, JAN_2023])
    state.build_state_metrics(fresh_state, [JAN_2023])
    totals = fresh_state.execute(
        "SELECT value, agencies_reporting, agencies_partial, subsystems_reported, agencies_expected, is_complete"
        " FROM state_supervision_totals"
        " WHERE metric_key = ? AND period_start = ? AND NOT is_derived_annual AND dimension IS NULL",
        [SUP_POP, JAN_2023],
    ).fetchall()
    assert totals == [(650.0, 2, 1, ["PAROLE"], 2, False)]  # SUP2 250 + SUP1's parole 400


def test_a_subsystem_without_one_categorys_row_is_not_partial(fresh_state):
    """helper-31: SUP1's probation has no FEMALE row (no women that month) while its parole has; its FEMALE row is
    no partial agency, its totals having both subsystems."""
    sex = "global/biological_sex"
    rows = [(PAROLE_POP, "MALE", 300.0), (PAROLE_POP, "FEMALE", 100.0), (PROBATION_POP, "MALE", 900.0)]
    fresh_state.executemany(
        "INSERT INTO agency_metrics VALUES ('US_XX', 'SUP1', 'SUPERVISION', ?, 'MONTHLY', ?, ?, ?, ?, ?, FALSE, NULL,"
        " NULL, NULL)", [(key, JAN_2023, date(2023, 2, 1), sex, category, value) for key, category, value in rows])
    state.build_state_metrics(fresh_state, [JAN_2023])
    partial = fresh_state.execute(
        "SELECT category, agencies_partial FROM state_supervision_totals WHERE metric_key = ? AND period_start = ?"
        " AND NOT is_derived_annual ORDER BY category NULLS FIRST", [SUP_POP, JAN_2023]).fetchall()
    assert partial == [(None, 0), ("FEMALE", 0), ("MALE", 0)]


def test_supervision_reasons_name_the_structure_only_when_the_structure_is_wrong(fresh_state):
    """SUPERVISION_REPORTED_* say that the key's structure is ruled out by the agency's setting; a key of the right
    structure sent at another cadence is a FREQUENCY_MISMATCH like any other metric's."""
    # SUP2 reports combined: a setting for a subsystem key it does not use (PAROLE, not disaggregated).
    fresh_state.execute("INSERT INTO agency_metric_settings VALUES ('SUP2', ?, TRUE, 'MONTHLY', 1, FALSE, FALSE)",
                        [PAROLE_POP])
    rows = [("SUP1", PAROLE_POP, "ANNUAL", JAN_2023, date(2024, 1, 1), 410.0),  # right structure, wrong cadence
            ("SUP2", SUP_POP, "ANNUAL", JAN_2023, date(2024, 1, 1), 260.0),  # right structure, wrong cadence
            ("SUP2", PAROLE_POP, "MONTHLY", JAN_2023, date(2023, 2, 1), 90.0)]  # subsystem key, combined agency
    fresh_state.executemany(
        "INSERT INTO agency_metrics VALUES ('US_XX', ?, 'SUPERVISION', ?, ?, ?, ?, NULL, NULL, ?, FALSE, NULL, NULL,"
        " NULL)", rows)
    reasons = fresh_state.execute(
        "SELECT agency_id, metric_key, frequency, uncounted_reason FROM state_metric_inputs"
        " WHERE agency_id LIKE 'SUP%' AND NOT is_counted ORDER BY ALL").fetchall()
    assert reasons == [
        ("SUP1", PAROLE_POP, "ANNUAL", "FREQUENCY_MISMATCH"),
        ("SUP1", SUP_POP, "MONTHLY", "SUPERVISION_REPORTED_BY_SUBSYSTEM"),  # the fixture's stray combined upload
        ("SUP2", PAROLE_POP, "MONTHLY", "SUPERVISION_REPORTED_COMBINED"),
        ("SUP2", SUP_POP, "ANNUAL", "FREQUENCY_MISMATCH"),
    ]


def test_caseload_is_a_ratio_of_sums_over_agencies_reporting_both(small_state):
    rows = small_state.execute(
        "SELECT period_start, agencies_reporting_both, open_cases, staff_with_caseload, caseload,"
        " open_cases_agencies_reporting, staff_agencies_reporting, agencies_expected, is_complete FROM state_caseloads"
        " WHERE open_cases_metric_key = ? AND NOT is_derived_annual AND dimension IS NULL ORDER BY period_start",
        [OPEN_CASES],
    ).fetchall()
    assert rows == [
        # (200 + 100) / (10 + 20) = 10, not the mean of 20 and 5 (12.5); both expected agencies: complete.
        (JAN_2023, 2, 300.0, 30.0, 10.0, 2, 2, 2, True),
        # February: PR2 reported open cases without staff, so only PR1: 200 / 10 = 20 (not 300 / 10), 1 of the 2
        # expected agencies: not complete (helper-40: is_complete was never asserted).
        (date(2023, 2, 1), 1, 200.0, 10.0, 20.0, 2, 1, 2, False),
    ]


# --- breakdowns ----------------------------------------------------------------------------------------------


def test_breakdown_gate_publishes_and_flags(small_state):
    cols = "value, agencies_reporting, breakdown_share_pct, breakdown_threshold_pct, is_breakdown_published"
    # Offense type reported by LE1 (total 101) and LE2 (total 50): 151 / 171 = 88.3 % >= 80 %.
    person = breakdown_row(small_state, ARRESTS, JAN_2023, OFFENSE, "PERSON", cols)
    assert person[:2] == (50.0, 2)  # 40 + 10
    assert person[2] == pytest.approx(151 / 171 * 100)
    assert person[3:] == (pytest.approx(80.0), True)
    prop = breakdown_row(small_state, ARRESTS, JAN_2023, OFFENSE, "PROPERTY", cols)
    assert prop[:2] == (61.0, 1)
    assert prop[4] is True  # the gate is per dimension: LE2 reported offense type, just not PROPERTY
    # Race reported only by LE4 (total 20): 20 / 171 = 11.7 % -> kept but flagged.
    race = breakdown_row(small_state, ARRESTS, JAN_2023, RACE, "NOT_HISPANIC_BLACK", cols)
    assert race[:2] == (20.0, 1)
    assert race[2] == pytest.approx(20 / 171 * 100)
    assert race[4] is False
    # Totals are not gated.
    assert total_row(small_state, ARRESTS, JAN_2023, columns="is_breakdown_published, breakdown_share_pct") == (None, None)


def test_breakdown_threshold_is_configurable(tmp_path):
    con = build_small_state(tmp_path / "w.duckdb", threshold=0.9)
    cols = "breakdown_threshold_pct, is_breakdown_published"
    assert breakdown_row(con, ARRESTS, JAN_2023, OFFENSE, "PERSON", cols) == (pytest.approx(90.0), False)  # 88.3 < 90
    with pytest.raises(ValueError):
        state.build_state_metrics(con, [JAN_2023], breakdown_coverage_threshold=1.5)
    con.close()


def test_a_breakdown_exactly_at_the_threshold_is_published(tmp_path):
    """The gate is share >= threshold (docs/warehouse.md; helper-40: '>' passed every test, none sat on it)."""
    con = build_small_state(tmp_path / "w.duckdb", threshold=151 / 171)  # offense type's share, exactly
    cols = "breakdown_share_pct, breakdown_threshold_pct, is_breakdown_published"
    assert breakdown_row(con, ARRESTS, JAN_2023, OFFENSE, "PERSON", cols) == (
        pytest.approx(151 / 171 * 100), pytest.approx(151 / 171 * 100), True)
    con.close()


# --- comparisons -------------------------------------------------------------------------------------------


def test_year_over_year_change_over_common_agencies(small_state):
    rows = small_state.execute(
        "SELECT previous_period_start, agencies_compared, agencies_compared_ids, previous_value, current_value,"
        " value_change, pct_change, agencies_reporting_current, state_value_current, state_value_previous"
        " FROM state_metric_changes WHERE state_code = 'US_XX' AND metric_key = ? AND period_start = ?"
        " AND frequency = 'MONTHLY' AND dimension IS NULL",
        [ARRESTS, JAN_2023],
    ).fetchall()
    # Jan 2022: LE1 90 + LE2 40 = 130. Jan 2023 over the same two: 101 + 50 = 151 (LE4, new in 2023, left out).
    (prev_start, compared, ids, previous, current, change, pct, reporting_now, state_now, state_before) = rows[0]
    assert len(rows) == 1
    assert (prev_start, compared, ids, previous, current, change) == (date(2022, 1, 1), 2, ["LE1", "LE2"], 130.0, 151.0, 21.0)
    assert pct == pytest.approx(21 / 130 * 100)
    assert (reporting_now, state_now, state_before) == (3, 171.0, 130.0)
    # Derived calendar years: only LE1 has both full years: 1080 -> 1278.
    derived = small_state.execute(
        "SELECT agencies_compared, previous_value, current_value, value_change FROM state_metric_changes"
        " WHERE state_code = 'US_XX' AND metric_key = ? AND is_derived_annual AND dimension IS NULL",
        [ARRESTS],
    ).fetchall()
    assert derived == [(1, 1080.0, 1278.0, 198.0)]


# --- partitions and idempotence ------------------------------------------------------------------------------


def _snapshot(con):
    return (
        con.execute("SELECT * FROM state_metrics ORDER BY ALL").fetchall(),
        con.execute("SELECT * FROM state_metric_contributions ORDER BY ALL").fetchall(),
    )


def test_rebuild_is_idempotent(fresh_state):
    before = _snapshot(fresh_state)
    written = state.build_state_metrics(fresh_state, ALL_MONTHS)
    assert written == len(before[0])
    assert _snapshot(fresh_state) == before
    state.ensure_schema(fresh_state)  # idempotent too, and keeps the data
    assert _snapshot(fresh_state) == before
    # Rebuilding the months one at a time, in another order, gives the same table.
    for month in reversed(ALL_MONTHS):
        state.build_state_metrics(fresh_state, [month])
    assert _snapshot(fresh_state) == before


def test_building_a_month_touches_only_that_month_and_its_derived_year(fresh_state):
    before = _snapshot(fresh_state)
    fresh_state.execute("UPDATE agency_metrics SET value = value + 1000 WHERE metric_key = ? AND period_start = ?", [JAIL_POP, date(2023, 5, 1)])
    # January changes too, but January is not built: its rows must keep their old values.
    fresh_state.execute("UPDATE agency_metrics SET value = value + 1 WHERE period_start = ?", [JAN_2023])
    state.build_state_metrics(fresh_state, [date(2023, 5, 17)])  # any day stands for its month
    # May changed (300 + 1000 + 100 + 1000); so did the CY2023 derived row of May's year, read from all twelve
    # months: JL1 (330 + (1000 + 1)/12) + JL2 (100 + (1000 + 1)/12).
    assert total_row(fresh_state, JAIL_POP, date(2023, 5, 1))[0] == 2400.0
    assert total_row(fresh_state, JAIL_POP, JAN_2023, derived=True)[0] == pytest.approx(430 + 2002 / 12)
    # Rows of other months (January's month and annual rows too) and other derived years are untouched.
    def kept(row):
        return not (row[4] == date(2023, 5, 1) or (row[4] == JAN_2023 and row[17]))  # row[17]: is_derived_annual
    after = _snapshot(fresh_state)[0]
    assert [row for row in after if kept(row)] == [row for row in before[0] if kept(row)]
    assert total_row(fresh_state, JAIL_POP, date(2023, 6, 1))[0] == 400.0


def test_building_some_agencies_gives_the_tables_of_a_whole_build_and_keeps_the_others_rows(fresh_state, tmp_path):
    """A nightly roll-up rebuilds the contributions of the agencies whose datapoints changed, not the month's: after
    JL1's May changes, building May for JL1 alone leaves every other agency's rows where they were (their rowids)
    and both tables as a whole build of May leaves them, the derived year and the sums over every agency included."""
    may = date(2023, 5, 1)
    fresh_state.execute("UPDATE agency_metrics SET value = value + 60 WHERE agency_id = 'JL1' AND period_start = ?",
                        [may])
    positions = "SELECT agency_id, rowid FROM state_metric_contributions ORDER BY ALL"
    before = fresh_state.execute(positions).fetchall()
    state.build_state_metrics(fresh_state, [may], agencies=["JL1"])
    after = fresh_state.execute(positions).fetchall()
    assert [row for row in after if row[0] != "JL1"] == [row for row in before if row[0] != "JL1"]
    # JL1's May and derived-year rows were written again: new rowids beside the ones kept.
    assert set(after) - set(before) and all(row[0] == "JL1" for row in set(after) - set(before))
    # May: JL1 300 + 60, JL2 100; CY2023: JL1 330 + 60/12, JL2 100.
    assert total_row(fresh_state, JAIL_POP, may)[0] == 460.0
    assert total_row(fresh_state, JAIL_POP, JAN_2023, derived=True)[0] == pytest.approx(330 + 5 + 100)
    scoped = _snapshot(fresh_state)
    state.build_state_metrics(fresh_state, [may])
    assert _snapshot(fresh_state) == scoped
    # An agency whose datapoints did not change rebuilds to the same rows; no agency at all, to the same sums.
    state.build_state_metrics(fresh_state, [may], agencies=["JL2"])
    state.build_state_metrics(fresh_state, [may], agencies=[])
    assert _snapshot(fresh_state) == scoped


def test_a_nightly_roll_up_sums_its_rebuilds_at_once_as_each_alone_would(fresh_state, tmp_path, monkeypatch):
    """Late corrections of two agencies in two years, rebuilt in one call: each agency's contributions of its own
    month, then the state rows of both months summed in one statement across the years; both tables, and the rows
    written, are those of building each correction on its own. A build of more months sums a year at a time."""
    from jc_pipeline.lib.state import rollup

    corrections = [([date(2022, 3, 1)], ["JL1"]), ([date(2023, 5, 1)], ["JL2"])]
    one_by_one = build_small_state(tmp_path / "one_by_one.duckdb")
    for con in (fresh_state, one_by_one):
        con.execute("UPDATE agency_metrics SET value = value + 60 WHERE (agency_id = 'JL1' AND period_start = ?) "
                    "OR (agency_id = 'JL2' AND period_start = ?)", [date(2022, 3, 1), date(2023, 5, 1)])
    sums: list[list[date]] = []

    def run_statement(con, path, parameters):
        if path.endswith("_insert_state_metrics.sql"):
            sums.append(parameters["months"])
        return state_statement(con, path, parameters)

    state_statement = rollup.run_statement
    monkeypatch.setattr(rollup, "run_statement", run_statement)
    written = state.rebuild_state_metrics(fresh_state, corrections)
    assert sums == [[date(2022, 3, 1), date(2023, 5, 1)]]
    assert written == sum(state.build_state_metrics(one_by_one, months, agencies=agencies)
                          for months, agencies in corrections)
    assert _snapshot(fresh_state) == _snapshot(one_by_one)
    assert total_row(fresh_state, JAIL_POP, date(2023, 5, 1)) != total_row(build_small_state(tmp_path / "before"),
                                                                          JAIL_POP, date(2023, 5, 1))
    sums.clear()
    state.rebuild_state_metrics(fresh_state, [(ALL_MONTHS, None)])
    assert sums == [ALL_MONTHS[:12], ALL_MONTHS[12:]]


def test_build_of_no_months_writes_nothing(fresh_state):
    before = _snapshot(fresh_state)
    assert state.build_state_metrics(fresh_state, []) == 0
    assert _snapshot(fresh_state) == before


def test_failed_build_leaves_the_table_as_it_was(fresh_state, monkeypatch):
    before = _snapshot(fresh_state)
    files = tuple(state.BUILD_SQL_FILES)
    from jc_pipeline.lib.state import rollup

    # Make the last statement fail after the deletes ran: the transaction must roll them back.
    monkeypatch.setattr(rollup, "BUILD_SQL_FILES", files[:-1] + ("build/does_not_exist.sql",))
    with pytest.raises(Exception):
        state.build_state_metrics(fresh_state, ALL_MONTHS)
    assert _snapshot(fresh_state) == before


# --- schema and comments -----------------------------------------------------------------------------------


def test_every_state_table_view_and_column_has_a_comment(small_state):
    objects = small_state.execute(
        "SELECT table_name, comment FROM duckdb_tables() WHERE table_name LIKE 'state_%'"
        " UNION ALL SELECT view_name, comment FROM duckdb_views() WHERE view_name LIKE 'state_%'"
    ).fetchall()
    names = {name for name, _ in objects}
    assert {"state_metrics", "state_metric_contributions", "state_expected_agencies", "state_metric_inputs",
            "state_coverage", "state_metric_changes", "state_caseloads", "state_supervision_totals",
            "state_calendar_years"} <= names
    assert [name for name, comment in objects if not comment] == []
    uncommented = small_state.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE table_name LIKE 'state_%' AND (comment IS NULL OR comment = '')"
    ).fetchall()
    assert uncommented == []


def test_state_metrics_keeps_the_design_columns(small_state):
    columns = [row[0] for row in small_state.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'state_metrics' ORDER BY column_index"
    ).fetchall()]
    assert columns[:15] == [
        "state_code", "sector", "metric_key", "frequency", "period_start", "period_end", "dimension", "category",
        "value", "agencies_reporting", "agencies_expected", "population_covered", "coverage_population_pct",
        "rate_per_100k", "is_complete",
    ]


def test_ensure_schema_on_an_empty_file_creates_everything(tmp_path):
    con = duckdb.connect(str(tmp_path / "empty.duckdb"))
    state.ensure_schema(con)
    state.ensure_schema(con)
    assert state.build_state_metrics(con, [JAN_2023]) == 0
    assert con.execute("SELECT count(*) FROM state_coverage").fetchall() == [(0,)]
    con.close()


def test_non_finite_value_is_not_summed(fresh_state):
    # A NaN slipping past the checks must not poison or abort the roll-up: LE9's only January value is NaN.
    fresh_state.execute("UPDATE agency_metrics SET value = 'NaN'::DOUBLE WHERE agency_id = 'LE9'")
    state.build_state_metrics(fresh_state, [JAN_2023])
    assert total_row(fresh_state, ARRESTS, JAN_2023, state_code="US_YY")[:3] == (None, 0, 1)
    reason = fresh_state.execute("SELECT uncounted_reason FROM state_metric_inputs WHERE agency_id = 'LE9'").fetchall()
    assert reason == [("VALUE_NOT_FINITE",)]


def test_rate_needs_every_reporting_population(fresh_state):
    # LE2 without a population: Jan 2023 covers LE1 100,000 + LE4 20,000 only, so no rate can be computed.
    fresh_state.execute("UPDATE agencies SET population = NULL WHERE agency_id = 'LE2'")
    state.build_state_metrics(fresh_state, [JAN_2023])
    value, reporting, expected, population, pct, rate, _ = total_row(fresh_state, ARRESTS, JAN_2023)
    assert (value, reporting, expected, population, rate) == (171.0, 3, 3, 120_000, None)
    # The share of the expected population is unknown too, whether LE2 reports or not (helper-62: "100% of their
    # population covered" while LE2 was missing); the derived year's view says the same.
    assert pct is None
    state.build_state_metrics(fresh_state, [date(2023, 12, 1)])
    assert total_row(fresh_state, ARRESTS, date(2023, 12, 1))[:5] == (112.0, 1, 3, 100_000, None)
    year = fresh_state.execute(
        "SELECT population_covered, coverage_population_pct FROM state_calendar_years"
        " WHERE state_code = 'US_XX' AND metric_key = ? AND period_start = ? AND dimension IS NULL",
        [ARRESTS, JAN_2023]).fetchall()
    assert year == [(130_000, None)]


def test_disabling_a_metric_removes_the_agency_from_expected(fresh_state):
    fresh_state.execute("UPDATE agency_metric_settings SET enabled = FALSE WHERE agency_id = 'LE4' AND metric_key = ?", [ARRESTS])
    state.build_state_metrics(fresh_state, [date(2023, 2, 1)])
    # Feb 2023: LE1 102 + LE2 50, now 2 of 2 expected.
    assert total_row(fresh_state, ARRESTS, date(2023, 2, 1))[:3] == (152.0, 2, 2)
    assert total_row(fresh_state, ARRESTS, date(2023, 2, 1), columns="is_complete") == (True,)


def test_build_leaves_the_connection_usable_for_polars(fresh_state):
    # DuckDB 2.0: an unfinished execute() result blocks the next con.sql() fetch (stack-notes §3.2).
    state.build_state_metrics(fresh_state, [JAN_2023])
    frame = fresh_state.sql("SELECT count(*) AS n FROM state_metrics WHERE period_start = $p", params={"p": JAN_2023}).pl()
    assert frame["n"][0] > 0
