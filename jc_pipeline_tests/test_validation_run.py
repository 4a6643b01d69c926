"""validate_months as a whole: the catalogue, crashes reported as errors, one agency's error leaving the rest of
the state intact, check_structure."""

from __future__ import annotations

from pathlib import Path

import pytest

from jc_pipeline.lib import validation
from jc_pipeline.lib.validation import expectations, sqlrules
from jc_pipeline_tests.test_validation_support import REGISTRY, Warehouse, month

MARCH = month(2025, 3)
ARRESTS = "LAW_ENFORCEMENT_ARRESTS"
CALLS = "LAW_ENFORCEMENT_CALLS_FOR_SERVICE"
OFFENSE = "metric/offense/type"

# The state roll-up's side of the exclusion contract, as the roll-up applies it.
KEPT_SQL = """
SELECT m.agency_id, m.metric_key, m.period_start, m.dimension, m.category, m.value FROM agency_metrics AS m
WHERE NOT EXISTS (SELECT 1 FROM validation_results AS v WHERE v.severity = 'ERROR' AND NOT v.passed
                  AND v.agency_id = m.agency_id AND v.metric_key = m.metric_key
                  AND v.period_start = m.period_start)
"""


def _state(path: Path) -> Warehouse:
    wh = Warehouse(path)
    for agency in ("A", "B", "C"):
        wh.agency(agency, ["LAW_ENFORCEMENT"])
        wh.add(agency, ARRESTS, MARCH, 10)
        wh.add_breakdown(agency, ARRESTS, MARCH, OFFENSE, {"PERSON": 4, "PROPERTY": 6})
        wh.add(agency, CALLS, MARCH, 50)
    # Agency A sends one bad arrests category: only A's March arrests must drop out.
    wh.add("A", ARRESTS, MARCH, 1, dimension=OFFENSE, category="JAYWALKING")
    return wh


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    wh = _state(tmp_path_factory.mktemp("state") / "w.duckdb")
    wh.outcomes = wh.validate([MARCH])
    return wh


def test_catalogue_is_complete_and_consistent():
    names = [rule.name for rule in validation.RULES]
    assert len(names) == len(set(names))
    assert {"category_is_member", "value_not_negative", "no_duplicate_datapoints", "period_aligned",
            "period_not_in_future", "agency_in_roster", "breakdowns_sum_to_total", "counts_are_whole_numbers",
            "required_breakdowns_present", "no_missing_months", "metric_enabled", "category_enabled",
            "jail_population_parts_match_total", "jail_flow_parts_match_total",
            "admissions_releases_match_population_change",
            "staff_breakdown_matches_total", "no_implausible_jumps", "value_is_numeric"} == set(names)
    for rule in validation.RULES:
        assert rule.severity in ("ERROR", "WARNING") and rule.title and rule.description and rule.remedy
        if rule.engine == "sql":
            assert sqlrules.sql_text(rule.query or rule.name)
        else:
            assert rule.name in expectations.BUILDERS


def test_one_agencys_error_leaves_the_rest_of_the_state_intact(state):
    errors = [r for r in state.results() if r["severity"] == "ERROR"]
    assert {(r["agency_id"], r["metric_key"], r["period_start"]) for r in errors} == {("A", ARRESTS, MARCH)}
    kept = state.con.sql(KEPT_SQL).fetchall()
    everything = state.con.sql("SELECT agency_id, metric_key FROM agency_metrics").fetchall()
    assert {(a, m) for a, m, *_ in kept} == {(a, m) for a, m in everything} - {("A", ARRESTS)}
    assert sum(v for a, m, *_, v in kept if m == ARRESTS) == 2 * (10 + 4 + 6)
    assert not state.outcomes["category_is_member"].passed
    assert state.outcomes["value_not_negative"].passed


