"""Rows -> datapoints and findings, vectorized over every sheet of every file of a batch at once.

Input is one frame of text cells (one column per role of :data:`layout.ROLES`, plus ``sheet_idx``,
``row_number`` and ``extra`` = "a column without a role has data on this row") and one frame describing the
sheets. Every check is a Polars expression or a join against a small lookup frame; Python only touches the
distinct (agency, metric) and (superagency, agency label) pairs, never individual rows.

Row accounting: a *data row* is a row with any non-blank cell under a non-blank header. Blank rows are skipped
and not counted. Every data row is either loaded (a datapoint) or rejected (at least one ERROR finding);
warnings (severity WARNING) are findings on loaded rows or, for sheet-level warnings, on the header row.

Rows of a sheet with a sheet-level error (F2-F8) get that error and nothing else. Otherwise every cell is
checked and every problem reported (the agency fixes all of them at once), except where one problem makes the
next check meaningless (an unknown metric has no breakdowns to check, a template hint row has nothing else).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime

import polars as pl

from jc_pipeline.lib.ingest import lookups
from jc_pipeline.lib.ingest.categories import AMBIGUOUS, LEGACY, OK, TOTAL, category_lookup, label_key, \
    load_tables, valid_labels
from jc_pipeline.lib.ingest.layout import FORMULAS_READ_EMPTY, ROLES
from jc_pipeline.lib.ingest.rows import EXTRAS
from jc_pipeline.lib.ingest.rules import RULES
from jc_pipeline.lib.ingest.values import (
    ambiguous_number,
    parse_month,
    parse_value,
    parse_year,
    plain_number,
    plain_problem,
)
from jc_pipeline.lib.periods import FIRST_PERIOD
from jc_pipeline.lib.registry import Registry
from jc_pipeline.lib.roster import Roster
from jc_pipeline.lib.state_clock import state_date

FINDING_SCHEMA = {
    "file_idx": pl.Int64, "sheet": pl.String, "row_number": pl.Int64, "column_name": pl.String,
    "raw_value": pl.String, "rule": pl.String, "severity": pl.String, "message": pl.String,
}
DATAPOINT_SCHEMA = {
    "file_idx": pl.Int64, "sheet": pl.String, "sheet_idx": pl.Int64, "row_number": pl.Int64,
    "agency_id": pl.String, "sector": pl.String, "metric_key": pl.String,
    "frequency": pl.String, "period_start": pl.Date, "period_end": pl.Date, "dimension": pl.String,
    "category": pl.String, "value": pl.Float64,
}
#: Datapoints that compete for the same slot of agency_metrics share these (plus the category).
PERIOD_GROUP = ["file_idx", "agency_id", "metric_key", "period_start", "period_end"]
#: Relative tolerance of the breakdown-sum check for dollars (counts and FTE use 1 absolute, spec §6.3 P2).
MONEY_TOLERANCE = 0.005

# Problem columns produced by _resolve, each null when fine; every one rejects its row.
_PROBLEMS = ("year_problem", "month_problem", "value_problem", "metric_problem", "bcat_problem",
             "agency_problem", "system_problem", "period_problem", "category_problem")


@dataclass(frozen=True)
class Normalized:
    """Result of :func:`normalize`: datapoints, findings and per-file row counts."""

    datapoints: pl.DataFrame
    findings: pl.DataFrame
    row_counts: pl.DataFrame  # file_idx, rows_total, rows_rejected


def normalize(rows: pl.DataFrame, sheets: pl.DataFrame, sheet_findings: pl.DataFrame, roster: Roster,
              registry: Registry, now: datetime, semicolon_sheets: Collection[int] = ()) -> Normalized:
    """Check and convert every row (see the module docstring).

    ``sheets``: one row per sheet, row i for ``sheet_idx`` i, with ``sheet_idx, file_idx, sheet, header_row,
    layout, sheet_metric, sheet_dimension, use_month, uploader, sector, agency_mode, system_mode, has_errors,
    valid_metrics`` and the written header of each role (``col_<role>``). ``sheet_findings``: ``sheet_idx, rule,
    column_name, raw_value, message`` for the sheet-level errors (repeated on every data row) and warnings (once,
    on the header row). ``semicolon_sheets``: the ``sheet_idx`` of CSVs separated by semicolons, whose numbers
    like 1.250 are ambiguous (:func:`values.ambiguous_number`).
    """
    # The row frame stays narrow (joins copy every column); names and message texts are joined onto findings.
    rows = by_position(_drop_blank_rows(rows.lazy()).collect(engine=_ENGINE), sheets.select(_ROW_SHEET_COLUMNS),
                       "sheet_idx")
    # Each kind of finding is a query plan, which costs milliseconds even when it matches no row: kinds that
    # cannot match (no rejected row, no duplicate, ...) are left out, checked on the frames in hand.
    labels = sheets.lazy().select(_LABEL_COLUMNS)
    findings = _sheet_level_findings(rows.lazy().join(labels, on="sheet_idx"), sheets, sheet_findings)
    rows = rows.drop(EXTRAS, strict=False)  # quoted by F6 only
    today = state_date(now)  # a period starts at the state's midnight, as it ends (docs/decisions.md)
    live = _resolve(rows.filter(~pl.col("has_errors")), roster, registry, today, semicolon_sheets)
    rejected_rows = live.filter(pl.col("rejected"))  # every row finding is about one of these (usually few)
    if rejected_rows.height:
        findings += _row_findings(_describe(rejected_rows.lazy(), labels, roster, registry), today)
    live = _duplicates(live, labels)
    described = _describe(live.lazy(), labels, roster, registry)
    if live["dups"].null_count() < live.height:
        findings.append(_finding(described.filter(pl.col("dups").is_not_null()), "P1", pl.col("col_value"),
                                 pl.col("value"), _p1_message()))
    is_loaded = ~pl.col("rejected") & pl.col("dups").is_null()
    findings += _warnings(live, described, is_loaded)
    loaded = live.lazy().filter(is_loaded)
    if live["part"].any():
        loaded = _sum_other_parts(loaded)
    findings.append(_breakdown_totals(loaded, labels))
    rejected = pl.concat([
        rows.lazy().filter(pl.col("has_errors")).select("file_idx", rejected=pl.lit(True)),
        live.lazy().select("file_idx", rejected=~is_loaded),
    ])
    counts = rejected.group_by("file_idx").agg(rows_total=pl.len(), rows_rejected=pl.col("rejected").sum())
    findings_frame, counts_frame = pl.collect_all([pl.concat(findings), counts], engine=_ENGINE)
    return Normalized(_datapoints(loaded, sheets), findings_frame, counts_frame)


#: Measured faster than the streaming default for these many small plans over one in-memory frame.
_ENGINE = "in-memory"
_ROW_SHEET_COLUMNS = ("file_idx", "layout", "sheet_metric", "sheet_dimension", "use_month", "uploader", "sector",
                      "agency_mode", "system_mode", "has_errors")
_LABEL_COLUMNS = ("sheet_idx", "sheet", "header_row", "valid_metrics", *(f"col_{role}" for role in ROLES))


def by_position(frame: pl.DataFrame, values: pl.DataFrame, position: str) -> pl.DataFrame:
    """``frame`` plus the columns of ``values`` at each row's ``position``: rows point at their sheet and file by
    position (``sheet_idx`` in the batch's sheets, ``file_idx`` in its files), so a gather does what a join on
    them did, several times cheaper. Eager: in a lazy query, Polars 2.1 merges the gathers of empty literal
    Series of different types into one (and types the result wrong)."""
    return frame.hstack(values[frame[position]])


def fmt(template: str, *values: pl.Expr) -> pl.Expr:
    """``template`` with each ``{}`` replaced by a value (null if any value is null).

    Built from ``concat_str`` because ``pl.format`` inside when/then branches panics in Polars 2.1's
    streaming engine (binview index assertion).
    """
    pieces = template.split("{}")
    if len(pieces) != len(values) + 1:
        raise ValueError(f"template {template!r} needs {len(pieces) - 1} values, got {len(values)}")
    parts: list[pl.Expr] = [pl.lit(pieces[0])]
    for value, piece in zip(values, pieces[1:], strict=True):
        parts += [value.cast(pl.String), pl.lit(piece)]
    return pl.concat_str(parts)


# --- cleaning and sheet-level findings --------------------------------------------------------------------------


def _drop_blank_rows(rows: pl.LazyFrame) -> pl.LazyFrame:
    # Stripped in a step of its own: written inside when/then, the strip ran twice per cell (measured).
    rows = rows.with_columns(pl.col(role).str.strip_chars() for role in ROLES)
    rows = rows.with_columns(pl.when(pl.col(role).str.len_bytes() > 0).then(pl.col(role)).alias(role) for role in ROLES)
    return rows.filter(pl.any_horizontal(*(pl.col(role).is_not_null() for role in ROLES), pl.col("extra")))


def _sheet_level_findings(rows: pl.LazyFrame, sheets: pl.DataFrame, sheet_findings: pl.DataFrame) -> list[pl.LazyFrame]:
    with_severity = sheet_findings.with_columns(
        severity=pl.col("rule").replace_strict({code: rule.severity for code, rule in RULES.items()}))
    errors, warnings = (with_severity.filter(pl.col("severity") == severity) for severity in ("ERROR", "WARNING"))
    frames = []
    if errors.height:
        # A finding about a column without a role quotes the row's own cell there (F6), the others their value.
        quoted = EXTRAS in rows.collect_schema()
        frames.append(rows.filter(pl.col("has_errors")).select(
            "sheet_idx", "file_idx", "sheet", "row_number", *([EXTRAS] if quoted else [])).join(
            errors.lazy(), on="sheet_idx").with_columns(raw_value=pl.when(pl.col("extra").is_not_null()).then(
                pl.col(EXTRAS).list.get(pl.col("extra"), null_on_oob=True)).otherwise(pl.col("raw_value"))
            if quoted else pl.col("raw_value")))
    if warnings.height:  # written once, on the header row, for sheets with data rows and no sheet-level error
        with_data = rows.select("sheet_idx").unique().with_columns(has_rows=pl.lit(True))
        frames.append(sheets.lazy().join(with_data, on="sheet_idx", how="left").select(
            "sheet_idx", "file_idx", "sheet", "has_rows", "has_errors", row_number=pl.col("header_row")).join(
            warnings.lazy(), on="sheet_idx").filter(
            # F9 (data in a column without a header) whatever else: that data may be all the sheet holds.
            (pl.col("has_rows").fill_null(False) & ~pl.col("has_errors")) | (pl.col("rule") == "F9")))
    return [frame.select(FINDING_SCHEMA.keys()).cast(FINDING_SCHEMA) for frame in frames]


def _describe(live: pl.LazyFrame, labels: pl.LazyFrame, roster: Roster, registry: Registry) -> pl.LazyFrame:
    """The rows plus what messages quote: sheet and column names, metric sheet, valid labels, agency sectors.

    Lazy, and only ever filtered before it is collected, so these joins (and finding which cell of a hint row
    is the hint) run on the few rows that need them.
    """
    hint_role = pl.coalesce(pl.when(hint).then(pl.lit(role)) for role, hint in _hint_cells().items())
    return (
        live.join(labels, on="sheet_idx", how="left")
        .join(lookups.metric_labels(registry).lazy(), on="metric_key", how="left")
        .join(valid_labels(registry).lazy(), on="dimension", how="left")
        .join(lookups.agency_sectors(roster).lazy(), on="agency_id", how="left")
        .with_columns(hint_raw=pl.coalesce(pl.when(hint).then(pl.col(role)) for role, hint in _hint_cells().items()),
                      hint_col=pl.coalesce(pl.when(hint_role == role).then(pl.col(f"col_{role}")) for role in ROLES))
    )


def _hint_cells() -> dict[str, pl.Expr]:
    """Per role: whether the cell looks like a template hint ("[one of: ...]")."""
    return {role: pl.col(role).str.starts_with("[") & pl.col(role).str.ends_with("]") for role in ROLES}


# --- resolving every cell ------------------------------------------------------------------------------------
#
# Lookups are left joins against small frames (`attach`); cells that repeat (years, months, labels, names) are
# parsed once per distinct value (`_per_distinct`).


def attach(live: pl.DataFrame, on: list[str], table: pl.DataFrame, **outputs: str) -> pl.DataFrame:
    """``live`` plus the new columns ``{name: column of table}``, matched on ``on`` (which ``table`` must hold
    uniquely; nulls match nulls), null where a row has no match."""
    right = table.select(*on, *(pl.col(column).alias(name) for name, column in outputs.items()))
    # Only the key columns go through the join (it copies every column it carries), in live's order.
    found = live.select(on).join(right, on=on, how="left", nulls_equal=True, maintain_order="left")
    return live.hstack(found.drop(on))


def _per_distinct(live: pl.DataFrame, on: list[str], *steps: dict[str, pl.Expr]) -> pl.DataFrame:
    """Add the columns of ``steps`` (each may use those of the steps before), computed once per distinct value
    of ``on``."""
    distinct = live.select(on).unique()
    for step in steps:
        distinct = distinct.with_columns(**step)
    return attach(live, on, distinct, **{name: name for step in steps for name in step})


def _resolve(live: pl.DataFrame, roster: Roster, registry: Registry, today: date,
             semicolon_sheets: Collection[int]) -> pl.DataFrame:
    """Parse cells, resolve metric, breakdown, agency, system, settings, period and category; add problems."""
    hint = pl.any_horizontal(_hint_cells().values()).fill_null(False) & pl.col("value").is_null()
    live = live.with_columns(hint=hint)
    live = _resolve_metric(live, registry)
    live = _resolve_agency(live, roster)
    live = _resolve_system(live, roster, registry)
    live = _resolve_period(live, roster, registry, today)
    live = _resolve_category(live, registry)
    live = _resolve_value(live, semicolon_sheets)
    live = _months_left_empty(live)
    # A hint row is reported as such and nothing else; every other problem rejects the row.
    return live.with_columns(*(pl.when(~pl.col("hint")).then(pl.col(p)).alias(p) for p in _PROBLEMS),
                             rejected=pl.col("hint") | pl.any_horizontal(pl.col(p).is_not_null() for p in _PROBLEMS))


def _resolve_metric(live: pl.DataFrame, registry: Registry) -> pl.DataFrame:
    """Metric and breakdown: fixed by the sheet name, or named on each row of a single-page sheet."""
    single = pl.col("layout") == "single"
    if not live.select(single.any()).item():  # every step below is about single-page sheets
        return live.with_columns(base_metric=pl.col("sheet_metric"), dimension=pl.col("sheet_dimension"),
                                 metric_problem=pl.lit(None, pl.String), bcat_problem=pl.lit(None, pl.String))
    names = live.select("sector", "metric", "breakdown_category").unique().with_columns(
        metric_name=lookups.metric_name_key(pl.col("metric")),
        bcat_key=lookups.header_key(pl.col("breakdown_category")),
    )
    names = attach(names, ["sector", "metric_name"], lookups.metric_names(registry), named_metric="base_metric")
    live = attach(live, ["sector", "metric", "breakdown_category"], names, named_metric="named_metric",
                   bcat_key="bcat_key")
    live = live.with_columns(base_metric=pl.coalesce("sheet_metric", "named_metric"))
    live = attach(live, ["base_metric", "bcat_key"], lookups.breakdown_columns(registry),
                   named_dimension="dimension").with_columns(
        dimension=pl.coalesce("sheet_dimension", "named_dimension"),
        metric_problem=pl.when(single & pl.col("metric").is_null()).then(pl.lit("empty"))
        .when(pl.col("base_metric").is_null()).then(pl.lit("unknown")),
    )
    return live.with_columns(
        bcat_problem=pl.when(~single | pl.col("base_metric").is_null()).then(None)
        .when(pl.col("breakdown_category").is_not_null() & pl.col("dimension").is_null()).then(pl.lit("unknown"))
        .when(pl.col("breakdown_category").is_null() & pl.col("category").is_not_null()).then(pl.lit("missing")),
    )


def _resolve_agency(live: pl.DataFrame, roster: Roster) -> pl.DataFrame:
    """Superagency rows belong to the child named in the agency column (spec §5.2); others to the uploader."""
    mode = pl.col("agency_mode")
    if not live.select(mode.any()).item():
        return live.with_columns(agency_id=pl.col("uploader"), agency_problem=pl.lit(None, pl.String))
    children = lookups.children(roster, live.filter(mode & pl.col("agency").is_not_null()))
    live = attach(live, ["uploader", "agency", "sector"], children, child_id="child_id",
                   child_sector_ok="child_sector_ok")
    return live.with_columns(
        agency_id=pl.when(mode).then(pl.col("child_id")).otherwise(pl.col("uploader")),
        agency_problem=pl.when(~mode).then(None)
        .when(pl.col("agency").is_null()).then(pl.lit("empty"))
        .when(pl.col("child_id").is_null()).then(pl.lit("unknown"))
        .when(~pl.col("child_sector_ok")).then(pl.lit("sector")),
    )


def _resolve_system(live: pl.DataFrame, roster: Roster, registry: Registry) -> pl.DataFrame:
    """Route SUPERVISION rows to the subsystem metric named in the system column (spec §5.2, §9.15)."""
    if not live.select(pl.col("system_mode").any()).item():
        return live.with_columns(metric_key=pl.col("base_metric"), system_problem=pl.lit(None, pl.String),
                                 system_code=pl.lit(None, pl.String))
    known = pl.col("agency_id").is_not_null() & pl.col("base_metric").is_not_null()
    pairs = live.filter(known & pl.col("system_mode")).select("agency_id", metric_key="base_metric")
    disaggregation = lookups.settings(roster, pairs).rename({"metric_key": "base_metric"})
    live = live.with_columns(
        system_code=lookups.system_key(pl.col("system")).replace_strict(lookups.SYSTEM_VALUES, default=None))
    live = attach(live, ["agency_id", "base_metric"], disaggregation, disaggregated="disaggregated")
    live = attach(live, ["agency_id", "system_code"], lookups.agency_systems(roster), system_allowed="system_allowed")
    mode, disaggregated, code = pl.col("system_mode") & known, pl.col("disaggregated"), pl.col("system_code")
    live = live.with_columns(
        system_problem=pl.when(~mode).then(None)
        .when(pl.col("system").is_not_null() & code.is_null()).then(pl.lit("unknown"))
        .when(disaggregated & pl.col("system").is_null()).then(pl.lit("empty"))
        .when(disaggregated & pl.col("system_allowed").is_null()).then(pl.lit("sector"))
        .when(~disaggregated & code.is_not_null() & (code != lookups.SUPERVISION)).then(pl.lit("not_split")),
        route=pl.when(mode & disaggregated).then(code),
    )
    routes = lookups.subsystem_routes(registry).rename({"system_code": "route"})
    live = attach(live, ["base_metric", "route"], routes, routed_metric="routed_metric")
    return live.with_columns(metric_key=pl.coalesce("routed_metric", "base_metric")).drop("routed_metric")


def _resolve_period(live: pl.DataFrame, roster: Roster, registry: Registry, today: date) -> pl.DataFrame:
    """Year and month cells, the agency's settings and the period: monthly when the row has a month, else the
    agency's annual period for the metric (spec §5.4). Cells are parsed once per distinct (year, month,
    starting month): a few dozen combinations."""
    keyed = pl.col("agency_id").is_not_null() & pl.col("metric_key").is_not_null()
    pairs = live.filter(keyed & pl.col("system_problem").is_null()).select("agency_id", "metric_key")
    settings = live.select("agency_id", "metric_key").unique().join(
        lookups.settings(roster, pairs), on=["agency_id", "metric_key"], how="left").join(
        lookups.metric_units(registry), on="metric_key", how="left")
    live = attach(live, ["agency_id", "metric_key"], settings, setting_frequency="setting_frequency",
                   starting_month="starting_month", metric_sector="metric_sector", unit="unit")
    label, is_range, year_problem = parse_year(pl.col("year"), today.year)
    month, month_problem = parse_month(pl.col("month"), load_tables().months)
    monthly, starting = pl.col("month_num").is_not_null(), pl.col("starting_month")
    start = (
        pl.when(monthly).then(pl.date(pl.col("year_label"), pl.col("month_num"), 1))
        .otherwise(pl.date(pl.col("year_label") - (starting != 1).cast(pl.Int32), starting, 1))
    )
    live = _per_distinct(
        live, ["year", "month", "starting_month"],
        dict(year_label=label, year_is_range=is_range, year_problem=year_problem, month_num=month,
             month_problem=month_problem),
        dict(period_start=start,
             period_end=pl.when(monthly).then(start.dt.offset_by("1mo")).otherwise(start.dt.offset_by("12mo")),
             frequency=pl.when(monthly).then(pl.lit("MONTHLY")).otherwise(pl.lit("ANNUAL"))),
    )
    checkable = (pl.col("year_problem").is_null() & pl.col("month_problem").is_null()
                 & pl.col("setting_frequency").is_not_null())
    return live.with_columns(
        period_problem=pl.when(~checkable).then(None)
        .when(pl.col("year_is_range") & monthly).then(pl.lit("range_month"))
        .when(pl.col("year_is_range") & (starting == 1)).then(pl.lit("range_calendar"))
        .when(pl.col("period_start") < FIRST_PERIOD).then(pl.lit("early"))
        .when(pl.col("period_start") > today).then(pl.lit("future")),
    )


def _months_left_empty(live: pl.DataFrame) -> pl.DataFrame:
    """A breakdown row of a monthly metric without a month is rejected (``month_among_months``, R14) rather than
    stored as an annual value (M1) when the same sheet has rows with months for the same agency, metric and year:
    a merged month cell, or a month written once above its categories, leaves the rows below it empty, and each
    would become a year's value of one category. A row that is its category's year total (the sum of that
    category's months in the sheet, within 0.5 or 0.5%), another agency's or another metric's rows (superagency
    and single-page sheets) and an aggregate row without a month stay annual (M1)."""
    empty = (pl.col("use_month") & pl.col("month").is_null() & pl.col("category").is_not_null()
             & (pl.col("setting_frequency") == "MONTHLY") & pl.col("period_problem").is_null()
             & pl.col("year_problem").is_null())
    if not live.select(empty.any()).item():  # the usual batch: one pass over a few columns
        return live
    year = ["sheet_idx", "agency_id", "metric_key", "year_label"]
    monthly = live.join(live.filter(empty).select("sheet_idx").unique(), on="sheet_idx", how="semi").filter(
        pl.col("month_num").is_not_null())
    live = attach(live, year, monthly.select(year).unique().with_columns(months=pl.lit(True)), months="months")
    live = attach(live, [*year, "member"], monthly.group_by(*year, "member").agg(months_sum=pl.col("number").sum()),
                  months_sum="months_sum")
    difference = (pl.col("number") - pl.col("months_sum")).abs()
    year_total = (difference <= 0.5) | (difference <= 0.005 * pl.col("months_sum").abs())
    return live.with_columns(
        period_problem=pl.when(empty & pl.col("months") & ~year_total.fill_null(False))
        .then(pl.lit("month_among_months")).otherwise(pl.col("period_problem")),
    ).drop("months", "months_sum")


def _resolve_category(live: pl.DataFrame, registry: Registry) -> pl.DataFrame:
    """Match breakdown labels against the deterministic lookup (see :mod:`categories`)."""
    labels = live.select("dimension", "category").unique().with_columns(key=label_key(pl.col("category")))
    described = dict(member="member", member_display="member_display", outcome="outcome", note="note")
    # A label the lookup does not know but that reads like a total is one (R11); matched once per distinct label.
    lookup = category_lookup(registry)
    labels = attach(labels, ["dimension", "key"], lookup, **described).with_columns(
        total_like=pl.col("key").str.contains(r"^(all|total)\b"))
    labels = _other_parts(labels, lookup)
    live = attach(live, ["dimension", "category"], labels, total_like="total_like", part="part", **described)
    has_dimension, outcome = pl.col("dimension").is_not_null(), pl.col("outcome")
    return live.with_columns(
        category_problem=pl.when(~has_dimension | pl.col("metric_problem").is_not_null()).then(None)
        .when(pl.col("category").is_null()).then(pl.lit("empty"))
        .when((outcome == TOTAL) | (outcome.is_null() & pl.col("total_like")))
        .then(pl.lit("total"))
        .when(outcome == AMBIGUOUS).then(pl.lit("ambiguous"))
        .when(outcome.is_null()).then(pl.lit("unknown")),
    )


def _other_parts(labels: pl.DataFrame, lookup: pl.DataFrame) -> pl.DataFrame:
    """Labels of an "Other" member's sub-categories as templates write them, "<the member's label> - <sub-category>"
    ("Other Funding - Gifts", spec §3.10), resolved to that member with ``part`` true: their values are summed
    into it (:func:`_sum_other_parts`). Other labels get ``part`` false."""
    parent = label_key(pl.col("category").str.extract(r"^(.+?)\s+-\s+\S", 1))
    others = lookup.filter(pl.col("member").str.starts_with("OTHER") & pl.col("outcome").is_in([OK, LEGACY]))
    parts = (labels.filter(pl.col("outcome").is_null()).select("dimension", "category", parent_key=parent)
             .join(others.select("dimension", parent_key="key", part_member="member", part_display="member_display"),
                   on=["dimension", "parent_key"]))
    labels = attach(labels, ["dimension", "category"], parts, part_member="part_member", part_display="part_display")
    part = pl.col("part_member").is_not_null()
    return labels.with_columns(
        member=pl.coalesce("part_member", "member"), member_display=pl.coalesce("part_display", "member_display"),
        outcome=pl.when(part).then(pl.lit(OK)).otherwise("outcome"), part=part,
    ).drop("part_member", "part_display")


def _resolve_value(live: pl.DataFrame, semicolon_sheets: Collection[int]) -> pl.DataFrame:
    """Numbers: plain cells by a cast, the rest ("1,000", "$5", "N/A") by :func:`values.parse_value`; in CSVs
    separated by semicolons, the numbers whose meaning depends on the language are rejected (``ambiguous``)."""
    live = live.with_columns(number=plain_number(pl.col("value")))
    live = live.with_columns(value_problem=plain_problem(pl.col("value"), pl.col("number")))
    if semicolon_sheets:
        ambiguous = pl.col("sheet_idx").is_in(list(semicolon_sheets)) & ambiguous_number(pl.col("value"))
        live = live.with_columns(value_problem=pl.when(ambiguous).then(pl.lit("ambiguous"))
                                 .otherwise(pl.col("value_problem")))
    is_slow = pl.col("value_problem") == "slow"
    slow = live.filter(is_slow).select("value", "unit").unique()
    if slow.is_empty():  # every value a plain number, the usual batch: no parse_value plan at all
        return live
    slow_number, slow_problem = parse_value(pl.col("value"), pl.col("unit") == "USD")
    slow = slow.with_columns(slow_number=slow_number, slow_problem=slow_problem)
    live = attach(live, ["value", "unit"], slow, slow_number="slow_number", slow_problem="slow_problem")
    return live.with_columns(
        number=pl.when(is_slow).then(pl.col("slow_number")).otherwise(pl.col("number")),
        value_problem=pl.when(is_slow).then(pl.col("slow_problem")).otherwise(pl.col("value_problem")),
    ).drop("slow_number", "slow_problem")


# --- findings ------------------------------------------------------------------------------------------------


def _finding(rows: pl.LazyFrame, rule: str | pl.Expr, column: pl.Expr, raw: pl.Expr, message: pl.Expr) -> pl.LazyFrame:
    """Findings frame for ``rows``; ``rule`` may vary per row (an expression)."""
    rule_expr = pl.lit(rule) if isinstance(rule, str) else rule
    severity = rule_expr.replace_strict({code: r.severity for code, r in RULES.items()}, return_dtype=pl.String)
    return rows.select(
        "file_idx", "sheet", "row_number", column_name=column, raw_value=raw, rule=rule_expr, severity=severity,
        message=message,
    ).cast(FINDING_SCHEMA)


def _pick(problem: str, messages: dict[str, pl.Expr]) -> pl.Expr:
    """The message of the row's problem code."""
    chain = None
    for code, message in messages.items():
        matches = pl.col(problem) == code
        chain = (pl.when(matches) if chain is None else chain.when(matches)).then(message)
    return chain


