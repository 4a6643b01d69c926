"""Annual and fiscal-year native metrics: periods as bulk uploads store them; values computed by hand."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest

from jc_pipeline_tests.ingest_support import Warehouse, deliver_csv
from jc_pipeline_tests.test_mappings_counts import file_row, findings, write_mapping

#: agency_id, agency_name, state_code, sectors, county_fips, population, fiscal_year_start_month, superagency_id
ROSTER = [
    ("july_jail", "July County Jail", "US_XX", "JAILS", "", "30000", "7", ""),  # fiscal years start in July
    ("july_jail_2", "Other July Jail", "US_XX", "JAILS", "", "20000", "7", ""),  # delivers bulk uploads
    ("calendar_jail", "Calendar Jail", "US_XX", "JAILS", "", "20000", "1", ""),
]
#: agency_id, metric_key, enabled, frequency, starting_month, disaggregated_by_supervision_subsystems
SETTINGS = [
    ("july_jail", "JAILS_TOTAL_ADMISSIONS", "", "ANNUAL", "", ""),
    ("july_jail", "JAILS_TOTAL_POPULATION", "", "ANNUAL", "", ""),
]
BOOKINGS = """
sources:
  - name: bookings
    pattern: JAILS/bookings.csv
    kind: records
    period: {from: 2022-07}
    columns: {in: Booked, out: Released}
    metrics:
      - metric: JAILS_TOTAL_ADMISSIONS
        date: in
      - metric: JAILS_TOTAL_POPULATION
        count: population
        start: in
        end: out
"""
FY2023 = (date(2022, 7, 1), date(2023, 7, 1))  # the fiscal year labelled 2023: 365 days
FY2024 = (date(2023, 7, 1), date(2024, 7, 1))  # 366 days (February 2024)


@pytest.fixture
def w(tmp_path):
    warehouse = Warehouse(tmp_path, agencies=ROSTER, settings=SETTINGS)
    yield warehouse
    warehouse.close()


def annual(batch, metric: str) -> dict:
    frame = batch.datapoints.filter((pl.col("metric_key") == metric) & pl.col("dimension").is_null())
    assert set(frame["frequency"]) <= {"ANNUAL"}
    return {(r["period_start"], r["period_end"]): r["value"] for r in frame.iter_rows(named=True)}


def test_records_of_an_annual_metric_count_per_fiscal_year_once_the_year_is_over(w):
    write_mapping(w.data_dir, "july_jail", BOOKINGS)
    deliver_csv(w.data_dir, "july_jail", "JAILS", "bookings.csv", [
        ["Booked", "Released"],
        ["2022-06-30", "2022-07-02"],  # booked before period.from: no admission; held July 1 (1 day in FY2023)
        ["2022-07-01", "2022-07-11"],  # FY2023: one admission, 10 days
        ["2023-06-01", "2023-08-01"],  # FY2023: one admission, June = 30 days; FY2024: July = 31 days
        ["2024-07-02", "2024-07-03"],  # FY2025, still in progress on the ingest day: not emitted
    ])
    batch = w.parse(datetime(2024, 8, 15))
    assert annual(batch, "JAILS_TOTAL_ADMISSIONS") == {FY2023: 2}  # FY2024 had no admission: missing, not 0
    assert annual(batch, "JAILS_TOTAL_POPULATION") == {FY2023: pytest.approx((1 + 10 + 30) / 365),
                                                       FY2024: pytest.approx(31 / 366)}
    assert file_row(batch, "bookings.csv")["rows_rejected"] == 0


def test_without_period_from_a_fiscal_year_begun_before_the_first_record_is_left_out(w):
    """helper-41: records from January 2024 gave FY2024 (July 2023 .. June 2024) from half its months, published as
    the year's count. The export's first date bounds the first year as its last date bounds the last."""
    write_mapping(w.data_dir, "july_jail", BOOKINGS.replace("    period: {from: 2022-07}\n", ""))
    deliver_csv(w.data_dir, "july_jail", "JAILS", "bookings.csv", [
        ["Booked", "Released"],
        ["2024-01-15", "2024-01-20"],  # FY2024, which began before the first record: not whole
        ["2024-07-01", "2024-07-11"],  # FY2025 from its first day
        ["2025-06-01", "2025-07-01"],
    ])
    batch = w.parse(datetime(2025, 8, 15))
    assert annual(batch, "JAILS_TOTAL_ADMISSIONS") == {(date(2024, 7, 1), date(2025, 7, 1)): 2}
    assert annual(batch, "JAILS_TOTAL_POPULATION") == {(date(2024, 7, 1), date(2025, 7, 1)): pytest.approx(40 / 365)}


def test_a_fiscal_year_still_running_on_the_extracts_last_date_is_left_out(w):
    write_mapping(w.data_dir, "july_jail", BOOKINGS)
    deliver_csv(w.data_dir, "july_jail", "JAILS", "bookings.csv", [
        ["Booked", "Released"], ["2022-07-01", "2022-07-11"], ["2023-07-01", "2023-07-02"],
        ["2024-05-31", ""]])  # the extract's last date is in May 2024: FY2024 (to June) is not over
    batch = w.parse(datetime(2024, 6, 1))
    assert annual(batch, "JAILS_TOTAL_ADMISSIONS") == {FY2023: 1}
    assert annual(batch, "JAILS_TOTAL_POPULATION") == {FY2023: pytest.approx(10 / 365)}


FUNDING = """
sources:
  - name: budget
    pattern: JAILS/budget.csv
    kind: aggregated
    delimiter: ";"
    columns: {fy: Fiscal Year, source: Funding Source, amount: Amount}
    metrics:
      - metric: JAILS_FUNDING
        year: fy
        value: amount
        breakdowns:
          - dimension: metric/jails/funding/type
            column: source
            values: {State: STATE_APPROPRIATION, County: COUNTY_MUNICIPAL, Grants: GRANTS}
