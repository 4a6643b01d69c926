"""Great Expectations suites generated from the metric registry, run on the pandas path per datapoint slice.

One or two expectations per ``engine="gx"`` rule, each built by a small builder from the registry (the category
value sets are the registry's metric breakdowns and dimension members) or from a column that
``sql/datapoints.sql`` pre-computes from the roster and the agencies' settings (period alignment, roster
membership, enabled metrics, enabled breakdown categories). Failing rows come back from GX as ``row_id`` values
and are mapped to datapoints by the caller.

A slice is validated in parts (:func:`parts`, grouped by DuckDB): an expectation that judges each row by its own
values alone sees one row per distinct combination of the values such expectations read, standing for every row
that has them (a year at 3,000 agencies: 22,408 rows for 851,424); compound columns unique sees the rows whose
combination may repeat.

The suite is built as data here (:func:`expectation_specs`, no GX import) and validated by GX in a worker process
(:mod:`.gx_worker`, which calls :func:`validate`): GX costs ~2.4 s of CPU to import, holding the GIL. The
context is built once per process that validates, suites once per distinct suite.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from jc_pipeline.lib.validation.rules import RULES, Rule
from jc_pipeline.lib.warehouse import quoted

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from jc_pipeline.lib.registry import Registry

# Columns of the slice that identify the datapoint a failing row belongs to.
ROW_ID = "row_id"


#: One expectation as data: (GX expectation class name, its arguments).
Spec = tuple[str, dict[str, Any]]
#: A suite as data: (rule name, GX expectation class name, its arguments) per expectation.
Suite = tuple[tuple[str, str, dict[str, Any]], ...]
#: What :func:`validate` found for one rule: (rule name, failing row ids, rows checked, error).
Found = tuple[str, tuple[int, ...], int, str | None]


@dataclass(frozen=True)
class ExpectationOutcome:
    """What one rule's expectation found on a slice: failing row ids, or the error that stopped it."""

    rule: Rule
    failing_row_ids: tuple[int, ...]
    checked_rows: int
    error: str | None


# ---- builders: one per gx rule --------------------------------------------------------------------------------
# Each returns the rule's expectations (usually one) as (GX expectation class name, its arguments): plain data,
# built from ``registry`` and ``rule`` here and handed to the worker process that holds Great Expectations.


def _category(rule: Rule, registry: Registry) -> tuple[Spec, ...]:
    # (metric, dimension, category) is valid iff (metric, dimension) is a breakdown of the metric and category
    # is a member of the dimension: members belong to the dimension, not to the metric. Two value sets of a few
    # hundred entries instead of one of ~5,000 triples, because GX re-serializes the value set many times per
    # validation (measured: 0.3-0.5 s for the triples on 12k rows).
    pairs = sorted({f"{m.key}|{b.dimension.identifier}" for m in registry.metrics.values() for b in m.breakdowns})
    members = sorted({f"{d.identifier}|{name}" for d in registry.dimensions.values() for name in d.member_names})
    return (("ExpectColumnValuesToBeInSet", {"column": "breakdown_of_metric", "value_set": pairs}),
            ("ExpectColumnValuesToBeInSet", {"column": "category_of_dimension", "value_set": members}))


def _not_null(rule: Rule, registry: Registry) -> tuple[Spec, ...]:
    return (("ExpectColumnValuesToNotBeNull", {"column": rule.column}),)


def _non_negative(rule: Rule, registry: Registry) -> tuple[Spec, ...]:
    return (("ExpectColumnValuesToBeBetween", {"column": rule.column, "min_value": 0}),)


def _unique(rule: Rule, registry: Registry) -> tuple[Spec, ...]:
    return (("ExpectCompoundColumnsToBeUnique", {"column_list": [
        "agency_id", "metric_key", "period_start", "period_end", "dimension_key", "category_key"]}),)


def _is_ok(rule: Rule, registry: Registry) -> tuple[Spec, ...]:
    return (("ExpectColumnValuesToBeInSet", {"column": rule.column, "value_set": ["ok"]}),)


def _at_most_zero(rule: Rule, registry: Registry) -> tuple[Spec, ...]:
    return (("ExpectColumnValuesToBeBetween", {"column": rule.column, "max_value": 0}),)


