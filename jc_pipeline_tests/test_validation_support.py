"""Shared builder for the validation tests: a temp DuckDB warehouse with the real registry, a small roster and
datapoints inserted directly into agency_metrics (no ingest). Not a test module itself."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from jc_pipeline.lib import reference
from jc_pipeline.lib.periods import add_months
from jc_pipeline.lib.registry import load_registry
from jc_pipeline.lib.warehouse import contract_schema_sql

REGISTRY = load_registry()
TODAY = date(2025, 6, 15)

_DATAPOINT = pa.schema([
    ("state_code", pa.string()), ("agency_id", pa.string()), ("sector", pa.string()),
    ("metric_key", pa.string()), ("frequency", pa.string()), ("period_start", pa.date32()),
    ("period_end", pa.date32()), ("dimension", pa.string()), ("category", pa.string()),
    ("value", pa.float64()), ("is_inferred_total", pa.bool_()), ("file_id", pa.string()),
    ("sheet", pa.string()), ("row_number", pa.int64()),
])


def month(year: int, m: int) -> date:
    return date(year, m, 1)


class Warehouse:
    """A throw-away warehouse; add agencies and datapoints, then ``validate``."""

    def __init__(self, path: Path):
        self.con = duckdb.connect(str(path))
        self.con.execute(contract_schema_sql())
        for table, frame in (("metric_definitions", reference.metric_definitions_frame(REGISTRY)),
                             ("metric_categories", reference.metric_categories_frame(REGISTRY))):
            self.con.register("incoming", frame)
            self.con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")
            self.con.unregister("incoming")
        self._pending: list[dict[str, Any]] = []
        self._row = 1

    def agency(self, agency_id: str, sectors: list[str], *, fiscal_start: int = 1,
               settings: dict[str, dict[str, Any]] | None = None, name: str | None = None) -> None:
        """Roster row + effective settings for every metric of its sectors (registry defaults + ``settings``)."""
        self.con.execute("INSERT INTO agencies VALUES (?, ?, 'US_XX', ?, NULL, 10000, ?, NULL)",
                         [agency_id, name or f"Agency {agency_id}", sectors, fiscal_start])
        for sector in sectors:
            for metric in REGISTRY.metrics_for(sector):
                row = {"enabled": True, "frequency": metric.default_frequency,
                       "starting_month": fiscal_start if metric.default_frequency == "ANNUAL" else 1,
                       "disaggregated": False}
                row.update((settings or {}).get(metric.key, {}))
                self.con.execute("INSERT INTO agency_metric_settings VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 [agency_id, metric.key, row["enabled"], row["frequency"], row["starting_month"],
                                  row["disaggregated"], not settings or metric.key not in settings])

    def add(self, agency_id: str, metric_key: str, start: date, value: float, *, end: date | None = None,
            frequency: str | None = None, dimension: str | None = None, category: str | None = None,
            file_id: str = "file-1", sheet: str | None = None, row: int | None = None,
            inferred: bool = False) -> int:
        """One datapoint; monthly unless ``end``/``frequency`` say otherwise. Returns its row number."""
        metric = REGISTRY.metrics.get(metric_key)
        self._row += 1
        row_number = row if row is not None else self._row
        self._pending.append({
            "state_code": "US_XX", "agency_id": agency_id, "sector": metric.sector if metric else "UNKNOWN",
            "metric_key": metric_key, "frequency": frequency or ("MONTHLY" if end is None else "ANNUAL"),
            "period_start": start, "period_end": end or add_months(start, 1), "dimension": dimension,
            "category": category, "value": value, "is_inferred_total": inferred, "file_id": file_id,
            "sheet": sheet or (metric.sheet if metric else "sheet"), "row_number": row_number,
        })
        return row_number

    def sent(self, file_id: str, received_at: datetime) -> None:
        """The source_files row of ``file_id``: received at ``received_at`` (UTC); datapoints of a file without one
        count as sent today."""
        self.con.execute("INSERT INTO source_files VALUES (?, ?, 'sha', NULL, NULL, ?, ?, 1, 'INGESTED', NULL, "
                         "0, 0, 0)", [file_id, f"inbox/{file_id}.csv", received_at, received_at])

    def add_breakdown(self, agency_id: str, metric_key: str, start: date, dimension: str,
                      values: dict[str, float], **kwargs: Any) -> None:
        for category, value in values.items():
            self.add(agency_id, metric_key, start, value, dimension=dimension, category=category, **kwargs)

    def flush(self) -> None:
        if self._pending:
            self.con.register("incoming", pa.Table.from_pylist(self._pending, schema=_DATAPOINT))
            self.con.execute("INSERT INTO agency_metrics BY NAME SELECT * FROM incoming")
            self.con.unregister("incoming")
            self._pending = []

    def validate(self, months: list[date], today: date = TODAY,
                 agencies: list[str] | None = None) -> dict[str, Any]:
        """Flush, run validate_months, return outcomes by rule name."""
        from jc_pipeline.lib import validation

        self.flush()
        outcomes = validation.validate_months(self.con, months, today=today, registry=REGISTRY, agencies=agencies)
        return {o.rule.name: o for o in outcomes}

    def results(self, check_name: str | None = None, agency_id: str | None = None) -> list[dict[str, Any]]:
        """Stored validation_results rows, optionally for one check and/or agency."""
        return self.con.sql(
            "SELECT * FROM validation_results WHERE ($check IS NULL OR check_name = $check) "
            "AND ($agency IS NULL OR agency_id = $agency) ORDER BY agency_id, metric_key, period_start, dimension",
            params={"check": check_name, "agency": agency_id}).to_arrow_table().to_pylist()

    def failing_agencies(self, check_name: str) -> set[str]:
        return {r["agency_id"] for r in self.results(check_name)}
