"""Expected periods, computed once per publish: the parts the feedback and the state report read agree with the
whole query, and the publish steps of one process share them for as long as the published file is the same."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from datetime import date, timedelta

import pytest

from jc_pipeline.defs.publish import reports
from jc_pipeline.defs.resources import WarehouseResource
from jc_pipeline.lib import report, validation
from jc_pipeline.lib.periods import add_months, period_label
from jc_pipeline.lib.report.data import GRID_MONTHS, GRID_YEARS, REPORTED, _sql
from jc_pipeline.lib.state_clock import state_today
from jc_pipeline_tests.report_support import build_report_state

ORDER = ("state_code", "agency_id", "metric_key", "period_start")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    build_report_state(root / "warehouse.duckdb").close()
    return root


@pytest.fixture
def warehouse(data_dir):
    return WarehouseResource(data_dir=str(data_dir))


def test_parts_agree_with_the_whole_query(warehouse):
    with warehouse.store().open(warehouse.layout.warehouse, read_only=True) as con:
        whole = con.sql(_sql("expected_periods.sql"), params={"recent_months": None, "recent_years": None,
                                                              "today": state_today()}).to_arrow_table().to_pylist()
        expected = report.expected_periods(con)
    unreported = sorted((r for r in whole if r["status"] != REPORTED), key=lambda r: tuple(r[k] for k in ORDER))
    assert unreported and len(unreported) < len(whole)
    assert expected.unreported.to_pylist() == unreported
    counts = {r["agency_id"]: (r["failed"], r["missing"]) for r in expected.counts.to_pylist()}
    statuses = Counter((r["agency_id"], r["status"]) for r in whole)
    assert counts == {a: (statuses[(a, "FAILED_VALIDATION")],
                          statuses[(a, "MISSING")] + statuses[(a, "NOT_COUNTED")])
                      for a in {r["agency_id"] for r in whole}}
    assert {tuple(r.values()) for r in expected.metrics.to_pylist()} == {
        (r["state_code"], r["parent_sector"], r["metric_key"]) for r in whole}
    # The grid cells: an agency's monthly column of a section counts each of its metrics' period of that month.
    cells = {(c["parent_sector"], c["agency_id"], c["column_start"]): c
             for c in expected.grid.to_pylist() if c["frequency"] == "MONTHLY"}
    months = sorted({r["period_start"] for r in whole if r["frequency"] == "MONTHLY"})
    assert {month for *_, month in cells} == set(months[-GRID_MONTHS:])
    for (section, agency, month), cell in cells.items():
        rows = [r for r in whole if (r["parent_sector"], r["agency_id"], r["period_start"], r["frequency"])
                == (section, agency, month, "MONTHLY")]
        assert (cell["expected"], cell["reported"], cell["failed"], cell["not_counted"]) == (
            len(rows), *(sum(r["status"] == s for r in rows) for s in (REPORTED, "FAILED_VALIDATION", "NOT_COUNTED")))
        assert cell["labels"] == [period_label(month, rows[0]["period_end"])]
        assert cell["periods"] == cell["labels"][0]  # what a run of cells names (the tooltip starts with it)
        assert cell["column_label"] == f"{month:%Y-%m}"
        # What the grid shows: failed validation beats missing beats reported; the tooltip counts the metrics.
        failed, reported, not_counted = cell["failed"], cell["reported"], cell["not_counted"]
        assert cell["cell_status"] == ("failed" if failed else "reported" if reported == len(rows)
                                       else "partial" if reported else "missing")
        assert cell["tooltip"] == "".join([f"{cell['labels'][0]}: {reported} of {len(rows)} expected metrics reported",
                                           f"; {failed} failed validation" if failed else "",
                                           f"; {not_counted} sent but not counted" if not_counted else ""])
    assert any(c["failed"] for c in cells.values()) and any(c["reported"] < c["expected"] for c in cells.values())
    assert {c["cell_status"] for c in cells.values()} >= {"failed", "reported"}


def _periods(con, recent_months, recent_years):
    sql = _sql("expected_periods.sql")
    params = {"recent_months": recent_months, "recent_years": recent_years, "today": state_today()}
    return sorted(con.sql(sql, params=params).to_arrow_table().to_pylist(), key=lambda r: repr(tuple(r.values())))


def _recent(con, recent_months, recent_years):
    """The rule the query states, per state: a monthly period among the state's latest months, an annual one
    starting on or after January 1 of the year ``recent_years`` + 1 years before its annual window ends."""
    rows = con.execute("""
        SELECT state_code, max(period_start) FILTER (WHERE frequency = 'MONTHLY'),
               max(period_end) FILTER (WHERE frequency = 'ANNUAL' AND NOT is_derived_annual)
        FROM state_metrics GROUP BY state_code""").fetchall()
    # A state without months (years) has no bound there: every period is recent.
    bounds = {state: (add_months(last_month, 1 - recent_months) if last_month else date.min,
                      date(last_year_end.year - recent_years - 1, 1, 1) if last_year_end else date.min)
              for state, last_month, last_year_end in rows}
    return lambda r: r["period_start"] >= bounds[r["state_code"]][r["frequency"] != "MONTHLY"]


#: Changes of the small state, applied one after the other: LE1 sent January 2023's arrests without the total (an
#: older period not counted among counted ones); then LE1 reports arrests annually from July, a setting its monthly
#: totals in the state sums predate (none of them is an annual period of its: the older fiscal year 2022-23 is
#: missing).
CHANGES = (
    "DELETE FROM agency_metrics WHERE agency_id = 'LE1' AND metric_key = 'LAW_ENFORCEMENT_ARRESTS' "
    "AND period_start = DATE '2023-01-01' AND period_end = DATE '2023-02-01' AND dimension IS NULL",
    "DELETE FROM state_metric_contributions WHERE agency_id = 'LE1' AND metric_key = 'LAW_ENFORCEMENT_ARRESTS' "
    "AND period_start = DATE '2023-01-01' AND period_end = DATE '2023-02-01' AND dimension IS NULL",
    "UPDATE agency_metric_settings SET frequency = 'ANNUAL', starting_month = 7 "
    "WHERE agency_id = 'LE1' AND metric_key = 'LAW_ENFORCEMENT_ARRESTS'",
)


@pytest.mark.parametrize("recent_months, recent_years", [(1, 0), (3, 1), (GRID_MONTHS, GRID_YEARS)])
def test_recent_bounds_leave_out_only_older_reported_periods(tmp_path, recent_months, recent_years):
    """With recent bounds the query lists every period not reported as the whole query does, older ones too, and
    the reported ones only when recent (also after each of CHANGES)."""
    con = build_report_state(tmp_path / "warehouse.duckdb")
    for change in (None, *CHANGES):
        if change:
            con.execute(change)
        whole = _periods(con, None, None)
        part = _periods(con, recent_months, recent_years)
        recent = _recent(con, recent_months, recent_years)
        assert [r for r in part if r["status"] != REPORTED] == [r for r in whole if r["status"] != REPORTED]
        assert [r for r in part if r["status"] == REPORTED] == [r for r in whole if r["status"] == REPORTED
                                                                  and recent(r)]
        older = {r["status"] for r in whole if not recent(r)}
        if recent_months < GRID_MONTHS:
            # Some reported periods were left out, and older ones not reported are listed all the same.
            assert older > {REPORTED}
        else:
            assert part == whole  # two years of history: all within the grid's bounds
    le1 = {(r["frequency"], r["period_start"], r["status"]) for r in whole
           if (r["agency_id"], r["metric_key"]) == ("LE1", "LAW_ENFORCEMENT_ARRESTS")}
    assert ("ANNUAL", date(2022, 7, 1), "MISSING") in le1


def test_status_of_a_period_not_counted_reads_what_was_delivered(tmp_path):
    con = build_report_state(tmp_path / "warehouse.duckdb")
    # LE1 sent January 2023's arrests by offense without the total: its breakdown rows are counted, the period
    # is not (it has no total in the sum). LE4's March 2023 failed an ERROR check; PR1 sent nothing for 2023.
    key = ["LE1", "LAW_ENFORCEMENT_ARRESTS", date(2023, 1, 1)]
    total = "agency_id = ? AND metric_key = ? AND period_start = ? AND dimension IS NULL AND period_end = ?"
    con.execute("DELETE FROM agency_metrics WHERE " + total, [*key, date(2023, 2, 1)])
    con.execute("DELETE FROM state_metric_contributions WHERE " + total, [*key, date(2023, 2, 1)])
    unreported = {(r["agency_id"], r["metric_key"], r["period_start"]): (r["status"], r["reason"])
                  for r in report.expected_periods(con).unreported.to_pylist()}
    assert unreported[tuple(key)] == ("NOT_COUNTED", None)
    assert unreported[("LE4", "LAW_ENFORCEMENT_ARRESTS", date(2023, 3, 1))] == ("FAILED_VALIDATION", None)
    assert {status for (agency, _, _), (status, _) in unreported.items() if agency == "PR1"} == {"MISSING"}
    assert ("LE1", "LAW_ENFORCEMENT_ARRESTS", date(2023, 2, 1)) not in unreported


def test_a_period_sent_before_it_ended_is_expected_of_no_one_until_it_ends(tmp_path):
    """One agency's month sent early (period_not_in_future fails it, but the state row exists) does not make every
    other agency's feedback ask for that month until the month is over."""
    con = build_report_state(tmp_path / "warehouse.duckdb")
    (last,) = con.execute("SELECT max(period_start) FROM state_metrics WHERE frequency = 'MONTHLY'").fetchone()
    early, end = add_months(last, 1), add_months(last, 2)
    con.execute("INSERT INTO state_metrics SELECT * REPLACE (CAST(? AS DATE) AS period_start, CAST(? AS DATE) AS "
                "period_end) FROM state_metrics WHERE frequency = 'MONTHLY' AND period_start = ? LIMIT 1",
                [early, end, last])

    def asked(today):
        return {r["agency_id"] for r in report.expected_periods(con, today).unreported.to_pylist()
                if r["period_start"] == early}

    assert asked(end - timedelta(days=1)) == set()
    assert len(asked(end)) > 1  # once the month is over, everyone who sent nothing is asked for it