"""


def test_an_aggregated_fiscal_year_column_names_the_year_the_fiscal_year_ends(w):
    write_mapping(w.data_dir, "july_jail", FUNDING)
    path = w.data_dir / "inbox" / "july_jail" / "JAILS" / "budget.csv"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join([
        "Fiscal Year;Funding Source;Amount",
        "2023;State;1,000,000",  # FY Jul 2022 - Jun 2023
        "2022-2023;County;250000",  # the same fiscal year, written as a range
        "2024;State;1,100,000",
        "2024;Grants;50000",
        "2023-2025;State;5",  # not one fiscal year: N4
    ]) + "\n")
    batch = w.parse()
    assert annual(batch, "JAILS_FUNDING") == {FY2023: 1_250_000, FY2024: 1_150_000}
    types = batch.datapoints.filter(pl.col("dimension").is_not_null())
    assert {(r["period_start"], r["category"]): r["value"] for r in types.iter_rows(named=True)} == {
        (FY2023[0], "STATE_APPROPRIATION"): 1_000_000, (FY2023[0], "COUNTY_MUNICIPAL"): 250_000,
        (FY2024[0], "STATE_APPROPRIATION"): 1_100_000, (FY2024[0], "GRANTS"): 50_000}
    assert findings(batch, "budget.csv") == [("N4", 6, "Fiscal Year", "2023-2025")]


def test_annual_native_periods_are_stored_like_annual_bulk_uploads(w):
    write_mapping(w.data_dir, "july_jail", FUNDING)
    path = w.data_dir / "inbox" / "july_jail" / "JAILS" / "budget.csv"
    path.parent.mkdir(parents=True)
    path.write_text("Fiscal Year;Funding Source;Amount\n2023;State;10\n")
    deliver_csv(w.data_dir, "july_jail_2", "JAILS", "funding.csv", [["year", "value"], [2023, 20]])
    w.ingest()
    stored = w.metrics().filter(pl.col("dimension").is_null()).select(
        "agency_id", "frequency", "period_start", "period_end", "value").rows()
    assert stored == [("july_jail", "ANNUAL", *FY2023, 10.0), ("july_jail_2", "ANNUAL", *FY2023, 20.0)]


def test_a_range_is_a_fiscal_year_and_a_year_alone_is_no_month(w):
    text = FUNDING + """      - metric: JAILS_TOTAL_ADMISSIONS
        year: fy
        value: amount
