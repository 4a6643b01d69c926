"""What the state report shows, read from the published warehouse and shaped for the page (no HTML here).

Every number comes from ``state_metrics`` as stored (value, agencies reporting / expected, population covered):
nothing is re-summed here, so the report always agrees with what analysts query. Coverage grids and the missing
periods come from :func:`expected_periods` (``sql/expected_periods.sql``), the one definition of "which periods
is an agency expected to report, and what became of each", shared with the agency feedback.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from typing import Any

import duckdb
import pyarrow as pa

from jc_pipeline.lib.periods import period_label
from jc_pipeline.lib.registry import TIER1_SECTORS, load_registry, sector_title
from jc_pipeline.lib.state_clock import state_today
from jc_pipeline.lib.validation.report import records

SUPERAGENCY = "SUPERAGENCY"
#: Sections of the report, in spec order; supervision subsystems are shown in the SUPERVISION section.
SECTION_ORDER: tuple[str, ...] = TIER1_SECTORS + (SUPERAGENCY,)
#: Months shown in a coverage grid (the latest ones); older months stay in the warehouse and the feedback.
GRID_MONTHS = 24
#: Years shown in an annual coverage grid.
GRID_YEARS = 6

REPORTED, FAILED, NOT_COUNTED, MISSING = "REPORTED", "FAILED_VALIDATION", "NOT_COUNTED", "MISSING"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# A combined SUPERVISION_* total counts the agencies reporting combined only: where some report by subsystem, the
# whole state's (state_supervision_totals) comes beside it.
_TOTALS_SQL = """
SELECT s.state_code, s.sector, s.metric_key, s.period_kind, s.is_derived_annual, s.period_start, s.period_end,
       s.period_label, s.value, s.agencies_reporting, s.agencies_expected, s.population_covered,
       s.coverage_population_pct, s.rate_per_100k, s.is_complete, s.aggregation_rule,
       s.agencies_expected_other_cadence, s.agencies_expected_by_subsystem, t.value AS whole_state_value,
       t.agencies_reporting AS whole_state_reporting, t.agencies_expected AS whole_state_expected
FROM state_metrics AS s
LEFT JOIN state_supervision_totals AS t
  ON s.agencies_expected_by_subsystem > 0 AND t.dimension IS NULL AND t.state_code = s.state_code
 AND t.metric_key = s.metric_key AND t.period_kind = s.period_kind
 AND t.is_derived_annual IS NOT DISTINCT FROM s.is_derived_annual AND t.period_start = s.period_start
 AND t.period_end = s.period_end
WHERE s.dimension IS NULL
ORDER BY s.state_code, s.metric_key, s.period_kind, s.is_derived_annual, s.period_start
"""
_BREAKDOWNS_SQL = """
SELECT s.state_code, s.metric_key, s.period_kind, s.is_derived_annual, s.period_start, s.period_label,
       s.dimension, s.category, coalesce(c.display_name, s.category) AS category_label, s.value,
       s.agencies_reporting, s.breakdown_share_pct, s.breakdown_threshold_pct,
       s.is_breakdown_published IS NOT FALSE AS published
FROM state_metrics AS s
LEFT JOIN metric_categories AS c USING (metric_key, dimension, category)
WHERE s.dimension IS NOT NULL
-- What the report shows of a dimension (_breakdown_views): per kind of period (SeriesKey), the rows of its latest
-- period and of its latest published one; the rest of the history is not read (bench, 3,000 agencies: 62,691
-- breakdown rows, 1,165 read).
WINDOW series AS (PARTITION BY s.state_code, s.metric_key, s.dimension, s.period_kind,
                                coalesce(s.is_derived_annual, FALSE),
                                CASE WHEN s.period_kind = 'CALENDAR_MONTH' THEN 1 ELSE month(s.period_start) END)
QUALIFY s.period_start = max(s.period_start) OVER series
     OR s.period_start = max(s.period_start) FILTER (WHERE s.is_breakdown_published IS NOT FALSE) OVER series
ORDER BY s.state_code, s.metric_key, s.dimension, s.period_start
"""
_DEFINITIONS_SQL = """
SELECT d.metric_key, d.sector, d.parent_sector, d.display_name, d.unit, d.is_level,
       list(DISTINCT [c.dimension, coalesce(c.column_name, c.dimension)]) FILTER (WHERE c.dimension IS NOT NULL)
           AS dimensions
