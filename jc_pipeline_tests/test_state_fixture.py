"""A small hand-made state for the state roll-up tests (and the docs examples), plus its own sanity tests.

State US_XX (and one agency in US_YY, to show states are never summed together):

| agency | sectors                       | population | what it does                                             |
|--------|-------------------------------|-----------:|----------------------------------------------------------|
| LE1    | LAW_ENFORCEMENT               |    100,000 | arrests monthly, all of 2022 and 2023; CY funding         |
| LE2    | LAW_ENFORCEMENT               |     50,000 | arrests monthly, Jan 2022 and Jan-Nov 2023 (11 months)    |
| LE3    | LAW_ENFORCEMENT (July FY)     |     30,000 | arrests ANNUAL (calendar); funding for FY Jul 2022-Jun 2023 |
| LE4    | LAW_ENFORCEMENT               |     20,000 | arrests Jan 2023; Mar 2023 fails a validation ERROR; funding disabled |
| JL1    | JAILS                         |    150,000 | daily population monthly 2023                             |
| JL2    | JAILS                         |     50,000 | daily population monthly 2023                             |
| PR1    | PROSECUTION                   |    100,000 | open cases and staff with caseload                        |
| PR2    | PROSECUTION                   |     80,000 | open cases (and staff only in January)                    |
| SUP1   | SUPERVISION; PAROLE; PROBATION|    500,000 | supervision population by subsystem (plus a stray combined upload) |
| SUP2   | SUPERVISION                   |    200,000 | supervision population combined                           |
| LE9    | LAW_ENFORCEMENT (state US_YY) |     10,000 | arrests Jan 2023                                          |

Every expected number in the tests is worked out by hand from these rows, never by the code under test.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from jc_pipeline.lib import state
from jc_pipeline.lib.periods import add_months
from jc_pipeline.lib.registry import load_registry
from jc_pipeline.lib.warehouse import ensure_contract_schema


REGISTRY = load_registry()
ARRESTS = "LAW_ENFORCEMENT_ARRESTS"
FUNDING = "LAW_ENFORCEMENT_FUNDING"
JAIL_POP = "JAILS_TOTAL_POPULATION"
OPEN_CASES = "PROSECUTION_CASELOADS_PEOPLE"
CASE_STAFF = "PROSECUTION_CASELOADS_STAFF"
SUP_POP = "SUPERVISION_POPULATION"
PAROLE_POP = "PAROLE_POPULATION"
PROBATION_POP = "PROBATION_POPULATION"
OFFENSE = "metric/offense/type"
RACE = "global/race_and_ethnicity"

# metric_key, sector, parent_sector, measurement_type, default_frequency, unit, ratio_role, ratio_partner
METRICS = [
    (ARRESTS, "LAW_ENFORCEMENT", "LAW_ENFORCEMENT", "DELTA", "MONTHLY", "count", None, None),
    (FUNDING, "LAW_ENFORCEMENT", "LAW_ENFORCEMENT", "DELTA", "ANNUAL", "USD", None, None),
    (JAIL_POP, "JAILS", "JAILS", "INSTANT", "MONTHLY", "count", None, None),
    (OPEN_CASES, "PROSECUTION", "PROSECUTION", "INSTANT", "MONTHLY", "count", "numerator", CASE_STAFF),
    (CASE_STAFF, "PROSECUTION", "PROSECUTION", "INSTANT", "MONTHLY", "FTE", "denominator", OPEN_CASES),
    (SUP_POP, "SUPERVISION", "SUPERVISION", "INSTANT", "MONTHLY", "count", None, None),
    (PAROLE_POP, "PAROLE", "SUPERVISION", "INSTANT", "MONTHLY", "count", None, None),
    (PROBATION_POP, "PROBATION", "SUPERVISION", "INSTANT", "MONTHLY", "count", None, None),
]

# agency_id, state_code, sectors, population, fiscal_year_start_month
AGENCIES = [
    ("LE1", "US_XX", ["LAW_ENFORCEMENT"], 100_000, 1),
    ("LE2", "US_XX", ["LAW_ENFORCEMENT"], 50_000, 1),
    ("LE3", "US_XX", ["LAW_ENFORCEMENT"], 30_000, 7),
    ("LE4", "US_XX", ["LAW_ENFORCEMENT"], 20_000, 1),
    ("JL1", "US_XX", ["JAILS"], 150_000, 1),
    ("JL2", "US_XX", ["JAILS"], 50_000, 1),
    ("PR1", "US_XX", ["PROSECUTION"], 100_000, 1),
    ("PR2", "US_XX", ["PROSECUTION"], 80_000, 1),
    ("SUP1", "US_XX", ["SUPERVISION", "PAROLE", "PROBATION"], 500_000, 1),
    ("SUP2", "US_XX", ["SUPERVISION"], 200_000, 1),
    ("LE9", "US_YY", ["LAW_ENFORCEMENT"], 10_000, 1),
]

# agency_id, metric_key, enabled, frequency, starting_month, disaggregated_by_supervision_subsystems
SETTINGS = [
    ("LE1", ARRESTS, True, "MONTHLY", 1, False),
    ("LE2", ARRESTS, True, "MONTHLY", 1, False),
    ("LE3", ARRESTS, True, "ANNUAL", 1, False),
    ("LE4", ARRESTS, True, "MONTHLY", 1, False),
    ("LE9", ARRESTS, True, "MONTHLY", 1, False),
    ("LE1", FUNDING, True, "ANNUAL", 1, False),
    ("LE2", FUNDING, True, "ANNUAL", 1, False),
    ("LE3", FUNDING, True, "ANNUAL", 7, False),
    ("LE4", FUNDING, False, "ANNUAL", 1, False),
    ("LE9", FUNDING, True, "ANNUAL", 1, False),
    ("JL1", JAIL_POP, True, "MONTHLY", 1, False),
    ("JL2", JAIL_POP, True, "MONTHLY", 1, False),
    ("PR1", OPEN_CASES, True, "MONTHLY", 1, False),
    ("PR1", CASE_STAFF, True, "MONTHLY", 1, False),
    ("PR2", OPEN_CASES, True, "MONTHLY", 1, False),
    ("PR2", CASE_STAFF, True, "MONTHLY", 1, False),
    ("SUP1", SUP_POP, True, "MONTHLY", 1, True),
    ("SUP1", PAROLE_POP, True, "MONTHLY", 1, True),
    ("SUP1", PROBATION_POP, True, "MONTHLY", 1, True),
    ("SUP2", SUP_POP, True, "MONTHLY", 1, False),
]


def month(year: int, number: int) -> date:
    return date(year, number, 1)


def _monthly(agency: str, metric: str, year: int, number: int, value: float, dimension=None, category=None):
    start = month(year, number)
    return (agency, metric, "MONTHLY", start, add_months(start, 1), dimension, category, value)


def _annual(agency: str, metric: str, start: date, value: float):
    return (agency, metric, "ANNUAL", start, add_months(start, 12), None, None, value)


def datapoints() -> list[tuple]:
    """(agency_id, metric_key, frequency, period_start, period_end, dimension, category, value)."""
    rows = []
    # Arrests. LE1: 2022 every month 90; 2023 month m = 100 + m (Jan 101 ... Dec 112, sum 1278).
    rows += [_monthly("LE1", ARRESTS, 2022, m, 90) for m in range(1, 13)]
    rows += [_monthly("LE1", ARRESTS, 2023, m, 100 + m) for m in range(1, 13)]
    rows += [_monthly("LE1", ARRESTS, 2022, 1, 30, OFFENSE, "PERSON")]
    rows += [_monthly("LE1", ARRESTS, 2023, 1, 40, OFFENSE, "PERSON"), _monthly("LE1", ARRESTS, 2023, 1, 61, OFFENSE, "PROPERTY")]
    # LE2: Jan 2022 40; 2023 Jan-Nov 50 each (no December).
    rows += [_monthly("LE2", ARRESTS, 2022, 1, 40)]
    rows += [_monthly("LE2", ARRESTS, 2023, m, 50) for m in range(1, 12)]
    rows += [_monthly("LE2", ARRESTS, 2023, 1, 10, OFFENSE, "PERSON")]
    # LE3 reports arrests for the calendar year; its stray January upload does not match its settings.
    rows += [_annual("LE3", ARRESTS, month(2023, 1), 500), _monthly("LE3", ARRESTS, 2023, 1, 45)]
    # LE4: January with a race breakdown; March fails a validation ERROR (value and breakdown excluded).
    rows += [_monthly("LE4", ARRESTS, 2023, 1, 20), _monthly("LE4", ARRESTS, 2023, 1, 20, RACE, "NOT_HISPANIC_BLACK")]
    rows += [_monthly("LE4", ARRESTS, 2023, 3, 999), _monthly("LE4", ARRESTS, 2023, 3, 999, OFFENSE, "PERSON")]
    rows += [_monthly("LE9", ARRESTS, 2023, 1, 7)]
    # Funding: calendar 2023 for LE1/LE2, fiscal Jul 2022-Jun 2023 for LE3; LE4 has funding disabled.
    rows += [_annual("LE1", FUNDING, month(2023, 1), 1_000_000), _annual("LE2", FUNDING, month(2023, 1), 500_000)]
    rows += [_annual("LE3", FUNDING, month(2022, 7), 300_000), _annual("LE4", FUNDING, month(2023, 1), 77)]
    # Jail daily population (INSTANT): JL1 300 Jan-Jun, 360 Jul-Dec (mean 330); JL2 100 every month.
    rows += [_monthly("JL1", JAIL_POP, 2023, m, 300 if m <= 6 else 360) for m in range(1, 13)]
    rows += [_monthly("JL2", JAIL_POP, 2023, m, 100) for m in range(1, 13)]
    # Caseloads: January PR1 200/10, PR2 100/20; February PR1 200/10, PR2 open cases only.
    rows += [_monthly("PR1", OPEN_CASES, 2023, 1, 200), _monthly("PR1", CASE_STAFF, 2023, 1, 10)]
    rows += [_monthly("PR2", OPEN_CASES, 2023, 1, 100), _monthly("PR2", CASE_STAFF, 2023, 1, 20)]
    rows += [_monthly("PR1", OPEN_CASES, 2023, 2, 200), _monthly("PR1", CASE_STAFF, 2023, 2, 10)]
    rows += [_monthly("PR2", OPEN_CASES, 2023, 2, 100)]
    # Supervision January: SUP1 by subsystem (parole 400, probation 900) plus a stray combined 1300 that must
    # not count; SUP2 combined 250.
    rows += [_monthly("SUP1", PAROLE_POP, 2023, 1, 400), _monthly("SUP1", PROBATION_POP, 2023, 1, 900)]
    rows += [_monthly("SUP1", SUP_POP, 2023, 1, 1300), _monthly("SUP2", SUP_POP, 2023, 1, 250)]
    return rows


#: (agency_id, metric_key, period_start) with a failed validation ERROR.
EXCLUSIONS = [("LE4", ARRESTS, month(2023, 3))]

#: Every month that holds a period start in the fixture, January of each year included.
ALL_MONTHS = [month(2022, m) for m in range(1, 13)] + [month(2023, m) for m in range(1, 13)]


def load_inputs(con: duckdb.DuckDBPyConnection) -> None:
    """Create the shared schema and insert the fixture rows (state tables are left to the code under test)."""
    ensure_contract_schema(con)
    names = {agency_id: f"Agency {agency_id}" for agency_id, *_ in AGENCIES}
    con.executemany(
        "INSERT INTO agencies VALUES (?, ?, ?, ?, NULL, ?, ?, NULL)",
        [(a, names[a], s, sectors, pop, fy) for a, s, sectors, pop, fy in AGENCIES],
    )
    con.executemany(
        "INSERT INTO agency_metric_settings VALUES (?, ?, ?, ?, ?, ?, FALSE)",
        [list(row) for row in SETTINGS],
    )
    con.executemany(
        "INSERT INTO metric_definitions VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'POPULATIONS', 'sheet', NULL, ?, ?, ?)",
        [(k, s, p, k.title(), unit, unit, mt, freq, role, partner, REGISTRY.metrics[k].is_level)
         for k, s, p, mt, freq, unit, role, partner in METRICS],
    )
    state_of = {a: s for a, s, *_ in AGENCIES}
    sector_of = {k: s for k, s, *_ in METRICS}
    con.executemany(
        "INSERT INTO agency_metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, FALSE, NULL, NULL, NULL)",
        [(state_of[a], a, sector_of[k], k, f, s, e, d, c, v) for a, k, f, s, e, d, c, v in datapoints()],
    )
    con.executemany(
        "INSERT INTO validation_results (check_name, severity, passed, agency_id, metric_key, period_start, message, checked_at)"
        " VALUES ('breakdown_exceeds_total', 'ERROR', FALSE, ?, ?, ?, 'breakdown larger than total', ?)",
        [(a, k, p, datetime(2024, 1, 2)) for a, k, p in EXCLUSIONS],
    )
    # A passed ERROR check and a failed WARNING must exclude nothing.
    con.execute(
        "INSERT INTO validation_results (check_name, severity, passed, agency_id, metric_key, period_start, message, checked_at)"
        " VALUES ('x', 'ERROR', TRUE, 'LE1', ?, ?, 'ok', ?), ('y', 'WARNING', FALSE, 'LE1', ?, ?, 'odd', ?)",
        [ARRESTS, month(2023, 1), datetime(2024, 1, 2), ARRESTS, month(2023, 2), datetime(2024, 1, 2)],
    )


def build_small_state(path: Path, *, threshold: float = 0.8) -> duckdb.DuckDBPyConnection:
    """A DuckDB file at ``path`` with the fixture inputs and the state tables built for every month."""
    con = duckdb.connect(str(path))
    load_inputs(con)
    state.ensure_schema(con)
    state.build_state_metrics(con, ALL_MONTHS, breakdown_coverage_threshold=threshold)
    return con


@pytest.fixture(scope="module")
def small_state(tmp_path_factory):
    """Connection to the built small state, shared by a module's tests: they must not change it."""
    con = build_small_state(tmp_path_factory.mktemp("state") / "warehouse.duckdb")
    yield con
    con.close()


@pytest.fixture
def fresh_state(tmp_path):
    """Connection to a freshly built small state of its own, for tests that change it."""
    con = build_small_state(tmp_path / "warehouse.duckdb")
    yield con
    con.close()


def test_fixture_loads_every_datapoint(small_state):
    assert small_state.execute("SELECT count(*) FROM agency_metrics").fetchall() == [(len(datapoints()),)]


def test_state_tables_exist(small_state):
    assert small_state.execute("SELECT count(*) > 0 FROM state_metrics").fetchall() == [(True,)]
