"""Agency feedback: per agency a workbook and a page listing every rejected row and failed check (file, sheet,
row, column, value, rule, what to do) and the periods still missing; safe file names; no formula injection."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta
from html import escape

import fastexcel
import polars as pl
import pytest

from jc_pipeline.lib import child_process, feedback, state
from jc_pipeline.lib.export import XLSX_MAX_ROWS
from jc_pipeline.lib.ingest.rules import RULES as INGEST_RULES
from jc_pipeline.lib.page_digests import PageDigests
from jc_pipeline.lib.report import expected_periods
from jc_pipeline.lib.report.data import quality_summary
from jc_pipeline.lib.validation import report as validation_report
from jc_pipeline.lib.validation import rules as validation_rules
from jc_pipeline.lib.validation.report import UNASSIGNED
from jc_pipeline_tests.ingest_support import Warehouse, csv_bytes, deliver_csv
from jc_pipeline_tests.report_support import FILE_PATH, GENERATED_AT, REJECTS, Page, build_report_state


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("feedback")
    con = build_report_state(root / "warehouse.duckdb")
    out = root / "agencies"
    result = feedback.write_agency_feedback(con, out, generated_at=GENERATED_AT)
    yield con, out, result
    con.close()


def sheet(path, name: str) -> pl.DataFrame:
    return fastexcel.read_excel(str(path)).load_sheet(name, dtypes="string").to_polars()


def test_every_roster_agency_gets_a_workbook_and_a_page(written):
    con, out, result = written
    agencies = {r[0] for r in con.execute("SELECT agency_id FROM agencies").fetchall()}
    assert set(result) == agencies
    for agency, files in result.items():
        assert files.xlsx == out / f"{agency}.xlsx" and files.xlsx.is_file()
        assert files.html == out / f"{agency}.html" and files.html.is_file()
    assert (out / feedback.INDEX_FILE).is_file()
    assert not list(out.glob("*.partial"))  # each workbook was written aside and moved into place


def test_workbook_lists_rejected_rows_with_location_rule_and_fix(written):
    _, _, result = written
    to_fix = sheet(result["LE2"].xlsx, "To fix")
    assert to_fix.columns[:12] == ["Kind", "Severity", "Metric", "Period", "Breakdown", "File", "Sheet", "Row",
                                   "Column", "Value", "Expected", "Rule"]
    rejected = to_fix.filter(pl.col("Kind") == "File row")
    assert rejected.height == len(REJECTS)
    # Listed rule by rule (as the page lists them), each rule's rows by file, sheet and row.
    assert rejected["Row"].to_list() == ["7", "5"]
    first = rejected.row(1, named=True)
    assert first["File"] == FILE_PATH
    assert (first["Sheet"], first["Row"], first["Column"]) == ("arrests", "5", "value")
    assert first["Value"] == "=cmd|' /C calc'!A0"  # as the agency wrote it: a string cell, quote-prefixed
    assert first["Rule"] == f"R7: {INGEST_RULES['R7'].title}"
    assert first["What to do"] == INGEST_RULES["R7"].fix


def test_workbook_lists_failed_checks(written):
    _, _, result = written
    checks = sheet(result["LE4"].xlsx, "To fix").filter(pl.col("Kind") == "Check")
    assert checks.height == 1
    row = checks.row(0, named=True)
    # The fixture's error names no period end: its start date is shown.
    assert (row["Severity"], row["Period"], row["Rule"]) == ("error", "2023-03-01", "breakdown_exceeds_total")
    assert row["Problem"] == "breakdown larger than total"
    # A warning of another agency is its own business: LE1's page does not list LE4's error.
    assert sheet(result["LE1"].xlsx, "To fix").filter(pl.col("Severity") == "error").height == 0


def test_missing_periods_with_status(written):
    _, _, result = written
    missing = sheet(result["LE2"].xlsx, "Missing periods")
    arrests = missing.filter(pl.col("Metric key") == "LAW_ENFORCEMENT_ARRESTS")
    # LE2 reported Jan 2022 and Jan-Nov 2023 of a Jan 2022 - Dec 2023 window.
    assert arrests["Period"].to_list() == [f"2022-{m:02d}" for m in range(2, 13)] + ["2023-12"]
    assert set(arrests["Status"]) == {"not received"}
    failed = sheet(result["LE4"].xlsx, "Missing periods").filter(pl.col("Period") == "2023-03")
    assert failed["Status"].to_list() == ["failed validation"]
    assert result["LE1"].periods_missing == 0
    assert sheet(result["LE1"].xlsx, "Missing periods").height == 0


def test_page_reuses_the_quality_page_and_adds_missing_periods(written):
    _, out, result = written
    html = result["LE2"].html.read_text(encoding="utf-8")
    assert "Rows from your files that could not be loaded" in html  # the data-quality report's agency page
    assert "Periods still missing" in html and "2022-02 to 2022-12, 2023-12" in html
    assert escape("=cmd|' /C calc'!A0") in html  # shown as escaped text
    page = Page(html)
    for a in page.all("a"):
        assert (out / a["href"]).is_file(), a["href"]  # All agencies (index.html) and the workbook
    assert not page.all("script")


def test_file_names_never_come_from_data_unchecked():
    assert feedback.agency_file_stem("LE_1-a") == "LE_1-a"
    for hostile in ("../etc/passwd", "a/b", "..", "x.html", "CON ", ""):
        stem = feedback.agency_file_stem(hostile)
        assert "/" not in stem and "." not in stem and stem and stem != hostile
    assert feedback.agency_file_stem("a/b") != feedback.agency_file_stem("a_b")
    for taken in ("index", "INDEX"):  # the agencies' index (index.html), on case-blind file systems too
        assert feedback.agency_file_stem(taken).startswith(f"{taken}~")
    # A plain id never spells another's hashed name (helper-63: a folder named 'evil_id-1-624dbe31' took over the
    # page of the roster's 'evil.id-1').
    hashed = feedback.agency_file_stem("evil.id-1")
    assert feedback.agency_file_stem(hashed) != hashed


def test_full_run_removes_only_its_own_stale_files(written, tmp_path):
    con, _, _ = written
    (tmp_path / "notes.html").write_text("the state team's own file")
    feedback.write_agency_feedback(con, tmp_path, generated_at=GENERATED_AT)
    con.execute("UPDATE agencies SET agency_id = 'LE9b' WHERE agency_id = 'LE9'")  # LE9 leaves the roster
    try:
        feedback.write_agency_feedback(con, tmp_path, generated_at=GENERATED_AT)
    finally:
        con.execute("UPDATE agencies SET agency_id = 'LE9' WHERE agency_id = 'LE9b'")
    names = {p.name for p in tmp_path.iterdir()}
    assert "LE9.html" not in names and "LE9.xlsx" not in names and "LE9b.html" in names
    assert "notes.html" in names


def test_an_agency_called_index_keeps_its_page_and_the_index_its_name(tmp_path):
    con = build_report_state(tmp_path / "warehouse.duckdb")
    for table in ("agencies", "source_files", "validation_results", "agency_metrics"):
        if "agency_id" in con.table(table).columns:
            con.execute(f"UPDATE {table} SET agency_id = 'index' WHERE agency_id = 'LE2'")  # code constants
    result = feedback.write_agency_feedback(con, tmp_path / "out", generated_at=GENERATED_AT)
    page = result["index"].html
    assert page.name != feedback.INDEX_FILE and page.is_file() and result["index"].findings > 0
    index = (tmp_path / "out" / feedback.INDEX_FILE).read_text(encoding="utf-8")
    assert f"href='{page.name}'" in index or f'href="{page.name}"' in index  # the index, linking the agency
    con.close()


def test_narrowed_run_writes_only_those_agencies(written, tmp_path):
    """Into a folder of its own, the page's "All agencies" link finds an index of the agencies written; beside a
    full run's files, the full index stays."""
    con, full, _ = written
    result = feedback.write_agency_feedback(con, tmp_path, generated_at=GENERATED_AT, agency_ids=["LE4"])
    assert list(result) == ["LE4"]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "LE4.html", "LE4.xlsx", feedback.INDEX_FILE]
    assert "href='index.html'" in (tmp_path / "LE4.html").read_text(encoding="utf-8")
    index = (tmp_path / feedback.INDEX_FILE).read_text(encoding="utf-8")
    assert "LE4.html" in index and "LE1.html" not in index
    before = (full / feedback.INDEX_FILE).read_bytes()
    feedback.write_agency_feedback(con, full, generated_at=GENERATED_AT + timedelta(days=1), agency_ids=["LE4"])
    assert (full / feedback.INDEX_FILE).read_bytes() == before
    with pytest.raises(ValueError, match="NOPE"):
        feedback.write_agency_feedback(con, tmp_path, generated_at=GENERATED_AT, agency_ids=["NOPE"])


