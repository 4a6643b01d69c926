"""The HTML data-quality report: its index of agencies with findings, linked to their feedback pages, and what
those pages say about each finding."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pyarrow as pa
import pytest

from jc_pipeline.lib import feedback, state, validation
from jc_pipeline.lib.validation.report import UNASSIGNED, ByAgency
from jc_pipeline_tests.report_support import Page
from jc_pipeline_tests.test_validation_support import Warehouse, month

MARCH = month(2025, 3)
ARRESTS = "LAW_ENFORCEMENT_ARRESTS"
PATH = "inbox/A/LAW_ENFORCEMENT/arrests 2025.xlsx"
GENERATED = datetime(2025, 6, 15, 6, 0)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    wh = Warehouse(root / "w.duckdb")
    wh.agency("A", ["LAW_ENFORCEMENT"], name="<b>Sheriff & Co</b>")
    wh.agency("C", ["LAW_ENFORCEMENT"], name="Clean County")
    wh.con.execute("INSERT INTO source_files VALUES ('f1', ?, 'abc', 'A', 'LAW_ENFORCEMENT', now(), now(), 1, "
                   "'ERRORED', NULL, 3, 2, 1)", [PATH])
    wh.con.execute("INSERT INTO source_files VALUES ('f9', 'inbox/stray.csv', 'def', NULL, NULL, now(), now(), 2, "
                   "'UNREADABLE', 'no agency folder', 0, 0, 0)")
    wh.con.execute("INSERT INTO rejected_rows VALUES ('f1', 'arrests', 4, 'value', 'N/A', 'R7', 'ERROR', "
                   "'The value ''N/A'' is not a number: enter a number or delete the row.')")
    wh.con.execute("INSERT INTO rejected_rows VALUES ('f9', NULL, NULL, NULL, NULL, 'F3', 'ERROR', "
                   "'<script>alert(1)</script> is not a valid file name.')")
    wh.add("A", ARRESTS, MARCH, 10, file_id="f1", sheet="arrests", row=2)
    wh.add("A", ARRESTS, MARCH, 10, dimension="metric/offense/type", category="BOGUS", file_id="f1",
           sheet="arrests_by_type", row=7)
    for m in range(1, 4):
        wh.add("C", ARRESTS, month(2025, m), 10)
        for dim, cat in (("metric/offense/type", "PERSON"), ("global/race_and_ethnicity", "NOT_HISPANIC_WHITE"),
                         ("global/biological_sex", "MALE")):
            wh.add("C", ARRESTS, month(2025, m), 10, dimension=dim, category=cat)
    wh.validate([month(2025, 1), month(2025, 2), MARCH])
    out = root / "data_quality"
    out.mkdir()
    for old in ("agency-stale-00000000.html", ".page-digests.json"):  # what versions before 2026-12-05 wrote here
        (out / old).write_text("old")
    state.ensure_schema(wh.con)  # the feedback's missing periods read the state views
    pages = feedback.write_agency_feedback(wh.con, root / "agencies", generated_at=GENERATED)
    links = feedback.existing_links(wh.con, root / "agencies", "../agencies")
    index = validation.write_quality_report(wh.con, out, generated_at=GENERATED,
                                            agency_pages={a: link.html for a, link in links.items()})
    return wh, index, pages


def test_index_links_every_agency_with_findings_to_its_feedback_page(report):
    _, index, pages = report
    html = index.read_text()
    assert index.name == "index.html"
    hrefs = [a["href"] for a in Page(html).all("a")]
    assert hrefs == [f"../agencies/{pages[a].html.name}" for a in ("A", UNASSIGNED)]
    assert all((index.parent / href).is_file() for href in hrefs)
    assert "Clean County" not in html and "1 agencies on the roster have none" in html
    assert "&lt;b&gt;Sheriff &amp; Co&lt;/b&gt;" in html and "<b>Sheriff" not in html
    assert "2025-06-15 06:00" in html
    assert sorted(p.name for p in index.parent.iterdir()) == ["index.html"]  # no copy of the pages left beside it


def test_an_agency_without_a_page_is_listed_unlinked(report, tmp_path):
    wh, _, _ = report
    html = validation.write_quality_report(wh.con, tmp_path, generated_at=GENERATED, agency_pages={}).read_text()
    assert not Page(html).all("a") and "&lt;b&gt;Sheriff &amp; Co&lt;/b&gt; (A)" in html


def test_agency_page_says_what_where_and_what_to_do(report):
    _, _, pages = report
    html = pages["A"].html.read_text()
    rule = validation.RULES_BY_NAME["category_is_member"]
    for text in (PATH, "arrests_by_type", "<td>7</td>", "BOGUS", rule.title, rule.description, rule.remedy,
                 "2025-03", "offense_type: BOGUS"):
        assert text.replace("'", "&#x27;") in html, text
    # Ingest rejects of the same agency are on the same page.
    assert "enter a number or delete the row" in html and "<td>4</td>" in html


def test_report_is_static_and_escapes_data(report):
    _, index, pages = report
    for page in [index, *(p.html for p in pages.values())]:
        html = page.read_text()
        assert "<script" not in html and "http://" not in html and "https://" not in html
    unassigned = pages[UNASSIGNED].html.read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in unassigned and "inbox/stray.csv" in unassigned


def test_rows_by_agency_digest_counts_and_rows_of_the_agencies_asked():
    con = duckdb.connect()
    rows = pa.table({"agency_id": ["A", "A", None, "B"], "severity": ["ERROR", "WARNING", "ERROR", "WARNING"],
                     "message": ["one", "two", "stray", "three"]})
    by_agency = ByAgency.of(con, rows)
    assert {a: (c.total, c.errors, c.warnings) for a, c in by_agency.counts.items()} == {
        "A": (2, 1, 1), UNASSIGNED: (1, 1, 0), "B": (1, 0, 1)}
    # The rows asked for, in the table's order; rows without an agency under UNASSIGNED.
    assert by_agency.rows_of(["A", UNASSIGNED]) == {
        "A": rows.slice(0, 2).to_pylist(), UNASSIGNED: rows.slice(2, 1).to_pylist()}
    assert by_agency.rows_of([]) == {}
    # The digest follows the rows, not the order ties came in; any changed value changes it.
    assert ByAgency.of(con, rows.take([1, 0, 2, 3])).counts["A"].digest == by_agency.counts["A"].digest
    changed = rows.set_column(2, "message", pa.array(["one", "two!", "stray", "three"]))
    assert ByAgency.of(con, changed).counts["A"].digest != by_agency.counts["A"].digest
    assert ByAgency.of(con, changed).counts["B"] == by_agency.counts["B"]
    # A table without severities (the missing periods) counts its rows in total only.
    periods = ByAgency.of(con, rows.drop_columns(["severity"]))
    assert (periods.counts["A"].total, periods.counts["A"].errors) == (2, 0)
