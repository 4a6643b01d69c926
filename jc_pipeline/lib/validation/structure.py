"""``check_structure``: problems that make validation results meaningless, so the roll-up must not run."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import duckdb

from jc_pipeline.lib.warehouse import contract_schema_sql

if TYPE_CHECKING:  # pragma: no cover
    from jc_pipeline.lib.registry import Registry

#: Contract tables validation and the report read or write.
TABLES = ("agencies", "agency_metric_settings", "agency_breakdown_settings", "metric_definitions",
          "metric_categories", "agency_metrics", "validation_results", "source_files", "rejected_rows")
_EXAMPLES = 5


def check_structure(con: duckdb.DuckDBPyConnection, registry: Registry) -> list[str]:
    """Structural problems, each a sentence; an empty list means the warehouse can be validated.

    Checks: every contract table validation uses exists with every contract column and type (compared with the
    DDL in ``lib/sql/warehouse_schema.sql``, so the contract is not written twice); the registry tables are
    filled and match ``registry`` exactly; the roster tables are not empty.
    """
    problems, broken = _schema_problems(con)
    if not broken & {"metric_definitions", "metric_categories"}:
        problems += _registry_problems(con, registry)
    if not broken & {"agencies", "agency_metric_settings"}:
        for table in ("agencies", "agency_metric_settings"):
            # Table names come from this tuple, never from input.
            if con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] == 0:
                problems.append(f"table '{table}' is empty: load the roster before validating")
    return problems


def _columns(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    rows = con.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = current_schema() "
        "AND list_contains($tables, table_name)", {"tables": list(TABLES)}).fetchall()
    tables: dict[str, dict[str, str]] = {}
    for table, column, data_type in rows:
        tables.setdefault(table, {})[column] = data_type
    return tables


@functools.cache
def _contract_columns() -> dict[str, dict[str, str]]:
    """Columns and types the contract DDL creates (run once per process in an in-memory database)."""
    with duckdb.connect() as contract:
        contract.execute(contract_schema_sql())
        return _columns(contract)


def _schema_problems(con: duckdb.DuckDBPyConnection) -> tuple[list[str], set[str]]:
    """Problems, and the tables they concern (later checks skip those, their queries would only crash)."""
    expected = _contract_columns()
    actual = _columns(con)
    problems: list[str] = []
    broken: set[str] = set()
    for table in TABLES:
        if table not in actual:
            problems.append(f"table '{table}' is missing")
            broken.add(table)
            continue
        for column, data_type in expected[table].items():
            found = actual[table].get(column)
            if found is None:
                problems.append(f"table '{table}' has no column '{column}'")
                broken.add(table)
            elif found != data_type:
                problems.append(f"table '{table}' column '{column}' is {found}, expected {data_type}")
                broken.add(table)
    return problems, broken


def _registry_problems(con: duckdb.DuckDBPyConnection, registry: Registry) -> list[str]:
    keys = {row[0] for row in con.execute("SELECT metric_key FROM metric_definitions").fetchall()}
    triples = {tuple(row) for row in con.execute(
        "SELECT metric_key, dimension, category FROM metric_categories").fetchall()}
    expected_keys = set(registry.metrics)
    expected_triples = {(m.key, b.dimension.identifier, member.name)
                        for m in registry.metrics.values() for b in m.breakdowns for member in b.dimension.members}
    problems = []
    for table, have, want in (("metric_definitions", keys, expected_keys),
                              ("metric_categories", triples, expected_triples)):
        if not have:
            problems.append(f"table '{table}' is empty: the metric registry was not loaded")
            continue
        for label, diff in (("missing", want - have), ("not in the registry", have - want)):
            if diff:
                shown = ", ".join(sorted(map(str, diff))[:_EXAMPLES])
                problems.append(f"table '{table}' is out of sync with the registry: {len(diff)} row(s) {label} "
                                f"(e.g. {shown})")
    return problems