def _row_findings(live: pl.LazyFrame, today: date) -> list[pl.LazyFrame]:
    f = fmt
    year, month, value, cat = pl.col("year"), pl.col("month"), pl.col("value"), pl.col("category")
    period = f("{} to {}", pl.col("period_start"), pl.col("period_end").dt.offset_by("-1d"))
    findings = [
        _finding(live.filter(pl.col("hint")), "T1", pl.col("hint_col"), pl.col("hint_raw"),
                 f("Template hint row '{}': delete this row (it lists the allowed values and holds no data)",
                   pl.col("hint_raw"))),
        _finding(live.filter(pl.col("year_problem").is_not_null()), "R1", pl.col("col_year"), year, _pick(
            "year_problem", {
                "empty": pl.lit("Empty 'year' value: write the year the value is for (e.g. 2023) on every row (a "
                                "merged year cell leaves the rows below it empty)"),
                "format": f("Invalid 'year' value '{}': write a whole number such as 2023, or a fiscal year such "
                            "as 2022-2023", year),
                "date": f("Year '{}' is a date: type the year as a number (such as 2023), not as a date", year),
                "bounds": f("Invalid 'year' value '{}': the year must be between 1600 and {}", year,
                            pl.lit(today.year + 1)),
                "range": f("Invalid 'year' value '{}': a fiscal year names two consecutive years, such as "
                           "2022-2023", year),
            })),
        _finding(live.filter(pl.col("period_problem").is_in(["range_month", "range_calendar"])), "R1",
                 pl.col("col_year"), year, _pick("period_problem", {
                     "range_month": f("Invalid 'year' value '{}' on a row with a month: write the calendar year "
                                      "of the month (e.g. 2023)", year),
                     "range_calendar": f("Invalid 'year' value '{}': {} is reported on calendar years for this "
                                         "agency, so write a single year (e.g. 2023)", year,
                                         pl.col("metric_sheet")),
                 })),
        _finding(live.filter(pl.col("period_problem") == "month_among_months"), "R14", pl.col("col_month"), month,
                 f("Month is empty on this '{}' row of {}, while other rows of {} in this sheet have months: write "
                   "the month on every row (a merged month cell, or a month written once above its categories, "
                   "leaves the rows below it empty)", cat, year, year)),
        _finding(live.filter(pl.col("period_problem").is_in(["early", "future"])), "R13", pl.col("col_year"),
                 year, _pick("period_problem", {
                     "early": f("The period {} starts before January 2000, the first period kept; check the year",
                                period),
                     "future": f("The period {} starts after the file was ingested ({}); check the year and "
                                 "month", period, pl.lit(today)),
                 })),
        _finding(live.filter(pl.col("month_problem").is_not_null()),
                 pl.col("month_problem").replace_strict({"range": "R2", "text": "R3", "date": "R4"}),
                 pl.col("col_month"), month, _pick("month_problem", {
                     "range": f("Invalid 'month' value '{}': write a number from 1 to 12 or a month name", month),
                     "text": f("Month '{}' is not recognized: write a number from 1 to 12 or an English month "
                               "name (January or Jan)", month),
                     "date": f("Month '{}' is a date: type the month number (1-12) or its name as plain text",
                               month),
                 })),
        _finding(live.filter(pl.col("value_problem").is_not_null()), "R7", pl.col("col_value"), value, _pick(
            "value_problem", {
                "empty": pl.lit(f"Empty 'value': write the number, or delete the row if you have no data for it "
                                f"({FORMULAS_READ_EMPTY})"),
                "format": f("Invalid 'value' '{}': write a number such as 1000 or 12.5", value),
                "dash": pl.lit("Invalid 'value' '-': a dash stands for zero in Excel's accounting format; write 0"),
                "ambiguous": f("Ambiguous 'value' '{}' in a file separated by semicolons: where Excel writes CSVs "
                               "with semicolons, '{}' means a number in the thousands, elsewhere a decimal; write "
                               "it without a thousands separator (1250 or 1.25)", value, value),
                "dollar": f("Invalid 'value' '{}': {} is not measured in dollars; write the number without '$'",
                            value, pl.col("metric_sheet")),
                "negative": f("Invalid 'value' '{}': values cannot be negative", value),
            })),
        _finding(live.filter(pl.col("metric_problem").is_not_null()), "R8", pl.col("col_metric"), pl.col("metric"),
                 _pick("metric_problem", {
                     "empty": f("Empty 'metric' value: write the metric's sheet name; one of: {}",
                                pl.col("valid_metrics")),
                     "unknown": f("'{}' is not a metric of {}; write one of: {}", pl.col("metric"),
                                  pl.col("sector"), pl.col("valid_metrics")),
                 })),
        _finding(live.filter(pl.col("bcat_problem").is_not_null()), "R9", pl.col("col_breakdown_category"),
                 pl.col("breakdown_category"), _pick("bcat_problem", {
                     "unknown": f("'{}' is not a breakdown of {}; its breakdown columns are: {}",
                                  pl.col("breakdown_category"), pl.col("metric_sheet"), pl.col("bcat_list")),
                     "missing": f("'breakdown' is filled but 'breakdown_category' is empty: write the breakdown "
                                  "column name (one of: {})", pl.col("bcat_list")),
                 })),
        _finding(live.filter(pl.col("agency_problem").is_not_null()), "R6", pl.col("col_agency"),
                 pl.col("agency"), _pick("agency_problem", {
                     "empty": pl.lit("Empty 'agency' value: write the name or id of the agency the row is for"),
                     "unknown": f("'{}' is not one of your child agencies in agencies.csv; write the agency's "
                                  "name or id", pl.col("agency")),
                     "sector": f("Agency '{}' does not report for {} in agencies.csv", pl.col("agency"),
                                 pl.col("sector")),
                 })),
        _finding(live.filter(pl.col("system_problem").is_not_null()),
                 pl.when(pl.col("system_problem") == "unknown").then(pl.lit("P4")).otherwise(pl.lit("R5")),
                 pl.col("col_system"), pl.col("system"), _pick("system_problem", {
                     "unknown": f("System '{}' is not recognized: write one of the agency's systems, {} ('all' and "
                                  "'both' cannot be stored; give one row per system)", pl.col("system"),
                                  pl.col("agency_systems")),
                     "empty": pl.lit("Empty 'system' value: write PAROLE, PROBATION, PRETRIAL_SUPERVISION, "
                                     "OTHER_SUPERVISION or SUPERVISION"),
                     "sector": f("The agency does not report for {} (see agencies.csv); write one of: {}",
                                 pl.col("system_code"), pl.col("agency_sectors")),
                     "not_split": f("{} is not reported by subsystem for this agency (metric_settings.csv), so "
                                    "'system' must be empty or SUPERVISION, not '{}'", pl.col("metric_sheet"),
                                    pl.col("system")),
                 })),
        _finding(live.filter(pl.col("category_problem").is_not_null()),
                 pl.col("category_problem").replace_strict(
                     {"empty": "R10", "unknown": "R10", "total": "R11", "ambiguous": "R12"}),
                 pl.col("col_category"), cat, _pick("category_problem", {
                     "empty": f("Empty '{}' value: write one of: {}", pl.col("col_category"), pl.col("valid")),
                     "unknown": f("'{}' is not a valid '{}' value; write one of: {}", cat, pl.col("col_category"),
                                  pl.col("valid")),
                     "total": f("'{}' is a total, not a '{}' category: put totals on the '{}' sheet and delete "
                                "this row", cat, pl.col("col_category"), pl.col("metric_sheet")),
                     "ambiguous": f("'{}' could mean {}; write the full category name", cat, pl.col("note")),
                 })),
    ]
    return findings


