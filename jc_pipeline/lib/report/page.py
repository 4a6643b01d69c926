"""The state report page: sections per sector with trends, breakdowns, coverage grids, and the data-quality summary.

HTML is assembled from escaped pieces (``html.escape`` on every value from the warehouse, the same rule as the
data-quality report) and poured into ``state_report.html``, which holds the CSS. No script, no external resource.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from html import escape
from importlib import resources
from string import Template

from jc_pipeline.lib.periods import add_months, period_label
from jc_pipeline.lib.report import svg
from jc_pipeline.lib.report.data import (
    AgencyQuality,
    BreakdownView,
    Grid,
    GridCell,
    GridRow,
    MetricView,
    SectionView,
    Series,
    StateView,
)
from jc_pipeline.lib.report.format import axis_text, coverage_text, point_tooltip, value_text
from jc_pipeline.lib.validation.report import UNASSIGNED, status_badge

#: A period joins the trend line, and can be the headline, when at least this share of the agencies that usually
#: report the series (the median of its periods) reported it.
LINE_MIN_SHARE = 0.5

#: Grid cell status -> (symbol, words). The symbol keeps the grid readable without colour.
GRID_STATUS: Mapping[str, tuple[str, str]] = {
    "reported": ("✓", "reported: every expected metric is in the state numbers"),
    "partial": ("◐", "partly reported: some expected metrics missing"),
    "missing": ("○", "missing: nothing counted for the period"),
    "failed": ("!", "failed validation: an error check keeps data out of the state numbers"),
}

#: What a run of periods of one status says (:func:`_grid_runs`); the statuses not here are never merged.
_RUN_TOOLTIPS = {"reported": "every expected metric reported, each period", "missing": "nothing counted, each period"}
#: The mark inside a grid cell, by status.
_GRID_MARKS = {status: f"<span aria-label='{escape(words.split(':')[0])}'>{symbol}</span>"
               for status, (symbol, words) in GRID_STATUS.items()}


@dataclass(frozen=True)
class AgencyLinks:
    """Where an agency's feedback lives, relative to the report page."""

    html: str
    xlsx: str | None = None


def render_page(states: Sequence[StateView], quality: Sequence[AgencyQuality], links: Mapping[str, AgencyLinks],
                stamp: str) -> str:
    """The whole HTML document."""
    codes = ", ".join(state.state_code for state in states)
    body = [f"<header><h1>Justice Counts state report {escape(codes)}</h1><p class='meta'>Generated "
            f"{escape(stamp)} UTC from the published warehouse (<code>state_metrics</code>). Static page: no "
            "script, no network.</p>",
            _contents(states), "</header>", _reading_guide()]
    body.extend(_state(state, links, len(states) > 1) for state in states)
    body.append(_quality(quality, links))
    template = Template(resources.files(__package__).joinpath("state_report.html").read_text(encoding="utf-8"))
    return template.substitute(title="Justice Counts state report", body="".join(body))


# ---- sections -------------------------------------------------------------------------------------------------


def _contents(states: Sequence[StateView]) -> str:
    items = []
    for state in states:
        for section in state.sections:
            items.append(f'<li><a href="#{_anchor(state.state_code, section.code)}">{escape(section.title)}'
                         f"{escape(f' ({state.state_code})' if len(states) > 1 else '')}</a></li>")
    items.append('<li><a href="#data-quality">Data quality by agency</a></li>')
    return f"<nav><ul class='toc'>{''.join(items)}</ul></nav>"


