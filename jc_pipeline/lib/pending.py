"""Which period months still need recomputing after ingest (crash-safe bookkeeping in the store)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from importlib import resources

import duckdb

from jc_pipeline.lib.ingest import STAGED_TABLE

_PENDING = f"""
    SELECT DISTINCT date_trunc('month', s.period_start)::DATE AS month
    FROM {STAGED_TABLE} AS s
    WHERE NOT EXISTS (
        SELECT 1 FROM rolled_up_file_months AS r
        WHERE r.file_id = s.file_id AND r.month = date_trunc('month', s.period_start)::DATE
    )
    ORDER BY month
"""

_MARK = f"""
    INSERT OR IGNORE INTO rolled_up_file_months
    SELECT DISTINCT file_id, date_trunc('month', period_start)::DATE
    FROM {STAGED_TABLE}
    WHERE date_trunc('month', period_start)::DATE IN (SELECT unnest(?::DATE[]))
"""


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the bookkeeping table (idempotent)."""
    con.execute(resources.files("jc_pipeline.lib").joinpath("sql/pending_months.sql").read_text())


def pending_months(con: duckdb.DuckDBPyConnection) -> list[date]:
    """Month starts that new or changed files touched and no roll-up has covered yet."""
    ensure_schema(con)
    return [row[0] for row in con.execute(_PENDING).fetchall()]


def mark_rolled_up(con: duckdb.DuckDBPyConnection, months: Sequence[date]) -> None:
    """Record that every staged file's datapoints in `months` are now reflected in the state tables."""
    ensure_schema(con)
    con.execute(_MARK, [list(months)])


def with_year_starts(months: Iterable[date]) -> list[date]:
    """`months` plus January of each of their years: a calendar-year roll-up of monthly reporters is stored at
    January and changes whenever any month of its year does."""
    chosen = set(months)
    chosen |= {date(month.year, 1, 1) for month in chosen}
    return sorted(chosen)