def test_publish_steps_share_one_computation_per_published_file(warehouse, monkeypatch, tmp_path):
    calls = []
    compute = report.expected_periods
    monkeypatch.setattr(report, "expected_periods", lambda con: calls.append(1) or compute(con))
    monkeypatch.setattr(reports, "_shared", {})
    with reports._published(warehouse, tmp_path) as (_, shared):
        first, first_found = shared(report.expected_periods), shared(validation.Findings.of)
    with reports._published(warehouse, tmp_path) as (_, shared):
        second, second_found = shared(report.expected_periods), shared(validation.Findings.of)
    assert second is first and second_found is first_found and len(calls) == 1

    # A new publish renames a new file into place: its expected periods and findings are computed again, each only
    # when a step reads it.
    path = warehouse.layout.warehouse
    shutil.copyfile(path, path.with_name("next.duckdb"))
    os.replace(path.with_name("next.duckdb"), path)
    with reports._published(warehouse, tmp_path) as (_, shared):
        third_found = shared(validation.Findings.of)
        assert len(calls) == 1
        third = shared(report.expected_periods)
    assert third is not first and len(calls) == 2
    assert third.unreported.equals(first.unreported)
    assert third_found.checks.rows.equals(first_found.checks.rows)
    assert third_found.checks.counts == first_found.checks.counts


def test_a_file_replaced_while_opening_is_read_not_shared(warehouse, monkeypatch, tmp_path):
    monkeypatch.setattr(reports, "_shared", {})
    seen = iter([("before",), ("after",)])
    monkeypatch.setattr(reports, "_identity", lambda path: next(seen))
    with reports._published(warehouse, tmp_path) as (_, shared):
        assert shared(report.expected_periods).unreported.num_rows
    assert reports._shared == {}
