"""The agency-facing HTML data-quality report."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pyarrow as pa
import pytest

from jc_pipeline.lib import validation
from jc_pipeline.lib.validation.report import UNASSIGNED, ByAgency, _page_name
from jc_pipeline_tests.test_validation_support import Warehouse, month

MARCH = month(2025, 3)
ARRESTS = "LAW_ENFORCEMENT_ARRESTS"
PATH = "inbox/A/LAW_ENFORCEMENT/arrests 2025.xlsx"


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
    out = root / "report"
    out.mkdir()
    (out / "agency-stale-00000000.html").write_text("old")
    index = validation.write_quality_report(wh.con, out, generated_at=datetime(2025, 6, 15, 6, 0))
    return index


def test_index_links_every_agency_with_findings(report):
    html = report.read_text()
    assert report.name == "index.html"
    assert f'href="{_page_name("A")}"' in html
    assert "Clean County" not in html and "1 agencies on the roster have none" in html
    assert "&lt;b&gt;Sheriff &amp; Co&lt;/b&gt;" in html and "<b>Sheriff" not in html
    assert not (report.parent / "agency-stale-00000000.html").exists()
    assert not (report.parent / _page_name("C")).exists()


def test_agency_page_says_what_where_and_what_to_do(report):
    html = (report.parent / _page_name("A")).read_text()
    rule = validation.RULES_BY_NAME["category_is_member"]
    for text in (PATH, "arrests_by_type", "<td>7</td>", "BOGUS", rule.title, rule.description, rule.remedy,
                 "2025-03", "offense_type: BOGUS"):
        assert text.replace("'", "&#x27;") in html, text
    # Ingest rejects of the same agency are on the same page.
    assert "enter a number or delete the row" in html and "<td>4</td>" in html


def test_report_is_static_and_escapes_data(report):
    for page in report.parent.glob("*.html"):
        html = page.read_text()
        assert "<script" not in html and "http://" not in html and "https://" not in html
    unassigned = (report.parent / _page_name("(no agency)")).read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in unassigned and "inbox/stray.csv" in unassigned


def test_pages_are_rewritten_only_when_their_findings_change(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    for agency in ("A", "B"):
        wh.agency(agency, ["LAW_ENFORCEMENT"])
        wh.add(agency, ARRESTS, MARCH, -1)  # value_not_negative fails for both
    wh.validate([MARCH])
    out = tmp_path / "report"
    first, later = datetime(2025, 6, 15, 6, 0), datetime(2025, 6, 16, 6, 0)
    validation.write_quality_report(wh.con, out, generated_at=first)
    page_a, page_b = out / _page_name("A"), out / _page_name("B")
    assert "2025-06-15 06:00" in page_a.read_text() and page_b.is_file()

    wh.con.execute("DELETE FROM agency_metrics WHERE agency_id = 'B'")  # B withdraws its data
    wh.add("A", ARRESTS, month(2025, 4), -2)  # A gets a new finding
    wh.validate([MARCH, month(2025, 4)])
    index = validation.write_quality_report(wh.con, out, generated_at=later)
    assert "2025-06-16 06:00" in page_a.read_text()  # changed: written again
    assert not page_b.exists()  # no findings any more: no page
    assert "2025-06-16 06:00" in index.read_text()

    wh.agency("C", ["LAW_ENFORCEMENT"])
    wh.add("C", ARRESTS, MARCH, -3)
    wh.validate([MARCH])
    validation.write_quality_report(wh.con, out, generated_at=datetime(2025, 6, 17, 6, 0))
    assert "2025-06-16 06:00" in page_a.read_text()  # unchanged: kept as it was
    assert "2025-06-17 06:00" in (out / _page_name("C")).read_text()


def test_rows_by_agency_digest_counts_and_rows_of_the_agencies_asked():
    con = duckdb.connect()
    rows = pa.table({"agency_id": ["A", "A", None, "B"], "severity": ["ERROR", "WARNING", "ERROR", "WARNING"],
                     "message": ["one", "two", "stray", "three"]})
    by_agency = ByAgency(con, rows)
    assert {a: (c.total, c.errors, c.warnings) for a, c in by_agency.counts.items()} == {
        "A": (2, 1, 1), UNASSIGNED: (1, 1, 0), "B": (1, 0, 1)}
    # The rows asked for, in the table's order; rows without an agency under UNASSIGNED.
    assert by_agency.rows_of(["A", UNASSIGNED]) == {
        "A": rows.slice(0, 2).to_pylist(), UNASSIGNED: rows.slice(2, 1).to_pylist()}
    assert by_agency.rows_of([]) == {}
    # The digest follows the rows, not the order ties came in; any changed value changes it.
    assert ByAgency(con, rows.take([1, 0, 2, 3])).counts["A"].digest == by_agency.counts["A"].digest
    changed = rows.set_column(2, "message", pa.array(["one", "two!", "stray", "three"]))
    assert ByAgency(con, changed).counts["A"].digest != by_agency.counts["A"].digest
    assert ByAgency(con, changed).counts["B"] == by_agency.counts["B"]
    # A table without severities (the missing periods) counts its rows in total only.
    periods = ByAgency(con, rows.drop_columns(["severity"]))
    assert (periods.counts["A"].total, periods.counts["A"].errors) == (2, 0)
