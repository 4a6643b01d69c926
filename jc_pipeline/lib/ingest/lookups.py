"""Small lookup frames derived from the registry and the roster, joined to the row frame by :mod:`normalize`."""

from __future__ import annotations

import polars as pl

from jc_pipeline.lib.ingest.categories import per_registry
from jc_pipeline.lib.ingest.layout import normalize_header
from jc_pipeline.lib.registry import SUPERVISION_SUBSYSTEMS, SYSTEM_CODES, Registry
from jc_pipeline.lib.roster import Roster

SUPERVISION = "SUPERVISION"
#: What a supervision sheet's 'system' column may name.
SUPERVISION_SYSTEMS = (SUPERVISION, *SUPERVISION_SUBSYSTEMS)
#: ``system`` cell keys (lower-case, ``_``/``-`` as spaces) -> system code; anything else is P4.
SYSTEM_VALUES = {code.lower().replace("_", " "): code for code in SUPERVISION_SYSTEMS}


def metric_name_key(cell: pl.Expr) -> pl.Expr:
    """The single-page ``metric`` cell normalized like a sheet name (spec §5.1), vectorized."""
    return (
        cell.str.strip_chars().str.to_lowercase().str.replace_all(" ", "_", literal=True)
        .str.replace(r"^.*/", "").str.replace(r"\..*$", "")
    )


def header_key(cell: pl.Expr) -> pl.Expr:
    """A ``breakdown_category`` cell normalized like a column header (spec §5.1), vectorized."""
    return cell.str.strip_chars().str.to_lowercase().str.replace_all(r"\s+", "_")


def system_key(cell: pl.Expr) -> pl.Expr:
    """A ``system`` cell as a key of :data:`SYSTEM_VALUES`."""
    return cell.str.to_lowercase().str.replace_all(r"[\s_-]+", " ").str.strip_chars()


@per_registry
def metric_names(registry: Registry) -> pl.DataFrame:
    """``sector, metric_name, base_metric``: aggregate sheet names (canonical and legacy) per system code."""
    rows = [
        (sector, name, target.metric.key)
        for sector in SYSTEM_CODES
        for name, target in registry.sheet_targets(sector).items()
        if target.breakdown is None
    ]
    return pl.DataFrame(rows, orient="row", schema=["sector", "metric_name", "base_metric"])


@per_registry
def breakdown_columns(registry: Registry) -> pl.DataFrame:
    """``base_metric, bcat_key, dimension``: the breakdown columns (canonical and legacy) of every metric."""
    rows = [
        (metric.key, normalize_header(column), breakdown.dimension.identifier)
        for metric in registry.metrics.values()
        for breakdown in metric.breakdowns
        if breakdown.column
        for column in (breakdown.column, *breakdown.legacy_columns)
    ]
    return pl.DataFrame(rows, orient="row", schema=["base_metric", "bcat_key", "dimension"])


@per_registry
def metric_units(registry: Registry) -> pl.DataFrame:
    """``metric_key, metric_sector, unit``: what converting a row needs."""
    metrics = list(registry.metrics.values())
    return pl.DataFrame({"metric_key": [m.key for m in metrics], "metric_sector": [m.sector for m in metrics],
                         "unit": [m.unit for m in metrics]})


@per_registry
def metric_labels(registry: Registry) -> pl.DataFrame:
    """``metric_key, metric_sheet, bcat_list``: what messages about a metric quote."""
    metrics = list(registry.metrics.values())
    return pl.DataFrame({
        "metric_key": [m.key for m in metrics],
        "metric_sheet": [m.sheet for m in metrics],
        "bcat_list": [", ".join(b.column for b in m.breakdowns if b.column) or "(none: totals only)"
                      for m in metrics],
    })


@per_registry
def subsystem_routes(registry: Registry) -> pl.DataFrame:
    """``base_metric, system_code, routed_metric``: where a SUPERVISION row goes for each system value."""
    rows = []
    for metric in registry.metrics_for(SUPERVISION):
        rows.append((metric.key, SUPERVISION, metric.key))
        rows.extend((metric.key, code, registry.subsystem_key(metric.key, code)) for code in SUPERVISION_SUBSYSTEMS)
    return pl.DataFrame(rows, orient="row", schema=["base_metric", "system_code", "routed_metric"])


def children(roster: Roster, pairs: pl.DataFrame) -> pl.DataFrame:
    """``uploader, agency, sector`` triples -> ``child_id`` (null: no such child) and ``child_sector_ok``."""
    rows = []
    for uploader, cell, sector_folder in pairs.select("uploader", "agency", "sector").unique().iter_rows():
        child = roster.find_child(uploader, cell)
        rows.append((uploader, cell, sector_folder, child.agency_id if child else None,
                     child is not None and sector_folder in child.sectors))
    return pl.DataFrame(rows, orient="row", schema={
        "uploader": pl.String, "agency": pl.String, "sector": pl.String, "child_id": pl.String,
        "child_sector_ok": pl.Boolean})


def agency_states(roster: Roster) -> pl.DataFrame:
    """``agency_id, state_code`` of every agency in the roster."""
    return pl.DataFrame({"agency_id": list(roster.agencies),
                         "state_code": [a.state_code for a in roster.agencies.values()]},
                        schema={"agency_id": pl.String, "state_code": pl.String})


def agency_sectors(roster: Roster) -> pl.DataFrame:
    """``agency_id, agency_sectors, agency_systems`` (comma-separated text) for messages: its sectors, and those of
    them a supervision sheet's 'system' column may name."""
    agencies = roster.agencies.values()
    return pl.DataFrame({"agency_id": list(roster.agencies),
                         "agency_sectors": [", ".join(a.sectors) for a in agencies],
                         "agency_systems": [", ".join(s for s in a.sectors if s in SUPERVISION_SYSTEMS)
                                            for a in agencies]},
                        schema={"agency_id": pl.String, "agency_sectors": pl.String, "agency_systems": pl.String})


def agency_systems(roster: Roster) -> pl.DataFrame:
    """``agency_id, system_code, system_allowed``: the supervision systems each agency reports for."""
    rows = [(a.agency_id, code, True) for a in roster.agencies.values() for code in a.sectors
            if code in SUPERVISION_SYSTEMS]
    return pl.DataFrame(rows, orient="row", schema={"agency_id": pl.String, "system_code": pl.String,
                                                     "system_allowed": pl.Boolean})


def settings(roster: Roster, pairs: pl.DataFrame) -> pl.DataFrame:
    """Effective settings for each distinct (agency_id, metric_key) pair."""
    rows = []
    for agency_id, metric_key in pairs.unique().iter_rows():
        setting = roster.effective(agency_id, metric_key)
        rows.append((agency_id, metric_key, setting.frequency, setting.starting_month,
                     setting.disaggregated_by_supervision_subsystems))
    return pl.DataFrame(rows, orient="row", schema={
        "agency_id": pl.String, "metric_key": pl.String, "setting_frequency": pl.String,
        "starting_month": pl.Int8, "disaggregated": pl.Boolean})
