"""SQL rules: one parameterized DuckDB query per rule in ``sql/<rule name>.sql``.

Every query returns one row per group it examined with the same columns (agency_id, metric_key, period_start,
period_end, dimension, category, observed, expected, detail, file_id, sheet, row_number, failed), and examines
only the groups of the agencies in ``$agencies`` (NULL: every agency): a group's verdict depends on rows of its own
agency only, so a nightly run re-checks just the agencies whose uploads changed. Inputs that
come from the registry (vacancy dimensions, metric triples of cross-metric identities) are passed as list
parameters, never spliced into the SQL text.

Results must not depend on DuckDB's threads or on the order of agency_metrics' rows (a finding whose lineage
changes rewrites the agency's feedback): where a group has several rows (a breakdown's categories, a duplicated
datapoint) the queries take one row whole by the lineage order, the lowest (row_number, file_id, sheet, value)
with NULLs last -- ``min`` of a struct in those fields -- never ``any_value``; failing groups come back sorted.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from jc_pipeline.lib.registry import VACANCY_MEMBERS
from jc_pipeline.lib.validation.rules import RULES, Rule

if TYPE_CHECKING:  # pragma: no cover
    from jc_pipeline.lib.registry import Registry

SQL_RULES: tuple[Rule, ...] = tuple(rule for rule in RULES if rule.engine == "sql")
_PARAMETER = re.compile(r"\$([a-z_]+)")
#: Columns of every SQL rule's result but `failed`; the group's key first.
_COLUMNS = ("agency_id", "metric_key", "period_start", "period_end", "dimension", "category", "observed", "expected",
            "detail", "file_id", "sheet", "row_number")


@dataclass(frozen=True)
class SqlOutcome:
    """Failing groups (dicts of the standard columns) and the number of groups checked, or an error."""

    rule: Rule
    failing: list[dict[str, Any]]
    checked_rows: int
    error: str | None


@functools.cache
def sql_text(name: str) -> str:
    """The SQL file ``sql/<name>.sql`` of this package."""
    return resources.files(__package__).joinpath(f"sql/{name}.sql").read_text(encoding="utf-8")


def registry_parameters(rule: Rule, registry: Registry) -> dict[str, Any]:
    """Parameters of ``rule`` derived from the registry."""
    params: dict[str, Any] = {
        # Staff-type dimensions whose total includes vacancies, and their vacancy members (spec §3.11).
        "vacancy_dimensions": sorted(d.identifier for d in registry.dimensions.values() if d.vacancy_member),
        "vacancy_members": sorted(VACANCY_MEMBERS),
    }
    suffixes = rule.params.get("identities")
    if suffixes:
        sectors = sorted({m.sector for m in registry.metrics.values()})
        triples = [
            tuple(f"{sector}_{suffix}" for suffix in triple)
            for triple in suffixes for sector in sectors
            if all(f"{sector}_{suffix}" in registry.metrics for suffix in triple)
        ]
        for i, name in enumerate(rule.params["identity_names"]):
            params[name] = [t[i] for t in triples]
    return params


def run_sql_rule(con: duckdb.DuckDBPyConnection, rule: Rule, months: Sequence[date], today: date,
                 registry: Registry, agencies: Sequence[str] | None = None) -> SqlOutcome:
    """Run one SQL rule over ``months`` (the groups of ``agencies`` only, when given; every query reads other
    rows of the same agency only); a failing query becomes ``error``, never failing groups."""
    try:
        text = sql_text(rule.query or rule.name)
        available = {"months": list(months), "today": today, "agencies": agencies,
                     **registry_parameters(rule, registry),
                     **{k: v for k, v in rule.params.items() if not isinstance(v, tuple)}}
        # DuckDB rejects unused named parameters, so pass exactly the ones the file mentions.
        params = {name: available[name] for name in set(_PARAMETER.findall(text))}
        # The groups checked are counted in DuckDB and only the failing ones leave it (a NULL `failed` counts as
        # passed): memory stays that of the failures however many months are checked at once (ten years at 3,000
        # agencies: 1.5M groups for breakdowns_sum_to_total, 246 failing).
        counted = con.sql(f"SELECT count(*) AS checked, list(r) FILTER (WHERE r.failed) AS failing FROM ({text}) AS r",
                          params=params).to_arrow_table()
        failing = pa.Table.from_struct_array(counted["failing"].combine_chunks().flatten())
        # Sorted by every column, so the stored rows and the sample in the check's metadata are the same each run.
        rows = failing.sort_by([(c, "ascending") for c in _COLUMNS]).to_pylist()
    except Exception as exc:  # noqa: BLE001 - a broken rule must report an error, not a data failure
        return SqlOutcome(rule, [], 0, f"{type(exc).__name__}: {exc}")
    return SqlOutcome(rule, rows, counted["checked"][0].as_py(), None)
