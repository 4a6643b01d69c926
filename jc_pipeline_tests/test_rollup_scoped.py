"""Nightly roll-ups rebuild and re-check only the agencies with pending uploads in their months, and end exactly
where a backfill of every month ends; the other agencies' rows and results are left alone, and a backfill still
rebuilds whole months."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from bench import scale
from jc_pipeline.cli import main
from jc_pipeline.defs.partitions import PENDING_AGENCIES_TAG
from jc_pipeline.lib import validation
from jc_pipeline.lib.periods import add_months, months_between
from jc_pipeline.lib.validation.run import SAMPLE_SIZE, SMALL_SCOPE_AGENCY_YEARS, Owned, check_scopes
from jc_pipeline_tests.test_operations_support import (DEMO, add_late_correction, baseline, copy_state,
                                                       first_law_enforcement_agency)
from jc_pipeline_tests.test_validation_support import REGISTRY, TODAY, Warehouse, month

MARCH = month(2025, 3)
ARRESTS, OFFENSE = "LAW_ENFORCEMENT_ARRESTS", "metric/offense/type"
STORED = "SELECT * EXCLUDE (checked_at) FROM validation_results ORDER BY ALL"

#: A district court's single-row correction of an old month, sent by its superagency (the `agency` column names
#: the child): the upload's folder is the superagency's, its rows are the court's.
SUPERAGENCY, CHILD = "aoc", "district_court_2"
COMPARED = {
    "agency_metrics": "SELECT * FROM {db}.agency_metrics",
    "validation_results": "SELECT * EXCLUDE (checked_at) FROM {db}.validation_results",
    "state_metrics": "SELECT * FROM {db}.state_metrics",
    "state_metric_contributions": "SELECT * FROM {db}.state_metric_contributions",
}
#: Where each 2025 row stands: an agency_metrics row or a contribution by its rowid, a result by when it was checked.
POSITIONS = {
    "agency_metrics": "SELECT agency_id, rowid AS at FROM agency_metrics WHERE year(period_start) = 2025",
    "validation_results": "SELECT agency_id, checked_at AS at FROM validation_results WHERE year(period_start) = 2025",
    "state_metric_contributions": "SELECT agency_id, rowid AS at FROM state_metric_contributions "
                                  "WHERE year(period_start) = 2025",
}


def _store(data: Path) -> Path:
    return data / "pipeline" / "store.duckdb"


def _positions(data: Path) -> dict[str, set[tuple]]:
    with duckdb.connect(str(_store(data)), read_only=True) as con:
        return {table: set(con.execute(sql).fetchall()) for table, sql in POSITIONS.items()}


def _run(data: Path, home: Path, *args: str) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        assert main(["run", "--data-dir", str(data), *args]) == 0


def test_validating_some_agencies_stores_and_reports_what_validating_all_does(tmp_path):
    """Three agencies fail some rules; one agency's datapoints change and only it is re-checked: the others'
    results are not rewritten, the stored results are those of checking all three again, and the outcomes count
    every agency's failures."""
    wh = Warehouse(tmp_path / "w.duckdb")
    for agency, person in (("A", 4), ("B", 9), ("C", 5)):  # B's breakdown is off by 5; every one lacks race
        wh.agency(agency, ["LAW_ENFORCEMENT"])
        wh.add(agency, ARRESTS, MARCH, 10)
        wh.add_breakdown(agency, ARRESTS, MARCH, OFFENSE, {"PERSON": person, "PROPERTY": 6})
    wh.validate([MARCH])
    others = "SELECT * FROM validation_results WHERE agency_id <> 'A' ORDER BY ALL"
    before = wh.con.execute(others).fetchall()
    wh.con.execute("UPDATE agency_metrics SET value = 20 WHERE agency_id = 'A' AND dimension IS NULL")

    scoped = validation.validate_months(wh.con, [MARCH], today=TODAY, registry=REGISTRY, agencies=["A"])
    assert wh.con.execute(others).fetchall() == before  # checked_at included: not rewritten
    stored = wh.con.execute(STORED).fetchall()
    whole = validation.validate_months(wh.con, [MARCH], today=TODAY, registry=REGISTRY)
    assert wh.con.execute(STORED).fetchall() == stored
    assert wh.failing_agencies("breakdowns_sum_to_total") == {"A", "B"}
    for ours, theirs in zip(scoped, whole, strict=True):
        assert (ours.passed, ours.failing_groups) == (theirs.passed, theirs.failing_groups), ours.rule.name
        assert (ours.rechecked_agencies, theirs.rechecked_agencies) == (1, None)
        assert sorted(map(repr, ours.sample)) == sorted(map(repr, theirs.sample)), ours.rule.name
        assert ours.sample == sorted(ours.sample, key=_sample_order), ours.rule.name
    assert max(o.failing_groups for o in scoped) >= 3  # counts span agencies not re-checked


