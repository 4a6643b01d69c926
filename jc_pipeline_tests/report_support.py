"""Builders for the report, feedback and browser tests: the small state of ``test_state_fixture`` plus ingest
findings, written out as the report set (state page + agency feedback) the way the Dagster assets write it."""

from __future__ import annotations

from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import duckdb

from jc_pipeline.lib import feedback, report
from jc_pipeline_tests.test_state_fixture import build_small_state

GENERATED_AT = datetime(2024, 2, 1, 8, 30)
HOSTILE_NAME = '<img src=x onerror="alert(1)">'
#: One delivered file of LE2 with a rejected row and a warning (raw values an agency could type).
FILE_PATH = "inbox/LE2/LAW_ENFORCEMENT/=arrests 2023.csv"
REJECTS = [
    ("arrests", 5, "value", "=cmd|' /C calc'!A0", "R7", "ERROR",
     "'=cmd|' /C calc'!A0' is not a number; write 0 or more"),
    ("arrests", 7, "month", "Smarch", "R3", "ERROR", "'Smarch' is not a month"),
]


def build_report_state(path: Path) -> duckdb.DuckDBPyConnection:
    """The small state with one ingest file of LE2 and its findings, and a hostile agency name for LE9."""
    con = build_small_state(path)
    con.execute(
        "INSERT INTO source_files VALUES ('f1', ?, 'abc', 'LE2', 'LAW_ENFORCEMENT', TIMESTAMP '2024-01-05 10:00', "
        "TIMESTAMP '2024-01-05 10:01', 1, 'ERRORED', '2 of 14 rows rejected', 14, 12, 2)", [FILE_PATH])
    con.executemany("INSERT INTO rejected_rows VALUES ('f1', ?, ?, ?, ?, ?, ?, ?)", REJECTS)
    con.execute("UPDATE agencies SET agency_name = ? WHERE agency_id = 'LE9'", [HOSTILE_NAME])
    return con


def write_report_set(con: duckdb.DuckDBPyConnection, reports: Path) -> Path:
    """Feedback under ``reports/agencies``, then the state page linking to it; return the state page."""
    feedback.write_agency_feedback(con, reports / "agencies", generated_at=GENERATED_AT)
    links = feedback.existing_links(con, reports / "agencies", "../agencies")
    return report.write_state_report(con, reports / "state", generated_at=GENERATED_AT, agency_links=links)


class Page(HTMLParser):
    """A parsed page: start tags with attributes (in order) and the text of every <title> (SVG tooltips)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.titles: list[str] = []
        self.text: list[str] = []
        self._in_title = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"
        if self._in_title:
            self.titles.append("")

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_title:
            self.titles[-1] += data

    def all(self, tag: str, cls: str | None = None) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and (cls is None or cls in (a.get("class") or "").split())]
