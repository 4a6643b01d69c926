"""`jc-pipeline status`: the latest Dagster runs and the published warehouse at a glance (both read-only, so it
never blocks a run). It makes no instance where none is, and where the runs cannot be read (a data directory on a
read-only share) it says so and shows the warehouse."""

from __future__ import annotations

from jc_pipeline.lib.paths import DataLayout
from jc_pipeline.lib.warehouse import open_published

_SECTIONS = {
    "files (the latest version of each)": """
        SELECT status, count(*) AS files, sum(rows_total) AS rows, sum(rows_loaded) AS loaded,
               sum(rows_rejected) AS rejected
        FROM current_source_files GROUP BY status ORDER BY status""",
    "ingest findings (in those versions)": """
        SELECT r.severity, r.rule, count(*) AS findings
        FROM rejected_rows AS r JOIN current_source_files AS f USING (file_id)
        WHERE f.status <> 'WITHDRAWN'
        GROUP BY ALL ORDER BY r.severity, findings DESC LIMIT 15""",
    "failing checks": """
        SELECT severity, check_name, count(*) AS groups, count(DISTINCT agency_id) AS agencies
        FROM validation_results WHERE NOT passed GROUP BY ALL ORDER BY severity, groups DESC""",
    "coverage (latest month reported per sector, monthly totals; complete: every metric's is_complete)": """
        WITH latest AS (
            SELECT sector, max(period_start) AS period_start FROM state_metrics
            WHERE dimension IS NULL AND frequency = 'MONTHLY' AND agencies_reporting > 0 GROUP BY sector)
        SELECT s.sector, strftime(s.period_start, '%Y-%m') AS month,
               round(avg(s.agencies_reporting::DOUBLE / nullif(s.agencies_expected, 0)) * 100, 1) AS pct_reporting,
               count(*) AS metrics, bool_and(s.is_complete) AS complete
        FROM state_metrics s JOIN latest USING (sector, period_start)
        WHERE s.dimension IS NULL AND s.frequency = 'MONTHLY' GROUP BY ALL ORDER BY s.sector""",
}


#: Runs listed by `status` (newest first).
RECENT_RUNS = 8


def print_status(layout: DataLayout) -> None:
    """Print the recent runs of the instance, then each warehouse section as an aligned table."""
    _print_runs(layout)
    with open_published(layout) as con:
        print(f"\nwarehouse {layout.warehouse}")
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


def _print_runs(layout: DataLayout) -> None:
    """The newest runs on the instance `jc-pipeline run` and `make dev` share (DAGSTER_HOME), failures first named."""
    from jc_pipeline.runner import instance_home

    home = instance_home(layout)
    if not (home / "dagster.yaml").exists():
        print(f"Dagster instance {home}: none yet (`jc-pipeline run` makes it)")
        return
    try:
        _print_recent_runs(layout)
    except Exception as error:  # noqa: BLE001 - the warehouse's sections are shown all the same
        # Opening the instance writes a lock file and seeds its storages (OSError); a team install's PostgreSQL
        # may be down (SQLAlchemy's and Dagster's own errors: helper-61, `status` then showed nothing at all).
        reason = str(error).split("\n", 1)[0][:300]
        print(f"Dagster instance {home}: its runs cannot be read here ({type(error).__name__}: {reason})")


def _print_recent_runs(layout: DataLayout) -> None:
    import dagster as dg

    from jc_pipeline.runner import open_instance, pool_holders, ui_command

    with open_instance(layout) as instance:
        home = instance.root_directory
        runs = instance.get_runs(limit=RECENT_RUNS)
        print(f"Dagster instance {home} (open it in the UI with `{ui_command(layout)}`)")
        print(f"\nrecent runs (newest first, {RECENT_RUNS} at most):")
        if not runs:
            print("  (none yet: run `jc-pipeline run`)")
            return
        rows = []
        for run in runs:
            record = instance.get_run_record_by_id(run.run_id)
            started = record.start_time if record else None
            ended = record.end_time if record else None
            first = run.tags.get("dagster/asset_partition_range_start", "")
            last = run.tags.get("dagster/asset_partition_range_end", "")
            rows.append(
                (
                    run.run_id[:8],
                    run.job_name,
                    run.status.value,
                    f"{first[:7]}..{last[:7]}" if first else "",
                    _when(started),
                    f"{ended - started:.1f} s" if started and ended else "",
                )
            )
        _print_table(["run", "job", "status", "periods", "started (UTC)", "took"], rows)
        for holder in pool_holders(instance):  # what every other run's warehouse step waits for
            print(f"  the warehouse is held by Dagster run {holder}; a run whose process is gone keeps it until it "
                  "is ended in the UI (docs/operations.md, 'When a run fails')")
        failed = [run for run in runs if run.status == dg.DagsterRunStatus.FAILURE]
        if failed:
            print(
                f"  {len(failed)} failed run(s) above: `jc-pipeline run` prints the failing step and its error; the "
                "full event log is in the UI (Runs > run id). See docs/operations.md, 'When a run fails'."
            )


def _when(timestamp: float | None) -> str:
    from datetime import datetime, timezone

    if not timestamp:
        return ""
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