def test_validating_several_scopes_reports_one_verdict_over_all_their_months(tmp_path):
    """A nightly run's rebuilds, each its own months and agencies, checked at once: the stored results are those
    of checking each on its own, and each rule's outcome counts the stored failures of all their months (every
    agency's), once, with the agencies re-checked in any of them."""
    may = month(2025, 5)
    wh = Warehouse(tmp_path / "w.duckdb")
    for agency, person in (("A", 4), ("B", 9), ("C", 5)):  # B's breakdown is off by 5 in both months
        wh.agency(agency, ["LAW_ENFORCEMENT"])
        for period in (MARCH, may):
            wh.add(agency, ARRESTS, period, 10)
            wh.add_breakdown(agency, ARRESTS, period, OFFENSE, {"PERSON": person, "PROPERTY": 6})
    wh.validate([MARCH, may])
    whole = wh.con.execute(STORED).fetchall()
    wh.con.execute("UPDATE agency_metrics SET value = 20 WHERE dimension IS NULL "
                   "AND (agency_id = 'A' OR (agency_id = 'C' AND period_start = ?))", [may])
    scoped = validation.validate_scopes(wh.con, [([MARCH], ["A"]), ([may], ["C", "A"])], today=TODAY,
                                        registry=REGISTRY)
    stored = wh.con.execute(STORED).fetchall()
    assert stored != whole  # A and C now fail in the months re-checked
    reference = validation.validate_months(wh.con, [MARCH, may], today=TODAY, registry=REGISTRY)
    assert wh.con.execute(STORED).fetchall() == stored
    assert wh.failing_agencies("breakdowns_sum_to_total") == {"A", "B", "C"}
    for ours, theirs in zip(scoped, reference, strict=True):
        assert (ours.passed, ours.failing_groups) == (theirs.passed, theirs.failing_groups), ours.rule.name
        assert ours.rechecked_agencies == 2
    assert max(o.failing_groups for o in scoped) >= 5  # B in both months, A in both, C in May


def _two_years(path: Path) -> Warehouse:
    """Agencies A, B, C with arrests and their offense breakdown in March of 2019 and of 2024, all checked; B's
    breakdown is off by 5."""
    wh = Warehouse(path)
    for agency, person in (("A", 4), ("B", 9), ("C", 5)):
        wh.agency(agency, ["LAW_ENFORCEMENT"])
        for period in (month(2019, 3), month(2024, 3)):
            wh.add(agency, ARRESTS, period, 10)
            wh.add_breakdown(agency, ARRESTS, period, OFFENSE, {"PERSON": person, "PROPERTY": 6})
    wh.validate([month(2019, 3), month(2024, 3)])
    # A night's late corrections: A's 2019 total (now off its breakdown), B's 2024 breakdown (now right).
    wh.con.execute("UPDATE agency_metrics SET value = 20 WHERE agency_id = 'A' AND dimension IS NULL "
                   "AND year(period_start) = 2019")
    wh.con.execute("UPDATE agency_metrics SET value = 4 WHERE agency_id = 'B' AND category = 'PERSON' "
                   "AND year(period_start) = 2024")
    return wh


