"""category_enabled: data for a breakdown category the agency turned off in breakdown_settings.csv is kept and
flagged. Settings go through the real roster loader and reference tables; the rule through Great Expectations;
the verdict through the Dagster check, the HTML report and the state roll-up."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest

from jc_pipeline.defs.normalize.checks import rule_check_result, rule_check_specs
from jc_pipeline.lib import feedback, state, validation
from jc_pipeline.lib.reference import write_reference_tables
from jc_pipeline.lib.roster import (
    AGENCIES_FILE,
    AGENCY_COLUMNS,
    BREAKDOWN_SETTINGS_COLUMNS,
    BREAKDOWN_SETTINGS_FILE,
    SETTINGS_COLUMNS,
    SETTINGS_FILE,
    load_roster,
)
from jc_pipeline.lib.validation import expectations
from jc_pipeline_tests.test_validation_support import REGISTRY, Warehouse, month

RULE = "category_enabled"
ARRESTS = "LAW_ENFORCEMENT_ARRESTS"
OFFENSE = "metric/offense/type"
DAILY = "metric/supervision/daily_population/type"
FEB, MARCH = month(2025, 2), month(2025, 3)

AGENCIES = [
    ("LE", "Harlan Police Department", "US_XX", "LAW_ENFORCEMENT", "", "50000", "1", ""),
    ("LE2", "Brookfield Police Department", "US_XX", "LAW_ENFORCEMENT", "", "30000", "1", ""),
    ("OFF", "Cedar Police Department", "US_XX", "LAW_ENFORCEMENT", "", "20000", "1", ""),
    ("DCS", "Division of Community Supervision", "US_XX", "SUPERVISION;PAROLE;PROBATION", "", "900000", "1", ""),
]
SETTINGS = [("OFF", ARRESTS, "false", "", "", "")]
BREAKDOWNS = [
    ("LE", ARRESTS, "offense_type", "Public Order Offenses", "false"),  # the column and display spellings
    ("LE", ARRESTS, OFFENSE, "DRUG", "false"),  # turned off and never sent: nothing to flag
    ("OFF", ARRESTS, OFFENSE, "PUBLIC_ORDER", "false"),  # the whole metric is off: metric_enabled's business
    ("DCS", "SUPERVISION_POPULATION", DAILY, "ADMINISTRATIVE", "false"),  # inherited by PAROLE_ and PROBATION_
    ("DCS", "PROBATION_POPULATION", DAILY, "ADMINISTRATIVE", "true"),  # ... except where turned back on
]


def _write(path: Path, columns, rows) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)


def roster_dir(root: Path, breakdowns=BREAKDOWNS) -> Path:
    """A data directory with the roster files: agencies, metric settings and breakdown settings."""
    data_dir = root / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    _write(data_dir / AGENCIES_FILE, AGENCY_COLUMNS, AGENCIES)
    _write(data_dir / SETTINGS_FILE, SETTINGS_COLUMNS, SETTINGS)
    _write(data_dir / BREAKDOWN_SETTINGS_FILE, BREAKDOWN_SETTINGS_COLUMNS, breakdowns)
    return data_dir


def build(root: Path) -> Warehouse:
    """A warehouse whose reference tables come from the real roster loader."""
    wh = Warehouse(root / "w.duckdb")
    write_reference_tables(wh.con, REGISTRY, load_roster(roster_dir(root), REGISTRY))
    return wh


def add_arrests(wh: Warehouse, agency: str, start, categories: dict[str, float], file_id: str) -> None:
    wh.add(agency, ARRESTS, start, sum(categories.values()), file_id=file_id, sheet="arrests", row=2)
    for row, (category, value) in enumerate(categories.items(), start=2):
        wh.add(agency, ARRESTS, start, value, dimension=OFFENSE, category=category, file_id=file_id,
               sheet="arrests_by_type", row=row)


def add_population(wh: Warehouse, key: str, categories: dict[str, float]) -> None:
    wh.add("DCS", key, MARCH, sum(categories.values()), file_id="f-dcs", sheet="population", row=2)
    wh.add_breakdown("DCS", key, MARCH, DAILY, categories, file_id="f-dcs", sheet="population_by_type")


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    wh = build(tmp_path_factory.mktemp("categories"))
    for start, file_id in ((FEB, "f-le-feb"), (MARCH, "f-le-mar")):
        add_arrests(wh, "LE", start, {"PERSON": 4, "PROPERTY": 3, "PUBLIC_ORDER": 3}, file_id)
        add_arrests(wh, "LE2", start, {"PERSON": 5, "PUBLIC_ORDER": 2}, f"f-le2-{start:%m}")
    add_arrests(wh, "OFF", MARCH, {"PUBLIC_ORDER": 5}, "f-off")
    add_population(wh, "PAROLE_POPULATION", {"ACTIVE": 80, "ADMINISTRATIVE": 20})
    add_population(wh, "PROBATION_POPULATION", {"ACTIVE": 150, "ADMINISTRATIVE": 50})
    wh.outcomes = wh.validate([FEB, MARCH])
    return wh


def test_reference_table_holds_the_settings_in_effect(wh):
    rows = wh.con.execute("SELECT agency_id, metric_key, dimension, category, enabled, is_inherited "
                          "FROM agency_breakdown_settings ORDER BY ALL").fetchall()
    assert rows == [
        ("DCS", "PAROLE_POPULATION", DAILY, "ADMINISTRATIVE", False, True),
        ("DCS", "PROBATION_POPULATION", DAILY, "ADMINISTRATIVE", True, False),
        ("DCS", "SUPERVISION_POPULATION", DAILY, "ADMINISTRATIVE", False, False),
        ("LE", ARRESTS, OFFENSE, "DRUG", False, False),
        ("LE", ARRESTS, OFFENSE, "PUBLIC_ORDER", False, False),
        ("OFF", ARRESTS, OFFENSE, "PUBLIC_ORDER", False, False),
    ]


def test_data_for_a_disabled_category_is_flagged_per_datapoint_with_its_lineage(wh):
    rows = wh.results(RULE)
    assert [(r["agency_id"], r["metric_key"], r["period_start"], r["period_end"], r["dimension"], r["category"])
            for r in rows] == [
        ("DCS", "PAROLE_POPULATION", MARCH, month(2025, 4), DAILY, "ADMINISTRATIVE"),
        ("LE", ARRESTS, FEB, MARCH, OFFENSE, "PUBLIC_ORDER"),
        ("LE", ARRESTS, MARCH, month(2025, 4), OFFENSE, "PUBLIC_ORDER"),
    ]
    le = rows[2]
    assert (le["severity"], le["file_id"], le["sheet"], le["row_number"]) == (
        "WARNING", "f-le-mar", "arrests_by_type", 4)
    assert le["message"] == ("Arrests for 2025-03: data for 'Public Order Offenses' (offense type) was received, "
                             "but your settings turn this category off.")
    assert "combined supervision metric" in rows[0]["message"]


def test_enabled_categories_and_other_agencies_pass(wh):
    flagged = {(r["agency_id"], r["metric_key"], r["category"]) for r in wh.results(RULE)}
    assert ("LE", ARRESTS, "PERSON") not in flagged  # the agency's other categories
    assert not any(agency == "LE2" for agency, _, _ in flagged)  # same category, no setting
    assert ("DCS", "PROBATION_POPULATION", "ADMINISTRATIVE") not in flagged  # turned back on for probation


def test_a_disabled_metric_is_flagged_once_by_metric_enabled_not_per_category(wh):
    assert wh.failing_agencies("metric_enabled") == {"OFF"}
    assert "OFF" not in wh.failing_agencies(RULE)


def test_outcome_is_a_warning_with_a_sample(wh):
    outcome = wh.outcomes[RULE]
    assert not outcome.passed and outcome.error is None
    assert outcome.failing_groups == 3 and outcome.rule.severity == "WARNING" and not outcome.rule.blocking
    assert outcome.checked_rows == wh.con.execute("SELECT count(*) FROM agency_metrics").fetchall()[0][0]
    assert {(s["agency_id"], s["dimension"], s["category"]) for s in outcome.sample} == {
        ("LE", OFFENSE, "PUBLIC_ORDER"), ("DCS", DAILY, "ADMINISTRATIVE")}


def test_the_rule_is_a_generated_great_expectations_expectation():
    suite = expectations.suite_for(expectations.expectation_specs(REGISTRY))
    generated = [e for e in suite.expectations if e.meta.get("rule") == RULE]
    assert len(generated) == 1
    assert (type(generated[0]).__name__, generated[0].column, list(generated[0].value_set)) == (
        "ExpectColumnValuesToBeInSet", "category_setting_problem", ["ok"])


def test_the_rule_is_a_non_blocking_dagster_asset_check(wh):
    spec = next(s for s in rule_check_specs() if s.key.name == RULE)
    assert spec.asset_key == dg.AssetKey("agency_metrics") and not spec.blocking
    assert spec.description.startswith("WARNING: Data was received for a breakdown category")
    result = rule_check_result(wh.outcomes[RULE])
    assert (result.check_name, result.passed, result.severity) == (RULE, False, dg.AssetCheckSeverity.WARN)
    assert result.metadata["failing_groups"].value == 3


def test_the_flagged_datapoint_still_counts_in_the_state_numbers(wh):
    state.ensure_schema(wh.con)
    state.build_state_metrics(wh.con, [FEB, MARCH])
    public_order = wh.con.execute(
        "SELECT value, agencies_reporting FROM state_metrics WHERE metric_key = ? AND period_start = ? "
        "AND frequency = 'MONTHLY' AND dimension = ? AND category = 'PUBLIC_ORDER'", [ARRESTS, MARCH, OFFENSE]
    ).fetchall()
    assert public_order == [(3 + 2, 2)]  # LE's flagged 3 and LE2's 2; OFF's metric is disabled
    counted = wh.con.execute(
        "SELECT is_counted, uncounted_reason FROM state_metric_inputs WHERE agency_id = 'DCS' "
        "AND metric_key = 'PAROLE_POPULATION' AND category = 'ADMINISTRATIVE'").fetchall()
    assert counted == [(True, None)]


def test_the_html_report_says_what_it_means_and_what_to_do(wh, tmp_path):
    state.ensure_schema(wh.con)  # the feedback's missing periods read the state views
    pages = feedback.write_agency_feedback(wh.con, tmp_path / "agencies", generated_at=datetime(2025, 6, 15))
    index = validation.write_quality_report(wh.con, tmp_path / "data_quality", generated_at=datetime(2025, 6, 15),
                                            agency_pages={"LE": f"../agencies/{pages['LE'].html.name}"})
    rule = validation.RULES_BY_NAME[RULE]
    html = pages["LE"].html.read_text()
    for text in (rule.title, rule.description, rule.remedy, "offense_type: Public Order Offenses", "arrests_by_type",
                 "<td>4</td>", "your settings turn this category off"):
        assert text.replace("'", "&#x27;") in html, text
    assert rule.description.replace("'", "&#x27;") in index.read_text()  # the catalogue of checks


def test_turning_the_category_back_on_clears_the_warning(tmp_path):
    wh = build(tmp_path)
    add_arrests(wh, "LE", MARCH, {"PERSON": 4, "PUBLIC_ORDER": 3}, "f1")
    wh.validate([MARCH])
    assert wh.failing_agencies(RULE) == {"LE"}
    edited = roster_dir(tmp_path / "edited", [row for row in BREAKDOWNS if row[0] != "LE"])
    write_reference_tables(wh.con, REGISTRY, load_roster(edited, REGISTRY))
    wh.validate([MARCH])
    assert wh.results(RULE) == []


def test_a_missing_settings_table_is_a_structural_problem(tmp_path):
    wh = build(tmp_path)
    assert validation.check_structure(wh.con, REGISTRY) == []
    wh.con.execute("DROP TABLE agency_breakdown_settings")
    assert validation.check_structure(wh.con, REGISTRY) == ["table 'agency_breakdown_settings' is missing"]