def _reading_guide() -> str:
    legend = "".join(f'<span class="cell {k}">{s}</span> {escape(w)} ' for k, (s, w) in GRID_STATUS.items())
    return (
        "<section class='guide'><h2>How to read this report</h2><ul>"
        "<li>Every number is the sum over the agencies that reported it, as stored in <code>state_metrics</code>. "
        "Under each trend, the <b>coverage strip</b> shows how many of the expected agencies are in each number "
        "(full green bar = all of them). <b>Filled points</b> are complete periods, <b>hollow points</b> periods "
        "with expected agencies missing. A break in the line is a period without a value: missing is not zero."
        "</li><li>Periods are never mixed: <b>calendar months</b> (2024-03), <b>calendar years</b> reported by "
        "agencies (CY2024), <b>calendar years derived</b> from agencies with all 12 months, and <b>fiscal "
        "years</b> named by the year they end (FY2024 (Jul-Jun) = July 2023 to June 2024) each have their own "
        "chart.</li><li>Breakdowns are shown only where the agencies that reported them cover enough of the "
        "total (the publication threshold); others are marked <i>below coverage threshold</i>.</li>"
        f"<li>Coverage grids: {legend}(hover a cell for the details).</li></ul></section>"
    )


def _state(state: StateView, links: Mapping[str, AgencyLinks], several: bool) -> str:
    parts = []
    if several or not state.sections:
        parts.append(f"<h2 class='state'>{escape(state.state_code)}</h2>")
    if state.periods:
        first, end = state.periods
        parts.append(f"<p class='meta'>{escape(state.state_code)}: periods from {escape(first)} up to "
                     f"{escape(end)} (exclusive).</p>")
    if not state.sections:
        parts.append("<p>No state numbers yet.</p>")
    for section in state.sections:
        parts.append(_section(state.state_code, section, links))
    return "".join(parts)


def _section(state_code: str, section: SectionView, links: Mapping[str, AgencyLinks]) -> str:
    parts = [f'<section class="sector" id="{_anchor(state_code, section.code)}"><h2>{escape(section.title)}</h2>']
    parts.extend(_metric(metric) for metric in section.metrics)
    if section.no_data:
        parts.append("<p class='meta'>Expected but not reported by any agency yet: "
                     f"{escape(', '.join(section.no_data))}.</p>")
    parts.extend(_grid(grid, links) for grid in section.grids)
    parts.append("</section>")
    return "".join(parts)


def _metric(metric: MetricView) -> str:
    unit = {"USD": "dollars", "FTE": "full-time equivalent staff"}.get(metric.unit, "count")
    # Money adds up over a period whatever the registry's measurement type says (spec §9.3), as the roll-up sums it.
    kind = ("level at a point in time" if metric.is_level else
            "amount over the period" if metric.unit == "USD" else "events during the period")
    parts = [f'<article class="metric" id="metric-{escape(_slug(metric.key))}"><h3>{escape(metric.display_name)} '
             f"<span class='meta'>({escape(unit)}; {escape(kind)}; <code>{escape(metric.key)}</code>)</span></h3>"]
    parts.extend(_trend(metric, series) for series in metric.series)
    if metric.breakdowns:
        parts.append("<div class='breakdowns'>")
        parts.extend(_breakdown(metric, view) for view in metric.breakdowns)
        parts.append("</div>")
    parts.append("</article>")
    return "".join(parts)