def test_files_outside_any_agency_folder_get_their_own_page(tmp_path):
    con = build_report_state(tmp_path / "warehouse.duckdb")
    con.execute("INSERT INTO source_files VALUES ('f2', 'inbox/stray.csv', 'def', NULL, NULL, TIMESTAMP '2024-01-05', "
                "TIMESTAMP '2024-01-05', 2, 'UNREADABLE', 'not in an agency folder', 0, 0, 0)")
    con.execute("INSERT INTO rejected_rows VALUES ('f2', NULL, NULL, NULL, 'stray.csv', 'F8', 'ERROR', 'move it')")
    result = feedback.write_agency_feedback(con, tmp_path / "agencies", generated_at=GENERATED_AT)
    orphan = result[UNASSIGNED]
    assert "/" not in orphan.html.name and orphan.html.is_file()
    assert "inbox/stray.csv" in orphan.html.read_text(encoding="utf-8")
    links = feedback.existing_links(con, tmp_path / "agencies", "../agencies")
    assert links[UNASSIGNED].html == f"../agencies/{orphan.html.name}"
    con.close()


def test_an_agency_not_on_the_roster_gets_the_page_its_findings_need(tmp_path):
    """Files in a mistyped inbox folder are rejected for their agency id, which the roster does not know: the
    feedback still writes that id a page and a workbook (the file, the rule and the fix), and the data-quality
    index links to it."""
    from jc_pipeline.lib.validation.report import write_quality_report

    con = build_report_state(tmp_path / "warehouse.duckdb")
    con.execute("INSERT INTO source_files VALUES ('f3', 'inbox/LE4x/LAW_ENFORCEMENT/arrests.csv', 'ghi', 'LE4x',"
                " 'LAW_ENFORCEMENT', TIMESTAMP '2024-01-05', TIMESTAMP '2024-01-05', 3, 'UNREADABLE',"
                " 'not on the roster', 0, 0, 0)")
    con.execute("INSERT INTO rejected_rows VALUES ('f3', NULL, NULL, NULL, NULL, 'F8', 'ERROR',"
                " 'the inbox folder ''LE4x'' is not an agency_id of the roster')")
    result = feedback.write_agency_feedback(con, tmp_path / "agencies", generated_at=GENERATED_AT)
    stray = result["LE4x"]
    page = stray.html.read_text(encoding="utf-8")
    assert "not on the roster" in page and "inbox/LE4x/LAW_ENFORCEMENT/arrests.csv" in page and "F8" in page
    assert stray.xlsx.is_file()
    pages = {agency: files.html.name for agency, files in result.items()}
    index = write_quality_report(con, tmp_path / "quality", generated_at=GENERATED_AT, agency_pages=pages)
    assert f'<a href="{stray.html.name}">LE4x (not on the roster)</a>' in index.read_text(encoding="utf-8")
    con.close()


