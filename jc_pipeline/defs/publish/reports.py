"""Publish: the people-facing products of a run, read from the published warehouse (read-only, never blocking).

`agency_feedback` (a workbook and a page per agency), `data_quality_report` (the agencies with findings, linking
to their feedback pages) and `state_report` (the state's HTML report, linking to the feedback pages too). All are
in the "publish" group, so publish_job materializes them after every new warehouse.
"""

import os
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from jc_pipeline.defs.resources import WarehouseResource
from jc_pipeline.lib import feedback, report, validation
from jc_pipeline.lib.paths import folder_lock

#: What the report steps of one process computed from one published warehouse file: by the file's identity (see
#: _published), then by the function that computed it.
_shared: dict[tuple, dict[Callable[[Any], Any], Any]] = {}


@contextmanager
def _published(warehouse: WarehouseResource, folder: Path):
    """Holding ``folder``'s write lock (:func:`~jc_pipeline.lib.paths.folder_lock`, taken before the warehouse is
    opened, so the step writes from the warehouse published when its turn came), a read-only connection to the
    published warehouse and ``shared``: ``shared(compute)`` is ``compute(con)``, computed once per warehouse file
    for the steps of one process (publish_job runs in process). The expected periods (feedback, state report) and
    the findings (data-quality report, feedback) are most of what each step costs besides writing files; the first
    step that reads one computes it, and a step never computes what it does not read.

    The warehouse is never written in place, only replaced by a rename (analyst_warehouse), so a file whose
    identity (device, inode, size, modification and change times) is the one seen before and after the
    connection opened is the same file with the same tables. A file replaced meanwhile is read, not shared.
    """
    path = warehouse.layout.warehouse
    with folder_lock(folder):
        if not path.exists():  # a report materialized on its own (the UI) before any publish
            raise dg.Failure(f"no published warehouse yet ({path}): materialize analyst_warehouse first, or run "
                             f"`jc-pipeline run`, which publishes it with every report")
        before = _identity(path)
        with warehouse.store().open(path, read_only=True) as con:
            if _identity(path) != before:
                computed: dict[Callable[[Any], Any], Any] = {}
            else:
                if before not in _shared:
                    _shared.clear()  # the previous warehouse's: never read again
                    _shared[before] = {}
                computed = _shared[before]

            def shared(compute: Callable[[Any], Any]) -> Any:
                if compute not in computed:
                    computed[compute] = compute(con)
                return computed[compute]

            yield con, shared


def _identity(path: Path) -> tuple:
    stat = os.stat(path)
    return path, stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


def _feedback_dir(warehouse: WarehouseResource) -> Path:
    """Where agency_feedback writes: ``reports/agencies``, beside the data-quality report's and the state report's
    folders."""
    return warehouse.layout.reports / "agencies"


def _feedback_links(con: duckdb.DuckDBPyConnection, warehouse: WarehouseResource) -> dict[str, report.AgencyLinks]:
    """Each agency's feedback page and workbook, as links from a report folder beside the feedback's (the
    data-quality report's and the state report's)."""
    folder = _feedback_dir(warehouse)
    return feedback.existing_links(con, folder, f"../{folder.name}")


@dg.asset(deps=["analyst_warehouse", "agency_feedback"], group_name="publish", kinds={"html"})
def data_quality_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """`reports/data_quality/index.html`: every agency with findings, its errors and warnings of checks and of
    ingest, linked to its feedback page (every rejected row and failed check with file, sheet, row, the rule in
    plain words and what to do), and the catalogue of checks. Static HTML: opens in any browser, no server."""
    out_dir = warehouse.layout.reports / "data_quality"
    with _published(warehouse, out_dir) as (con, shared):
        links = _feedback_links(con, warehouse)
        index = validation.write_quality_report(con, out_dir,
                                                generated_at=datetime.now(UTC),
                                                agency_pages={a: link.html for a, link in links.items()},
                                                found=shared(validation.Findings.of))
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(index))})


@dg.asset(deps=["analyst_warehouse"], group_name="publish", kinds={"excel", "html"})
def agency_feedback(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Per agency, `reports/agencies/<agency_id>.xlsx` and `.html`: every row ingest rejected or warned about and
    every failed check (file, sheet, row, column, value, rule, what to do), plus the periods the agency is still
    expected to send. The files to send each agency after a run; an agency's files are rewritten only when what
    they say changed."""
    out_dir = _feedback_dir(warehouse)
    with _published(warehouse, out_dir) as (con, shared):
        written = feedback.write_agency_feedback(con, out_dir, generated_at=datetime.now(UTC),
                                                 expected=shared(report.expected_periods),
                                                 found=shared(validation.Findings.of))
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(out_dir / feedback.INDEX_FILE)),
        "agencies": len(written),
        "agencies_rewritten": sum(1 for f in written.values() if f.rewritten),
        "agencies_with_findings": sum(1 for f in written.values() if f.findings),
        "periods_missing": sum(f.periods_missing for f in written.values()),
    })


@dg.asset(deps=["analyst_warehouse", "agency_feedback"], group_name="publish", kinds={"html"})
def state_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """`reports/state/index.html`: per sector each metric's state trend with coverage beside every point, its
    published breakdowns, a coverage grid (agencies x periods: reported, missing, failed validation) and the
    data-quality summary linking to each agency's feedback page. Static, offline, no script: open it in any
    browser or mail it."""
    out_dir = warehouse.layout.reports / "state"
    with _published(warehouse, out_dir) as (con, shared):
        index = report.write_state_report(con, out_dir, generated_at=datetime.now(UTC),
                                          agency_links=_feedback_links(con, warehouse),
                                          expected=shared(report.expected_periods))
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(index)),
                                          "size_kb": round(index.stat().st_size / 1024)})
