"""``validate_months``: run every rule on the datapoints of some months and store the failing groups.

Flow: read the month slice once (``sql/datapoints.sql``) -> Great Expectations rules on it (pandas path) ->
SQL rules on the warehouse -> in one transaction replace the stored results those rules own for these months ->
the rules that read earlier months judge again the later months that read these (``Rule.reads_back``).
A nightly run passes the agencies whose uploads changed: only their rows are checked and only their results
replaced, and each rule's verdict is then read back from the stored results of the months (every agency's).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from jc_pipeline.lib.periods import month_start, period_label
from jc_pipeline.lib.state_clock import state_timezone
from jc_pipeline.lib.validation.expectations import GX_RULES, OBSERVED_COLUMN, ROW_ID, expectation_specs, parts
from jc_pipeline.lib.validation.gx_worker import run_expectations
from jc_pipeline.lib.validation.rules import RULES, Rule
from jc_pipeline.lib.validation.sqlrules import SQL_RULES, run_sql_rule, sql_text
from jc_pipeline.lib.warehouse import transaction

if TYPE_CHECKING:  # pragma: no cover
    from jc_pipeline.lib.registry import Registry

SAMPLE_SIZE = 10
#: A scope of at most this many agencies x calendar years is validated in one Great Expectations slice across its
#: years, and such scopes of a nightly run are validated together (:func:`check_scopes`). At 3,000 agencies an
#: agency's year is ~300 datapoints, so the slice stays far below the state's year that bounds memory otherwise.
SMALL_SCOPE_AGENCY_YEARS = 500

#: validation_results columns written for each failing group, in table order.
RESULT_SCHEMA = pa.schema([
    ("check_name", pa.string()), ("severity", pa.string()), ("passed", pa.bool_()),
    ("agency_id", pa.string()), ("metric_key", pa.string()), ("period_start", pa.date32()),
    ("observed", pa.string()), ("expected", pa.string()), ("message", pa.string()),
    ("checked_at", pa.timestamp("us")), ("period_end", pa.date32()), ("dimension", pa.string()),
    ("category", pa.string()), ("file_id", pa.string()), ("sheet", pa.string()), ("row_number", pa.int64()),
])
_SAMPLE_FIELDS = ("agency_id", "metric_key", "period_start", "period_end", "dimension", "category",
                  "observed", "expected", "file_id", "sheet", "row_number", "message")


@dataclass(frozen=True)
class RuleOutcome:
    """Result of one rule over the validated months (what a Dagster AssetCheckResult reports).

    ``checked_rows`` counts datapoints for Great Expectations rules and groups examined for SQL rules;
    ``sample`` holds up to 10 failing groups as JSON-serializable dicts; ``error`` is set when the rule itself
    crashed (then ``passed`` is False and no stored results of that rule were replaced). ``rechecked_agencies``
    is None when every agency was checked; in a run limited to some agencies it counts them, ``checked_rows``
    covers their rows only, and ``passed``, ``failing_groups`` and ``sample`` describe the months' stored
    results, every agency's.
    """

    rule: Rule
    passed: bool
    failing_groups: int
    checked_rows: int
    sample: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    rechecked_agencies: int | None = None


def validate_months(con: duckdb.DuckDBPyConnection, months: Sequence[date], *, today: date,
                    registry: Registry, agencies: Sequence[str] | None = None) -> list[RuleOutcome]:
    """Check the agency_metrics rows whose period starts in ``months``; store and return the outcomes.

    Rules read other months where they need context (earlier periods, the rest of the year). Each SQL rule checks
    all the months in one query, and only its failing groups and their count leave DuckDB; Great Expectations
    validates the datapoints a calendar year's slice at a time, so memory stays bounded by a year of the state's
    datapoints however long the history (a few agencies' years at once: :attr:`CheckScope.slices`). The stored
    results of each rule that ran are replaced in one transaction (see ``Rule.scope``); results of a rule that
    crashed, in any slice, are left as they were, so a crash never clears an exclusion. Returns one outcome per
    rule of ``RULES``. ``con`` must not be inside an open transaction (DuckDB cannot nest them).

    With ``agencies``, only the rows stored under those agencies are checked (each rule still reads the same
    agency's other rows for context; no rule's verdict on an agency depends on another agency's rows) and only
    their stored results are replaced: the stored results then equal those of checking every agency. The
    outcomes' verdicts, counts and samples are read back from the stored results of the months, so a Dagster
    check still says whether the months pass the rule.
    """
    return validate_scopes(con, [(months, agencies)], today=today, registry=registry)


def validate_scopes(con: duckdb.DuckDBPyConnection, scopes: Iterable[tuple[Sequence[date], Sequence[str] | None]],
                    *, today: date, registry: Registry) -> list[RuleOutcome]:
    """``validate_months`` for each ``(months, agencies)`` of ``scopes`` (the rebuilds of one nightly run, each
    its own months and agencies), reported as one outcome per rule over all their months: a scope limited to
    some agencies makes the outcomes those of the stored results of every scope's months, as in
    ``validate_months``, with ``rechecked_agencies`` counting the agencies checked in any scope. Scopes of a few
    agencies are checked together (:func:`check_scopes`), with the same stored results; their outcomes'
    ``checked_rows`` then count every row checked, those of each agency's months in the other scopes included.
    """
    outcomes = [RuleOutcome(rule, True, 0, 0) for rule in RULES]
    checked_at = datetime.now(UTC).replace(tzinfo=None)
    names = _labels(registry)
    every_month: set[date] = set()
    rechecked: set[str] | None = set()
    for scope in check_scopes(scopes):
        outcomes = [_combine(a, b) for a, b in zip(outcomes, _validate(con, scope, today, registry, names, checked_at),
                                                   strict=True)]
        errors = _rejudge_later_months(con, scope, today, registry, names, checked_at)
        outcomes = [replace(o, passed=False, error=o.error or errors[o.rule.name]) if o.rule.name in errors else o
                    for o in outcomes]
        every_month.update(scope.months)
        rechecked = None if rechecked is None or scope.agencies is None else rechecked | set(scope.agencies)
    return outcomes if rechecked is None else _stored_outcomes(con, sorted(every_month), outcomes, len(rechecked))


class Owned(NamedTuple):
    """Stored results a check replaces: those of ``months`` (by each rule's ``Rule.scope``) of ``agencies`` (None:
    every agency)."""

    months: list[date]
    agencies: list[str] | None


class CheckScope(NamedTuple):
    """Months (sorted month starts) whose rows of ``agencies`` (sorted; None: every agency) are checked together,
    and the scopes it is made of (:func:`check_scopes`), each replacing only the results it owns."""

    months: list[date]
    agencies: list[str] | None
    parts: tuple[Owned, ...]

    @property
    def small(self) -> bool:
        """At most :data:`SMALL_SCOPE_AGENCY_YEARS` agencies x calendar years."""
        years = len({m.year for m in self.months})
        return self.agencies is not None and len(self.agencies) * years <= SMALL_SCOPE_AGENCY_YEARS

    @property
    def slices(self) -> list[list[date]]:
        """The months whose datapoints Great Expectations validates at once: all the months of a small scope, else
        one calendar year at a time (a year's slice of every agency bounds memory however long the history); none
        without months."""
        if self.small and self.months:
            return [self.months]
        return [[m for m in self.months if m.year == year] for year in sorted({m.year for m in self.months})]


def check_scopes(scopes: Iterable[tuple[Sequence[date], Sequence[str] | None]]) -> list[CheckScope]:
    """The ``(months, agencies)`` of ``scopes`` as they are checked: each small one (:attr:`CheckScope.small`)
    merged with the small ones before it while the union stays small, the others as they are.

    A merged scope checks each of its agencies in each of its months, one query per rule and one Great
    Expectations slice instead of one of each per scope (a night's late corrections are a few one-agency scopes
    in different years; five at 3,000 agencies: 1.33-1.49 s one by one -> 0.51-0.54 s merged, docs/decisions.md).
    Each of its parts then replaces only the results it owns, so the stored results are those of checking each
    scope alone, and an agency's results in another part's months are left as they were: re-checked, they could
    disagree with a roll-up that did not rebuild them (a roster changed since, say)."""
    kept: list[CheckScope] = []
    merged: list[CheckScope] = []
    for months, agencies in scopes:
        part = Owned(sorted({month_start(m) for m in months}), None if agencies is None else sorted(set(agencies)))
        scope = CheckScope(*part, (part,))
        if not scope.small:
            kept.append(scope)
            continue
        if merged:
            last = merged[-1]
            union = CheckScope(sorted({*last.months, *scope.months}), sorted({*last.agencies, *scope.agencies}),
                               (*last.parts, part))
            if union.small:
                merged[-1] = union
                continue
        merged.append(scope)
    return kept + merged


def _rejudge_later_months(con: duckdb.DuckDBPyConnection, scope: CheckScope, today: date, registry: Registry,
                          names: dict[str, str], checked_at: datetime) -> dict[str, str]:
    """Judge again, and store, the later months whose verdicts read rows of the scope's months
    (``Rule.reads_back``), for the same agencies: a corrected population changes the next month's
    admissions-minus-releases verdict, a corrected total the jump verdicts of the periods after it. Each part of
    the scope owns the later months of its own months and agencies. Their verdicts are not part of the outcomes
    (those months are not the ones validated); a rule that crashes here keeps its stored results and its error
    is returned (by rule name), to be reported as the rule's."""
    errors: dict[str, str] = {}
    for rule in RULES:
        if not rule.reads_back:
            continue
        owners = [owner for part in scope.parts if part.months and (owner := _later(con, part, rule)).months]
        if not owners:
            continue
        later = sorted({m for owner in owners for m in owner.months})
        # One query over all of them, not one per year: the later periods are few per series (a year of months,
        # then annual starts); one agency's correction of 2018 at 3,000 agencies takes 0.1 s against 0.6 s.
        outcome = run_sql_rule(con, rule, later, today, registry, scope.agencies)
        if outcome.error is not None:
            errors[rule.name] = f"judging the later months {later[0]}..{later[-1]} again failed: {outcome.error}"
            continue
        _store(con, owners, [rule], [_result_row(rule, g, names, checked_at) for g in outcome.failing])
    return errors


def _later(con: duckdb.DuckDBPyConnection, part: Owned, rule: Rule) -> Owned:
    """The later months of ``part``'s agencies that ``rule`` judged with rows of its months (``sql/later_months``)."""
    params = {"months": part.months, "reads_back": rule.reads_back, "agencies": part.agencies}
    return Owned([m for (m,) in con.execute(sql_text("later_months"), params).fetchall()], part.agencies)


def _validate(con: duckdb.DuckDBPyConnection, scope: CheckScope, today: date, registry: Registry,
              names: dict[str, str], checked_at: datetime) -> list[RuleOutcome]:
    """Every rule on the scope's months (the rows of its agencies only, unless None); stores the results its parts
    own, in one transaction. Each SQL rule is one query over all the months: ten years at 3,000 agencies took
    10.2 s a year at a time, 7.4 s at once (18.6 against 14.5 s of CPU)."""
    if not scope.months:
        return [RuleOutcome(rule, True, 0, 0) for rule in RULES]
    found: dict[str, tuple[list[dict[str, Any]], int, str | None]] = {}
    # A thread reads the slices and waits for Great Expectations' worker process to validate them; the SQL rules run
    # meanwhile, on a cursor of their own (DuckDB releases the GIL while it works). Ten years at 3,000 agencies,
    # GX still in this process then: 39.9-41.2 -> 27.1-32.0 s.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gx-validate") as pool, con.cursor() as sql_con:
        gx = pool.submit(_gx_slices, con, scope, today, registry)
        for rule in SQL_RULES:
            outcome = run_sql_rule(sql_con, rule, scope.months, today, registry, scope.agencies)
            found[rule.name] = (outcome.failing, outcome.checked_rows, outcome.error)
        found.update(gx.result())

    rows: list[dict[str, Any]] = []
    outcomes: list[RuleOutcome] = []
    for rule in RULES:
        groups, checked, error = found[rule.name]
        results = [_result_row(rule, group, names, checked_at) for group in groups]
        rows.extend(results)
        sample = [_sample_row(r) for r in results[:SAMPLE_SIZE]]
        outcomes.append(RuleOutcome(rule, error is None and not results, len(results), checked, sample, error))
    _store(con, list(scope.parts), [o.rule for o in outcomes if o.error is None], rows)
    return outcomes


def _combine(a: RuleOutcome, b: RuleOutcome) -> RuleOutcome:
    """One rule's outcomes over two sets of months as one."""
    return RuleOutcome(a.rule, a.passed and b.passed, a.failing_groups + b.failing_groups,
                       a.checked_rows + b.checked_rows, (a.sample + b.sample)[:SAMPLE_SIZE], a.error or b.error)


# ---- Great Expectations rules ------------------------------------------------------------------------------


def _gx_slices(con: duckdb.DuckDBPyConnection, scope: CheckScope, today: date,
               registry: Registry) -> dict[str, tuple[list[dict[str, Any]], int, str | None]]:
    """Per gx rule over the scope's slices (:attr:`CheckScope.slices`): failing groups, rows checked, the first
    error."""
    found: dict[str, tuple[list[dict[str, Any]], int, str | None]] = {rule.name: ([], 0, None) for rule in GX_RULES}
    for months in scope.slices:
        for rule, groups, checked, error in _gx_groups(con, months, today, registry, scope.agencies):
            before, counted, first_error = found[rule.name]
            found[rule.name] = (before + groups, counted + checked, first_error or error)
    return found


def _gx_groups(con: duckdb.DuckDBPyConnection, months: list[date], today: date, registry: Registry,
               agencies: list[str] | None) -> Iterable[tuple[Rule, list[dict[str, Any]], int, str | None]]:
    """Per gx rule: failing groups (rows of the slice merged by ``rule.group_by``), rows checked, error."""
    slice_sql = sql_text("datapoints")
    params = {"months": months, "today": today, "timezone": state_timezone(), "agencies": agencies}
    try:
        # The year's slice in one validation: GX's fixed cost (~0.13 s CPU for the suite) is paid once a year.
        slice_parts, rows = parts(con, expectation_specs(registry), slice_sql, params)
    except Exception as exc:  # noqa: BLE001 - a broken slice query is an error of every gx rule
        for rule in GX_RULES:
            yield rule, [], 0, f"reading the datapoints failed: {type(exc).__name__}: {exc}"
        return
    outcomes = run_expectations(slice_parts, rows)
    failing_ids = sorted({row_id for outcome in outcomes for row_id in outcome.failing_row_ids})
    # The failing rows whole, read once for every rule (by their row ids, a few hundred of a year's slice).
    read_back = {**params, "row_ids": failing_ids}
    try:
        failing = con.sql(slice_sql, params=read_back).to_arrow_table() if failing_ids else None
    except Exception as exc:  # noqa: BLE001 - a rule whose failing rows cannot be read reports an error
        outcomes = [replace(o, failing_row_ids=(), checked_rows=0,
                            error=f"reading the failing datapoints failed: {type(exc).__name__}: {exc}")
                    if o.failing_row_ids else o for o in outcomes]
    for outcome in outcomes:
        if outcome.error is not None or not outcome.failing_row_ids:
            yield outcome.rule, [], outcome.checked_rows, outcome.error
            continue
        ids = pa.array(outcome.failing_row_ids, pa.int64())
        # The slice comes in no particular order; _merge puts the failing rows in lineage order.
        rows_of_rule = failing.filter(pc.is_in(failing[ROW_ID], value_set=ids)).to_pylist()
        yield outcome.rule, _merge(outcome.rule, rows_of_rule), outcome.checked_rows, None


def _merge(rule: Rule, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge failing slice rows into groups; each keeps its first row's lineage and counts its rows."""
    observed_column = OBSERVED_COLUMN.get(rule.name, rule.column)
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for raw in sorted(rows, key=_lineage_order):
        row = {k: _json(v) for k, v in raw.items()}
        key = tuple(row.get(c) for c in rule.group_by)
        group = groups.get(key)
        if group is None:
            group = {c: (row.get(c) if c in rule.group_by or c in _LINEAGE else None) for c in _GROUP_COLUMNS}
            # From the raw row: NaN and infinity are the point of value_is_numeric, keep them visible.
            group["observed"] = _text(raw.get(observed_column)) if observed_column else None
            group["expected"] = None
            group["detail"] = None
            group["count"] = 0
            groups[key] = group
        group["count"] += 1
    return list(groups.values())


def _lineage_order(row: dict[str, Any]) -> tuple[Any, ...]:
    """A group's first row: by file and row number; the sheet breaks ties (the same row number of two sheets of
    one workbook, a datapoint sent twice), then the datapoint key, nulls last (breakdowns before the total)."""
    key = tuple((row[c] is None, row[c]) for c in _DATAPOINT_KEY)
    return (_json(row["file_id"]) or "", _json(row["row_number"]) or 0, _json(row["sheet"]) or "", *key)


_DATAPOINT_KEY = ("agency_id", "metric_key", "period_start", "dimension", "category")
_LINEAGE = ("file_id", "sheet", "row_number")
_GROUP_COLUMNS = ("agency_id", "metric_key", "period_start", "period_end", "dimension", "category", *_LINEAGE)


# ---- results -------------------------------------------------------------------------------------------------


def _labels(registry: Registry) -> dict[Any, str]:
    """Words agencies know: metric display names, dimension names ('offense type'), category display values."""
    labels: dict[Any, str] = registry.metric_labels()
    for identifier, dimension in registry.dimensions.items():
        labels[identifier] = re.sub(r"(?<!^)(?=[A-Z])", " ", dimension.class_name).lower()
        labels.update({(identifier, m.name): m.display for m in dimension.members})
    return labels


def _result_row(rule: Rule, group: dict[str, Any], names: dict[Any, str], checked_at: datetime) -> dict[str, Any]:
    start, end = _as_date(group.get("period_start")), _as_date(group.get("period_end"))
    observed, expected = _text(group.get("observed")), _text(group.get("expected"))
    category, dimension = group.get("category"), group.get("dimension")
    dimension_label = names.get(dimension, dimension or "")
    category_label = names.get((dimension, category), category or "")
    fields = defaultdict(str, {
        "metric": names.get(group.get("metric_key"), group.get("metric_key") or "?"),
        "period": period_label(start, end) if start and end else (start.isoformat() if start else "?"),
        "year": start.year if start else "",
        "dimension": dimension_label,
        "category": category_label,
        "where_category": f" ({dimension_label}: {category_label})" if category or dimension else "",
        "observed": observed or "",
        "expected": expected or "",
        "count": group.get("count", ""),
    })
    message = rule.message.format_map(fields)
    if group.get("detail"):
        message = f"{message} {group['detail']}"
    return {
        "check_name": rule.name, "severity": rule.severity, "passed": False,
        "agency_id": group.get("agency_id"), "metric_key": group.get("metric_key"), "period_start": start,
        "observed": observed, "expected": expected, "message": message, "checked_at": checked_at,
        "period_end": end, "dimension": dimension, "category": category,
        "file_id": group.get("file_id"), "sheet": group.get("sheet"),
        "row_number": int(group["row_number"]) if group.get("row_number") is not None else None,
    }


def _store(con: duckdb.DuckDBPyConnection, owners: list[Owned], ran: list[Rule], rows: list[dict[str, Any]]) -> None:
    """Replace the stored results of the rules that ran that ``owners`` own by those of ``rows`` they own, in one
    transaction (rows no owner owns are dropped: a merged scope's agencies checked in each other's months)."""
    owned = sql_text("owned_results")
    con.register("_validation_incoming", pa.Table.from_pylist(rows, schema=RESULT_SCHEMA))
    try:
        with transaction(con):
            for owner in owners:
                params = {**_result_scope(owner.months, ran), "agencies": owner.agencies}
                con.execute(f"DELETE FROM validation_results WHERE {owned}", params)
                con.execute(f"INSERT INTO validation_results BY NAME SELECT * FROM _validation_incoming WHERE {owned}",
                            params)
    finally:
        con.unregister("_validation_incoming")


def _result_scope(months: list[date], rules: Iterable[Rule]) -> dict[str, list[Any]]:
    """Parameters of the stored results that ``rules`` own for ``months`` (by their ``Rule.scope``)."""
    return {"month_rules": [r.name for r in rules if r.scope == "months"], "months": months,
            "year_rules": [r.name for r in rules if r.scope == "years"], "years": sorted({m.year for m in months})}


def _stored_outcomes(con: duckdb.DuckDBPyConnection, months: list[date], outcomes: list[RuleOutcome],
                     rechecked: int) -> list[RuleOutcome]:
    """``outcomes`` of a run that checked ``rechecked`` agencies, with each rule's verdict, failing groups and
    sample taken from the stored results of ``months`` (every agency's), as a run checking them all reports."""
    stored = {name: (count, sample) for name, count, sample in con.execute(
        sql_text("stored_failures"), {**_result_scope(months, RULES), "sample_size": SAMPLE_SIZE}).fetchall()}
    read_back = []
    for outcome in outcomes:
        count, sample = stored.get(outcome.rule.name, (0, []))
        read_back.append(replace(outcome, passed=outcome.error is None and not count, failing_groups=count,
                                 sample=[_sample_row(row) for row in sample], rechecked_agencies=rechecked))
    return read_back


def _sample_row(result: dict[str, Any]) -> dict[str, Any]:
    """A failing group as it appears in a check's sample (JSON values)."""
    return {k: _json(result[k]) for k in _SAMPLE_FIELDS}


# ---- value helpers ----------------------------------------------------------------------------------------------


def _json(value: Any) -> Any:
    """Plain JSON-friendly Python value: numpy scalars unwrapped, NaN/NA to None, dates to ISO strings."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
    except ImportError:  # pragma: no cover
        pass
    return value


def _as_date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _text(value: Any) -> str | None:
    """Numbers without float noise (2 decimals at most, no trailing zeros); other values as text."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)