def test_report_command_writes_the_state_page_and_the_feedback_it_links_to(tmp_path, capsys):
    from jc_pipeline import cli

    build_report_state(tmp_path / "warehouse.duckdb").close()
    assert cli.main(["report", "--data-dir", str(tmp_path)]) == 0
    state_page = tmp_path / "reports" / "state" / "index.html"
    assert state_page.is_file() and (tmp_path / "reports" / "agencies" / "LE2.xlsx").is_file()
    assert '<a href="../agencies/LE2.html">' in state_page.read_text(encoding="utf-8")
    assert str(state_page) in capsys.readouterr().out


#: A command writing what the published warehouse says: (arguments, the folder it writes, the file to read).
WAITING_WRITERS = {
    "feedback": (["feedback", "--agency", "LE2"], "reports/agencies", "LE2.html"),
    "export": (["export", "--tables", "rejected_rows"], "exports", "rejected_rows.csv"),
}


@pytest.mark.parametrize("command", list(WAITING_WRITERS))
def test_a_command_waits_for_its_folder_and_writes_from_the_warehouse_published_then(tmp_path, command):
    """A publish step (or another command) holds the folder (paths.folder_lock) while a newer warehouse is swapped
    in: the command started meanwhile waits, and writes the newer warehouse's rows, never the older's over them
    (review: a slow writer of an older warehouse overwrote a newer page, and the digests kept it)."""
    import threading

    from jc_pipeline import cli
    from jc_pipeline.lib.paths import folder_lock

    arguments, folder, name = WAITING_WRITERS[command]
    build_report_state(tmp_path / "warehouse.duckdb").close()
    newer = build_report_state(tmp_path / "newer.duckdb")
    newer.execute("INSERT INTO rejected_rows VALUES ('f1', 'arrests', 9, 'value', 'Brandnew', 'R7', 'ERROR', 'x')")
    newer.close()
    with folder_lock(tmp_path / folder):
        writer = threading.Thread(target=cli.main, args=([*arguments, "--data-dir", str(tmp_path)],))
        writer.start()
        writer.join(timeout=2)
        assert writer.is_alive()  # waiting for the folder
        os.replace(tmp_path / "newer.duckdb", tmp_path / "warehouse.duckdb")
    writer.join(timeout=60)
    assert "Brandnew" in (tmp_path / folder / name).read_text(encoding="utf-8")


