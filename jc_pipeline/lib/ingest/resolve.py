"""Resolving staged datapoints into ``agency_metrics`` for a set of period months (latest upload wins)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from importlib import resources

import duckdb
import polars as pl

from jc_pipeline.lib.ingest.lookups import agency_states
from jc_pipeline.lib.periods import add_months
from jc_pipeline.lib.registry import Registry
from jc_pipeline.lib.roster import Roster
from jc_pipeline.lib.warehouse import transaction


def resolve_agency_metrics(con: duckdb.DuckDBPyConnection, months: Sequence[date], roster: Roster,
                           registry: Registry, agencies: Sequence[str] | None = None) -> int:
    """Rebuild the agency_metrics rows whose ``period_start`` falls in ``months`` (month starts); idempotent.

    Latest upload wins per (agency, metric, period_start, period_end, dimension, category) by ``upload_seq``,
    then sheet and row order. A period with a breakdown but no total gets an inferred total
    (``is_inferred_total``, no lineage): the sum of the staff breakdown that counts vacant positions, else of the
    breakdown whose sheet sorts first. ``state_code`` comes from the
    current roster; an agency it no longer lists keeps its state as last recorded (:func:`.record_agency_states`).
    With ``agencies``, only the rows stored under those agencies are rebuilt (the same rows as a whole rebuild:
    both steps are per agency) and the other agencies' rows stay untouched. Returns the number of agency_metrics
    rows of ``months`` afterwards.
    """
    month_starts = sorted({date(m.year, m.month, 1) for m in months})
    inputs = {
        "_resolve_agencies": agency_states(roster),
        "_resolve_dimension_order": _dimension_order(registry),
    }
    for name, frame in inputs.items():
        con.register(name, frame)
    sql = resources.files("jc_pipeline.lib.ingest").joinpath("sql/resolve_agency_metrics.sql").read_text(
        encoding="utf-8")
    # The delete and the insert, apart: DuckDB binds parameters to one statement at a time.
    statements = con.extract_statements(sql)
    withdrawn = [seq for (seq,) in con.execute("SELECT upload_seq FROM ingest_withdrawals").fetchall()]
    scope = {"agencies": None if agencies is None else sorted(agencies), "withdrawn": withdrawn or None}
    try:
        with transaction(con):
            # One calendar year at a time: no datapoint key spans two months, and a year's rows fit in memory
            # where ten years of them spilled gigabytes under the memory limit (full build at 3,000 agencies:
            # 52.6 s whole, see docs/decisions.md). Written in month order, each year sorted by the SQL.
            for year in sorted({m.year for m in month_starts}):
                year_months = [m for m in month_starts if m.year == year]
                _register_months(con, year_months)
                bounds = {"first": year_months[0], "end": add_months(year_months[-1], 1)}
                for statement in statements:
                    given = {**scope, **bounds}
                    con.execute(statement, {name: given[name] for name in statement.named_parameters})
            _register_months(con, month_starts)
            written = con.execute(
                "SELECT count(*) FROM agency_metrics "
                "WHERE CAST(date_trunc('month', period_start) AS DATE) IN (SELECT month FROM _resolve_months)"
            ).fetchall()[0][0]
    finally:
        for name in [*inputs, "_resolve_months"]:
            con.unregister(name)
    return written


def _register_months(con: duckdb.DuckDBPyConnection, month_starts: list[date]) -> None:
    con.register("_resolve_months", pl.DataFrame({"month": month_starts}, schema={"month": pl.Date}))


def _dimension_order(registry: Registry) -> pl.DataFrame:
    rows = [(metric.key, b.dimension.identifier, b.sheet, b.dimension.vacancy_member is not None)
            for metric in registry.metrics.values() for b in metric.breakdowns if b.sheet]
    return pl.DataFrame(rows, orient="row", schema={"metric_key": pl.String, "dimension": pl.String,
                                                     "sheet": pl.String, "counts_vacancies": pl.Boolean})
