"""The whole pipeline through Dagster on a small demo state: the promises of `jc-pipeline run`."""

from datetime import date

import dagster as dg
import duckdb
import pytest

from jc_pipeline.defs.publish import reports
from jc_pipeline.defs.publish.assets import analyst_warehouse, publish_generations
from jc_pipeline.defs.resources import WarehouseResource
from jc_pipeline.lib.demo import DemoManifest, write_demo_state
from jc_pipeline.lib.paths import DataLayout
from jc_pipeline.lib.periods import add_months
from jc_pipeline.runner import RunFailed, execute_in_process, run_pipeline
from jc_pipeline_tests.ingest_support import write_roster
from jc_pipeline_tests.report_support import Page
from jc_pipeline_tests.test_warehouse_docs import QUESTIONS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> DemoManifest:
    """The demo state as its generator wrote it (every file, sheet and row count)."""
    return write_demo_state(tmp_path_factory.mktemp("state"), agencies=24, years=2, seed=11)


@pytest.fixture(scope="module")
def demo(manifest):
    """A demo state with a finished first run (shared by the tests of this module, which run in order)."""
    root = manifest.data_dir
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(root / "dagster_home"))
        layout = DataLayout.from_env(root)
        first = run_pipeline(layout, echo=lambda line: None)
        yield layout, first, mp


