"""Every historical bulk-upload fixture (spec §8.1), ingested alone with its exact expected outcome.

The expectations were worked out by hand from the file contents against the current rules (old sheet names are
legacy aliases, spec §8.5). Each file is ingested by an agency of the matching sector (see ingest_support); the
supervision files with a ``system`` column go to an agency with subsystems (disaggregated by default),
``supervision_metrics.xlsx`` to one whose funding/expenses/staff are not disaggregated, and ``invalid.xlsx``
(no system column) to a supervision-only agency.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from jc_pipeline_tests.ingest_support import Warehouse, assert_accounting

FIXTURES = (Path(__file__).resolve().parents[2] / "shared/fixtures/recidiviz/tests/justice_counts/bulk_upload"
            / "bulk_upload_fixtures")
pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason="shared fixtures folder is absent")

LE, DA, DOC = ("le", "LAW_ENFORCEMENT"), ("da", "PROSECUTION"), ("doc", "PRISONS")
SPLIT, MIXED, PLAIN = ("dcs", "SUPERVISION"), ("dcs_mixed", "SUPERVISION"), ("county_sup", "SUPERVISION")

# (file, uploader, rows loaded, rows rejected, ERROR rules, WARNING rules)
CASES = [
    ("bulk_upload_test.xlsx", LE, 0, 0, set(), set()),  # one empty sheet: nothing to ingest
    ("invalid.xlsx", PLAIN, 0, 2, {"P1"}, {"F6m"}),  # two rows for January 2021 (month on an annual metric)
    ("success.xlsx", LE, 2, 0, set(), set()),
    # invalid/: prosecution, mostly legacy names
    ("invalid/caseloads.csv", DA, 1, 0, set(), set()),
    ("invalid/caseloads_by_severity.csv", DA, 2, 0, set(), set()),
    ("invalid/cases_disposed.csv", DA, 0, 6, {"F6"}, set()),  # disposition_type on the aggregate sheet
    ("invalid/cases_disposed_by_type.csv", DA, 0, 3, {"R10", "R3"}, set()),  # Declined, Acquittal; month "xxx"
    ("invalid/cases_rejected.csv", DA, 0, 5, {"F6"}, set()),  # case_severity on the aggregate sheet
    ("invalid/cases_rejected_by_gender.csv", DA, 0, 1, {"R11"}, set()),  # "All" in a breakdown
    ("invalid/gender.csv", DA, 0, 5, {"F3"}, set()),
    # caseloads_by_severity 2 + caseloads 1 loaded; cases_disposed_by_type 3 and gender (F2) 5 rejected
    ("invalid/invalid.xlsx", DA, 3, 8, {"F2", "R10", "R3"}, {"P2"}),
    # law_enforcement/
    ("law_enforcement/annual_budget.csv", LE, 2, 0, set(), set()),
    ("law_enforcement/annual_budget_metric.xlsx", LE, 3, 0, set(), set()),
    ("law_enforcement/annual_budget_metric_update.xlsx", LE, 3, 0, set(), set()),
    ("law_enforcement/arrests.csv", LE, 3, 0, set(), set()),
    ("law_enforcement/arrests_by_gender.csv", LE, 7, 0, set(), {"C1"}),  # nonbinary -> Unknown Biological Sex
    ("law_enforcement/arrests_by_offense_type.csv", LE, 0, 3, {"R11"}, set()),  # only "ALL" rows
    ("law_enforcement/arrests_by_race.csv", LE, 5, 0, set(), set()),  # bare race words
    # arrests: blank row skipped, June twice (P1 x2); by_type: hint row (T1); by_race: no race column (F4 x2)
    ("law_enforcement/arrests_metric_errors.xlsx", LE, 5, 5, {"F4", "P1", "T1"}, {"P2"}),
    # funding has a month (F6m, 3 monthly rows), funding_by_type 2 rows; calls_for_service carries call_type
    # (F6 x24); every other sheet has an empty value column (F5)
    ("law_enforcement/breakdown_errors.xlsx", LE, 5, 666, {"F5", "F6"}, {"F6m"}),
    ("law_enforcement/calls_for_service.csv", LE, 3, 0, set(), set()),
    ("law_enforcement/calls_for_service_breakdown_error.xlsx", LE, 0, 714, {"F5", "F6"}, set()),
    ("law_enforcement/calls_for_service_by_type.csv", LE, 4, 0, set(), set()),  # header "call_type "
    ("law_enforcement/civilian_complaints_sustained.csv", LE, 2, 0, set(), set()),
    ("law_enforcement/funding_metric.xlsx", LE, 4, 0, set(), {"P2"}),  # 2020: 100000 vs Grants 100
    ("law_enforcement/funding_metric_update.xlsx", LE, 4, 0, set(), set()),
    ("law_enforcement/law_enforcement_empty_template.xlsx", LE, 0, 674, {"F5"}, set()),
    ("law_enforcement/law_enforcement_metrics.xlsx", LE, 40, 3, {"T1"}, {"P2"}),  # 3 hint rows
    ("law_enforcement/law_enforcement_mismatched_totals.xlsx", LE, 13, 0, set(), {"C1"}),  # sums within 1
    ("law_enforcement/law_enforcement_missing_metrics.xlsx", LE, 638, 0, set(), set()),  # enum NAMEs for race
    # 48 blank values in reported_crime_by_type (R7); Verbal and Weapon force types (R10 x4)
    ("law_enforcement/law_enforcement_success.xlsx", LE, 619, 52, {"R10", "R7"}, {"P2"}),
    ("law_enforcement/officer_use_of_force_incidents.csv", LE, 0, 3, {"F6"}, set()),  # force_type on aggregate
    ("law_enforcement/police_officers.csv", LE, 2, 0, set(), set()),
    ("law_enforcement/reported_crime.csv", LE, 3, 0, set(), set()),
    ("law_enforcement/reported_crime_by_type.csv", LE, 3, 0, set(), set()),  # "Person"
    ("law_enforcement/use_of_force.csv", LE, 2, 0, set(), set()),
    ("law_enforcement/use_of_force_by_type.csv", LE, 1, 0, set(), set()),
    # prison/
    ("prison/ releases.csv", DOC, 3, 0, set(), set()),  # leading space in the file name
    ("prison/ releases_by_type.csv", DOC, 0, 4, {"R10"}, set()),  # retired release types
    ("prison/admissions.csv", DOC, 3, 0, set(), set()),  # "FEBUARY "
    ("prison/admissions_by_type.csv", DOC, 0, 3, {"R10"}, set()),  # VIOLATION
    ("prison/annual_budget.csv", DOC, 2, 0, set(), set()),
    ("prison/average_daily_population.csv", DOC, 9, 0, set(), set()),  # header "year ", decimals
    # the name is 32 characters: truncated to 31 it is no sheet name any more (spec §5.1)
    ("prison/average_daily_population_by_type.csv", DOC, 0, 3, {"F3"}, set()),
    ("prison/average_daily_population_gender.csv", DOC, 6, 0, set(), set()),
    ("prison/average_daily_population_race.csv", DOC, 7, 0, set(), set()),
    ("prison/grievances_upheld.csv", DOC, 2, 0, set(), set()),
    ("prison/population.csv", DOC, 9, 0, set(), set()),
    ("prison/population_by_gender.csv", DOC, 6, 0, set(), set()),
    ("prison/population_by_race.csv", DOC, 7, 0, set(), set()),
    ("prison/population_by_type.csv", DOC, 0, 3, {"F4", "F6"}, set()),  # population_type instead of offense_type
    # use_of_force_by_type is no prisons sheet (F2 x4), population_by_type as above (F4/F6 x3),
    # readmissions_by_type "Violation of Conditions" x3 and staff "NON-SECURITY" x2 (R10)
    ("prison/prison_metrics.xlsx", DOC, 44, 12, {"F2", "F4", "F6", "R10"}, {"F6m", "P2"}),
    ("prison/readmission_rate.csv", DOC, 0, 6, {"F6"}, set()),
    ("prison/readmissions.csv", DOC, 3, 0, set(), {"F6m"}),
    ("prison/readmissions_by_type.csv", DOC, 0, 3, {"R10"}, {"F6m"}),
    ("prison/staff_use_of_force_incidents.csv", DOC, 0, 6, {"F6"}, set()),
    ("prison/total_staff.csv", DOC, 2, 0, set(), set()),
    ("prison/total_staff_by_type.csv", DOC, 2, 2, {"R10"}, set()),  # SUPPORT
    ("prison/use_of_force.csv", DOC, 2, 0, set(), set()),
    ("prison/use_of_force_by_type.csv", DOC, 0, 4, {"F3"}, set()),
    # prosecution/
    ("prosecution/annual_budget.csv", DA, 2, 0, set(), set()),
    ("prosecution/caseloads.csv", DA, 3, 0, set(), set()),  # "Febuary", "1,000"
    ("prosecution/caseloads_by_severity.csv", DA, 3, 0, set(), set()),  # Felonies, Misdemenor, misdemeanors
    ("prosecution/cases_declined.csv", DA, 3, 0, set(), set()),
    ("prosecution/cases_declined_by_gender.csv", DA, 3, 0, set(), set()),
    ("prosecution/cases_declined_by_race.csv", DA, 3, 0, set(), set()),
    ("prosecution/cases_declined_by_severity.csv", DA, 3, 0, set(), set()),
    ("prosecution/cases_disposed.csv", DA, 3, 0, set(), set()),
    ("prosecution/cases_disposed_by_type.csv", DA, 1, 2, {"R10"}, set()),  # Declined, Acquittal
    ("prosecution/cases_referred.csv", DA, 3, 0, set(), set()),
    ("prosecution/cases_referred_by_severity.csv", DA, 3, 0, set(), set()),
    ("prosecution/cases_rejected.csv", DA, 3, 0, set(), set()),
    ("prosecution/cases_rejected_by_gender.csv", DA, 3, 0, set(), set()),
    ("prosecution/cases_rejected_by_race.csv", DA, 3, 0, set(), set()),
    ("prosecution/cases_rejected_by_raceethnicity.csv", DA, 3, 0, set(), set()),
    ("prosecution/cases_rejected_by_severity.csv", DA, 3, 0, set(), set()),
    ("prosecution/prosecution_metrics.xlsx", DA, 35, 4, {"R10"}, {"P2"}),  # Declined, Acquittal, Attorney, ...
    ("prosecution/total_staff.csv", DA, 2, 0, set(), set()),
    ("prosecution/total_staff_by_type.csv", DA, 1, 2, {"R10"}, set()),  # Attorney, Supervisor
    ("prosecution/violations_filed.csv", DA, 2, 0, set(), set()),
    # supervision/
    ("supervision/annual_budget.csv", SPLIT, 2, 2, {"P4"}, set()),  # "both" x2; parole and probation load
    ("supervision/supervision_metrics.xlsx", MIXED, 10, 0, set(), set()),
    ("supervision/total_staff.csv", SPLIT, 0, 2, {"F6"}, set()),  # staff_type on the aggregate sheet
    ("supervision/total_staff_by_type.csv", SPLIT, 0, 2, {"P4", "R10"}, set()),  # "both"; SUPPORT
]


def test_every_fixture_file_has_an_expectation():
    on_disk = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*") if p.is_file()}
    assert on_disk == {case[0] for case in CASES}


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> Warehouse:
    """All fixtures ingested in one run, each under its uploader's sector folder at its fixture path.

    Every check is per file (duplicates and breakdown sums are looked for within one file), so one run gives
    the same per-file outcome as one run per file, in a fraction of the time.
    """
    warehouse = Warehouse(tmp_path_factory.mktemp("fixtures"))
    for name, (agency, sector), *_ in CASES:
        target = warehouse.data_dir / "inbox" / agency / sector / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIXTURES / name, target)
    warehouse.ingest()
    yield warehouse
    warehouse.close()


@pytest.mark.parametrize(("name", "uploader", "loaded", "rejected", "errors", "warnings"), CASES,
                         ids=[case[0] for case in CASES])
def test_fixture_outcome(ingested, name, uploader, loaded, rejected, errors, warnings):
    agency, sector = uploader
    path = f"inbox/{agency}/{sector}/{name}"
    file = ingested.table("source_files").filter(pl.col("path") == path)
    findings = ingested.table("rejected_rows").filter(pl.col("file_id").is_in(file["file_id"].implode()))
    assert file.select("rows_loaded", "rows_rejected").row(0) == (loaded, rejected)
    assert set(findings.filter(pl.col("severity") == "ERROR")["rule"]) == errors
    assert set(findings.filter(pl.col("severity") == "WARNING")["rule"]) == warnings
    assert file["status"].to_list() == ["ERRORED" if errors else "INGESTED"]


def test_fixture_accounting(ingested):
    assert ingested.table("source_files").height == len(CASES)
    assert_accounting(ingested)


def test_fixture_values(ingested):
    """Spot checks of what the fixtures' tricky cells became."""
    metrics = ingested.metrics()

    def value(agency, metric, start, category=None):
        rows = metrics.filter((pl.col("agency_id") == agency) & (pl.col("metric_key") == metric)
                              & (pl.col("period_start") == date.fromisoformat(start))
                              & (pl.col("category").is_null() if category is None
                                 else pl.col("category") == category))
        return rows["value"].to_list()

    assert value("da", "PROSECUTION_CASELOADS_PEOPLE", "2022-03-01") == [1000.0]  # "1,000"
    assert value("da", "PROSECUTION_CASELOADS_PEOPLE", "2021-02-01") == [200.0]  # "Febuary"
    assert value("da", "PROSECUTION_CASELOADS_PEOPLE", "2022-03-01", "MISDEMEANOR") == [50.0]  # "misdemeanors"
    assert value("doc", "PRISONS_POPULATION", "2021-05-01") == [3243.13]  # decimals are not rounded
    assert value("doc", "PRISONS_ADMISSIONS", "2022-02-01") == [594.0]  # "FEBUARY "
    assert value("le", "LAW_ENFORCEMENT_ARRESTS", "2021-05-01", "UNKNOWN_ETHNICITY_WHITE") == [200.0]
    assert value("dcs", "PAROLE_FUNDING", "2022-01-01") == [2000.0]  # system column routes to the subsystem
    assert value("dcs", "PROBATION_FUNDING", "2022-01-01") == [300.0]
    inferred = metrics.filter(pl.col("is_inferred_total"))
    assert inferred.height > 0 and inferred["file_id"].null_count() == inferred.height