FROM metric_definitions AS d LEFT JOIN metric_categories AS c USING (metric_key)
GROUP BY ALL
"""


@dataclass(frozen=True)
class SeriesKey:
    """Which kind of period a trend shows; kinds are never mixed in one trend (DESIGN §5)."""

    period_kind: str
    is_derived_annual: bool
    starting_month: int

    @property
    def title(self) -> str:
        if self.period_kind == "CALENDAR_MONTH":
            return "By calendar month"
        if self.period_kind == "FISCAL_YEAR":
            last = _MONTHS[(self.starting_month + 10) % 12]
            return (f"By fiscal year ({_MONTHS[self.starting_month - 1]}–{last}), agencies reporting fiscal years; "
                    f"named by the year it ends")
        if self.is_derived_annual:
            return "By calendar year, derived from monthly reports (agencies with all 12 months counted)"
        return "By calendar year, agencies reporting calendar years"

    @property
    def sort_key(self) -> tuple:
        # Monthly first, then the annual kinds agencies report themselves, then the derived years.
        order = {"CALENDAR_MONTH": 0, "CALENDAR_YEAR": 1, "FISCAL_YEAR": 2}[self.period_kind]
        return (self.is_derived_annual, order, self.starting_month)


@dataclass
class Series:
    """The total rows of one metric and one kind of period, in period order."""

    key: SeriesKey
    rows: list[dict[str, Any]]


@dataclass
class BreakdownView:
    """One breakdown dimension of a metric: the bars of its latest published period, or why there are none."""

    label: str
    series_title: str
    period_label: str | None = None
    bars: list[dict[str, Any]] = field(default_factory=list)
    #: Set when the latest period of this dimension is below the publication threshold.
    unpublished_label: str | None = None
    unpublished_share: float | None = None
    threshold: float | None = None


@dataclass
class MetricView:
    """One metric of a section: its trends (one per kind of period) and breakdowns."""

    key: str
    display_name: str
    unit: str
    is_level: bool  # metric_definitions.is_level: a level at a point in time, else it adds up
    series: list[Series]
    breakdowns: list[BreakdownView]


#: One period of an agency's line: (status, the periods it stands for (``CY2023``, ``FY2024 (Jul-Jun)``), the
#: tooltip that names them and counts the metrics). A plain tuple, not a NamedTuple: Python's garbage collector
#: stops tracking a plain tuple of strings, never a tuple subclass, and a large state's ~87,000 cells tracked made
#: every later collection slower (3,000 agencies: loading the report's views 0.64-0.80 s against 0.40-0.48 s).
GridCell = tuple[str, str, str]


@dataclass
class GridRow:
    """One agency's line of a coverage grid."""

    agency_id: str
    agency_name: str
    #: column label -> its cell; absent = not expected in that period.
    cells: dict[str, GridCell]


@dataclass
class Grid:
    """Agencies x periods: who reported, who is missing, whose data failed validation."""

    title: str
    columns: list[str]
    rows: list[GridRow]


@dataclass
class SectionView:
    """One sector of the report (supervision subsystems inside SUPERVISION)."""

    code: str
    title: str
    metrics: list[MetricView]
    grids: list[Grid]
    #: Metrics some agency is expected to report but without any state row yet.
    no_data: list[str]


@dataclass
class StateView:
    """One state's sections."""

    state_code: str
    sections: list[SectionView]
    #: First period start and last period end (exclusive) of the state's numbers, ISO dates.
    periods: tuple[str, str] | None


def load_state_views(con: duckdb.DuckDBPyConnection, expected: ExpectedPeriods) -> list[StateView]:
    """Everything the state report shows, per state on the roster (usually one); ``expected`` is
    :func:`expected_periods` of the same warehouse."""
    definitions = {d["metric_key"]: d for d in records(con, _DEFINITIONS_SQL)}
    totals = _by(records(con, _TOTALS_SQL), "state_code")
    breakdowns = _by(records(con, _BREAKDOWNS_SQL), "state_code")
    grids = _grids_by_state(expected.grid)
    expected_keys = _by(expected.metrics.to_pylist(), "state_code")
    states = sorted({r[0] for r in con.execute("SELECT DISTINCT state_code FROM agencies").fetchall()}
                    | set(totals))
    return [_state_view(state, definitions, totals.get(state, []), breakdowns.get(state, []),
                        grids.get(state, {}), expected_keys.get(state, [])) for state in states]