def _whole(rule: Rule, registry: Registry) -> tuple[Spec, ...]:
    return (("ExpectColumnValuesToBeBetween", {"column": rule.column, "max_value": rule.params["tolerance"]}),)


BUILDERS: dict[str, Callable[[Rule, Any], tuple[Spec, ...]]] = {
    "value_is_numeric": _not_null,
    "value_not_negative": _non_negative,
    "category_is_member": _category,
    "no_duplicate_datapoints": _unique,
    "period_aligned": _is_ok,
    "period_not_in_future": _at_most_zero,
    "agency_in_roster": _is_ok,
    "counts_are_whole_numbers": _whole,
    "metric_enabled": _is_ok,
    "category_enabled": _is_ok,
}

#: Slice column whose value explains a failure (``observed``), per rule; default: the rule's column.
OBSERVED_COLUMN: dict[str, str] = {
    "category_is_member": "category",
    "period_not_in_future": "sent_on",
    "counts_are_whole_numbers": "value",
    "value_is_numeric": "value",
    "value_not_negative": "value",
}

GX_RULES: tuple[Rule, ...] = tuple(rule for rule in RULES if rule.engine == "gx")
assert {r.name for r in GX_RULES} == set(BUILDERS), "every gx rule needs exactly one expectation builder"


# ---- the suite as data ------------------------------------------------------------------------------------------

_specs_lock = threading.Lock()
_specs: dict[int, tuple[Any, Suite]] = {}  # id(registry) -> (registry, its suite); the registry is kept alive


def expectation_specs(registry: Registry) -> Suite:
    """The suite of ``registry`` as data: (rule name, GX expectation class name, its arguments) per expectation,
    in catalogue order (built on first use, then reused). No Great Expectations import."""
    with _specs_lock:
        cached = _specs.get(id(registry))
        if cached is not None and cached[0] is registry:
            return cached[1]
        suite = tuple((rule.name, name, arguments) for rule in GX_RULES
                      for name, arguments in BUILDERS[rule.name](rule, registry))
        _specs[id(registry)] = (registry, suite)
        return suite


# ---- the parts a slice is validated in ----------------------------------------------------------------------

#: Expectations whose verdict on a row is a function of that row's values in their columns: they validate the
#: distinct combinations of those values.
PER_VALUE = frozenset({"ExpectColumnValuesToBeInSet", "ExpectColumnValuesToBeBetween", "ExpectColumnValuesToNotBeNull"})
#: Expectations whose verdict on a row is whether another row of the slice has its combination of values (compound
#: columns unique): a combination met once passes wherever its row is. They validate the rows whose combination's
#: hash repeats (none, while every datapoint key is stored once); GX tells apart those sharing a hash by chance.
COUNTED = frozenset({"ExpectCompoundColumnsToBeUnique"})


@dataclass(frozen=True)
class Part:
    """One validation of a slice: ``specs`` on ``table`` (``row_id`` and the columns they read). With
    ``members``, row ``i`` of ``table`` (``row_id`` = i) stands for the slice's rows ``members[i]``."""

    specs: Suite
    table: pa.Table
    members: pa.ListArray | None

    def slice_row_ids(self, ids: Iterable[int]) -> list[int]:
        """The slice's row ids that the part's failing ``ids`` stand for."""
        if self.members is None:
            return list(ids)
        return self.members.take(pa.array(list(ids), pa.int64())).flatten().to_pylist()


