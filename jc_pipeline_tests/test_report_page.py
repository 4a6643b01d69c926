"""The static state report: numbers straight from state_metrics with coverage beside each, period kinds kept
apart, breakdowns gated by the publication threshold, the coverage grid, escaping, and nothing fetched."""

from __future__ import annotations

import re

import pytest

from jc_pipeline.lib.report.format import value_text
from jc_pipeline.lib.report.page import GRID_STATUS
from jc_pipeline_tests.report_support import HOSTILE_NAME, Page, build_report_state, write_report_set


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    con = build_report_state(root / "warehouse.duckdb")
    index = write_report_set(con, root / "reports")
    html = index.read_text(encoding="utf-8")
    yield con, index, html, Page(html)
    con.close()


def test_every_state_number_is_on_the_page_with_its_coverage(built):
    con, _, _, page = built
    tooltips = set(page.titles)
    rows = con.execute(
        "SELECT s.period_label, s.value, s.agencies_reporting, s.agencies_expected, d.unit FROM state_metrics s "
        "JOIN metric_definitions d USING (metric_key) WHERE s.dimension IS NULL AND s.value IS NOT NULL").fetchall()
    assert rows
    for label, value, reporting, expected, unit in rows:
        prefix = f"{label}: {value_text(value, unit)}; {reporting} of {expected} agencies reporting"
        assert any(t.startswith(prefix) for t in tooltips), prefix


def test_every_chart_has_as_many_marks_as_it_announces(built):
    _, _, html, page = built
    charts = re.findall(r'<svg class="chart".*?</svg>', html, flags=re.S)
    assert len(charts) == len(page.all("svg", "chart")) > 5
    for chart in charts:
        announced = int(re.search(r'data-points="(\d+)"', chart).group(1))
        marks = len(re.findall(r'class="mark"', chart))
        assert marks == announced > 0, chart[:200]
    # Trends carry a coverage bar per period (the strip), so coverage is never apart from the value.
    trends = [c for c in charts if 'class="coverage"' in c]
    assert trends and all(c.count('class="coverage"') >= c.count('class="mark"') for c in trends)


def test_period_kinds_have_their_own_charts_and_labels(built):
    _, _, html, page = built
    assert "By calendar month" in html
    assert "By fiscal year (Jul–Jun)" in html  # LE3's July fiscal-year funding, never added to CY2023
    assert "By calendar year, agencies reporting calendar years" in html
    assert "By calendar year, derived from monthly reports" in html
    assert any(t.startswith("FY2023 (Jul-Jun): $300,000; 1 of 1 agencies") for t in page.titles)
    assert any(t.startswith("CY2023: $1,500,000; 2 of 2 agencies") for t in page.titles)


def test_breakdowns_show_only_published_rows_and_flag_the_rest(built):
    con, _, html, page = built
    # Bar tooltips start with the category (no metric_categories in the fixture: the member NAME).
    bars = [t for t in page.titles if t.startswith(("PERSON", "PROPERTY"))]
    assert bars, page.titles[:20]
    unpublished = con.execute("SELECT DISTINCT period_label FROM state_metrics WHERE is_breakdown_published = FALSE"
                              " AND dimension = 'global/race_and_ethnicity'").fetchall()
    assert unpublished == [("2023-01",)]
    # Offense type: 2023-01 published (88 % of the total covered) -> bars; 2022-01 (69 %) never drawn.
    assert all(", 2023-01:" in t for t in bars)
    # Race: the only period is below the threshold -> no bars, a marked note.
    assert "2023-01: below coverage threshold" in html
    assert not any("Black" in t or "NOT_HISPANIC_BLACK" in t for t in page.titles)


def test_coverage_grid_marks_reported_missing_and_failed(built):
    _, _, html, _ = built
    found = re.findall(r"<td class='cell (\w+)' title='Agency (LE\d) · (\d{4}-\d\d): ([^']*)'", html)
    status = {(agency, month): cls for cls, agency, month, _ in found}
    assert status[("LE4", "2023-03")] == "failed"  # a validation ERROR keeps it out
    assert status[("LE2", "2023-12")] == "missing"
    assert status[("LE1", "2023-12")] == "reported"
    # Readable without colour: every status cell carries its symbol.
    for cls, symbol in ((k, v[0]) for k, v in GRID_STATUS.items()):
        if cls in status.values():
            assert re.search(rf"<td class='cell {cls}'[^>]*><span aria-label='[^']+'>{re.escape(symbol)}</span>", html)


def test_quality_summary_links_to_every_agency_page(built):
    con, index, _, page = built
    links = [a["href"] for a in page.all("a") if a["href"].startswith("../agencies/")]
    agencies = [r[0] for r in con.execute("SELECT agency_id FROM agencies").fetchall()]
    for agency in agencies:
        assert f"../agencies/{agency}.html" in links
        assert f"../agencies/{agency}.xlsx" in links
    for href in set(links):
        assert (index.parent / href).resolve().is_file(), href


def test_static_escaped_and_offline(built):
    _, _, html, page = built
    assert HOSTILE_NAME not in html and "&lt;img src=x onerror=" in html
    assert not page.all("script") and not page.all("iframe") and not page.all("img")
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:|//)", html)
    assert "http://" not in html and "https://" not in html
    assert "/tmp/" not in html and "inbox/" not in html  # no paths from data on the state page