@dataclass(frozen=True)
class ExpectedPeriods:
    """What the agency feedback and the state report read of ``sql/expected_periods.sql`` (each agency x metric x
    period it is expected to report, with its status), as Arrow tables: see :func:`expected_periods`."""

    #: The periods not REPORTED, ordered by state, agency, metric and period start: the feedback's missing periods.
    unreported: pa.Table
    #: The cells of the coverage grids (_GRID_CELLS_SQL): per state, section, cadence, agency and column (the
    #: latest :data:`GRID_MONTHS` months, or :data:`GRID_YEARS` years by the year the period ends), how many of
    #: the agency's expected metrics are in each status and the labels of their periods (sorted); and what the
    #: grid shows of it: ``column_label``, ``cell_status`` and ``tooltip``.
    grid: pa.Table
    #: ``state_code, parent_sector, metric_key`` of every metric some agency is expected to report.
    metrics: pa.Table
    #: Per agency: ``failed`` (FAILED_VALIDATION) and ``missing`` (neither reported nor failed) periods.
    counts: pa.Table


# What is kept of every expected period: all but the columns that describe its agency, metric and period, which
# the rows shown look up again (the unreported periods, the grid's agencies). Turning them into Arrow for each of
# 1.26M periods (3,000 agencies) took as long as the rest of the query.
_KEPT_COLUMNS = "* EXCLUDE (sector, agency_name, period_kind)"
# The queries below read the expected periods registered as report_expected_periods (see expected_periods).
_PERIODS_SQL = "SELECT DISTINCT period_start, period_end FROM report_expected_periods"
_UNREPORTED_SQL = """
SELECT p.state_code, d.sector, p.parent_sector, p.metric_key, p.agency_id, a.agency_name, p.frequency,
       p.starting_month, p.period_start, p.period_end, state_period_kind(p.frequency, p.period_start) AS period_kind,
       p.status, p.reason
FROM report_expected_periods AS p
JOIN metric_definitions AS d USING (metric_key)
JOIN agencies AS a USING (agency_id)
WHERE p.status <> $reported
ORDER BY p.state_code, p.agency_id, p.metric_key, p.period_start
"""
# A cell is counted here rather than in Python: a grid shows a few metrics' periods per cell, and a large state has
# hundreds of thousands of them. An annual column is the year a period ends (column_start: its January 1), so it
# can hold a calendar and a fiscal year. The latest period of each grid is joined, not a window: a window
# partitions (sorts) every expected period of the history. A cell's periods come as their labels
# (report_period_labels): a nested list of dates per cell costs Python more than the rest of the grid.
_GRID_CELLS_SQL = """
WITH last_ AS (
    SELECT state_code, parent_sector, frequency, max(period_start) AS last_start, max(period_end) AS last_end
    FROM report_expected_periods
    GROUP BY ALL
), latest AS (
    SELECT p.*, a.agency_name
    FROM report_expected_periods AS p
    JOIN last_ USING (state_code, parent_sector, frequency)
    JOIN agencies AS a USING (agency_id)
    WHERE CASE WHEN frequency = 'MONTHLY' THEN period_start >= last_start - to_months($months)
               ELSE year(period_end - INTERVAL 1 MONTH) > year(last_end) - $years END
), cells AS (
    SELECT state_code, parent_sector, frequency, agency_id, agency_name,
           CASE WHEN frequency = 'MONTHLY' THEN period_start
                ELSE make_date(year(period_end - INTERVAL 1 MONTH), 1, 1) END AS column_start,
           count(*) AS expected,
           count(*) FILTER (WHERE status = $reported) AS reported,
           count(*) FILTER (WHERE status = $failed) AS failed,
           count(*) FILTER (WHERE status = $not_counted) AS not_counted,
           list_sort(list(DISTINCT l.label)) AS labels
    FROM latest JOIN report_period_labels AS l USING (period_start, period_end)
    GROUP BY ALL
)
-- What the grid shows of a cell: failed validation beats missing beats reported; the tooltip counts the metrics.
SELECT *,
       CASE WHEN frequency = 'MONTHLY' THEN strftime(column_start, '%Y-%m')
            ELSE CAST(year(column_start) AS VARCHAR) END AS column_label,
       CASE WHEN failed > 0 THEN 'failed' WHEN reported = expected THEN 'reported'
            WHEN reported > 0 THEN 'partial' ELSE 'missing' END AS cell_status,
       array_to_string(labels, ', ') AS periods,
       periods || ': ' || reported || ' of ' || expected || ' expected metrics reported'
           || CASE WHEN failed > 0 THEN '; ' || failed || ' failed validation' ELSE '' END
           || CASE WHEN not_counted > 0 THEN '; ' || not_counted || ' sent but not counted' ELSE '' END
           AS tooltip
FROM cells
"""
#: The grid's columns the report reads (the counts and labels are in the tooltip).
_GRID_SHOWN = ["state_code", "parent_sector", "frequency", "agency_id", "agency_name", "column_start",
               "column_label", "cell_status", "periods", "tooltip"]