def parts(con: duckdb.DuckDBPyConnection, specs: Suite, slice_sql: str,
          params: Mapping[str, Any]) -> tuple[list[Part], int]:
    """The validations of a slice by ``specs``, and the slice's row count. The slice is the result of
    ``slice_sql`` (``row_id`` and the columns the specs read) with ``params`` and ``$row_ids`` NULL; a list of
    row ids in ``$row_ids`` narrows it to those rows.

    The expectations of :data:`PER_VALUE` see one row per distinct combination of the columns they read: rows that
    agree on them get the same verdict from each, so a failing combination fails exactly its rows. Those of
    :data:`COUNTED` see the rows whose combination's hash repeats. DuckDB groups the slice for both in one pass
    (grouping sets), so the slice's rows never become Arrow or pandas: a year at 3,000 agencies, 851,424 rows and
    22,408 combinations, 0.48 s of CPU against 0.95 s for reading it into Arrow and grouping it there, and GX no
    longer compares 851,424 keys (docs/decisions.md, "Great Expectations validates each combination of values
    once"). Columns the slice lacks are left to GX to report, as that expectation's error.
    """
    per_value = tuple(s for s in specs if s[1] in PER_VALUE)
    counted = tuple(s for s in specs if s[1] in COUNTED)
    unknown = sorted({name for _, name, _ in specs} - PER_VALUE - COUNTED)
    if unknown:
        raise ValueError(f"no way to validate {', '.join(unknown)} in parts: add it to PER_VALUE or COUNTED")
    whole = {**params, "row_ids": None}
    available = set(con.sql(slice_sql, params=whole).columns)
    values = [c for c in _columns(per_value) if c in available]
    keys = [c for c in _columns(counted) if c in available]
    # Column names come from the suite (code), quoted; values travel as parameters.
    grouped_by = ", ".join(map(quoted, values))
    leading = f"{grouped_by}," if values else ""
    # Without any key column every row is a candidate: GX then reports the columns missing.
    key_hash = f"hash({', '.join(map(quoted, keys))})" if keys else "NULL"
    # The combinations of the values, and the hashes of the keys met more than once.
    grouped = con.sql(f"SELECT {leading} list({ROW_ID}) AS members, "
                      f"grouping(key_hash) = 1 AS is_combination "
                      f"FROM (SELECT *, {key_hash} AS key_hash FROM ({slice_sql}) AS s) AS s "
                      f"GROUP BY GROUPING SETS (({grouped_by}), (key_hash)) "
                      f"HAVING grouping(key_hash) = 1 OR count(*) > 1", params=whole).to_arrow_table()
    combinations = grouped.filter(grouped["is_combination"])
    members = combinations["members"].combine_chunks()
    validations = []
    if per_value:
        table = combinations.select(values).append_column(ROW_ID, pa.array(range(len(members)), pa.int64()))
        validations.append(Part(per_value, table, members))
    if counted:
        repeated = grouped.filter(pc.invert(grouped["is_combination"]))["members"].combine_chunks().flatten()
        selected = ", ".join(map(quoted, [ROW_ID, *keys]))
        candidates = con.sql(f"SELECT {selected} FROM ({slice_sql}) AS s",
                             params={**params, "row_ids": repeated.to_pylist()}).to_arrow_table()
        validations.append(Part(counted, candidates, None))
    return validations, len(members.flatten())


def _columns(specs: Suite) -> list[str]:
    """The slice columns ``specs`` read, in the order first named."""
    named = (arguments.get("column_list", [arguments.get("column")]) for _, _, arguments in specs)
    return list(dict.fromkeys(c for columns in named for c in columns if c is not None))


# ---- Great Expectations itself (imported and run in the worker process, gx_worker) -----------------------------

_lock = threading.RLock()
_suites: dict[str, Any] = {}  # repr of a suite's specs -> the GX suite
_suite_numbers = itertools.count()  # suite names must be unique within the process-wide context


@dataclass(frozen=True)
class _Gx:
    """The process-wide Great Expectations objects."""

    gx: Any
    expectations: Any
    context: Any
    batch_definition: Any


@functools.cache
def _gx_cached() -> _Gx:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.execution_engine import pandas_execution_engine

    # GX fingerprints every pandas batch under this many bytes (md5 of pandas' hash of every row) only to label the
    # batch in its results, which nothing here reads: every slice is built for one validation. Its only knob is this
    # module constant. Ten years at 3,000 agencies: the checks 1.1 s shorter, the same results (docs/decisions.md).
    pandas_execution_engine.HASH_THRESHOLD = 0
    context = gx.get_context(mode="ephemeral")
    # Without this GX prints tqdm "Calculating Metrics" bars on stderr for every validation.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        context.data_sources.add_pandas("jc_validation")
        .add_dataframe_asset("datapoints")
        .add_batch_definition_whole_dataframe("slice")
    )
    return _Gx(gx, gxe, context, batch_definition)