def _warnings(live: pl.DataFrame, described: pl.LazyFrame, is_loaded: pl.Expr) -> list[pl.LazyFrame]:
    """M1 (month missing on a monthly metric), M2 (month on an annual metric, single-page), C1 and C2, on loaded
    rows; only the kinds that flag some row of ``live`` (checked at once) become query plans."""
    f = fmt
    monthly_setting = pl.col("setting_frequency") == "MONTHLY"
    period = f("{} to {}", pl.col("period_start"), pl.col("period_end").dt.offset_by("-1d"))
    checks = {
        "M1": (pl.col("use_month") & pl.col("month").is_null() & monthly_setting, pl.col("col_month"),
               pl.col("month"),
               f("Month is empty: {} is reported monthly, so this value was stored for the whole year {}; fill "
                 "in the month if the value is for one month", pl.col("metric_sheet"), period)),
        "M2": ((pl.col("layout") == "single") & pl.col("month").is_not_null() & ~monthly_setting,
               pl.col("col_month"), pl.col("month"),
               f("{} is reported annually, but this row has month '{}'; it was stored as a monthly value",
                 pl.col("metric_sheet"), pl.col("month"))),
        "C1": (pl.col("outcome") == LEGACY, pl.col("col_category"), pl.col("category"),
               f("'{}' was stored as '{}': {}", pl.col("category"), pl.col("member_display"), pl.col("note"))),
        "C2": (pl.col("part"), pl.col("col_category"), pl.col("category"),
               f("'{}' is a sub-category of '{}', which bulk uploads keep whole: it was added into '{}' for {}, "
                 "unless this file gives '{}' itself for that period, which then counts alone", pl.col("category"),
                 pl.col("member_display"), pl.col("member_display"), period, pl.col("member_display"))),
    }
    flagged = live.select((is_loaded & check).any().alias(rule) for rule, (check, *_) in checks.items()).row(0)
    return [_finding(described.filter(is_loaded & check), rule, column, raw, message)
            for (rule, (check, column, raw, message)), found in zip(checks.items(), flagged, strict=True) if found]


