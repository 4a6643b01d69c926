"""Great Expectations suites generated from the metric registry, run on the pandas path per datapoint slice.

One or two expectations per ``engine="gx"`` rule, each built by a small builder from the registry (the category
value sets are the registry's metric breakdowns and dimension members) or from a column that
``sql/datapoints.sql`` pre-computes from the roster and the agencies' settings (period alignment, roster
membership, enabled metrics, enabled breakdown categories). Failing rows come back from GX as ``row_id`` values
and are mapped to datapoints by the caller.

GX costs ~2.4 s to import, so it is imported lazily and the context is built once per process; suites are
built once per registry object.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from jc_pipeline.lib.validation.rules import RULES, Rule

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from jc_pipeline.lib.registry import Registry

# Columns of the slice that identify the datapoint a failing row belongs to.
ROW_ID = "row_id"


@dataclass(frozen=True)
class ExpectationOutcome:
    """What one rule's expectation found on a slice: failing row ids, or the error that stopped it."""

    rule: Rule
    failing_row_ids: tuple[int, ...]
    checked_rows: int
    error: str | None


# ---- builders: one per gx rule --------------------------------------------------------------------------------
# Each returns the rule's expectations (usually one); ``registry`` and ``rule`` make the generated parts explicit.


def _category(gxe: Any, rule: Rule, registry: Registry) -> tuple[Any, ...]:
    # (metric, dimension, category) is valid iff (metric, dimension) is a breakdown of the metric and category
    # is a member of the dimension: members belong to the dimension, not to the metric. Two value sets of a few
    # hundred entries instead of one of ~5,000 triples, because GX re-serializes the value set many times per
    # validation (measured: 0.3-0.5 s for the triples on 12k rows).
    pairs = sorted({f"{m.key}|{b.dimension.identifier}" for m in registry.metrics.values() for b in m.breakdowns})
    members = sorted({f"{d.identifier}|{name}" for d in registry.dimensions.values() for name in d.member_names})
    return (gxe.ExpectColumnValuesToBeInSet(column="breakdown_of_metric", value_set=pairs),
            gxe.ExpectColumnValuesToBeInSet(column="category_of_dimension", value_set=members))


def _not_null(gxe: Any, rule: Rule, registry: Registry) -> tuple[Any, ...]:
    return (gxe.ExpectColumnValuesToNotBeNull(column=rule.column),)


def _non_negative(gxe: Any, rule: Rule, registry: Registry) -> tuple[Any, ...]:
    return (gxe.ExpectColumnValuesToBeBetween(column=rule.column, min_value=0),)


def _unique(gxe: Any, rule: Rule, registry: Registry) -> tuple[Any, ...]:
    return (gxe.ExpectCompoundColumnsToBeUnique(
        column_list=["agency_id", "metric_key", "period_start", "period_end", "dimension_key", "category_key"]),)


def _is_ok(gxe: Any, rule: Rule, registry: Registry) -> tuple[Any, ...]:
    return (gxe.ExpectColumnValuesToBeInSet(column=rule.column, value_set=["ok"]),)


def _not_after_today(gxe: Any, rule: Rule, registry: Registry) -> tuple[Any, ...]:
    return (gxe.ExpectColumnValuesToBeBetween(column=rule.column, max_value=0),)


def _whole(gxe: Any, rule: Rule, registry: Registry) -> tuple[Any, ...]:
    return (gxe.ExpectColumnValuesToBeBetween(column=rule.column, max_value=rule.params["tolerance"]),)


BUILDERS: dict[str, Callable[[Any, Rule, Any], tuple[Any, ...]]] = {
    "value_is_numeric": _not_null,
    "value_not_negative": _non_negative,
    "category_is_member": _category,
    "no_duplicate_datapoints": _unique,
    "period_aligned": _is_ok,
    "period_not_in_future": _not_after_today,
    "agency_in_roster": _is_ok,
    "counts_are_whole_numbers": _whole,
    "metric_enabled": _is_ok,
    "category_enabled": _is_ok,
}

#: Slice column whose value explains a failure (``observed``), per rule; default: the rule's column.
OBSERVED_COLUMN: dict[str, str] = {
    "category_is_member": "category",
    "period_not_in_future": "period_end",
    "counts_are_whole_numbers": "value",
    "value_is_numeric": "value",
    "value_not_negative": "value",
}

GX_RULES: tuple[Rule, ...] = tuple(rule for rule in RULES if rule.engine == "gx")
assert {r.name for r in GX_RULES} == set(BUILDERS), "every gx rule needs exactly one expectation builder"


# ---- context and suites -----------------------------------------------------------------------------------------

_lock = threading.RLock()
_suites: dict[int, tuple[Any, Any]] = {}  # id(registry) -> (registry, suite); the registry is kept alive
_suite_numbers = itertools.count()  # suite names must be unique within the process-wide context


@dataclass(frozen=True)
class _Gx:
    """The process-wide Great Expectations objects."""

    gx: Any
    expectations: Any
    context: Any
    batch_definition: Any