_EXPECTED_METRICS_SQL = "SELECT DISTINCT state_code, parent_sector, metric_key FROM report_expected_periods"
_PERIOD_COUNTS_SQL = """
SELECT agency_id, count(*) FILTER (WHERE status = $failed) AS failed,
       count(*) FILTER (WHERE status NOT IN ($failed, $reported)) AS missing
FROM report_expected_periods GROUP BY agency_id
"""


def expected_periods(con: duckdb.DuckDBPyConnection, today: date | None = None) -> ExpectedPeriods:
    """Evaluate ``sql/expected_periods.sql`` once and read from it what the feedback and the state report need
    (``today``: the state's date, by default now's; periods ending after it are not expected yet).

    The query is the costly part of both (seconds per million periods): a publish computes this once and gives
    it to :func:`~jc_pipeline.lib.feedback.write_agency_feedback` and
    :func:`~jc_pipeline.lib.report.write_state_report`; what they keep of it is a small part (the unreported
    periods, the grid cells, counts).
    """
    # The REPORTED periods only in the grid's columns (see the query): the readers need no others.
    kept = con.sql(_sql("expected_periods.sql"),
                   params={"recent_months": GRID_MONTHS, "recent_years": GRID_YEARS,
                           "today": today or state_today()}).project(_KEPT_COLUMNS)
    con.register("report_expected_periods", kept.to_arrow_table())
    # Labels by period_label (the one way periods are named), once per distinct period: a few hundred.
    periods = con.sql(_PERIODS_SQL).fetchall()
    con.register("report_period_labels", pa.table({
        "period_start": pa.array([start for start, _ in periods], pa.date32()),
        "period_end": pa.array([end for _, end in periods], pa.date32()),
        "label": [period_label(start, end) for start, end in periods]}))
    try:
        return ExpectedPeriods(
            unreported=con.sql(_UNREPORTED_SQL, params={"reported": REPORTED}).to_arrow_table(),
            grid=con.sql(_GRID_CELLS_SQL, params={"months": GRID_MONTHS - 1, "years": GRID_YEARS, "reported": REPORTED,
                                                  "failed": FAILED, "not_counted": NOT_COUNTED}).to_arrow_table(),
            metrics=con.sql(_EXPECTED_METRICS_SQL).to_arrow_table(),
            counts=con.sql(_PERIOD_COUNTS_SQL, params={"failed": FAILED, "reported": REPORTED}).to_arrow_table(),
        )
    finally:
        con.unregister("report_period_labels")
        con.unregister("report_expected_periods")


# ---- building -----------------------------------------------------------------------------------------------------


def _state_view(state: str, definitions: Mapping[str, dict], totals: list[dict], breakdowns: list[dict],
                grids: Mapping[str, list[Grid]], expected_keys: list[dict]) -> StateView:
    """``grids``: each section's coverage grids; ``expected_keys`` every metric expected at all."""
    order = {key: i for i, key in enumerate(load_registry().metrics)}
    totals_by_metric = _by(totals, "metric_key")
    breakdowns_by_metric = _by(breakdowns, "metric_key")
    keys_by_section = _by(expected_keys, "parent_sector")
    sections = []
    for code in SECTION_ORDER:
        keys = sorted((k for k, d in definitions.items() if d["parent_sector"] == code),
                      key=lambda k: (order.get(k, len(order)), k))
        metrics = [_metric_view(definitions[k], totals_by_metric[k], breakdowns_by_metric.get(k, []))
                   for k in keys if k in totals_by_metric]
        section_keys = {r["metric_key"] for r in keys_by_section.get(code, [])}
        no_data = [definitions[k]["display_name"] for k in keys if k in section_keys and k not in totals_by_metric]
        if metrics or no_data or section_keys:
            sections.append(SectionView(code, sector_title(code), metrics, grids.get(code, []), no_data))
    starts = [r["period_start"] for r in totals]
    periods = (min(starts).isoformat(), max(r["period_end"] for r in totals).isoformat()) if starts else None
    return StateView(state, sections, periods)