def test_years_checked_at_once_store_and_report_what_each_year_checked_alone_does(tmp_path):
    """Each SQL rule checks all of a scope's months in one query, while Great Expectations validates a year's
    slice at a time: two years checked at once store the results of checking each year on its own, and each rule
    counts the same failing groups and rows checked. The years hold a total that jumps in January (judged on the
    year before), a breakdown off by 5 each June and a required breakdown (race) never sent."""
    months = [month(year, m) for year in (2023, 2024) for m in range(1, 13)]

    def two_years(path: Path) -> Warehouse:
        wh = Warehouse(path)
        for agency in ("A", "B"):
            wh.agency(agency, ["LAW_ENFORCEMENT"])
            for period in months:
                total = 900 if (agency, period) == ("A", month(2024, 1)) else 100
                person = 55 if (agency, period.month) == ("B", 6) else 50
                wh.add(agency, ARRESTS, period, total)
                wh.add_breakdown(agency, ARRESTS, period, OFFENSE, {"PERSON": person, "PROPERTY": total - 50})
        wh.flush()
        return wh

    by_year = two_years(tmp_path / "by_year.duckdb")
    alone = [by_year.validate([m for m in months if m.year == year]) for year in (2023, 2024)]
    at_once = two_years(tmp_path / "at_once.duckdb")
    outcomes = at_once.validate(months)
    assert at_once.con.execute(STORED).fetchall() == by_year.con.execute(STORED).fetchall()
    for outcome, first, second in zip(outcomes.values(), *(a.values() for a in alone), strict=True):
        assert (outcome.failing_groups, outcome.checked_rows) == (
            first.failing_groups + second.failing_groups, first.checked_rows + second.checked_rows), outcome.rule.name
        assert outcome.error is None, outcome.rule.name
    failing = {name: {(r["agency_id"], r["period_start"]) for r in at_once.results(name)}
               for name in ("no_implausible_jumps", "breakdowns_sum_to_total", "required_breakdowns_present")}
    assert failing["no_implausible_jumps"] == {("A", month(2024, 1))}
    assert failing["breakdowns_sum_to_total"] == {("B", month(2023, 6)), ("B", month(2024, 6))}
    assert {(agency, start.year) for agency, start in failing["required_breakdowns_present"]} == {
        (agency, year) for agency in ("A", "B") for year in (2023, 2024)}


def test_small_scopes_of_different_years_are_checked_at_once_with_the_results_of_each_alone(tmp_path):
    """A night's late corrections, one agency each in different years, are checked together across their years
    (every rule once and one Great Expectations slice, not once per scope): the stored results are those of
    checking each scope on its own; each agency's results in the other's year, and those of the agency in neither,
    are not rewritten; the outcomes count the stored failures of both months."""
    scopes = [([month(2019, 3)], ["A"]), ([month(2024, 3)], ["B"])]
    (scope,) = check_scopes(scopes)
    assert (scope.months, scope.agencies) == ([month(2019, 3), month(2024, 3)], ["A", "B"])
    assert scope.slices == [[month(2019, 3), month(2024, 3)]]
    assert scope.parts == (Owned([month(2019, 3)], ["A"]), Owned([month(2024, 3)], ["B"]))

    alone = _two_years(tmp_path / "alone.duckdb")
    for months, agencies in scopes:
        validation.validate_months(alone.con, months, today=TODAY, registry=REGISTRY, agencies=agencies)
    together = _two_years(tmp_path / "together.duckdb")
    untouched = ("SELECT * FROM validation_results WHERE agency_id = 'C' OR (agency_id = 'A' AND "
                 "year(period_start) = 2024) OR (agency_id = 'B' AND year(period_start) = 2019) ORDER BY ALL")
    before = together.con.execute(untouched).fetchall()
    outcomes = {o.rule.name: o for o in validation.validate_scopes(together.con, scopes, today=TODAY,
                                                                   registry=REGISTRY)}
    assert together.con.execute(STORED).fetchall() == alone.con.execute(STORED).fetchall()
    assert before and together.con.execute(untouched).fetchall() == before  # checked_at included: not rewritten
    failing = {(r["agency_id"], r["period_start"].year) for r in together.results("breakdowns_sum_to_total")}
    assert failing == {("A", 2019), ("B", 2019)}  # A's correction fails now, B's 2024 passes, B's 2019 still fails
    assert outcomes["breakdowns_sum_to_total"].failing_groups == 2
    assert outcomes["breakdowns_sum_to_total"].rechecked_agencies == 2