# --- period-level checks -------------------------------------------------------------------------------------


#: How many colliding rows a P1 message names.
_DUPLICATES_LISTED = 5


def _duplicates(live: pl.DataFrame, labels: pl.LazyFrame) -> pl.DataFrame:
    """P1: rows of one file sharing agency, metric, period and category reject that whole period of the metric.

    Rows whose key is unusable (any problem other than the value) cannot collide; a bad value does not stop
    a row from being a duplicate.
    """
    key_problems = [p for p in _PROBLEMS if p != "value_problem"]
    group = [*PERIOD_GROUP, "dimension"]
    # An "Other" member's sub-categories are summed into it, not duplicates of one another: their label is in
    # their key (the same sub-category twice still collides).
    keyed = live.lazy().filter(~pl.col("hint") & pl.all_horizontal(pl.col(p).is_null() for p in key_problems)).select(
        "sheet_idx", "row_number", *group, "member", part=pl.when(pl.col("part")).then(pl.col("category")))
    key = [*group, "member", "part"]
    # Rows with one key share its 64-bit hash: counting the distinct hashes (a fifth of the cost of marking the
    # duplicated ones) usually shows there are none; otherwise the rows sharing a hash are the few candidates, and
    # only they are grouped exactly on the key's text columns (costlier and memory-hungry). The hashes are the one
    # plan here the streaming engine runs faster: a bench batch's 839,000 rows in ~40 ms against ~140 ms.
    hashes = keyed.select(pl.struct(key).hash()).collect(engine="streaming").to_series()
    colliding = None if hashes.n_unique() == hashes.len() else (
        keyed.filter(pl.struct(key).hash().is_duplicated()).filter(pl.len().over(key) > 1).collect(engine=_ENGINE))
    if colliding is None or colliding.is_empty():  # the usual batch: nothing to join
        return live.with_columns(dups=pl.lit(None, pl.String), period_rows=pl.lit(None, pl.get_index_type()))
    collisions = (
        colliding.lazy()
        .join(labels.select("sheet_idx", "sheet"), on="sheet_idx")
        .sort("sheet_idx", "row_number")
        .group_by(group, maintain_order=True)
        .agg(
            listed=fmt("'{}' row {}", pl.col("sheet"), pl.col("row_number")).head(_DUPLICATES_LISTED).str.join(", "),
            colliding=pl.len(),
        )
        # The list is repeated on every colliding row: capped, or thousands of duplicates cost memory squared.
        .with_columns(dups=pl.when(pl.col("colliding") > _DUPLICATES_LISTED).then(pl.concat_str([
            pl.col("listed"), pl.lit(" and "), (pl.col("colliding") - _DUPLICATES_LISTED).cast(pl.String),
            pl.lit(" more rows")])).otherwise(pl.col("listed")))
        .drop("listed", "colliding")
    )
    # Every usable row of a colliding period is flagged, with the number of such rows.
    flagged = keyed.join(collisions, on=group, nulls_equal=True).select(
        "sheet_idx", "row_number", "dups", period_rows=pl.len().over(group)).collect(engine=_ENGINE)
    return attach(live, ["sheet_idx", "row_number"], flagged, dups="dups", period_rows="period_rows")


