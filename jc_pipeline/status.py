"""`jc-pipeline status`: the published warehouse at a glance (read-only, so it never blocks a run)."""

from __future__ import annotations

import duckdb

from jc_pipeline.lib.paths import DataLayout

_SECTIONS = {
    "files": """
        SELECT status, count(*) AS files, sum(rows_total) AS rows, sum(rows_loaded) AS loaded,
               sum(rows_rejected) AS rejected
        FROM source_files GROUP BY status ORDER BY status""",
    "ingest findings": """
        SELECT severity, rule, count(*) AS findings FROM rejected_rows
        GROUP BY ALL ORDER BY severity, findings DESC LIMIT 15""",
    "failing checks": """
        SELECT severity, check_name, count(*) AS groups, count(DISTINCT agency_id) AS agencies
        FROM validation_results WHERE NOT passed GROUP BY ALL ORDER BY severity, groups DESC""",
    "coverage (latest complete period per sector, totals only)": """
        WITH latest AS (
            SELECT sector, max(period_start) AS period_start FROM state_metrics
            WHERE dimension IS NULL AND frequency = 'MONTHLY' AND agencies_reporting > 0 GROUP BY sector)
        SELECT s.sector, strftime(s.period_start, '%Y-%m') AS month,
               round(avg(s.agencies_reporting::DOUBLE / nullif(s.agencies_expected, 0)) * 100, 1) AS pct_reporting,
               count(*) AS metrics
        FROM state_metrics s JOIN latest USING (sector, period_start)
        WHERE s.dimension IS NULL AND s.frequency = 'MONTHLY' GROUP BY ALL ORDER BY s.sector""",
}


def print_status(layout: DataLayout) -> None:
    """Print each section as an aligned table."""
    if not layout.warehouse.exists():
        raise FileNotFoundError(f"no warehouse at {layout.warehouse} yet: run `jc-pipeline run` first")
    with duckdb.connect(str(layout.warehouse), read_only=True) as con:
        print(f"warehouse {layout.warehouse}")
        for title, query in _SECTIONS.items():
            relation = con.sql(query)
            rows = relation.fetchall()
            print(f"\n{title}:")
            if not rows:
                print("  (none)")
                continue
            _print_table(relation.columns, rows)


def _print_table(columns: list[str], rows: list[tuple]) -> None:
    cells = [[str(c) for c in columns]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for row in cells:
        print("  " + "  ".join(value.ljust(width) for value, width in zip(row, widths)))
