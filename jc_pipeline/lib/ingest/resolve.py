"""Resolving staged datapoints into ``agency_metrics`` for a set of period months (latest upload wins)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from importlib import resources

import duckdb
import polars as pl

from jc_pipeline.lib.registry import Registry
from jc_pipeline.lib.roster import Roster


def resolve_agency_metrics(con: duckdb.DuckDBPyConnection, months: Sequence[date], roster: Roster,
                           registry: Registry) -> int:
    """Rebuild the agency_metrics rows whose ``period_start`` falls in ``months`` (month starts); idempotent.

    Latest upload wins per (agency, metric, period_start, period_end, dimension, category) by ``upload_seq``,
    then sheet and row order. A period with a breakdown but no total gets an inferred total (the breakdown
    sheet first in alphabetical order, ``is_inferred_total``, no lineage). ``state_code`` comes from the
    current roster. Returns the number of rows written.
    """
    month_starts = sorted({date(m.year, m.month, 1) for m in months})
    inputs = {
        "_resolve_months": pl.DataFrame({"month": month_starts}, schema={"month": pl.Date}),
        "_resolve_agencies": pl.DataFrame(
            {"agency_id": list(roster.agencies), "state_code": [a.state_code for a in roster.agencies.values()]},
            schema={"agency_id": pl.String, "state_code": pl.String}),
        "_resolve_dimension_order": _dimension_order(registry),
    }
    for name, frame in inputs.items():
        con.register(name, frame)
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(resources.files("jc_pipeline.lib.ingest").joinpath(
                "sql/resolve_agency_metrics.sql").read_text(encoding="utf-8"))
            written = con.execute(
                "SELECT count(*) FROM agency_metrics "
                "WHERE CAST(date_trunc('month', period_start) AS DATE) IN (SELECT month FROM _resolve_months)"
            ).fetchall()[0][0]
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        for name in inputs:
            con.unregister(name)
    return written


def _dimension_order(registry: Registry) -> pl.DataFrame:
    rows = [(metric.key, b.dimension.identifier, b.sheet)
            for metric in registry.metrics.values() for b in metric.breakdowns if b.sheet]
    return pl.DataFrame(rows, orient="row", schema={"metric_key": pl.String, "dimension": pl.String,
                                                     "sheet": pl.String})