def preload() -> threading.Thread:
    """Start importing Great Expectations in a background thread and return it.

    The import costs ~2.4 s of CPU; a caller that has other work first (resolving the datapoints) can overlap
    it. ``validate_months`` waits for it when it needs GX. Safe to call more than once.
    """
    # Two threads importing modules that import each other can be handed a half-initialized module (Python's
    # deadlock avoidance): GX importing sqlalchemy.orm here while Dagster, on the caller's thread, loaded parts of
    # sqlalchemy lazily failed a roll-up once ("partially initialized module 'sqlalchemy.orm.exc'"). Imported on
    # the caller's thread first (~55 ms), sqlalchemy leaves the background import nothing of its own to race on.
    import sqlalchemy.orm  # noqa: F401
    thread = threading.Thread(target=_gx, name="gx-preload", daemon=True)
    thread.start()
    return thread


@functools.cache
def _gx_cached() -> _Gx:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # Without this GX prints tqdm "Calculating Metrics" bars on stderr for every validation.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        context.data_sources.add_pandas("jc_validation")
        .add_dataframe_asset("datapoints")
        .add_batch_definition_whole_dataframe("slice")
    )
    return _Gx(gx, gxe, context, batch_definition)


def _gx() -> _Gx:
    """Import GX (slow: ~2.4 s) and build the ephemeral context with its pandas batch definition, once."""
    with _lock:  # functools.cache alone would let two threads build two contexts
        return _gx_cached()


def suite_for(registry: Registry) -> Any:
    """The expectation suite of ``registry`` (built on first use, then reused)."""
    with _lock:
        cached = _suites.get(id(registry))
        if cached is not None and cached[0] is registry:
            return cached[1]
        g = _gx()
        suite = g.context.suites.add(g.gx.ExpectationSuite(name=f"jc_tier1_{next(_suite_numbers)}"))
        for rule in GX_RULES:
            for expectation in BUILDERS[rule.name](g.expectations, rule, registry):
                expectation.meta = {"rule": rule.name}
                suite.add_expectation(expectation)
        _suites[id(registry)] = (registry, suite)
        return suite


def suite_columns(registry: Registry) -> list[str]:
    """The slice columns the registry's suite reads, plus ``row_id``: all that needs to go into pandas."""
    columns = {ROW_ID}
    for expectation in suite_for(registry).expectations:
        column = getattr(expectation, "column", None)
        columns.update([column] if column else getattr(expectation, "column_list", None) or ())
    return sorted(columns)


def run_expectations(table: pa.Table, registry: Registry) -> list[ExpectationOutcome]:
    """Validate the slice (an Arrow table of the suite's columns) with the registry's suite; one outcome per gx
    rule, in catalogue order.

    An expectation that raised inside GX is reported as ``error`` (with the GX message), never as failing rows;
    if the whole validation raises, every gx rule gets the error.
    """
    if table.num_rows == 0:
        return [ExpectationOutcome(rule, (), 0, None) for rule in GX_RULES]
    try:
        frame = _frame(table)
        suite = suite_for(registry)
        with _lock:  # one shared context: GX makes no promise about concurrent use
            result = _gx().batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(
                suite,
                result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_ID]},
            )
    except Exception as exc:  # noqa: BLE001 - a GX crash must surface as a rule error, not a data failure
        message = f"Great Expectations failed: {type(exc).__name__}: {exc}"
        return [ExpectationOutcome(rule, (), 0, message) for rule in GX_RULES]

    by_rule: dict[str, list[Any]] = {}
    for r in result.results:
        by_rule.setdefault(r.expectation_config.meta.get("rule"), []).append(r)
    outcomes = []
    for rule in GX_RULES:
        results = by_rule.get(rule.name)
        if not results:
            outcomes.append(ExpectationOutcome(rule, (), 0, "no result from Great Expectations"))
            continue
        errors = [e for e in (_raised(r.exception_info) for r in results) if e is not None]
        if errors:
            outcomes.append(ExpectationOutcome(rule, (), 0, "; ".join(errors)))
            continue
        ids = sorted({int(item[ROW_ID]) for r in results for item in (r.result.get("unexpected_index_list") or [])})
        outcomes.append(ExpectationOutcome(rule, tuple(ids), len(frame), None))
    return outcomes


def _frame(table: pa.Table) -> pd.DataFrame:
    """``table`` as the pandas frame GX validates: text columns as categoricals, dates as datetime64.

    GX's pandas engine filters the whole frame for every metric of every expectation (the non-null domain, the
    unexpected rows), and under pandas 3 each filter of a text column is an Arrow ``take`` of its strings; Python
    date objects hash slowly in the compound key. Category codes and datetime64 filter and hash as integers and
    compare the same (``isin``, nulls, duplicates): the suite on a year of 96,000 rows 0.28-0.40 -> 0.16 s CPU.
    Arrow -> pandas, never DuckDB's ``.df()`` (20x slower under pandas 3, stack-notes §3.2).
    """
    columns = [pc.dictionary_encode(column) if pa.types.is_string(column.type) else column
               for column in table.columns]
    return pa.table(columns, names=table.column_names).to_pandas(date_as_object=False)


def _raised(exception_info: Any) -> str | None:
    """The exception message when GX says the expectation raised (flat or keyed-by-metric shape), else None."""
    if not exception_info:
        return None
    infos = [exception_info] if "raised_exception" in exception_info else list(exception_info.values())
    for info in infos:
        if isinstance(info, dict) and info.get("raised_exception"):
            return str(info.get("exception_message") or "expectation raised an exception")
    return None
