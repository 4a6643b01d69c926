"""The static state report: numbers straight from state_metrics with coverage beside each, period kinds kept
apart, breakdowns gated by the publication threshold, the coverage grid, escaping, and nothing fetched."""

from __future__ import annotations

import re
from datetime import date
from html import unescape

import pytest

from jc_pipeline.lib.periods import add_months, period_label
from jc_pipeline.lib.report import expected_periods, load_state_views
from jc_pipeline.lib.report.data import Grid, GridRow, MetricView, Series, SeriesKey, _breakdown_views
from jc_pipeline.lib.report.format import axis_text, value_text
from jc_pipeline.lib.report.page import GRID_STATUS, _grid, _metric
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
    # The bars of the agencies that sent the breakdown fall short of the total: by how much is said (helper-38).
    [(share,)] = con.execute("SELECT DISTINCT breakdown_share_pct FROM state_metrics WHERE period_label = '2023-01'"
                             " AND dimension = 'metric/offense/type'").fetchall()
    assert share < 99.95 and f"The agencies that sent this breakdown hold {share:.1f}% of the state total." in html
    # Race: the only period is below the threshold -> no bars, a marked note.
    assert "2023-01: below coverage threshold" in html
    assert not any("Black" in t or "NOT_HISPANIC_BLACK" in t for t in page.titles)


def test_a_combined_supervision_total_stands_beside_the_whole_state(built):
    """helper-38: the Supervision section showed the combined total (agencies reporting combined only) as if it were
    the state's, 'complete'; the statewide department's parole and probation counts were nowhere beside it."""
    con, _, html, _ = built
    [(combined, whole, reporting, expected)] = con.execute("""
        SELECT s.value, t.value, t.agencies_reporting, t.agencies_expected
        FROM state_metrics AS s JOIN state_supervision_totals AS t USING (state_code, metric_key, period_start)
        WHERE s.metric_key = 'SUPERVISION_POPULATION' AND s.period_kind = 'CALENDAR_MONTH' AND s.dimension IS NULL
          AND t.dimension IS NULL AND t.period_kind = 'CALENDAR_MONTH'""").fetchall()
    assert whole > combined
    trend = html.split('id="metric-supervision-population"')[1].split("</dl>")[0]
    assert (f"<dt>Whole state</dt><dd><b>{value_text(whole, 'count')}</b> from {reporting} of {expected} agencies "
            "(the chart counts the agencies reporting combined only; 1 more agency reports by subsystem") in trend


def _page_grids(html: str) -> list[tuple[list[str], list[tuple[str, list[tuple[str, int, str | None]]]]]]:
    """Each coverage grid of the page: its columns, and per row the agency's label and its cells (status,
    columns spanned, tooltip)."""
    grids = []
    for table in re.findall(r"<table class='grid'>(.*?)</table>", html, flags=re.S):
        columns = re.findall(r"<th class='col' title='([^']*)'>", table)
        rows = [(unescape(re.sub(r"<[^>]+>", "", label)),
                 [(status, int(span or 1), title or None) for status, span, title in re.findall(
                     r"<td class='cell (\w+)'(?: colspan='(\d+)')?(?: title='([^']*)')?>", cells)])
                for label, cells in re.findall(r"<tr><th class='agency'>(.*?)</th>(.*?)</tr>", table)]
        grids.append((columns, rows))
    return grids


def test_coverage_grid_marks_reported_missing_and_failed(built):
    con, _, html, _ = built
    page_grids = _page_grids(html)
    # The page shows every cell of the report's grids, in their order, each period of a row exactly once.
    grids = [grid for state in load_state_views(con, expected_periods(con)) for section in state.sections
             for grid in section.grids]
    assert [grid.columns for grid in grids] == [columns for columns, _ in page_grids]
    status = {}
    for grid, (columns, rows) in zip(grids, page_grids, strict=True):
        assert [row.agency_name for row in grid.rows] == [agency for agency, _ in rows]
        for row, (agency, cells) in zip(grid.rows, rows, strict=True):
            shown = [cls for cls, span, _ in cells for _ in range(span)]
            assert shown == [row.cells[c][0] if c in row.cells else "none" for c in columns], agency
            status.update(zip(((agency, column) for column in columns), shown, strict=True))
    assert status[("Agency LE4", "2023-03")] == "failed"  # a validation ERROR keeps it out
    assert status[("Agency LE2", "2023-12")] == "missing"
    assert status[("Agency LE1", "2023-12")] == "reported"
    # Readable without colour: every status cell carries its symbol.
    for cls, symbol in ((k, v[0]) for k, v in GRID_STATUS.items()):
        if cls in status.values():
            assert re.search(rf"<td class='cell {cls}'[^>]*><span aria-label='[^']+'>{re.escape(symbol)}</span>", html)