def test_a_writer_that_waits_too_long_for_its_folder_names_it_and_the_way_out(tmp_path):
    """A folder held by a stopped writer (Ctrl-Z) is named after the wait, not waited for without a word."""
    from jc_pipeline.lib.paths import WRITE_LOCK, folder_lock

    with folder_lock(tmp_path):
        with pytest.raises(TimeoutError, match="stopped .Ctrl-Z. or stuck; let it finish or stop it") as raised:
            with folder_lock(tmp_path, timeout=0.2):
                pass
    assert str(tmp_path / WRITE_LOCK) in str(raised.value)
    with folder_lock(tmp_path, timeout=0.2):  # released by its holder: taken at once
        pass


def test_a_narrowed_run_keeps_every_agencys_digest(written):
    """The digests describe the files on disk after a run for one agency too: the others' are kept, the agency's
    is its new content's (before, a narrowed run saved none, so the files it wrote were unknown to the next run)."""
    con, full, _ = written
    before = PageDigests(full).previous
    con.execute("INSERT INTO rejected_rows VALUES ('f1', 'arrests', 9, 'value', 'Brandnew', 'R7', 'ERROR', 'x')")
    feedback.write_agency_feedback(con, full, generated_at=GENERATED_AT, agency_ids=["LE2"])
    after = PageDigests(full).previous
    assert after.keys() == before.keys() and after["LE2"] != before["LE2"]
    assert {a: d for a, d in after.items() if a != "LE2"} == {a: d for a, d in before.items() if a != "LE2"}
    con.execute("DELETE FROM rejected_rows WHERE raw_value = 'Brandnew'")


def test_full_run_rewrites_only_agencies_whose_feedback_changed(written, tmp_path):
    con, _, _ = written
    first = feedback.write_agency_feedback(con, tmp_path, generated_at=GENERATED_AT)
    assert all(f.rewritten for f in first.values())
    later = GENERATED_AT + timedelta(days=1)
    before = {f.xlsx.name: f.xlsx.read_bytes() for f in first.values()}
    con.execute("UPDATE rejected_rows SET message = 'a new message' WHERE file_id IN "
                "(SELECT file_id FROM source_files WHERE path = ?)", [FILE_PATH])
    try:
        second = feedback.write_agency_feedback(con, tmp_path, generated_at=later)
    finally:
        con.execute("UPDATE rejected_rows SET message = 'restored' WHERE message = 'a new message'")
    assert {a for a, f in second.items() if f.rewritten} == {"LE2"}  # the agency whose file it is
    assert f"{later:%Y-%m-%d %H:%M}" in second["LE2"].html.read_text(encoding="utf-8")
    assert all(second[a].xlsx.read_bytes() == before[second[a].xlsx.name] for a in second if a != "LE2")
    second["LE4"].html.unlink()  # a file someone deleted is written again even though nothing changed
    third = feedback.write_agency_feedback(con, tmp_path, generated_at=later)
    assert {a for a, f in third.items() if f.rewritten} == {"LE4", "LE2"} and third["LE4"].html.is_file()