def _query(layout: DataLayout, sql: str, params=None):
    with duckdb.connect(str(layout.warehouse), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def _law_enforcement_agency(layout: DataLayout) -> str:
    return _query(layout, """
        SELECT agency_id FROM agencies
        WHERE list_contains(sectors, 'LAW_ENFORCEMENT') AND superagency_id IS NULL ORDER BY agency_id LIMIT 1""")[0][0]


def test_first_run_publishes_every_table(demo):
    layout, first, _ = demo
    assert first.published and first.months
    counts = dict(_query(layout, """
        SELECT 'files', count(*) FROM source_files UNION ALL
        SELECT 'datapoints', count(*) FROM agency_metrics UNION ALL
        SELECT 'state', count(*) FROM state_metrics UNION ALL
        SELECT 'definitions', count(*) FROM metric_definitions"""))
    assert counts["files"] > 0 and counts["datapoints"] > 0 and counts["state"] > 0
    assert counts["definitions"] == 117
    # The data-quality report links every agency with findings to its feedback page; it keeps no page of its own.
    index = layout.reports / "data_quality" / "index.html"
    links = [a["href"] for a in Page(index.read_text(encoding="utf-8")).all("a")]
    assert links and all(href.startswith("../agencies/") and (index.parent / href).is_file() for href in links)
    assert [p.name for p in index.parent.glob("*.html")] == ["index.html"]


def test_registry_tables_hold_every_metric_and_category(demo):
    layout, _, _ = demo
    counts = dict(_query(layout, """
        SELECT parent_sector, count(*) FROM metric_definitions GROUP BY ALL"""))
    assert counts == {
        "LAW_ENFORCEMENT": 8, "PROSECUTION": 11, "DEFENSE": 8, "COURTS_AND_PRETRIAL": 8, "JAILS": 15,
        "PRISONS": 9, "SUPERVISION": 55, "SUPERAGENCY": 3,
    }
    race = _query(layout, """
        SELECT count(DISTINCT category) FROM metric_categories WHERE dimension = 'global/race_and_ethnicity'""")
    assert race == [(24,)]


def test_every_documented_question_runs_on_the_demo_warehouse(demo):
    """The analyst examples of docs/warehouse.md run on a real published warehouse (test_warehouse_docs checks
    their answers on a hand-made state); nearly all of them answer here too."""
    layout, _, _ = demo
    answered = [question for question, sql in QUESTIONS if _query(layout, sql)]
    assert len(answered) >= len(QUESTIONS) - 2, set(q for q, _ in QUESTIONS) - set(answered)


def test_every_file_accounts_for_every_row(demo, manifest):
    """Against the generator's own count of each file's rows: rows_loaded is rows_total less rows_rejected, so a row
    dropped before it is counted would leave that sum whole (helper-40 dropped every other row: it passed)."""
    layout, _, _ = demo
    counted = dict(_query(layout, "SELECT path, rows_total FROM current_source_files"))
    written = {f.path: sum(s.data_rows - s.blank_rows for s in f.sheets) for f in manifest.files}
    assert len(written) > 50 and {path: counted.get(path) for path in written} == written
    broken = _query(layout, "SELECT path FROM source_files WHERE rows_total <> rows_loaded + rows_rejected")
    assert broken == []
    unexplained = _query(layout, """
        SELECT f.path FROM source_files f
        WHERE f.rows_rejected > 0 AND NOT EXISTS (
            SELECT 1 FROM rejected_rows r WHERE r.file_id = f.file_id AND r.severity = 'ERROR')""")
    assert unexplained == []


def test_a_second_run_with_nothing_new_recomputes_nothing(demo):
    layout, _, _ = demo
    again = run_pipeline(layout, echo=lambda line: None)
    assert again.months == [] and not again.published


class _Stopped(Exception):
    """The run "dies" where this is raised."""


def test_files_touching_no_period_are_published_that_night_even_after_a_run_stopped_before_its_publish(demo):
    """A delivery whose rows are all rejected and an unreadable one touch no period, so nothing rolls up: their
    source_files and rejected_rows rows must still reach the warehouse (the data-quality report and the agency
    feedback read it) that night, also when the run that ingested them died before its publish."""
    layout, _, _ = demo
    folder = layout.inbox / _law_enforcement_agency(layout) / "LAW_ENFORCEMENT"
    (folder / "all_rejected.csv").write_text("metric,year,month,breakdown_category,breakdown,value\n"
                                             "arrests,2024,13,,,5\n")
    (folder / "broken.xlsx").write_bytes(b"not a workbook")

    def stopped_before_publish(definitions, job_name, config, tags, instance):
        if job_name == "publish_job":
            raise _Stopped
        return execute_in_process(definitions, job_name, config, tags, instance)

    with pytest.raises(_Stopped):  # the run goes on to publish although no month is pending
        run_pipeline(layout, echo=lambda line: None, launch=stopped_before_publish)
    assert not _query(layout, "SELECT 1 FROM source_files WHERE path LIKE '%/all_rejected.csv'")
    after = run_pipeline(layout, echo=lambda line: None)
    assert after.months == [] and after.published
    assert _query(layout, """
        SELECT regexp_extract(s.path, '[^/]+$'), s.status, list(r.rule ORDER BY r.rule)
        FROM source_files AS s LEFT JOIN rejected_rows AS r USING (file_id)
        WHERE s.path LIKE '%/all_rejected.csv' OR s.path LIKE '%/broken.xlsx'
        GROUP BY ALL ORDER BY 1""") == [("all_rejected.csv", "ERRORED", ["R2"]), ("broken.xlsx", "UNREADABLE", ["F0"])]
    assert not run_pipeline(layout, echo=lambda line: None).published  # published once, then nothing new


def test_a_publish_whose_reports_failed_is_published_again_by_the_next_run(demo):
    """The warehouse is swapped in first and the reports after it: a publish that failed in a report step
    records nothing (publish_generations runs last), so the next run publishes again, then nothing more."""
    layout, _, _ = demo
    folder = layout.inbox / _law_enforcement_agency(layout) / "LAW_ENFORCEMENT"
    (folder / "all_rejected_again.csv").write_text("metric,year,month,breakdown_category,breakdown,value\n"
                                                   "arrests,2024,14,,,5\n")
    state_dir = layout.reports / "state"
    state_dir.rename(layout.reports / "state_moved")
    state_dir.write_text("a file where the state report's folder goes")
    try:
        with pytest.raises(RunFailed, match="state_report"):
            run_pipeline(layout, echo=lambda line: None)
        # The new warehouse holds the delivery although its state report failed.
        assert _query(layout, "SELECT status FROM source_files WHERE path LIKE '%/all_rejected_again.csv'") == [
            ("ERRORED",)]
    finally:
        state_dir.unlink()
        (layout.reports / "state_moved").rename(state_dir)
    again = run_pipeline(layout, echo=lambda line: None)
    assert again.months == [] and again.published
    assert not run_pipeline(layout, echo=lambda line: None).published


def test_a_publish_from_the_ui_that_left_the_reports_out_is_published_again_by_the_next_run(demo):
    """helper-36: the warehouse and publish_generations materialized alone (the UI's asset selection) recorded the
    publish as complete, so `jc-pipeline run` said "warehouse unchanged" and the reports kept the rows before."""
    layout, _, _ = demo
    folder = layout.inbox / _law_enforcement_agency(layout) / "LAW_ENFORCEMENT"
    (folder / "all_rejected_once_more.csv").write_text("metric,year,month,breakdown_category,breakdown,value\n"
                                                      "arrests,2024,15,,,5\n")

    def stopped_before_publish(definitions, job_name, config, tags, instance):
        if job_name == "publish_job":
            raise _Stopped
        return execute_in_process(definitions, job_name, config, tags, instance)

    with pytest.raises(_Stopped):
        run_pipeline(layout, echo=lambda line: None, launch=stopped_before_publish)
    resources = {"warehouse": WarehouseResource(data_dir=str(layout.root))}
    published = dg.materialize([analyst_warehouse, publish_generations], resources=resources)
    assert published.asset_materializations_for_node("publish_generations")[0].metadata["recorded"].value is False
    again = run_pipeline(layout, echo=lambda line: None)
    assert again.published
    agency_pages = "\n".join(p.read_text() for p in (layout.reports / "agencies").glob("*.html"))
    assert "all_rejected_once_more.csv" in agency_pages


@pytest.mark.parametrize("report", ["state_report", "data_quality_report", "agency_feedback"])
def test_a_report_materialized_before_any_publish_says_what_to_run_first(tmp_path, report):
    """helper-36: from the UI, a report step before any publish failed with a bare FileNotFoundError."""
    write_roster(tmp_path)
    resources = {"warehouse": WarehouseResource(data_dir=str(tmp_path))}
    result = dg.materialize([getattr(reports, report)], resources=resources, raise_on_error=False)
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_failure_data.user_failure_data.description == (
        f"no published warehouse yet ({tmp_path / 'warehouse.duckdb'}): materialize analyst_warehouse first, or "
        f"run `jc-pipeline run`, which publishes it with every report")


def test_a_late_correction_recomputes_only_the_months_it_touches(demo):
    layout, _, _ = demo
    agency_id = _law_enforcement_agency(layout)
    correction = layout.inbox / agency_id / "LAW_ENFORCEMENT" / "correction.csv"
    correction.write_text("metric,year,month,breakdown_category,breakdown,value\narrests,2024,3,,,99999\n")
    result = run_pipeline(layout, echo=lambda line: None)
    assert result.months == [date(2024, 3, 1)]
    value = _query(layout, """
        SELECT value, sheet FROM agency_metrics WHERE agency_id = ? AND metric_key = 'LAW_ENFORCEMENT_ARRESTS'
          AND dimension IS NULL AND period_start = DATE '2024-03-01'""", [agency_id])
    assert value == [(99999.0, "correction.csv")]


def test_a_backfill_given_by_its_end_reaches_back_to_the_first_month_with_data(demo):
    """`run --to M`: from the first month holding a datapoint, not from 2000 (months with nothing to rebuild)."""
    layout, _, _ = demo
    [(first,)] = _query(layout, "SELECT min(period_start) FROM agency_metrics")
    result = run_pipeline(layout, last=add_months(first, 1), echo=lambda line: None)
    assert result.months == [first, add_months(first, 1)] and result.published


def test_a_backfill_stopped_before_its_roll_up_is_redone_by_the_next_run(demo):
    """helper-30: after a `run --from/--to` killed in its roll-up, the next run said it redid the work and found
    nothing new: a backfill after a rule change left its range stale without a word."""
    layout, _, _ = demo
    backfill = [date(2024, 4, 1), date(2024, 5, 1)]

    def stopped_in_the_roll_up(definitions, job_name, config, tags, instance):
        if job_name == "rollup_job":
            raise _Stopped
        return execute_in_process(definitions, job_name, config, tags, instance)

    with pytest.raises(_Stopped):
        run_pipeline(layout, first=backfill[0], last=backfill[-1], echo=lambda line: None,
                     launch=stopped_in_the_roll_up)
    assert run_pipeline(layout, echo=lambda line: None).months == backfill
    assert run_pipeline(layout, echo=lambda line: None).months == []


def test_backfill_range_is_idempotent(demo):
    layout, _, _ = demo
    before = _query(layout, "SELECT * FROM state_metrics ORDER BY ALL")
    result = run_pipeline(layout, first=date(2024, 1, 1), last=date(2024, 6, 1), echo=lambda line: None)
    assert result.published
    assert _query(layout, "SELECT * FROM state_metrics ORDER BY ALL") == before