def test_a_crashing_sql_rule_reports_an_error_and_keeps_its_previous_results(tmp_path, monkeypatch):
    wh = _state(tmp_path / "w.duckdb")
    wh.add("B", ARRESTS, MARCH, 30, dimension=OFFENSE, category="DRUG")  # B's offense sum is now off
    wh.validate([MARCH])
    assert wh.failing_agencies("breakdowns_sum_to_total") == {"B"}

    real = sqlrules.sql_text
    monkeypatch.setattr(sqlrules, "sql_text",
                        lambda name: "SELECT * FROM no_such_table" if name == "breakdowns_sum_to_total" else real(name))
    outcomes = wh.validate([MARCH])
    crashed = outcomes["breakdowns_sum_to_total"]
    assert crashed.error and "no_such_table" in crashed.error
    assert (crashed.passed, crashed.failing_groups) == (False, 0)
    assert wh.failing_agencies("breakdowns_sum_to_total") == {"B"}  # not wiped by the crash
    assert outcomes["category_is_member"].error is None


def test_a_crashing_expectation_reports_an_error_not_failing_rows(tmp_path, monkeypatch):
    wh = _state(tmp_path / "w.duckdb")
    monkeypatch.setitem(expectations.BUILDERS, "counts_are_whole_numbers",
                        lambda rule, registry: (("ExpectColumnValuesToBeBetween",
                                                 {"column": "no_such_column", "max_value": 0}),))
    monkeypatch.setattr(expectations, "_specs", {})  # rebuild the suite with the broken builder
    outcomes = wh.validate([MARCH])
    crashed = outcomes["counts_are_whole_numbers"]
    assert crashed.error and "no_such_column" in crashed.error
    assert (crashed.passed, crashed.failing_groups) == (False, 0)
    assert outcomes["category_is_member"].failing_groups == 1 and outcomes["category_is_member"].error is None


def test_failing_rows_that_cannot_be_read_back_are_their_rules_errors(tmp_path, monkeypatch):
    """Great Expectations' failing rows are read back whole by their row ids; a read that fails (here DuckDB raising
    on any list of row ids) is the error of each rule with failing rows, and the rules without any keep passing."""
    from jc_pipeline.lib.validation import run

    wh = _state(tmp_path / "w.duckdb")
    real = run.sql_text
    fails_on_row_ids = "($row_ids::BIGINT[] IS NULL OR len($row_ids) = 0 OR error('the disk went away')) AND "
    where = "WHERE list_contains($months, m.period_start)"
    monkeypatch.setattr(run, "sql_text",
                        lambda name: real(name).replace(where, where[:6] + fails_on_row_ids + where[6:]))
    outcomes = wh.validate([MARCH])
    failed = outcomes["category_is_member"]
    assert failed.error.startswith("reading the failing datapoints failed: InvalidInputException")
    assert failed.error.endswith("the disk went away")
    assert (failed.passed, failed.failing_groups, failed.checked_rows) == (False, 0, 0)
    assert outcomes["value_not_negative"].error is None and outcomes["value_not_negative"].passed
    assert outcomes["breakdowns_sum_to_total"].error is None


def test_an_unexpected_failure_beside_the_sql_rules_stores_nothing_and_is_raised(tmp_path, monkeypatch):
    # Great Expectations runs in a thread while the SQL rules run: a failure there that no rule reports as its own
    # error (a bug) must still reach the caller, after the SQL rules finished, with no result of the month replaced.
    from jc_pipeline.lib.validation import run

    wh = _state(tmp_path / "w.duckdb")
    wh.validate([MARCH])
    before = wh.results()
    assert before

    def broken(rule, rows):
        raise RuntimeError("merging failing rows broke")

    monkeypatch.setattr(run, "_merge", broken)
    with pytest.raises(RuntimeError, match="merging failing rows broke"):
        wh.validate([MARCH])
    assert wh.results() == before
    assert wh.con.execute("SELECT 42").fetchall() == [(42,)]  # the connection is usable, no transaction left open