def test_an_upgrade_rewrites_every_agencys_files_once(written, tmp_path, monkeypatch):
    """helper-42: the files of agencies whose data had not changed kept the old version's words after an upgrade. A
    page's digest covers the package's code, so other code rewrites them all, once."""
    from jc_pipeline.lib import page_digests

    con, _, _ = written
    feedback.write_agency_feedback(con, tmp_path, generated_at=GENERATED_AT)
    assert not any(f.rewritten for f in feedback.write_agency_feedback(con, tmp_path, generated_at=GENERATED_AT)
                   .values())
    monkeypatch.setattr(page_digests, "code_digest", lambda: "the next version")
    upgraded = feedback.write_agency_feedback(con, tmp_path, generated_at=GENERATED_AT)
    assert upgraded and all(f.rewritten for f in upgraded.values())
    assert not any(f.rewritten for f in feedback.write_agency_feedback(con, tmp_path, generated_at=GENERATED_AT)
                   .values())


@pytest.mark.parametrize("damaged", [b"", b'{"LE2": "ab', b"\xff\xfe"], ids=["empty", "cut", "not text"])
def test_damaged_digests_rewrite_every_agencys_files_instead_of_failing(written, tmp_path, damaged):
    """helper-49: a digests file a power cut left empty or cut failed every publish (JSONDecodeError), night after
    night, until someone deleted it. It now counts as no digests: every agency's files are written again."""
    con, _, _ = written
    feedback.write_agency_feedback(con, tmp_path, generated_at=GENERATED_AT)
    (tmp_path / ".page-digests.json").write_bytes(damaged)
    again = feedback.write_agency_feedback(con, tmp_path, generated_at=GENERATED_AT)
    assert again and all(f.rewritten for f in again.values())
    assert not any(f.rewritten for f in feedback.write_agency_feedback(con, tmp_path, generated_at=GENERATED_AT)
                   .values())


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path):
    from jc_pipeline.lib.paths import replace_file

    page = tmp_path / "agency.html"
    replace_file(page, "<p>previous</p>")
    with pytest.raises(UnicodeEncodeError):
        replace_file(page, "<p>half \ud800 written</p>")  # a lone surrogate cannot be encoded
    assert page.read_text(encoding="utf-8") == "<p>previous</p>"
    assert [p.name for p in tmp_path.iterdir()] == ["agency.html"]
    replace_file(page, b"<p>next</p>")
    assert page.read_bytes() == b"<p>next</p>" and [p.name for p in tmp_path.iterdir()] == ["agency.html"]



def _files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix in (".html", ".xlsx")}


def _with_helper(monkeypatch) -> list[str]:
    """From now on every state counts as large (a helper process takes part) and every agency is a chunk of its
    own; returns the list of agencies this process then writes itself."""
    monkeypatch.setattr(feedback, "HELPER_MIN_AGENCIES", 1)
    monkeypatch.setattr(feedback, "HELPER_CHUNK", 1)
    here, write_pages = [], feedback._write_pages

    def counted(writer, pages, stamp):
        here.extend(page.agency for page in pages)
        write_pages(writer, pages, stamp)

    monkeypatch.setattr(feedback, "_write_pages", counted)
    return here


def test_a_large_state_writes_some_agencies_in_a_helper_process_and_the_same_files(written, tmp_path, monkeypatch):
    con, _, _ = written
    alone = feedback.write_agency_feedback(con, tmp_path / "alone", generated_at=GENERATED_AT)
    here = _with_helper(monkeypatch)
    helped = feedback.write_agency_feedback(con, tmp_path / "helped", generated_at=GENERATED_AT)
    assert helped == {a: replace(f, html=tmp_path / "helped" / f.html.name, xlsx=tmp_path / "helped" / f.xlsx.name)
                      for a, f in alone.items()}
    assert 0 < len(here) < len(alone)  # the helper wrote the others
    assert _files(tmp_path / "helped") == _files(tmp_path / "alone")  # byte for byte
    assert not list((tmp_path / "helped").glob("*.partial"))


def test_a_helper_process_that_dies_costs_no_file(written, tmp_path, monkeypatch):
    con, _, _ = written
    alone = feedback.write_agency_feedback(con, tmp_path / "alone", generated_at=GENERATED_AT)
    here = _with_helper(monkeypatch)
    # `python -m jc_pipeline` exits at once (the package has no __main__): the helper is lost before any reply.
    monkeypatch.setattr(feedback, "start", lambda module: child_process.start("jc_pipeline"))
    feedback.write_agency_feedback(con, tmp_path / "helped", generated_at=GENERATED_AT)
    assert sorted(here) == sorted(alone)  # this process wrote every agency itself
    assert _files(tmp_path / "helped") == _files(tmp_path / "alone")