def _metric_view(definition: dict, totals: list[dict], breakdowns: list[dict]) -> MetricView:
    groups: dict[SeriesKey, list[dict]] = defaultdict(list)
    for row in totals:
        groups[_series_key(row)].append(row)
    series = [Series(key, rows) for key, rows in sorted(groups.items(), key=lambda kv: kv[0].sort_key)]
    return MetricView(
        key=definition["metric_key"], display_name=definition["display_name"], unit=definition["unit"],
        is_level=definition["is_level"], series=series,
        breakdowns=_breakdown_views(definition, [s.key for s in series], breakdowns),
    )


def _series_key(row: dict) -> SeriesKey:
    start: date = row["period_start"]
    return SeriesKey(row["period_kind"], bool(row["is_derived_annual"]),
                     1 if row["period_kind"] == "CALENDAR_MONTH" else start.month)


def _breakdown_views(definition: dict, series_keys: list[SeriesKey], rows: list[dict]) -> list[BreakdownView]:
    """Per dimension: the first series kind (in the trend order) with a published period, else the first with rows,
    and its latest published period (a state whose calendar years fall below the threshold may publish its fiscal
    years).

    Dimensions and categories follow the registry's (spec) order, so charts of different periods line up.
    """
    dimension_order, member_order = _registry_order(definition["metric_key"])
    by_dimension = _by(rows, "dimension")
    views = []
    # Upload column names label the charts; a dimension without categories in the warehouse keeps its identifier.
    columns = {dimension: column for dimension, column in definition["dimensions"] or []}
    dimensions = sorted(by_dimension, key=lambda d: (dimension_order.get(d, len(dimension_order)), d))
    for dimension in dimensions:
        column = columns.get(dimension) or dimension.rsplit("/", 1)[-1]
        by_series = _by(by_dimension[dimension], _series_key)
        kinds = [k for k in series_keys if k in by_series]
        if not kinds:
            continue
        key = next((k for k in kinds if any(r["published"] for r in by_series[k])), kinds[0])
        kind_rows = by_series[key]
        view = BreakdownView(label=column.replace("_", " ").capitalize(), series_title=key.title)
        latest = max(r["period_start"] for r in kind_rows)
        published = [r for r in kind_rows if r["published"]]
        latest_rows = [r for r in kind_rows if r["period_start"] == latest]
        if not all(r["published"] for r in latest_rows):
            view.unpublished_label = latest_rows[0]["period_label"]
            view.unpublished_share = latest_rows[0]["breakdown_share_pct"]
            view.threshold = latest_rows[0]["breakdown_threshold_pct"]
        if published:
            chosen = max(r["period_start"] for r in published)
            bars = [r for r in published if r["period_start"] == chosen]
            bars.sort(key=lambda r: (member_order.get((r["dimension"], r["category"]), len(member_order)),
                                     r["category"]))
            view.period_label, view.bars = bars[0]["period_label"], bars
        views.append(view)
    return views


def _registry_order(metric_key: str) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    metric = load_registry().metrics.get(metric_key)
    if metric is None:
        return {}, {}
    dimensions = {b.dimension.identifier: i for i, b in enumerate(metric.breakdowns)}
    members = {(b.dimension.identifier, m.name): i
               for b in metric.breakdowns for i, m in enumerate(b.dimension.members)}
    return dimensions, members


#: The titles of a section's coverage grids, in the order shown, by the frequency of their cells.
_GRID_TITLES = {"MONTHLY": "Monthly reporting, by calendar month",
                "ANNUAL": "Annual reporting, by the year the period ends (calendar or fiscal year)"}


