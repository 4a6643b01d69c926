"""Superagency native exports: an agency column names each record's child; counts computed by hand."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from jc_pipeline_tests.ingest_support import Warehouse, deliver_csv
from jc_pipeline_tests.test_mappings_counts import OFFENSE, file_row, findings, write_mapping

#: agency_id, agency_name, state_code, sectors, county_fips, population, fiscal_year_start_month, superagency_id
ROSTER = [
    ("lake", "Lake County", "US_XX", "SUPERAGENCY", "", "90000", "1", ""),
    ("north_jail", "North County Jail", "US_XX", "JAILS", "", "50000", "1", "lake"),
    ("south_jail", "South County Jail", "US_YY", "JAILS", "", "40000", "1", "lake"),
    ("lake_sheriff", "Lake County Sheriff", "US_XX", "LAW_ENFORCEMENT", "", "90000", "1", "lake"),
    ("other_jail", "Other Jail", "US_XX", "JAILS", "", "1000", "1", ""),
]
MAPPING = """
sources:
  - name: bookings
    pattern: JAILS/bookings.csv
    kind: records
    agency: facility
    columns: {facility: Facility, booked: Booked, released: Released, charge: Charge}
    metrics:
      - metric: JAILS_TOTAL_ADMISSIONS
        date: booked
        breakdowns:
          - dimension: metric/offense/type
            column: charge
            values: {ASSAULT: PERSON, THEFT: PROPERTY}
      - metric: JAILS_TOTAL_POPULATION
        count: population
        start: booked
        end: released
"""
EXPORT = [
    ["Facility", "Booked", "Released", "Charge"],
    # North: booked Jan 5, released Jan 15 -> Jan 5..14, 10 days
    ["North County Jail", "2024-01-05", "2024-01-15", "ASSAULT"],
    # North by its id, padded: Jan 20..31 = 12 days, Feb 1..3 = 3 days
    ["  north_jail ", "2024-01-20", "2024-02-04", "THEFT"],
    # South by its name in other letters: still in custody; the export's latest date is Feb 4, so it runs
    # through the end of February: 29 days
    ["SOUTH COUNTY JAIL", "2024-02-01", "", "THEFT"],
    ["Lake County Sheriff", "2024-01-10", "2024-01-11", "ASSAULT"],  # a child, but not a jail: R6
    ["Other Jail", "2024-01-12", "2024-01-13", "THEFT"],  # a jail, but not a child of Lake County: R6
    ["Other Jail", "2024-02-12", "2024-02-13", "THEFT"],  # the same, once more: one finding, 2 records
    ["", "2024-02-14", "2024-02-15", "ASSAULT"],  # no agency: R6
]


@pytest.fixture
def w(tmp_path):
    warehouse = Warehouse(tmp_path, agencies=ROSTER, settings=[])
    yield warehouse
    warehouse.close()


def by_agency(batch, metric: str, dimension: str | None = None) -> dict:
    """{(agency_id, period_start, category): value} of one metric and dimension (None = the totals)."""
    frame = batch.datapoints.filter(pl.col("metric_key") == metric)
    frame = frame.filter(pl.col("dimension").is_null() if dimension is None else pl.col("dimension") == dimension)
    return {(r["agency_id"], r["period_start"], r["category"]): r["value"] for r in frame.iter_rows(named=True)}


def test_records_are_counted_under_the_child_the_agency_column_names(w):
    write_mapping(w.data_dir, "lake", MAPPING)
    deliver_csv(w.data_dir, "lake", "JAILS", "bookings.csv", EXPORT)
    batch = w.parse()
    jan, feb = date(2024, 1, 1), date(2024, 2, 1)
    assert by_agency(batch, "JAILS_TOTAL_ADMISSIONS") == {("north_jail", jan, None): 2, ("south_jail", feb, None): 1}
    assert {k: v for k, v in by_agency(batch, "JAILS_TOTAL_ADMISSIONS", OFFENSE).items() if v} == {
        ("north_jail", jan, "PERSON"): 1, ("north_jail", jan, "PROPERTY"): 1, ("south_jail", feb, "PROPERTY"): 1}
    assert by_agency(batch, "JAILS_TOTAL_POPULATION") == {
        ("north_jail", jan, None): pytest.approx(22 / 31), ("north_jail", feb, None): pytest.approx(3 / 29),
        ("south_jail", feb, None): pytest.approx(29 / 29)}
    w.ingest()
    states = dict(w.con.execute("SELECT DISTINCT agency_id, state_code FROM agency_metrics").fetchall())
    assert states == {"north_jail": "US_XX", "south_jail": "US_YY"}  # each child's own state


def test_unknown_empty_or_wrong_sector_children_are_r6_with_their_counts(w):
    write_mapping(w.data_dir, "lake", MAPPING)
    deliver_csv(w.data_dir, "lake", "JAILS", "bookings.csv", EXPORT)
    batch = w.parse()
    assert findings(batch, "bookings.csv") == [("R6", 5, "Facility", "Lake County Sheriff"),
                                               ("R6", 6, "Facility", "Other Jail"), ("R6", 8, "Facility", None)]
    messages = batch.findings["message"].to_list()
    assert "does not report for the export's sector" in messages[0] and "(1 record, row 5)" in messages[0]
    assert "is not one of the superagency's child agencies" in messages[1] and "2 records, rows 6, 7" in messages[1]
    assert messages[2].startswith("Empty 'Facility' value (1 record, row 8)")
    row = file_row(batch, "bookings.csv")
    assert (row["rows_total"], row["rows_loaded"], row["rows_rejected"], row["status"]) == (7, 3, 4, "ERRORED")


def test_child_datapoints_reach_agency_metrics_under_the_child(w):
    write_mapping(w.data_dir, "lake", MAPPING)
    deliver_csv(w.data_dir, "lake", "JAILS", "bookings.csv", EXPORT)
    w.ingest()
    totals = w.metrics().filter(pl.col("dimension").is_null() & (pl.col("metric_key") == "JAILS_TOTAL_ADMISSIONS"))
    assert totals.select("agency_id", "period_start", "value").rows() == [
        ("north_jail", date(2024, 1, 1), 2.0), ("south_jail", date(2024, 2, 1), 1.0)]
    assert set(w.metrics()["agency_id"]) == {"north_jail", "south_jail"}  # nothing under the superagency


def test_an_agency_column_needs_children_of_the_exports_sector(w):
    write_mapping(w.data_dir, "other_jail", MAPPING)  # not a superagency: nobody to name
    deliver_csv(w.data_dir, "other_jail", "JAILS", "bookings.csv", EXPORT)
    batch = w.parse()
    row = file_row(batch, "bookings.csv")
    assert row["status"] == "UNREADABLE" and "no child agency of other_jail reports for JAILS" in row["reason"]
    assert batch.datapoints.height == 0