"""
    write_mapping(w.data_dir, "calendar_jail", text)
    path = w.data_dir / "inbox" / "calendar_jail" / "JAILS" / "budget.csv"
    path.parent.mkdir(parents=True)
    path.write_text("Fiscal Year;Funding Source;Amount\n2023;State;10\n2022-2023;State;20\n")
    batch = w.parse()
    # Calendar years: 2023 is Jan-Dec 2023; a range names a fiscal year, which this agency does not have.
    assert annual(batch, "JAILS_FUNDING") == {(date(2023, 1, 1), date(2024, 1, 1)): 10}
    assert [f[:2] + f[3:] for f in findings(batch, "budget.csv")] == [("N2", 1, None), ("N4", 3, "2022-2023")]
    assert "JAILS_TOTAL_ADMISSIONS is reported monthly by calendar_jail" in batch.findings["message"][0]
    assert batch.datapoints.filter(pl.col("metric_key") == "JAILS_TOTAL_ADMISSIONS").height == 0


MONTHLY_STATS = """
sources:
  - name: monthly_stats
    pattern: JAILS/monthly_stats.csv
    kind: aggregated
    columns: {yr: Year, mo: Month, day: Day, adp: ADP, adm: Admissions}
    metrics:
      - metric: JAILS_TOTAL_POPULATION
        {period}
        value: adp
      - metric: JAILS_TOTAL_ADMISSIONS
        {period}
        value: adm
"""
FY2025 = (date(2024, 7, 1), date(2025, 7, 1))
FY2026 = (date(2025, 7, 1), date(2026, 7, 1))


@pytest.mark.parametrize("period", ["year: yr\n        month: mo", "date: day"], ids=["year_and_month", "date"])
def test_monthly_aggregated_rows_make_a_year_of_an_annual_metric(w, period):
    """An average daily population of 100 and 10 admissions a month: a fiscal year holds a population of 100 (the
    months' average; their sum was 1,200) and 120 admissions. Year and month rows count only for the years that
    have all twelve months (from October 2022: FY2023 has 9; FY2026 lacks December 2025); by date, one row may be
    a year's. A year still running on the ingest day is no count yet, by either (its 4 months were stored, and
    rejected only by the checks)."""
    write_mapping(w.data_dir, "july_jail", MONTHLY_STATS.replace("{period}", period))
    months = [(y, m) for y in range(2022, 2027) for m in range(1, 13) if (2022, 10) <= (y, m) <= (2026, 6)]
    months = [ym for ym in months if ym != (2025, 12)] + [(2026, m) for m in (7, 8, 9, 10)]
    deliver_csv(w.data_dir, "july_jail", "JAILS", "monthly_stats.csv", [
        ["Year", "Month", "Day", "ADP", "Admissions"], *([y, m, f"{y}-{m:02d}-15", 100, 10] for y, m in months)])
    batch = w.parse(datetime(2026, 11, 20))
    whole = {FY2024: 100, FY2025: 100}
    if period == "date: day":  # a date places a row in its year: its rows are the year's, as one row would be
        whole |= {FY2023: 100, FY2026: 100}
    assert annual(batch, "JAILS_TOTAL_POPULATION") == whole
    assert annual(batch, "JAILS_TOTAL_ADMISSIONS") == {
        key: {FY2023: 90, FY2026: 110}.get(key, 120) for key in whole}
    assert file_row(batch, "monthly_stats.csv")["rows_rejected"] == 0