def test_failing_rows_keep_their_own_lineage_when_the_slice_is_not_the_whole_table(tmp_path):
    # The slice's row ids are agency_metrics' rowids: with earlier months first and rows deleted in between they
    # neither start at 0 nor run without gaps, and each failing row must still be reported with its own lineage.
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.agency("A", ["LAW_ENFORCEMENT"])
    for number in range(1, 13):
        wh.add("A", CALLS, month(2024, number), 50, file_id="file-2024", row=number)
    wh.add("A", ARRESTS, MARCH, 10, file_id="file-2025", row=7)
    wh.add("A", ARRESTS, MARCH, 2, dimension=OFFENSE, category="JAYWALKING", file_id="file-2025", row=8)
    wh.add("A", ARRESTS, MARCH, 8, dimension=OFFENSE, category="PERSON", file_id="file-2025", row=9)
    wh.add("A", CALLS, MARCH, -5, file_id="file-2025", row=10)
    wh.flush()
    wh.con.execute("DELETE FROM agency_metrics WHERE period_start < DATE '2024-07-01'")
    wh.validate([MARCH])
    lineage = {(r["check_name"], r["file_id"], r["row_number"], r["observed"])
               for r in wh.results() if r["check_name"] in ("category_is_member", "value_not_negative")}
    assert lineage == {("category_is_member", "file-2025", 8, "JAYWALKING"),
                       ("value_not_negative", "file-2025", 10, "-5")}


def test_stored_results_replace_atomically_and_ignore_other_months(tmp_path):
    wh = _state(tmp_path / "w.duckdb")
    wh.add("B", ARRESTS, month(2025, 4), -1)
    wh.validate([MARCH, month(2025, 4)])
    assert {(r["agency_id"], r["period_start"]) for r in wh.results() if r["severity"] == "ERROR"} == {
        ("A", MARCH), ("B", month(2025, 4))}
    wh.con.execute("DELETE FROM agency_metrics WHERE agency_id = 'A' AND category = 'JAYWALKING'")
    wh.validate([MARCH])  # A fixed March; April is not re-validated and keeps its result
    assert {(r["agency_id"], r["period_start"]) for r in wh.results() if r["severity"] == "ERROR"} == {
        ("B", month(2025, 4))}


def test_no_months_is_a_no_op(state):
    outcomes = validation.validate_months(state.con, [], today=month(2025, 6), registry=REGISTRY)
    assert all(o.passed and o.checked_rows == 0 for o in outcomes)


def test_check_structure_ok_then_detects_breakage(tmp_path):
    wh = _state(tmp_path / "w.duckdb")
    assert validation.check_structure(wh.con, REGISTRY) == []

    wh.con.execute("ALTER TABLE agency_metrics DROP COLUMN row_number")
    wh.con.execute("INSERT INTO metric_definitions SELECT 'NOT_A_METRIC', sector, parent_sector, display_name, "
                   "unit, reference_unit, measurement_type, default_frequency, category, sheet, NULL, NULL, NULL, "
                   "is_level FROM metric_definitions LIMIT 1")
    wh.con.execute("DELETE FROM metric_categories")
    wh.con.execute("DROP TABLE rejected_rows")
    problems = validation.check_structure(wh.con, REGISTRY)
    text = "\n".join(problems)
    assert "table 'agency_metrics' has no column 'row_number'" in text
    assert "table 'rejected_rows' is missing" in text
    assert "metric_definitions' is out of sync with the registry: 1 row(s) not in the registry" in text
    assert "table 'metric_categories' is empty" in text