def test_only_small_scopes_are_merged_and_only_while_they_stay_small():
    """Every agency's months, or many agencies' years, are never merged, and Great Expectations validates them a
    calendar year's slice at a time; scopes of a few agencies are merged until the union would pass
    SMALL_SCOPE_AGENCY_YEARS."""
    many = [f"agency_{i:03d}" for i in range(SMALL_SCOPE_AGENCY_YEARS // 2 + 1)]
    whole = ([month(2023, 12), month(2024, 1)], None)
    wide = ([month(2023, 12), month(2024, 1)], many)  # just over the bound: two years
    first, late, more = ([month(2018, 9)], ["A"]), ([month(2020, 3)], ["B", "A"]), ([month(2021, 5)], many)
    scopes = check_scopes([whole, first, wide, late, more])
    assert [(s.months, s.agencies, s.parts) for s in scopes] == [
        (*whole, (Owned(*whole),)), (*wide, (Owned(*wide),)),
        ([month(2018, 9), month(2020, 3)], ["A", "B"], (Owned(*first), Owned([month(2020, 3)], ["A", "B"]))),
        (*more, (Owned(*more),))]  # merged with A and B it would be 3 years x 253 agencies
    assert scopes[0].slices == [[m] for m in whole[0]]  # a year at a time
    assert [s.small for s in scopes] == [False, False, True, True]
    assert check_scopes([([], ["A"])])[0].slices == []  # nothing to validate


def test_no_months_of_some_agencies_validates_nothing(tmp_path):
    """A scope of some agencies without any month checks nothing, alone or merged with another: no rule runs on
    an empty month list (each would fail to bind its date arithmetic) and the stored results stay as they were."""
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.agency("A", ["LAW_ENFORCEMENT"])
    wh.add("A", ARRESTS, MARCH, 10)
    wh.validate([MARCH])
    stored = wh.con.execute(STORED).fetchall()
    for scopes in ([([], ["A"])], [([], ["A"]), ([MARCH], ["A"])]):
        outcomes = validation.validate_scopes(wh.con, scopes, today=TODAY, registry=REGISTRY)
        assert [o.error for o in outcomes if o.error] == []
        assert stored and wh.con.execute(STORED).fetchall() == stored


@pytest.fixture(scope="module")
def nightly(tmp_path_factory):
    """The baseline, then one nightly run over: a new month from every agency (bench increment: the superagency's
    month carries its courts' rows), the bench's late correction, one more of another agency and one the
    superagency sends for a court. Returns the data directory, its Dagster home, the agencies the corrections
    are for, and the 2025 positions before the run."""
    root = tmp_path_factory.mktemp("scoped")
    data = copy_state(baseline(tmp_path_factory), root / "data")
    before = _positions(data)
    late = first_law_enforcement_agency(data / "warehouse.duckdb")
    add_late_correction(data, late)  # 2025-03
    court = data / "inbox" / SUPERAGENCY / "COURTS_AND_PRETRIAL" / "correction_2025_05.csv"
    court.write_text(f"metric,year,month,agency,breakdown_category,breakdown,value\n"
                     f"cases_filed,2025,5,{CHILD},,,4321\n")
    written = scale.write_nightly_increment(data, DEMO["agencies"], DEMO["years"], DEMO["seed"])
    bench_corrected = {path.parent.parent.name for path in written if path.stem.endswith("_correction")}
    _run(data, root / "dagster_home")
    return data, root / "dagster_home", {late, CHILD} | bench_corrected, before


def _rebuilds(instance: dg.DagsterInstance, run: dg.DagsterRun, asset: str) -> list[dict]:
    """The `rebuilds` metadata of `asset` in `run` (the same on each partition the run materialized)."""
    (rebuilds,) = {json.dumps(e.asset_materialization.metadata["rebuilds"].value)
                   for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
                   if e.asset_materialization.asset_key == dg.AssetKey(asset)}
    return json.loads(rebuilds)


@pytest.mark.slow
def test_a_nightly_run_is_one_roll_up_rebuilding_each_range_for_its_own_agencies(nightly):
    """One tagged run from the earliest correction to the new month; in it each range of months with pending
    uploads is rebuilt for the agencies of those uploads, the months between are not rebuilt at all, and the state
    roll-up re-reads the same ranges and agencies."""
    _, home, corrected, _ = nightly
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (rollup,) = instance.get_runs(dg.RunsFilter(job_name="rollup_job"))
        assert rollup.tags.get(PENDING_AGENCIES_TAG)
        rebuilds = _rebuilds(instance, rollup, "agency_metrics")
        assert _rebuilds(instance, rollup, "state_metrics") == rebuilds  # the same months and agencies
        # Dagster puts a range run's metadata on every partition of the range: no per-partition row count there.
        for asset in ("agency_metrics", "state_metrics"):
            metadata = _materialization(instance, rollup, asset)
            assert "dagster/partition_row_count" not in metadata and metadata["rows_in_rebuilt_months"].value > 0
    by_start = {r["first"]: r for r in rebuilds}
    assert (rollup.tags["dagster/asset_partition_range_start"], rollup.tags["dagster/asset_partition_range_end"]) == (
        rebuilds[0]["first"], "2026-01-01")
    assert by_start["2025-05-01"] == {"first": "2025-05-01", "last": "2025-05-01", "agencies": 1}  # the court only
    assert by_start["2026-01-01"]["agencies"] > len(corrected)  # the new month: every agency still reporting
    assert all(r["agencies"] <= len(corrected) for start, r in by_start.items() if start != "2026-01-01")
    assert len(rebuilds) >= 3 and all(a["last"] < b["first"] for a, b in itertools.pairwise(rebuilds))
    # April, between the corrections of March and May, is not rebuilt.
    assert [r["last"] for r in rebuilds if r["first"] <= "2025-03-01" <= r["last"]] == ["2025-03-01"]


@pytest.mark.slow
def test_the_checks_of_a_nightly_run_judge_every_agency_of_its_months(nightly):
    """A check's count and verdict are those of the rebuilt months' stored results, every agency's, not only of
    the agencies re-checked; the metadata says how many were."""
    data, home, _, _ = nightly
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs(dg.RunsFilter(job_name="rollup_job"))
        rebuilds = _rebuilds(instance, run, "agency_metrics")
        rechecked = _materialization(instance, run, "agency_metrics")["rebuilt_agencies"].value
        evaluations = {e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data
                       for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)}
    months = [m for r in rebuilds for m in months_between(date.fromisoformat(r["first"]),
                                                          add_months(date.fromisoformat(r["last"]), 1))]
    with duckdb.connect(str(_store(data)), read_only=True) as con:
        # The rebuilt months, and their whole years for the rules judged per year (Rule.scope).
        stored = dict(con.execute("""
            SELECT check_name, count(*) FROM validation_results
            WHERE list_contains($months, period_start)
               OR (list_contains($years, year(period_start)) AND list_contains($year_rules, check_name))
            GROUP BY ALL""", {"months": months, "years": sorted({m.year for m in months}),
                              "year_rules": [r.name for r in validation.RULES if r.scope == "years"]}).fetchall())
    assert any(stored.values())  # some rule fails for some agency: the counts below are not all zero
    assert rechecked >= max(r["agencies"] for r in rebuilds)
    for rule in validation.RULES:
        evaluation = evaluations[rule.name]
        assert evaluation.metadata["failing_groups"].value == stored.get(rule.name, 0), rule.name
        assert evaluation.passed == (rule.name not in stored), rule.name
        assert evaluation.metadata["rechecked_agencies"].value == rechecked
        sample = evaluation.metadata["sample"].value if "sample" in evaluation.metadata else []
        assert len(sample) == min(stored.get(rule.name, 0), SAMPLE_SIZE)
        assert sample == sorted(sample, key=_sample_order)


def _materialization(instance: dg.DagsterInstance, run: dg.DagsterRun, asset: str) -> dict:
    return next(e.asset_materialization.metadata
                for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
                if e.asset_materialization.asset_key == dg.AssetKey(asset))


def _sample_order(row: dict) -> tuple:
    return tuple((row[k] is None, row[k] or "") for k in ("agency_id", "metric_key", "period_start", "period_end",
                                                          "dimension", "category", "file_id", "sheet"))


@pytest.mark.slow
def test_other_agencies_rows_and_results_are_left_alone(nightly):
    data, _, corrected, before = nightly
    after = _positions(data)
    for table in POSITIONS:
        untouched_before = {row for row in before[table] if row[0] not in corrected}
        untouched_after = {row for row in after[table] if row[0] not in corrected}
        assert untouched_after == untouched_before, table
        rebuilt = {row[0] for row in after[table] - before[table]}
        assert rebuilt and rebuilt <= corrected, table  # the corrected agencies' months (or years): rebuilt
    assert {row[0] for row in after["agency_metrics"] - before["agency_metrics"]} == corrected


@pytest.mark.slow
def test_a_nightly_run_ends_where_a_backfill_of_every_month_ends(nightly, tmp_path):
    """The same store rebuilt whole by a backfill (no tag): agency_metrics, validation_results (but when each
    result was checked) and state_metrics are equal row for row, duplicates included; and the backfill did rebuild
    every month, every agency's results of them checked again."""
    data, _, _, _ = nightly
    full = copy_state(data, tmp_path / "full")
    with duckdb.connect(str(_store(full)), read_only=True) as con:
        first, last = con.execute("SELECT min(period_start), max(period_start) FROM agency_metrics").fetchall()[0]
    started = datetime.now(UTC).replace(tzinfo=None)
    _run(full, tmp_path / "dagster_home", "--from", f"{first:%Y-%m}", "--to", f"{last:%Y-%m}")
    with duckdb.connect(str(_store(full)), read_only=True) as con:
        con.execute("ATTACH ? AS nightly (READ_ONLY)", [str(_store(data))])
        for table, sql in COMPARED.items():
            ours, theirs = sql.format(db="nightly"), sql.format(db="main")
            assert con.execute(f"SELECT count(*) FROM ({ours} EXCEPT ALL {theirs})").fetchall() == [(0,)], table
            assert con.execute(f"SELECT count(*) FROM ({theirs} EXCEPT ALL {ours})").fetchall() == [(0,)], table
        assert con.execute("SELECT count(*) FROM main.agency_metrics").fetchall()[0][0] > 0
        stale = con.execute("SELECT count(*) FROM main.validation_results WHERE checked_at < ?",
                            [started]).fetchall()[0][0]
        assert stale == 0
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        (backfill,) = instance.get_runs(dg.RunsFilter(job_name="rollup_job"))
        assert PENDING_AGENCIES_TAG not in backfill.tags