def test_coverage_grid_draws_a_run_of_reported_or_missing_periods_as_one_cell(built):
    """One cell per run of consecutive reported, missing or not expected periods, a cell of its own for each of the
    others: a large state's grids are mostly fully reported rows (87,013 cells at 3,000 agencies, 86,968 reported).
    A run's tooltip names its first and last periods, as a cell of its own names its period (CY2023 under the
    column 2023; the fixture's runs are months, the unit test below has runs of fiscal years)."""
    con, _, html, _ = built
    says = {"reported": "every expected metric reported, each period", "missing": "nothing counted, each period"}
    grids = [grid for state in load_state_views(con, expected_periods(con)) for section in state.sections
             for grid in section.grids]
    runs = set()
    for grid, (columns, rows) in zip(grids, _page_grids(html), strict=True):
        for row, (agency, cells) in zip(grid.rows, rows, strict=True):
            at = 0
            for (cls, span, title), after in zip(cells, [*cells[1:], None], strict=True):
                if after is not None:
                    assert not (cls == after[0] and cls in (*says, "none")), (agency, columns[at])  # merged
                # Each (status, periods, tooltip).
                first, last = row.cells.get(columns[at]), row.cells.get(columns[at + span - 1])
                if span > 1 and cls != "none":
                    runs.add(cls)
                    assert unescape(title) == f"{agency} · {first[1]} to {last[1]}: {says[cls]}"
                elif cls != "none":
                    assert span == 1 and unescape(title) == f"{agency} · {first[2]}"
                    assert first[2].startswith(f"{first[1]}: ")
                at += span
    assert runs == set(says)


def test_coverage_grid_keeps_a_cell_for_each_partly_reported_or_failed_period():
    statuses = ["reported", "reported", "partial", "partial", "failed", "failed", "missing", "missing", None, None,
                "reported"]
    columns = [str(year) for year in range(2015, 2015 + len(statuses))]
    # A fiscal-year agency: its periods (FY2015 (Jul-Jun)) are not the columns' names (the year a period ends).
    row = GridRow("A1", "Agency A1", {c: (s, f"FY{c} (Jul-Jun)", f"FY{c} (Jul-Jun): counts of {s}")
                                      for c, s in zip(columns, statuses, strict=True) if s is not None})
    (shown_columns, [(agency, cells)]), = _page_grids(_grid(Grid("Annual", columns, [row]), {}))
    assert shown_columns == columns and agency == "Agency A1"
    assert [(cls, span) for cls, span, _ in cells] == [
        ("reported", 2), ("partial", 1), ("partial", 1), ("failed", 1), ("failed", 1), ("missing", 2), ("none", 2),
        ("reported", 1)]
    titles = [unescape(title) for _, _, title in cells]
    assert titles[1:5] == [f"Agency A1 · FY{year} (Jul-Jun): counts of {s}"
                           for year, s in ((2017, "partial"), (2018, "partial"), (2019, "failed"), (2020, "failed"))]
    assert titles[0] == "Agency A1 · FY2015 (Jul-Jun) to FY2016 (Jul-Jun): every expected metric reported, each period"
    assert titles[5] == "Agency A1 · FY2021 (Jul-Jun) to FY2022 (Jul-Jun): nothing counted, each period"
    assert titles[7] == "Agency A1 · FY2025 (Jul-Jun): counts of reported"


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


