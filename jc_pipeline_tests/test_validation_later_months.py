"""Rules that read earlier months (Rule.reads_back) judge again the later months whose verdicts read a corrected
month: validating February re-judges March's admissions-minus-releases and the jump verdicts after it."""

from __future__ import annotations

from jc_pipeline.lib.validation.rules import RULES, WARNING
from jc_pipeline_tests.test_validation_support import Warehouse, month

JAN, FEB, MARCH, APRIL = (month(2025, m) for m in (1, 2, 3, 4))
POPULATION, ADMISSIONS, RELEASES = "JAILS_TOTAL_POPULATION", "JAILS_TOTAL_ADMISSIONS", "JAILS_TOTAL_RELEASES"
ARRESTS = "LAW_ENFORCEMENT_ARRESTS"
FLOWS = "admissions_releases_match_population_change"
JUMPS = "no_implausible_jumps"


def _correct(wh: Warehouse, agency: str, metric: str, start, value: float) -> None:
    """A later upload's value for one stored total (what the resolve writes for a correction)."""
    wh.con.execute("UPDATE agency_metrics SET value = ? WHERE agency_id = ? AND metric_key = ? AND period_start = ? "
                   "AND dimension IS NULL", [value, agency, metric, start])


def _flagged(wh: Warehouse, check: str) -> set[tuple[str, object]]:
    return {(r["agency_id"], r["period_start"]) for r in wh.results(check)}


def test_only_warning_sql_rules_read_back():
    # The later months are re-judged, not re-rolled-up: a rule reading back must not exclude datapoints.
    readers = [rule for rule in RULES if rule.reads_back]
    assert {rule.name for rule in readers} == {FLOWS, JUMPS}
    assert all(rule.severity == WARNING and rule.engine == "sql" for rule in readers)


def test_corrected_population_rejudges_next_month(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    for agency in ("JAIL", "OTHER"):
        wh.agency(agency, ["JAILS"])
        for start in (FEB, MARCH):
            wh.add(agency, POPULATION, start, 100)
        wh.add(agency, ADMISSIONS, MARCH, 50)
        wh.add(agency, RELEASES, MARCH, 45)
    wh.validate([FEB, MARCH])
    assert _flagged(wh, FLOWS) == set()

    # February's population is corrected for both; only JAIL's uploads are re-checked (a nightly run's scope).
    for agency in ("JAIL", "OTHER"):
        _correct(wh, agency, POPULATION, FEB, 300)
    outcomes = wh.validate([FEB], agencies=["JAIL"])
    assert _flagged(wh, FLOWS) == {("JAIL", MARCH)}
    [row] = wh.results(FLOWS, "JAIL")
    assert (row["observed"], row["expected"]) == ("5", "-200")
    # February is what was validated; March's verdict is stored but not reported as February's.
    assert outcomes[FLOWS].failing_groups == 0

    _correct(wh, "JAIL", POPULATION, FEB, 100)
    wh.validate([FEB], agencies=["JAIL"])
    assert _flagged(wh, FLOWS) == set()


def test_corrected_history_rejudges_jumps_after_it(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.agency("POLICE", ["LAW_ENFORCEMENT"])
    for start in (JAN, FEB, MARCH):
        wh.add("POLICE", ARRESTS, start, 100)
    wh.add("POLICE", ARRESTS, APRIL, 400)
    # Annual series: 2024 is three times the years before.
    for year in range(2020, 2025):
        wh.add("POLICE", ARRESTS, month(year, 1), 1000 if year < 2024 else 3000, end=month(year + 1, 1))
    everything = [month(year, 1) for year in range(2020, 2025)] + [FEB, MARCH, APRIL]
    wh.validate(everything, today=month(2026, 1))
    assert _flagged(wh, JUMPS) == {("POLICE", APRIL), ("POLICE", month(2024, 1))}

    # The earlier periods were the mistake: corrected, the later totals are no jump any more. Validating the
    # first corrected year re-judges the years after it, three years on.
    for start in (JAN, FEB, MARCH):
        _correct(wh, "POLICE", ARRESTS, start, 400)
    for year in range(2021, 2024):
        _correct(wh, "POLICE", ARRESTS, month(year, 1), 3000)
    wh.validate([month(2021, 1), JAN, FEB, MARCH], today=month(2026, 1))
    assert _flagged(wh, JUMPS) == set()


def test_a_crash_on_the_later_months_is_the_rules_error_and_keeps_their_results(tmp_path, monkeypatch):
    from jc_pipeline.lib.validation import run, sqlrules

    wh = Warehouse(tmp_path / "w.duckdb")
    wh.agency("JAIL", ["JAILS"])
    for start, population in ((FEB, 100), (MARCH, 300)):
        wh.add("JAIL", POPULATION, start, population)
    wh.add("JAIL", ADMISSIONS, MARCH, 50)
    wh.add("JAIL", RELEASES, MARCH, 45)
    wh.validate([FEB, MARCH])
    assert _flagged(wh, FLOWS) == {("JAIL", MARCH)}

    def crash_after_february(con, rule, months, *args):
        if min(months) > FEB:
            return sqlrules.SqlOutcome(rule, [], 0, "Binder Error: broken")
        return sqlrules.run_sql_rule(con, rule, months, *args)

    monkeypatch.setattr(run, "run_sql_rule", crash_after_february)
    _correct(wh, "JAIL", POPULATION, FEB, 300)
    outcomes = wh.validate([FEB])
    assert not outcomes[FLOWS].passed and "later months 2025-03-01..2025-03-01" in outcomes[FLOWS].error
    assert _flagged(wh, FLOWS) == {("JAIL", MARCH)}  # not wiped by the crash