def _trend(metric: MetricView, series: Series) -> str:
    if all(r["value"] is None for r in series.rows):
        # No chart without a single value (e.g. derived years nobody has 12 months of): say so, with coverage.
        lines = "; ".join(f"{r['period_label']}: {coverage_text(r)}" for r in series.rows)
        return (f"<div class='trend'><h4>{escape(series.key.title)}</h4><p class='meta'>No value yet "
                f"(missing is not zero): {escape(lines)}.</p></div>")
    with_value = [r for r in series.rows if r["value"] is not None]
    # A period counts as the series' periods do when at least half as many agencies reported it as usually do: a
    # month whose reports are still arriving (1 of 38) is no headline and no fall of the line.
    usual = statistics.median(r["agencies_reporting"] for r in with_value)
    well_covered = {r["period_start"] for r in with_value if r["agencies_reporting"] >= LINE_MIN_SHARE * usual}
    points = _points(series, metric.unit, well_covered)
    title = f"{metric.display_name}: {series.key.title}"
    chart = svg.trend_chart(title, points, axis_format=lambda v: axis_text(v, metric.unit))
    latest = next(r for r in reversed(with_value) if r["period_start"] in well_covered)
    rate = latest.get("rate_per_100k")
    facts = [
        f"<dt>Latest</dt><dd>{escape(latest['period_label'])}: <b>{escape(value_text(latest['value'], metric.unit))}"
        "</b></dd>",
        f"<dt>Coverage</dt><dd>{escape(coverage_text(latest))}"
        f"{'' if latest['is_complete'] else ' <span class=incomplete>(incomplete)</span>'}</dd>",
    ]
    if latest.get("agencies_expected_by_subsystem"):
        facts.append(_whole_state(latest, metric.unit))
    if latest.get("agencies_expected_other_cadence"):
        facts.append(f"<dt>Other cadence</dt><dd>{_more_agencies(latest['agencies_expected_other_cadence'])} "
                     f"this metric {'yearly' if series.key.period_kind == 'CALENDAR_MONTH' else 'at another cadence'}"
                     f": their numbers are in the other charts of this metric, not in this one</dd>")
    arriving = [r for r in with_value if r["period_start"] > latest["period_start"]]
    if arriving:
        facts.append("<dt>Still arriving</dt><dd>" + "; ".join(
            f"{escape(r['period_label'])}: {r['agencies_reporting']} of {r['agencies_expected']} agencies so far"
            for r in arriving) + "</dd>")
    if rate is not None:
        money = "$" if metric.unit == "USD" else ""
        facts.append(f"<dt>Rate</dt><dd>{money}{rate:,.1f} per 100,000 residents covered</dd>")
    heading = series.key.title
    if series.key.is_derived_annual and metric.is_level:
        heading += "; a level, so each year is the mean of its 12 monthly values"
    return (f"<div class='trend'><h4>{escape(heading)}</h4><div class='pair'>{chart}"
            f"<dl class='facts'>{''.join(facts)}</dl></div>{_table(series, metric.unit)}</div>")


def _whole_state(row: dict, unit: str) -> str:
    """Beside a combined SUPERVISION_* total, which counts the agencies reporting combined only: the whole state's
    number at this cadence (state_supervision_totals: each agency's combined value or the sum of its subsystems'),
    or, when the agencies reporting by subsystem do so at another cadence, where their numbers are."""
    more = (row["whole_state_expected"] or 0) - row["agencies_expected"]
    if row["whole_state_value"] is None or more <= 0:
        return (f"<dt>Subsystems</dt><dd>{_more_agencies(row['agencies_expected_by_subsystem'])} this metric by "
                f"subsystem, at another cadence: their numbers are in the parole, probation and other subsystem "
                f"charts, not in this one</dd>")
    return (f"<dt>Whole state</dt><dd><b>{escape(value_text(row['whole_state_value'], unit))}</b> from "
            f"{row['whole_state_reporting']} of {row['whole_state_expected']} agencies (the chart counts the agencies "
            f"reporting combined only; {_more_agencies(more)} by subsystem: parole, probation and the others "
            f"below)</dd>")


def _more_agencies(n: int) -> str:
    return f"{n} more agency reports" if n == 1 else f"{n} more agencies report"


def _points(series: Series, unit: str, joined: Collection[date]) -> list[svg.TrendPoint]:
    """The series' rows on a continuous axis: periods without a row become points without a value; the line runs
    through the periods starting on a day of ``joined``."""
    by_start = {r["period_start"]: r for r in series.rows}
    step = 1 if series.key.period_kind == "CALENDAR_MONTH" else 12
    first, last = min(by_start), max(by_start)
    starts: list[date] = []
    while first <= last:
        starts.append(first)
        first = add_months(first, step)
    points = []
    for i, start in enumerate(starts):
        row = by_start.get(start)
        tick = _tick(start, step, len(starts), i, row)
        if row is None:
            label = period_label(start, add_months(start, step))
            points.append(svg.TrendPoint(label, None, 0, 0, f"{label}: no agency reported this period", tick))
        else:
            points.append(svg.TrendPoint(row["period_label"], row["value"], row["agencies_reporting"],
                                         row["agencies_expected"], point_tooltip(row, unit), tick,
                                         joined=start in joined))
    return points