@pytest.mark.parametrize(("unit", "is_level", "kind"), [
    ("USD", False, "amount over the period"),  # funding: INSTANT upstream in four sectors, still an amount
    ("count", True, "level at a point in time"),
    ("FTE", True, "level at a point in time"),
    ("count", False, "events during the period"),
])
def test_a_metric_says_whether_it_adds_up_as_the_roll_up_sums_it(unit, is_level, kind):
    view = MetricView(key="K", display_name="Funding", unit=unit, is_level=is_level, series=[], breakdowns=[])
    assert f"; {kind}; <code>K</code>" in _metric(view)


def _month(month: int, value: float, reporting: int, expected: int = 38) -> dict:
    return {"period_start": date(2025, month, 1), "period_end": add_months(date(2025, month, 1), 1),
            "period_label": f"2025-{month:02d}", "value": value, "agencies_reporting": reporting,
            "agencies_expected": expected, "coverage_population_pct": 100.0 * reporting / expected,
            "rate_per_100k": None, "is_complete": reporting == expected}


def test_a_month_few_agencies_reported_yet_is_no_fall_of_the_line_and_no_headline():
    """helper-38: 1 of 38 agencies' arrests for the month just begun were drawn as a fall from 2,633 to 40, joined
    by the line, and the facts said 'Latest: 40'. A period fewer than half the expected agencies reported is a
    point of its own, and the latest well-covered period is the headline, the others listed as still arriving."""
    rows = [_month(10, 2600, 38), _month(11, 2633, 37), _month(12, 40, 1)]
    view = MetricView(key="K", display_name="Arrests", unit="count", is_level=False, breakdowns=[],
                      series=[Series(SeriesKey("CALENDAR_MONTH", False, 1), rows)])
    html = _metric(view)
    polylines = re.findall(r'<polyline [^>]*points="([^"]*)"', html)
    assert [len(points.split()) for points in polylines] == [2]  # October to November only
    assert len(re.findall(r'<circle class="mark"', html)) == 3  # December is drawn, on its own
    facts = unescape(re.sub(r"<[^>]+>", "", html.split("<dl class='facts'>")[1].split("</dl>")[0]))
    assert facts.startswith("Latest2025-11: 2,633Coverage37 of 38 agencies reporting")
    assert facts.endswith("Still arriving2025-12: 1 of 38 agencies so far")


@pytest.mark.parametrize(("value", "text"), [(1250, "1.25k"), (2500, "2.5k"), (1_250_000, "1.25M"), (350, "350"),
                                             (1.25, "1.25"), (0.125, "0.125"), (0, "0")])
def test_axis_ticks_say_their_value(value, text):
    """helper-38, helper-39: a gridline at 1,250 read '1.2k', one at 1.25 '1.2'."""
    assert axis_text(value, "count") == text
    assert axis_text(value, "USD") == "$" + text


def test_a_dimension_published_for_fiscal_years_only_shows_them():
    """helper-38: the first kind of period with rows was taken, so a dimension whose calendar year is below the
    threshold never showed its fiscal year, published."""
    calendar, fiscal = SeriesKey("CALENDAR_YEAR", False, 1), SeriesKey("FISCAL_YEAR", False, 7)

    def row(key: SeriesKey, label: str, published: bool) -> dict:
        return {"period_kind": key.period_kind, "is_derived_annual": False,
                "period_start": date(2024, key.starting_month, 1), "period_label": label, "dimension": "d",
                "category": "A", "category_label": "A", "value": 5.0, "agencies_reporting": 3,
                "breakdown_share_pct": 90.0 if published else 29.0, "breakdown_threshold_pct": 80.0,
                "published": published}

    definition = {"metric_key": "LAW_ENFORCEMENT_EXPENSES", "dimensions": [["d", "expense_type"]]}
    (view,) = _breakdown_views(definition, [calendar, fiscal], [row(calendar, "CY2024", False),
                                                                 row(fiscal, "FY2025 (Jul-Jun)", True)])
    assert (view.period_label, [b["category"] for b in view.bars]) == ("FY2025 (Jul-Jun)", ["A"])
    (view,) = _breakdown_views(definition, [calendar, fiscal], [row(calendar, "CY2024", False)])
    assert (view.bars, view.unpublished_label, view.unpublished_share) == ([], "CY2024", 29.0)