def _grids_by_state(grid: pa.Table) -> dict[str, dict[str, list[Grid]]]:
    """State -> section -> its coverage grids: a monthly one (latest :data:`GRID_MONTHS` months) and an annual one
    (years by the year they end), from :attr:`ExpectedPeriods.grid`, read column by column rather than as a dict
    per cell: the ~87,000 cells of 3,000 agencies in 0.22-0.28 s against 0.27-0.32 s."""
    cells: dict[tuple[str, str, str], list[tuple]] = defaultdict(list)
    for cell in zip(*(grid[name].to_pylist() for name in _GRID_SHOWN), strict=True):
        cells[cell[:3]].append(cell)
    grids: dict[str, dict[str, list[Grid]]] = defaultdict(lambda: defaultdict(list))
    for frequency, title in _GRID_TITLES.items():
        for (state, section, of), section_cells in cells.items():
            if of == frequency:
                grids[state][section].append(_grid(title, section_cells))
    return grids


def _grid(title: str, cells: list[tuple]) -> Grid:
    """The grid of ``cells`` (each the columns of :data:`_GRID_SHOWN`); columns in the order of their
    ``column_start`` (a column's month, or January of its year)."""
    labels: dict[Any, str] = {}
    by_agency: dict[str, dict[str, GridCell]] = defaultdict(dict)
    names: dict[str, str] = {}
    for _, _, _, agency_id, agency_name, column_start, column_label, status, periods, tooltip in cells:
        labels[column_start] = column_label
        by_agency[agency_id][column_label] = (status, periods, tooltip)
        names[agency_id] = agency_name
    columns = [labels[start] for start in sorted(labels)]
    grid_rows = []
    for agency_id in sorted(names, key=lambda a: (names[a].casefold(), a)):
        agency_cells = by_agency[agency_id]
        grid_rows.append(GridRow(agency_id, names[agency_id],
                                 {column: agency_cells[column] for column in columns if column in agency_cells}))
    return Grid(title, columns, grid_rows)


def _by(rows: Iterable[dict], key) -> dict[Any, list[dict]]:
    grouped: dict[Any, list[dict]] = defaultdict(list)
    for row in rows:
        grouped[key(row) if callable(key) else row[key]].append(row)
    return grouped


def _sql(name: str) -> str:
    return resources.files(__package__).joinpath("sql", name).read_text(encoding="utf-8")


# ---- data-quality summary ---------------------------------------------------------------------------------------

_QUALITY_SQL = """
WITH checks AS (
    SELECT agency_id, count(*) FILTER (WHERE severity = 'ERROR') AS check_errors,
           count(*) FILTER (WHERE severity = 'WARNING') AS check_warnings
    FROM validation_results WHERE NOT passed AND agency_id IS NOT NULL GROUP BY agency_id
), ingest AS (
    SELECT f.agency_id, count(*) FILTER (WHERE r.severity = 'ERROR') AS ingest_errors,
           count(*) FILTER (WHERE r.severity = 'WARNING') AS ingest_warnings
    FROM rejected_rows AS r JOIN current_source_files AS f USING (file_id)  -- as the agency feedback counts
    WHERE f.agency_id IS NOT NULL AND f.status <> 'WITHDRAWN' GROUP BY f.agency_id
)
SELECT a.agency_id, a.agency_name, a.state_code,
       coalesce(c.check_errors, 0) AS check_errors, coalesce(c.check_warnings, 0) AS check_warnings,
       coalesce(i.ingest_errors, 0) AS ingest_errors, coalesce(i.ingest_warnings, 0) AS ingest_warnings
FROM agencies AS a LEFT JOIN checks AS c USING (agency_id) LEFT JOIN ingest AS i USING (agency_id)
ORDER BY a.state_code, lower(a.agency_name), a.agency_id
"""


@dataclass(frozen=True)
class AgencyQuality:
    """One agency's line of the data-quality summary."""

    agency_id: str
    agency_name: str
    state_code: str
    check_errors: int
    check_warnings: int
    ingest_errors: int
    ingest_warnings: int
    periods_missing: int
    periods_failed: int


def quality_summary(con: duckdb.DuckDBPyConnection, expected: ExpectedPeriods) -> list[AgencyQuality]:
    """Per roster agency: failing checks, ingest findings and expected periods not in the state numbers
    (``expected``: :func:`expected_periods` of the same warehouse)."""
    periods = {r["agency_id"]: r for r in expected.counts.to_pylist()}
    return [AgencyQuality(**r, periods_missing=periods.get(r["agency_id"], {}).get("missing", 0),
                          periods_failed=periods.get(r["agency_id"], {}).get("failed", 0))
            for r in records(con, _QUALITY_SQL)]