def _tick(start: date, step: int, n: int, i: int, row: dict | None) -> str | None:
    if step == 1:  # months: the year at each January, or every third month for short series
        if n > 18:
            return str(start.year) if start.month == 1 else None
        return f"{start:%Y-%m}" if i % 3 == 0 else None
    every = 1 if n <= 8 else 2
    if i % every:
        return None
    return row["period_label"].split(" ")[0] if row else str(add_months(start, 11).year)


def _table(series: Series, unit: str) -> str:
    """The numbers behind the chart, folded away: exact values and coverage per period."""
    rows = "".join(
        f"<tr><td>{escape(r['period_label'])}</td><td class='num'>{escape(value_text(r['value'], unit))}</td>"
        f"<td class='num'>{r['agencies_reporting']} / {r['agencies_expected']}</td>"
        f"<td class='num'>{_pct(r['coverage_population_pct'])}</td></tr>"
        for r in reversed(series.rows)
    )
    return ("<details><summary>Numbers</summary><table><tr><th>Period</th><th>Value</th>"
            f"<th>Agencies reporting / expected</th><th>Population covered</th></tr>{rows}</table></details>")


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}%"


def _breakdown(metric: MetricView, view: BreakdownView) -> str:
    parts = [f"<div class='breakdown'><h4>By {escape(view.label.lower())} <span class='meta'>"
             f"({escape(view.series_title.split(',')[0].lower())})</span></h4>"]
    if view.bars:
        title = f"{metric.display_name} by {view.label.lower()}, {view.period_label}"
        bars = [svg.Bar(r["category_label"], r["value"] or 0.0,
                        f"{r['category_label']}, {r['period_label']}: {value_text(r['value'], metric.unit)} "
                        f"({r['agencies_reporting']} agencies)") for r in view.bars]
        share = view.bars[0]["breakdown_share_pct"]
        # The agencies that sent a breakdown rarely hold the whole state total: the bars then cannot add up to it.
        held = ("" if share is None or round(share, 1) == 100 else
                f" The agencies that sent this breakdown hold {share:.1f}% of the state total.")
        parts.append(f"<p class='meta'>{escape(view.period_label or '')}, the latest period published.{held}</p>")
        parts.append(svg.bar_chart(title, bars, value_format=lambda v: value_text(v, metric.unit)))
    if view.unpublished_label:
        detail = []
        if view.unpublished_share is not None:
            detail.append(f"the agencies reporting it cover {view.unpublished_share:.1f}% of the total")
        if view.threshold is not None:
            detail.append(f"threshold {view.threshold:.0f}%")
        suffix = f" ({'; '.join(detail)})" if detail else ""
        parts.append(f"<p class='unpublished'>{escape(view.unpublished_label)}: below coverage threshold"
                     f"{escape(suffix)}, not shown.</p>")
    parts.append("</div>")
    return "".join(parts)