def test_a_corrected_file_clears_the_rows_its_earlier_version_had_to_fix(tmp_path):
    """An agency fixes the rejected rows and sends the file again under its name: the feedback (and the data-quality
    report, which reads the same findings) no longer asks it to fix the earlier version's rows, which source_files
    and rejected_rows keep as history; a file sent under another name keeps its own."""
    w = Warehouse(tmp_path)
    path = deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv",
                       [["year", "month", "value"], [2024, 1, 7], [2024, 2, "seven"]])
    other = deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "2023/arrests.csv",
                        [["year", "month", "value"], [2023, 1, "n/a"]])
    w.ingest()
    w.change_roster()  # the same roster, as reference tables (the summary lists roster agencies)
    state.ensure_schema(w.con)
    state.apply_views(w.con)  # the missing periods the feedback lists beside its findings

    def to_fix() -> list[tuple[str, str]]:
        result = feedback.write_agency_feedback(w.con, tmp_path / "agencies", generated_at=GENERATED_AT)
        rows = sheet(result["le"].xlsx, "To fix").filter(pl.col("Kind") == "File row")
        # The state report's summary counts the same findings.
        (le,) = (q for q in quality_summary(w.con, expected_periods(w.con)) if q.agency_id == "le")
        assert le.ingest_errors == rows.height
        return sorted(rows.select("File", "Value").rows())

    assert to_fix() == [(f"inbox/le/LAW_ENFORCEMENT/{name}", value)
                        for name, value in (("2023/arrests.csv", "n/a"), ("arrests.csv", "seven"))]
    path.write_bytes(csv_bytes([["year", "month", "value"], [2024, 1, 7], [2024, 2, 8]]))
    w.ingest()
    assert to_fix() == [("inbox/le/LAW_ENFORCEMENT/2023/arrests.csv", "n/a")]
    assert w.con.execute("SELECT count(*) FROM rejected_rows").fetchall() == [(2,)]  # the history stays
    assert w.con.execute("SELECT count(*), count(DISTINCT path) FROM source_files").fetchall() == [(3, 2)]
    assert other.exists()
    w.close()


def test_a_rule_with_more_rows_than_the_workbook_lists_is_counted_whole(tmp_path, monkeypatch):
    """An agency's file with a word in every value cell: the workbook and page list the first rows of the rule and
    say how many more there are, and every count (the workbook's About, the page, the state report's summary) is
    of every row; rejected_rows keeps all of them."""
    monkeypatch.setattr(validation_report, "LISTED_PER_RULE", 3)
    w = Warehouse(tmp_path)
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv",
                [["year", "month", "value"], *([2023, month, f"seven{month}"] for month in range(1, 8)),
                 [2023, 13, 1]])
    w.ingest()
    w.change_roster()
    state.ensure_schema(w.con)
    state.apply_views(w.con)
    result = feedback.write_agency_feedback(w.con, tmp_path / "agencies", generated_at=GENERATED_AT)

    to_fix = sheet(result["le"].xlsx, "To fix")
    r2, r7 = ("R2: " + INGEST_RULES["R2"].title), ("R7: " + INGEST_RULES["R7"].title)
    # Rule by rule, each followed by how many of its rows are not listed.
    assert to_fix.select("Row", "Rule").rows() == [("9", r2), ("2", r7), ("3", r7), ("4", r7), (None, r7)]
    more = to_fix.row(4, named=True)
    assert (more["Kind"], more["Severity"]) == ("File row", "error")
    assert more["Problem"] == "4 more rows of this rule are not listed here (3 of 7 are)."
    about = dict(sheet(result["le"].xlsx, "About").rows())
    assert about["Ingest errors and warnings"] == "8"
    page = result["le"].html.read_text()
    assert "<code>R7</code> <span class='meta'>(7)</span>" in page
    (le,) = (q for q in quality_summary(w.con, expected_periods(w.con)) if q.agency_id == "le")
    assert le.ingest_errors == 8
    assert w.con.execute("SELECT count(*) FROM rejected_rows").fetchall() == [(8,)]
    w.close()


def test_every_rule_at_its_listing_limit_still_fits_a_workbook():
    """However many rows an agency's files break, its 'To fix' sheet (each rule's rows in either severity, one line
    per rule for the rows not listed, the header) stays within Excel's rows."""
    sections = 2 * (len(INGEST_RULES) + len(validation_rules.RULES))
    assert sections * (validation_report.LISTED_PER_RULE + 1) + 1 <= XLSX_MAX_ROWS