def test_a_trend_names_its_gaps_its_averages_and_the_agencies_in_other_charts():
    """helper-38: a fiscal year without a row read '2018: 0 of 0 agencies reporting' (its start year, nobody
    expected); a derived year of a level did not say it is a mean; agencies reporting at another cadence were
    not mentioned beside a month's '1 of 1, complete'."""
    def year(start: date, value: float, other: int | None = None) -> dict:
        return {"period_start": start, "period_end": add_months(start, 12),
                "period_label": period_label(start, add_months(start, 12)), "value": value,
                "agencies_reporting": 8, "agencies_expected": 8, "coverage_population_pct": 100.0,
                "rate_per_100k": None, "is_complete": True, "agencies_expected_other_cadence": other}

    fiscal = Series(SeriesKey("FISCAL_YEAR", False, 7), [year(date(2016, 7, 1), 5.0), year(date(2018, 7, 1), 6.0)])
    derived = Series(SeriesKey("CALENDAR_YEAR", True, 1), [year(date(2019, 1, 1), 7.0, other=37)])
    html = _metric(MetricView(key="K", display_name="Population", unit="count", is_level=True, breakdowns=[],
                              series=[fiscal, derived]))
    titles = [unescape(t) for t in re.findall(r"<title>([^<]*)</title>", html)]
    assert "FY2018 (Jul-Jun): no agency reported this period" in titles
    assert not any("0 of 0" in t for t in titles)
    assert ("By calendar year, derived from monthly reports (agencies with all 12 months counted); a level, so "
            "each year is the mean of its 12 monthly values") in unescape(html)
    assert ("<dt>Other cadence</dt><dd>37 more agencies report this metric at another cadence: their numbers are in "
            "the other charts of this metric, not in this one</dd>") in html


def test_the_headline_and_the_line_follow_the_agencies_a_series_usually_has():
    """helper-39: judged against the agencies expected, a metric few of them report (5 of 38) had no line at all
    and its newest period, whatever its coverage, became the headline; a roster that grew made years-old periods
    'still arriving'. A period joins when at least half as many agencies reported it as usually do."""
    rows = [_month(9, 50, 5), _month(10, 52, 5, expected=114), _month(11, 49, 4, expected=114),
            _month(12, 9, 1, expected=114)]
    html = _metric(MetricView(key="K", display_name="Arrests", unit="count", is_level=False, breakdowns=[],
                              series=[Series(SeriesKey("CALENDAR_MONTH", False, 1), rows)]))
    assert [len(p.split()) for p in re.findall(r'<polyline [^>]*points="([^"]*)"', html)] == [3]
    facts = unescape(re.sub(r"<[^>]+>", "", html.split("<dl class='facts'>")[1].split("</dl>")[0]))
    assert facts.startswith("Latest2025-11: 49") and facts.endswith("Still arriving2025-12: 1 of 114 agencies so far")


def test_agencies_reporting_by_subsystem_at_another_cadence_are_not_called_the_whole_state():
    """helper-39: when the agency reporting by subsystem does so by fiscal year, the calendar year's 'whole state'
    was the chart's own number and agencies; it now says where the subsystems' numbers are."""
    row = {**_month(11, 9_604_000, 2, expected=2), "agencies_expected_by_subsystem": 1,
           "whole_state_value": 9_604_000, "whole_state_reporting": 2, "whole_state_expected": 2}
    html = _metric(MetricView(key="SUPERVISION_EXPENSES", display_name="Expenses", unit="USD", is_level=False,
                              breakdowns=[], series=[Series(SeriesKey("CALENDAR_MONTH", False, 1), [row])]))
    assert "Whole state" not in html
    assert ("<dt>Subsystems</dt><dd>1 more agency reports this metric by subsystem, at another cadence: their "
            "numbers are in the parole, probation and other subsystem charts, not in this one</dd>") in html