def _grid(grid: Grid, links: Mapping[str, AgencyLinks]) -> str:
    head = "".join(f"<th class='col' title='{escape(c)}'><span>{escape(c)}</span></th>" for c in grid.columns)
    rows = []
    for row in grid.rows:
        name = escape(row.agency_name)
        link = links.get(row.agency_id)
        label = f'<a href="{escape(link.html)}">{name}</a>' if link else name
        cells = []
        for run in _grid_runs(row, grid.columns):
            span = f" colspan='{len(run)}'" if len(run) > 1 else ""
            first, last = run[0], run[-1]
            if first is None:
                cells.append(f"<td class='cell none'{span} title='not expected'></td>")
                continue
            status, periods, tooltip = first
            if len(run) > 1:  # a run names its first and last periods, as a cell of its own names its period
                tooltip = f"{periods} to {last[1]}: {_RUN_TOOLTIPS[status]}"
            cells.append(f"<td class='cell {status}'{span} title='{name} · {escape(tooltip)}'>"
                         f"{_GRID_MARKS[status]}</td>")
        rows.append(f"<tr><th class='agency'>{label}</th>{''.join(cells)}</tr>")
    return (f"<div class='grid'><h4>Coverage: {escape(grid.title)}</h4><div class='scroll'><table class='grid'>"
            f"<tr><th>Agency</th>{head}</tr>{''.join(rows)}</table></div></div>")


def _grid_runs(row: GridRow, columns: Sequence[str]) -> list[list[GridCell | None]]:
    """The row's cells in column order (None: not expected), grouped into the cells the page draws: a run of
    consecutive columns all reported, all missing or all not expected as one cell (``colspan``), each other cell on
    its own. Each column is still covered by exactly one cell.

    A large state's grids are mostly such runs: at 3,000 agencies 86,968 of their 87,013 cells were reported, and
    one cell per column made the page 19 MB, which headless Chromium took ~6 s to show. Partly reported and failed
    periods keep a cell each, with their own counts."""
    runs: list[list[GridCell | None]] = []
    for column in columns:
        cell = row.cells.get(column)
        if runs and _merges(runs[-1][-1], cell):
            runs[-1].append(cell)
        else:
            runs.append([cell])
    return runs


def _merges(before: GridCell | None, cell: GridCell | None) -> bool:
    """Whether ``cell`` joins the run ending in ``before``: both not expected, or both of a status in
    :data:`_RUN_TOOLTIPS`."""
    if before is None or cell is None:
        return before is None and cell is None
    return before[0] == cell[0] and cell[0] in _RUN_TOOLTIPS


# ---- data quality ---------------------------------------------------------------------------------------------


def _quality(quality: Sequence[AgencyQuality], links: Mapping[str, AgencyLinks]) -> str:
    rows = []
    for q in quality:
        link = links.get(q.agency_id)
        name = escape(f"{q.agency_name} ({q.agency_id})")
        cell = f'<a href="{escape(link.html)}">{name}</a>' if link else name
        if link and link.xlsx:
            cell += f' · <a href="{escape(link.xlsx)}">workbook</a>'
        errors, warnings = q.check_errors + q.ingest_errors, q.check_warnings + q.ingest_warnings
        counts = (q.check_errors, q.check_warnings, q.ingest_errors, q.ingest_warnings, q.periods_missing,
                  q.periods_failed)
        rows.append(f"<tr><td>{cell}</td>" + "".join(f"<td class='num'>{n:,}</td>" for n in counts)
                    + f"<td>{status_badge(errors, warnings)}</td></tr>")
    table = ("<table><tr><th>Agency (feedback page · workbook)</th><th>Check errors</th><th>Check warnings</th>"
             "<th>Ingest errors</th><th>Ingest warnings</th><th>Periods missing</th>"
             "<th>Periods failing validation</th><th>Status</th></tr>" + "".join(rows) + "</table>")
    orphan = links.get(UNASSIGNED)
    orphans = (f"<p>Some files could not be attributed to an agency (wrong inbox folder): "
               f'<a href="{escape(orphan.html)}">their findings</a>.</p>' if orphan else "")
    return ("<section id='data-quality'><h2>Data quality by agency</h2><p>Each agency's page lists every rejected "
            "row and failed check with file, sheet, row, column, value, the rule and what to do, and the periods "
            f"still missing. The workbook holds the same lists for the agency to work through.</p>{orphans}{table}"
            "</section>")


def _anchor(state_code: str, code: str) -> str:
    return f"sector-{_slug(state_code)}-{_slug(code)}"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower())
