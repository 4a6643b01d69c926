"""The state report: one static HTML page per state data directory (``reports/state/index.html``).

Per sector, each metric's state trend with coverage beside every point, its published breakdowns, a coverage
grid (agencies x periods: reported, missing, failed validation) and the data-quality summary linking to the
agency feedback pages. Charts are inline SVG written by :mod:`.svg`; the page has no script and fetches nothing.

Public API (pure logic, no Dagster import)::

    expected_periods(con)   # what the report and the feedback read of each agency x metric x period it is
                            # expected to report, with its status: computed once per publish, given to both
    write_state_report(con, out_dir, generated_at=..., agency_links={agency_id: AgencyLinks(html, xlsx)},
                       expected=...)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from jc_pipeline.lib.paths import replace_file
from jc_pipeline.lib.report.data import (
    AgencyQuality,
    ExpectedPeriods,
    expected_periods,
    load_state_views,
    quality_summary,
)
from jc_pipeline.lib.report.page import AgencyLinks, render_page

REPORT_FILE = "index.html"

__all__ = [
    "REPORT_FILE",
    "AgencyLinks",
    "AgencyQuality",
    "ExpectedPeriods",
    "expected_periods",
    "quality_summary",
    "write_state_report",
]


def write_state_report(con: duckdb.DuckDBPyConnection, out_dir: Path, *, generated_at: datetime,
                       agency_links: Mapping[str, AgencyLinks] | None = None,
                       expected: ExpectedPeriods | None = None) -> Path:
    """Write ``out_dir/index.html`` from the warehouse behind ``con`` (read-only is enough); return its path.

    ``agency_links`` maps agency ids to their feedback pages, relative to ``out_dir``; agencies without an entry
    are listed without a link, so the page never links to a file that was not written. ``expected`` is
    :func:`expected_periods` of the same warehouse when the caller has it already (computed here otherwise).
    """
    if expected is None:
        expected = expected_periods(con)
    states = load_state_views(con, expected)
    quality = quality_summary(con, expected)
    if generated_at.tzinfo is not None:  # naive times are taken as UTC already
        generated_at = generated_at.astimezone(UTC)
    html = render_page(states, quality, agency_links or {}, generated_at.strftime("%Y-%m-%d %H:%M"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / REPORT_FILE
    replace_file(target, html)
    return target