def _sum_other_parts(loaded: pl.LazyFrame) -> pl.LazyFrame:
    """The loaded rows with an "Other" member's sub-category rows (``part``) summed into one row of that member per
    period, on the first of them; where the file also gives the member's own row, that row is its value and the
    sub-categories add nothing (they detail it). Every such row still counts as loaded."""
    key = [*PERIOD_GROUP, "dimension", "member"]
    given = loaded.filter(~pl.col("part"))
    summed = (loaded.filter(pl.col("part")).join(given.select(key), on=key, how="anti", nulls_equal=True)
              .sort("sheet_idx", "row_number")
              .group_by(key, maintain_order=True)
              .agg(pl.all().exclude("number").first(), pl.col("number").sum()))
    return pl.concat([given, summed], how="diagonal")


def _p1_message() -> pl.Expr:
    return fmt(
        "Too many rows: {} give the same {} for {} to {}; keep a single row per period and category. All {} "
        "rows of this metric for that period were rejected until then",
        pl.col("dups"), pl.coalesce(pl.col("col_category"), pl.lit("total")), pl.col("period_start"),
        pl.col("period_end").dt.offset_by("-1d"), pl.col("period_rows"))


def _breakdown_totals(loaded: pl.LazyFrame, labels: pl.LazyFrame) -> pl.LazyFrame:
    """P2: a breakdown that does not add up to the total given in the same file (warning on the total row)."""
    totals = loaded.filter(pl.col("dimension").is_null()).select(
        *PERIOD_GROUP, "sheet_idx", "row_number", "unit", total_raw="value", total="number")
    parts = loaded.filter(pl.col("dimension").is_not_null()).group_by(*PERIOD_GROUP, "dimension").agg(
        parts=pl.col("number").sum(), part_sheet_idx=pl.col("sheet_idx").first())
    difference = (pl.col("parts") - pl.col("total")).abs()
    tolerance = pl.when(pl.col("unit") == "USD").then(pl.col("total").abs() * MONEY_TOLERANCE).otherwise(1.0)
    mismatched = parts.join(totals, on=PERIOD_GROUP).filter(difference > tolerance + 1e-9)
    part_labels = labels.select(part_sheet_idx="sheet_idx", part_sheet="sheet", part_column="col_category")
    described = mismatched.join(labels, on="sheet_idx").join(part_labels, on="part_sheet_idx")
    return _finding(described, "P2", pl.col("col_value"), pl.col("total_raw"), fmt(
        "The '{}' values on sheet '{}' add up to {}, but the total on this row is {} for {} to {}; check both "
        "(both were stored as given)", pl.col("part_column"), pl.col("part_sheet"), pl.col("parts").round(2),
        pl.col("total"), pl.col("period_start"), pl.col("period_end").dt.offset_by("-1d")))


def _datapoints(loaded: pl.LazyFrame, sheets: pl.DataFrame) -> pl.DataFrame:
    """The loaded rows as staged datapoints, each row's sheet name taken by position (a join of whole rows copied
    them: 0.20 s of CPU a bench batch)."""
    rows = loaded.select(
        "file_idx", "sheet_idx", "row_number", "agency_id", "metric_key", "frequency", "period_start", "period_end",
        "dimension", sector="metric_sector", category="member", value="number").collect(engine=_ENGINE)
    return by_position(rows, sheets.select("sheet"), "sheet_idx").select(DATAPOINT_SCHEMA.keys()).cast(
        DATAPOINT_SCHEMA)