def test_check_structure_detects_an_empty_roster(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    assert any("'agencies' is empty" in p for p in validation.check_structure(wh.con, REGISTRY))


def test_a_run_over_several_years_equals_checking_each_year_alone(tmp_path):
    """Months are checked a calendar year at a time (bounded memory); the outcome and the stored results are those
    of checking every year on its own, and the year-scoped rule still sees a whole year."""
    def build(path: Path) -> Warehouse:
        wh = _state(path)
        wh.add("B", ARRESTS, month(2024, 3), -1)  # an error in another year
        wh.add("C", ARRESTS, month(2024, 5), 12)  # C reports 2024 with a gap: no_missing_months fires for 2024
        return wh

    together = build(tmp_path / "together.duckdb")
    outcomes = together.validate([month(2024, 3), month(2024, 5), MARCH])
    apart = build(tmp_path / "apart.duckdb")
    per_year = [apart.validate([month(2024, 3), month(2024, 5)]), apart.validate([MARCH])]

    def stored(wh: Warehouse) -> list[tuple]:
        return sorted((r["check_name"], r["agency_id"], r["period_start"], r["message"]) for r in wh.results())

    assert stored(together) == stored(apart)
    assert {r["period_start"].year for r in together.results() if r["severity"] == "ERROR"} == {2024, 2025}
    for name, outcome in outcomes.items():
        assert outcome.failing_groups == sum(o[name].failing_groups for o in per_year), name
        assert outcome.checked_rows == sum(o[name].checked_rows for o in per_year), name
        assert outcome.passed == all(o[name].passed for o in per_year), name
    assert not outcomes["no_missing_months"].passed


def test_validating_some_months_gives_the_rows_validating_everything_gives(tmp_path):
    """Results of a run over a few months equal those of a run over the whole history, for those months (and for
    the whole years of year-scoped rules): the context a rule reads never depends on which months a run covers."""
    wh = Warehouse(tmp_path / "w.duckdb")
    months = [month(2023, 1 + i) if i < 12 else month(2024, i - 11) for i in range(24)]
    for agency, level in (("A", 100), ("B", 40)):
        wh.agency(agency, ["LAW_ENFORCEMENT"])
        for i, start in enumerate(months):
            if agency == "B" and i in (5, 6, 7):
                continue  # a gap: missing months, and a jump baseline reaching back past it
            wh.add(agency, ARRESTS, start, level * (3 if i == 20 else 1) + i % 3)
            if i % 4:
                wh.add_breakdown(agency, ARRESTS, start, OFFENSE, {"PERSON": level // 2, "PROPERTY": level // 2})
        wh.add(agency, ARRESTS, month(2023, 1), 1000, end=month(2024, 1))
    columns = "check_name, agency_id, metric_key, period_start, period_end, dimension, observed, expected, message"

    def rows(scope_months):
        years = sorted({m.year for m in scope_months})
        return wh.con.execute(
            f"SELECT {columns} FROM validation_results WHERE list_contains($months, period_start) "
            "OR (check_name IN ('no_missing_months', 'required_breakdowns_present') "
            "AND list_contains($years, year(period_start))) ORDER BY ALL",
            {"months": scope_months, "years": years}).fetchall()

    wh.validate(months, today=month(2025, 6))
    some = [month(2024, 9), month(2023, 7)]
    everything = rows(some)
    assert {r[0] for r in everything} >= {"no_missing_months", "required_breakdowns_present", "no_implausible_jumps"}
    wh.con.execute("DELETE FROM validation_results")
    wh.validate(some, today=month(2025, 6))
    assert rows(some) == everything


def test_a_failing_group_keeps_its_first_row_by_file_row_then_datapoint_key(tmp_path):
    """The slice reaches GX in no particular order; a group's lineage is its first row by file and row number,
    then by datapoint key (breakdowns before the total), whatever order its rows were read in."""
    wh = _state(tmp_path / "w.duckdb")
    # X is not on the roster: its March arrests fail agency_in_roster as one group of four rows, three of them on
    # one file row (a wide layout puts a total and its breakdown on one row, in different sheets here).
    # Stored so that PERSON, the first by key, is first in neither the stored order nor its reverse.
    wh.add("X", ARRESTS, MARCH, 6, dimension=OFFENSE, category="PROPERTY", file_id="f-x", sheet="property", row=5)
    wh.add("X", ARRESTS, MARCH, 4, dimension=OFFENSE, category="PERSON", file_id="f-x", sheet="person", row=5)
    wh.add("X", ARRESTS, MARCH, 10, file_id="f-x", sheet="total", row=5)
    wh.add("X", ARRESTS, MARCH, 1, dimension=OFFENSE, category="DRUG", file_id="f-x", sheet="drug", row=4)
    wh.validate([MARCH])
    [row] = wh.results("agency_in_roster", "X")
    assert (row["file_id"], row["sheet"], row["row_number"]) == ("f-x", "drug", 4)
    wh.con.execute("DELETE FROM agency_metrics WHERE agency_id = 'X' AND category = 'DRUG'")
    wh.validate([MARCH])
    [row] = wh.results("agency_in_roster", "X")
    assert (row["sheet"], row["row_number"]) == ("person", 5)