def gx_context() -> _Gx:
    """Import GX (slow: ~2.4 s) and build the ephemeral context with its pandas batch definition, once."""
    with _lock:  # functools.cache alone would let two threads build two contexts
        return _gx_cached()


def suite_for(specs: Suite) -> Any:
    """The GX expectation suite of ``specs`` (built on first use, then reused)."""
    with _lock:
        key = repr(specs)
        if key not in _suites:
            g = gx_context()
            suite = g.context.suites.add(g.gx.ExpectationSuite(name=f"jc_tier1_{next(_suite_numbers)}"))
            for rule_name, name, arguments in specs:
                expectation = getattr(g.expectations, name)(**arguments)
                expectation.meta = {"rule": rule_name}
                suite.add_expectation(expectation)
            _suites[key] = suite
        return _suites[key]


def validate(specs: Suite, table: pa.Table) -> list[Found]:
    """Validate ``table`` (``row_id`` and the columns ``specs`` read) with the suite of ``specs``: per gx rule of
    ``specs``, in catalogue order, (rule name, failing row ids, rows checked, error).

    An expectation that raised inside GX is reported as its rule's error (with the GX message), never as failing
    rows; if the whole validation raises, every gx rule of ``specs`` gets the error.
    """
    named = {rule_name for rule_name, _, _ in specs}
    rules = [rule for rule in GX_RULES if rule.name in named]
    try:
        frame = _frame(table)
        suite = suite_for(specs)
        with _lock:  # one shared context: GX makes no promise about concurrent use
            result = gx_context().batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(
                suite,
                result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_ID]},
            )
    except Exception as exc:  # noqa: BLE001 - a GX crash must surface as a rule error, not a data failure
        message = f"Great Expectations failed: {type(exc).__name__}: {exc}"
        return [(rule.name, (), 0, message) for rule in rules]

    by_rule: dict[str, list[Any]] = {}
    for r in result.results:
        by_rule.setdefault(r.expectation_config.meta.get("rule"), []).append(r)
    found = []
    for rule in rules:
        results = by_rule.get(rule.name)
        if not results:
            found.append((rule.name, (), 0, "no result from Great Expectations"))
            continue
        errors = [e for e in (_raised(r.exception_info) for r in results) if e is not None]
        if errors:
            found.append((rule.name, (), 0, "; ".join(errors)))
            continue
        ids = sorted({int(item[ROW_ID]) for r in results for item in (r.result.get("unexpected_index_list") or [])})
        found.append((rule.name, tuple(ids), len(frame), None))
    return found


def _frame(table: pa.Table) -> pd.DataFrame:
    """``table`` as the pandas frame GX validates: text columns as categoricals, dates as datetime64.

    GX's pandas engine filters the whole frame for every metric of every expectation (the non-null domain, the
    unexpected rows), and under pandas 3 each filter of a text column is an Arrow ``take`` of its strings; Python
    date objects hash slowly in the compound key. Category codes and datetime64 filter and hash as integers and
    compare the same (``isin``, nulls, duplicates): the suite on a year of 96,000 rows 0.28-0.40 -> 0.16 s CPU.
    Arrow -> pandas, never DuckDB's ``.df()`` (20x slower under pandas 3, stack-notes §3.2). Text columns the
    sender dictionary-encoded already (:func:`encoded`) are kept as they are.
    """
    return encoded(table).to_pandas(date_as_object=False)


def encoded(table: pa.Table) -> pa.Table:
    """``table`` with its text columns dictionary-encoded: what GX validates (see :func:`_frame`), and a tenth of
    the bytes to send to the worker (a year at 3,000 agencies)."""
    columns = [pc.dictionary_encode(column) if pa.types.is_string(column.type) else column
               for column in table.columns]
    return pa.table(columns, names=table.column_names)


def _raised(exception_info: Any) -> str | None:
    """The exception message when GX says the expectation raised (flat or keyed-by-metric shape), else None."""
    if not exception_info:
        return None
    infos = [exception_info] if "raised_exception" in exception_info else list(exception_info.values())
    for info in infos:
        if isinstance(info, dict) and info.get("raised_exception"):
            return str(info.get("exception_message") or "expectation raised an exception")
    return None
