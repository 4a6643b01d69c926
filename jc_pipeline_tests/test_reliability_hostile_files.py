"""Hostile and broken files: each is refused (or its bad rows rejected) with a precise reason naming the file,
in bounded time and memory, while a good file delivered next to it loads completely (docs/reliability.md)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import polars as pl
import pytest
import xlsxwriter

from jc_pipeline.lib.paths import DataLayout
from jc_pipeline_tests.ingest_support import (AGENCIES, Warehouse, assert_accounting, csv_bytes, deliver_csv,
                                              deliver_xls, deliver_xlsx, inbox_path)
from jc_pipeline_tests.reliability_support import (bounded, encrypted_ooxml, far_cells_xls, far_cells_xml,
                                                   small_workbook, wide_sheet_xml, with_sheet_xml, zip_bomb)

LE = ("le", "LAW_ENFORCEMENT")
GOOD = [["year", "month", "value"], [2023, 1, 10], [2023, 2, 20]]
GOOD_MONTHS = [(date(2023, 1, 1), 10.0), (date(2023, 2, 1), 20.0)]
MONTREAL = ("court_m", "Cour municipale de Montréal", "US_XX", "COURTS_AND_PRETRIAL", "", "1000", "1", "aoc")


@pytest.fixture
def warehouse(tmp_path):
    w = Warehouse(tmp_path, agencies=[*AGENCIES, MONTREAL])
    yield w
    assert_accounting(w)
    w.close()


def deliver_good(w: Warehouse) -> None:
    deliver_csv(w.data_dir, *LE, "arrests.csv", GOOD)


def ingest_beside_good(w: Warehouse, seconds: float, peak_growth_mib: float = 300) -> None:
    """Deliver the good file beside the hostile ones, then ingest within a time and memory budget (:func:`bounded`):
    the hostile files must cost only themselves."""
    deliver_good(w)
    with bounded(seconds=seconds, peak_growth_mib=peak_growth_mib):
        w.ingest()


def outcome(w: Warehouse) -> dict[str, tuple]:
    """{relative path: (status, rows_total, rows_loaded, rows_rejected, reason)}."""
    return {path: tuple(rest) for path, *rest in w.table("source_files").select(
        "path", "status", "rows_total", "rows_loaded", "rows_rejected", "reason").iter_rows()}


def assert_good_loaded(w: Warehouse) -> None:
    files = outcome(w)
    assert files["inbox/le/LAW_ENFORCEMENT/arrests.csv"][:4] == ("INGESTED", 2, 2, 0)
    loaded = w.metrics().filter(pl.col("metric_key") == "LAW_ENFORCEMENT_ARRESTS", pl.col("agency_id") == "le")
    assert loaded.select("period_start", "value").rows() == GOOD_MONTHS


def assert_refused(w: Warehouse, name: str, *phrases: str) -> str:
    """The file is UNREADABLE, rows 0/0/0, its reason starts with its path and contains every phrase."""
    path = f"inbox/le/LAW_ENFORCEMENT/{name}"
    status, total, loaded, rejected, reason = outcome(w)[path]
    assert (status, total, loaded, rejected) == ("UNREADABLE", 0, 0, 0), reason
    assert reason.startswith(f"{path}: ")
    for phrase in phrases:
        assert phrase in reason, reason
    finding = w.table("rejected_rows").join(w.table("source_files").filter(pl.col("path") == path),
                                            on="file_id")
    assert finding.select("rule", "severity", "row_number").rows() == [("F0", "ERROR", None)]
    return reason


def findings_of(w: Warehouse, name: str) -> pl.DataFrame:
    files = w.table("source_files").filter(pl.col("path").str.ends_with("/" + name)).select("file_id")
    return w.table("rejected_rows").join(files, on="file_id").sort("row_number", "rule")


# --- workbooks that would exhaust memory or crash calamine ------------------------------------------------------


def test_zip_bomb_declaring_its_size_is_refused_before_unpacking(warehouse):
    inbox_path(warehouse.data_dir, *LE, "bomb.xlsx").write_bytes(zip_bomb(1024))  # 1 MB -> 1 GiB of XML
    ingest_beside_good(warehouse, seconds=10, peak_growth_mib=200)
    assert_refused(warehouse, "bomb.xlsx", "expands to 1.0 GiB", "zip bomb")
    assert_good_loaded(warehouse)


def test_zip_bomb_under_the_total_limit_is_refused_by_its_ratio(warehouse):
    inbox_path(warehouse.data_dir, *LE, "bomb.xlsx").write_bytes(zip_bomb(300))  # 300 KB -> 300 MiB
    ingest_beside_good(warehouse, seconds=10, peak_growth_mib=200)
    assert_refused(warehouse, "bomb.xlsx", "'xl/worksheets/sheet1.xml' expands", "times", "zip bomb")
    assert_good_loaded(warehouse)


def test_zip_bomb_lying_about_its_size_is_refused_as_damaged(warehouse):
    # The directory declares 100 kB; zipfile stops there and the CRC exposes the lie (never 1 GiB inflated).
    inbox_path(warehouse.data_dir, *LE, "liar.xlsx").write_bytes(zip_bomb(1024, declared_size=100_000))
    ingest_beside_good(warehouse, seconds=10, peak_growth_mib=200)
    assert_refused(warehouse, "liar.xlsx", "damaged", "Bad CRC")
    assert_good_loaded(warehouse)


def test_a_small_zip_bomb_lying_about_its_size_costs_the_worker_a_moment(warehouse):
    # 240 KB that expand to 240 MiB of blanks while the directory declares 100 kB: calamine reads a small workbook
    # before the guard inflates it, and reads the whole stream (an empty sheet); the worker's time is bounded by the
    # file's size (deflate expands at most 1,032 times).
    inbox_path(warehouse.data_dir, *LE, "small_liar.xlsx").write_bytes(zip_bomb(240, declared_size=100_000))
    ingest_beside_good(warehouse, seconds=10, peak_growth_mib=100)
    assert outcome(warehouse)["inbox/le/LAW_ENFORCEMENT/small_liar.xlsx"] == ("INGESTED", 0, 0, 0, "no data rows")
    assert_good_loaded(warehouse)


def test_two_far_apart_cells_are_refused_with_the_cell_to_delete(warehouse):
    # 5 KB: A1 and XFD1048576. calamine allocates the whole 17-billion-cell box and aborts its worker. far.xlsx and
    # beyond.xlsx are small: calamine reads them first, and when it fails the scan names the cell (workbook_guard);
    # behind.xls, a zip behind other bytes, is scanned before calamine reads it.
    workbook = with_sheet_xml(small_workbook({"arrests": [["year"]]}), far_cells_xml("XFD1048576"))
    inbox_path(warehouse.data_dir, *LE, "far.xlsx").write_bytes(workbook)
    inbox_path(warehouse.data_dir, *LE, "beyond.xlsx").write_bytes(
        with_sheet_xml(small_workbook({"arrests": [["year"]]}), far_cells_xml("ZZZZ99999999")))
    # calamine opens a zip behind other bytes as .xlsx as well (an .xls header, a text line)
    inbox_path(warehouse.data_dir, *LE, "behind.xls").write_bytes(b"#!/bin/sh\n" + workbook)
    ingest_beside_good(warehouse, seconds=10, peak_growth_mib=100)
    for name in ("far.xlsx", "behind.xls"):
        assert_refused(warehouse, name, "16,384 columns x 1,048,576 rows", "Ctrl+End")
    assert_refused(warehouse, "beyond.xlsx", "row or cell at '", "99999999'", "beyond Excel's last column")
    assert_good_loaded(warehouse)


def test_an_xls_that_would_abort_the_reader_costs_only_its_own_file(warehouse):
    """calamine reads .xls files in a worker process: the far-apart cells kill the worker, not the ingest, and
    the .xls delivered after it (a new worker) and the good CSV load."""
    inbox_path(warehouse.data_dir, *LE, "a_far.xls").write_bytes(far_cells_xls())
    deliver_xls(warehouse.data_dir, "da", "PROSECUTION", "b_legacy.xls",
                {"cases_referred": [["year", "month", "value"], [2023, 3, 30]]})
    ingest_beside_good(warehouse, seconds=30, peak_growth_mib=100)
    assert_refused(warehouse, "a_far.xls", "the spreadsheet reader stopped on this workbook", "Ctrl+End",
                   "save it as .xlsx")
    assert outcome(warehouse)["inbox/da/PROSECUTION/b_legacy.xls"][:4] == ("INGESTED", 1, 1, 0)
    legacy = warehouse.metrics().filter(pl.col("agency_id") == "da")
    assert legacy.select("metric_key", "period_start", "value").rows() == [
        ("PROSECUTION_CASES REFERRED", date(2023, 3, 1), 30.0)]
    assert_good_loaded(warehouse)


def test_sheet_with_a_million_columns(warehouse):
    workbook = with_sheet_xml(small_workbook({"arrests": [["year"]]}), wide_sheet_xml(1_000_000))
    assert len(workbook) < 4_000_000
    inbox_path(warehouse.data_dir, *LE, "wide.xlsx").write_bytes(workbook)
    inbox_path(warehouse.data_dir, *LE, "wide.csv").write_bytes(b",".join([b"c"] * 1_000_000) + b"\n1\n")
    ingest_beside_good(warehouse, seconds=15, peak_growth_mib=300)
    assert_refused(warehouse, "wide.xlsx", "beyond Excel's last column XFD")
    assert_refused(warehouse, "wide.csv", "1,000,000 columns, more than the 16,384 accepted")
    assert_good_loaded(warehouse)


def test_random_bytes_named_xlsx_and_xls(warehouse):
    inbox_path(warehouse.data_dir, *LE, "random.xlsx").write_bytes(os.urandom(100_000))
    inbox_path(warehouse.data_dir, *LE, "random.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
                                                                     + os.urandom(20_000))
    inbox_path(warehouse.data_dir, *LE, "truncated.xlsx").write_bytes(small_workbook({"arrests": GOOD})[:1500])
    inbox_path(warehouse.data_dir, *LE, "reported_crime.csv").write_bytes(small_workbook({"arrests": GOOD}))
    inbox_path(warehouse.data_dir, *LE, "page.xls").write_bytes(b"<html><table><tr><td>year</td></tr></table></html>")
    ingest_beside_good(warehouse, seconds=10, peak_growth_mib=100)
    assert_refused(warehouse, "reported_crime.csv", "an Excel workbook with a .csv name; rename it to .xlsx")
    assert_refused(warehouse, "random.xlsx", "not an Excel workbook")
    assert_refused(warehouse, "page.xls", "a web page or XML with an Excel name", "save it as .xlsx")
    assert_refused(warehouse, "random.xls", "damaged")
    assert_refused(warehouse, "truncated.xlsx", "damaged")
    assert_good_loaded(warehouse)


def test_password_protected_workbook(warehouse):
    # Heuristic (readers.py): OLE magic + the UTF-16 name "EncryptionInfo" within the first MiB.
    inbox_path(warehouse.data_dir, *LE, "locked.xlsx").write_bytes(encrypted_ooxml())
    ingest_beside_good(warehouse, seconds=10)
    assert_refused(warehouse, "locked.xlsx", "password-protected", "remove the password")
    assert_good_loaded(warehouse)


# --- text encodings, NUL bytes, giant cells -----------------------------------------------------------------


def _court_rows(month: int) -> list[list[object]]:
    return [["year", "month", "agency", "value"], [2023, month, "Cour municipale de Montréal", month * 10]]


def test_latin1_and_utf16_csvs_load_with_their_accents(warehouse):
    text = csv_bytes(_court_rows(1)).decode("utf-8")
    inbox_path(warehouse.data_dir, "aoc", "COURTS_AND_PRETRIAL", "latin1/cases_filed.csv").write_bytes(
        text.encode("latin-1"))
    inbox_path(warehouse.data_dir, "aoc", "COURTS_AND_PRETRIAL", "utf16/cases_filed.csv").write_bytes(
        csv_bytes(_court_rows(2)).decode("utf-8").encode("utf-16"))  # with BOM
    inbox_path(warehouse.data_dir, "aoc", "COURTS_AND_PRETRIAL", "utf8bom/cases_filed.csv").write_bytes(
        b"\xef\xbb\xbf" + csv_bytes(_court_rows(3)))
    padded = "Cour municipale de Montréal" + " " * 4000  # trimmed when matched; makes the file > 1 MiB
    big = [["year", "month", "agency", "value"], [2023, 4, padded, 40]] + [
        [year, month, padded, 1] for year in range(2000, 2023) for month in range(1, 13)]  # the Polars reader
    inbox_path(warehouse.data_dir, "aoc", "COURTS_AND_PRETRIAL", "big16/cases_filed.csv").write_bytes(
        csv_bytes(big).decode("utf-8").encode("utf-16"))
    ingest_beside_good(warehouse, seconds=20)
    got = warehouse.metrics().filter(pl.col("agency_id") == "court_m", pl.col("period_start") >= date(2023, 1, 1))
    assert got.select("period_start", "value").rows() == [
        (date(2023, 1, 1), 10.0), (date(2023, 2, 1), 20.0), (date(2023, 3, 1), 30.0), (date(2023, 4, 1), 40.0)]
    status = {p.split("/")[3]: s for p, (s, *_) in outcome(warehouse).items() if "/aoc/" in p}
    assert status == {"latin1": "INGESTED", "utf16": "INGESTED", "utf8bom": "INGESTED", "big16": "INGESTED"}
    assert outcome(warehouse)["inbox/aoc/COURTS_AND_PRETRIAL/big16/cases_filed.csv"][:4] == ("INGESTED", 277, 277, 0)
    assert_good_loaded(warehouse)


def test_nul_bytes(warehouse):
    # Mostly NUL (binary, or UTF-16 without its byte order mark): the file is refused, saying so.
    inbox_path(warehouse.data_dir, *LE, "use_of_force.csv").write_bytes(
        "year,value\n2023,1\n".encode("utf-16-le"))
    # One stray NUL inside a cell: only that row is rejected, by its column's rule, quoting the cell.
    inbox_path(warehouse.data_dir, *LE, "reported_crime.csv").write_bytes(
        b"year,month,value\n2023,1,5\n2023,2,1\x002\n2023,3,7\n")
    ingest_beside_good(warehouse, seconds=10)
    assert_refused(warehouse, "use_of_force.csv", "NUL bytes", "UTF-16 without a byte order mark")
    assert outcome(warehouse)["inbox/le/LAW_ENFORCEMENT/reported_crime.csv"][:4] == ("ERRORED", 3, 2, 1)
    finding = findings_of(warehouse, "reported_crime.csv")
    assert finding.select("row_number", "rule", "column_name", "raw_value").rows() == [(3, "R7", "value", "1\x002")]
    assert_good_loaded(warehouse)


@pytest.mark.parametrize("size", [70_000, 10 * 1024 * 1024])
def test_giant_cell_rejects_its_row_only(warehouse, size):
    # 70 kB: a small CSV (stdlib reader); 10 MiB: the Polars reader. Both cut the cell to a bounded note.
    giant = "9" * size
    deliver_csv(warehouse.data_dir, *LE, "reported_crime.csv",
                [["year", "month", "value"], [2023, 1, 5], [2023, 2, giant], [2023, 3, 7]])
    deliver_csv(warehouse.data_dir, *LE, "calls_for_service.csv",
                [["year", "month", "value", "notes"], [2023, 1, 5, "x" * size]])
    ingest_beside_good(warehouse, seconds=15, peak_growth_mib=400)
    files = outcome(warehouse)
    assert files["inbox/le/LAW_ENFORCEMENT/reported_crime.csv"][:4] == ("ERRORED", 3, 2, 1)
    finding = findings_of(warehouse, "reported_crime.csv").row(0, named=True)
    assert (finding["row_number"], finding["rule"], finding["column_name"]) == (3, "R7", "value")
    assert finding["raw_value"].startswith("9" * 60) and f"cell of {size} bytes cut" in finding["raw_value"]
    assert len(finding["raw_value"]) < 200 and len(finding["message"]) < 1000
    assert files["inbox/le/LAW_ENFORCEMENT/calls_for_service.csv"][:4] == ("ERRORED", 1, 0, 1)  # F6 notes
    assert findings_of(warehouse, "calls_for_service.csv")["rule"].to_list() == ["F6"]
    assert_good_loaded(warehouse)


def test_one_long_shared_string_in_thousands_of_cells_is_refused_for_what_it_expands_to(warehouse):
    """A 70 KB workbook whose cells all point at one 60,000-character shared string held 480 MB of cells; the
    ingest's copies and the findings quoting each cell made gigabytes of it, and the feedback ran out of memory."""
    path = inbox_path(warehouse.data_dir, *LE, "funding.xlsx")
    path.parent.mkdir(parents=True, exist_ok=True)
    with xlsxwriter.Workbook(path) as book:
        sheet = book.add_worksheet("funding")
        sheet.write_row(0, 0, ["year", "value"])
        for row in range(1, 2_001):
            sheet.write_row(row, 0, [2020, "9" * 60_000])
    ingest_beside_good(warehouse, seconds=30, peak_growth_mib=400)
    assert_refused(warehouse, "funding.xlsx", "times the file's size", "the same long text repeated in many cells")
    assert_good_loaded(warehouse)


def test_a_stray_far_cell_is_no_text_for_the_expansion_guard(warehouse):
    """Its sheet's box of nulls (150,001 rows x 41 columns) is offsets, not text: the workbook loads."""
    path = inbox_path(warehouse.data_dir, *LE, "reported_crime.xlsx")
    path.parent.mkdir(parents=True, exist_ok=True)
    with xlsxwriter.Workbook(path) as book:
        sheet = book.add_worksheet("reported_crime")
        sheet.write_row(0, 0, ["year", "month", "value"])
        for month in range(1, 13):
            sheet.write_row(month, 0, [2023, month, month])
        sheet.write(150_000, 40, "x")
    warehouse.ingest()
    assert outcome(warehouse)["inbox/le/LAW_ENFORCEMENT/reported_crime.xlsx"][:4] == ("INGESTED", 12, 12, 0)


def test_a_big_csv_with_a_broken_quote_is_read_as_before(warehouse):
    """csv and Polars split a broken quote differently: the widest line csv counts is still too narrow for Polars,
    which then cuts it, as it did before lines longer than the header were read whole."""
    path = inbox_path(warehouse.data_dir, *LE, "reported_crime.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"year,month,value\n" + b"2000,1,10\n" * 120_000 + b'"2023"1",",,,\n')
    warehouse.ingest()
    assert outcome(warehouse)["inbox/le/LAW_ENFORCEMENT/reported_crime.csv"][1] == 120_001


def test_open_regular_refuses_a_folder_with_its_reason_and_keeps_no_descriptor(tmp_path):
    from jc_pipeline.lib.regular_files import open_regular

    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with pytest.raises(OSError, match="not a regular file but a folder"):
            open_regular(tmp_path)
    assert len(os.listdir("/proc/self/fd")) == before


# --- formulas and dates where numbers belong ---------------------------------------------------------------


def test_formula_text_in_a_csv_is_data_never_evaluated(warehouse):
    deliver_csv(warehouse.data_dir, *LE, "reported_crime.csv",
                [["year", "month", "value"], [2023, 1, "=SUM(A1:A3)"], [2023, 2, "@cmd|' /C calc'!A0"],
                 [2023, 3, "+1+1"], [2023, 4, 4]])
    deliver_good(warehouse)
    warehouse.ingest()
    found = findings_of(warehouse, "reported_crime.csv").select("row_number", "rule", "raw_value").rows()
    assert found == [(2, "R7", "=SUM(A1:A3)"), (3, "R7", "@cmd|' /C calc'!A0"), (4, "R7", "+1+1")]
    assert_good_loaded(warehouse)


def test_workbook_formulas_use_the_cached_value_and_dates_are_not_numbers(warehouse):
    path = inbox_path(warehouse.data_dir, *LE, "crime.xlsx")
    with xlsxwriter.Workbook(str(path)) as workbook:
        sheet = workbook.add_worksheet("reported_crime")
        sheet.write_row(0, 0, ["year", "month", "value"])
        sheet.write_row(1, 0, [2023, 1])
        sheet.write_formula(1, 2, "=1+2", None, 3)  # Excel stores the last computed value: 3
        sheet.write_row(2, 0, [2023, 2])
        sheet.write_datetime(2, 2, __import__("datetime").datetime(2023, 1, 5),
                             workbook.add_format({"num_format": "yyyy-mm-dd"}))
        sheet.write_row(3, 0, [2023])
        sheet.write_datetime(3, 1, __import__("datetime").datetime(2023, 3, 1),
                             workbook.add_format({"num_format": "yyyy-mm-dd"}))
        sheet.write(3, 2, 9)
    deliver_good(warehouse)
    warehouse.ingest()
    loaded = warehouse.metrics().filter(pl.col("sheet") == "reported_crime")
    assert loaded.select("row_number", "value").rows() == [(2, 3.0)]  # formula: cached value, never evaluated
    found = findings_of(warehouse, "crime.xlsx").select("row_number", "rule", "column_name", "raw_value").rows()
    assert found == [(3, "R7", "value", "2023-01-05 00:00:00"), (4, "R4", "month", "2023-03-01 00:00:00")]
    assert_good_loaded(warehouse)


# --- paths: symlinks, odd names, agencies not in the roster ------------------------------------------------------


def test_symlinks_are_never_followed(warehouse, tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    deliver_csv(outside, "le", "LAW_ENFORCEMENT", "reported_crime.csv", [["year", "month", "value"], [2023, 1, 99]])
    secret = outside / "inbox" / "le" / "LAW_ENFORCEMENT" / "reported_crime.csv"
    inbox = warehouse.data_dir / "inbox"
    inbox_path(warehouse.data_dir, *LE, "calls_for_service.csv").symlink_to(secret)  # a file link
    (inbox / "le" / "LAW_ENFORCEMENT" / "linked_folder").symlink_to(secret.parent)  # a folder link
    (inbox / "da").symlink_to(outside / "inbox" / "le")  # an agency folder link
    (inbox / "le" / "PROSECUTION").symlink_to(secret.parent)  # a sector folder link
    os.mkfifo(inbox / "le" / "LAW_ENFORCEMENT" / "use_of_force.csv")  # would block a plain open() forever
    monkeypatch.chdir(inbox / "le" / "LAW_ENFORCEMENT")  # a socket's path must be short: bound relative to here
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind("staff.csv")
        ingest_beside_good(warehouse, seconds=10)
    files = outcome(warehouse)
    for path in ("inbox/le/LAW_ENFORCEMENT/calls_for_service.csv", "inbox/le/LAW_ENFORCEMENT/linked_folder",
                 "inbox/da", "inbox/le/PROSECUTION"):
        assert files[path][:4] == ("UNREADABLE", 0, 0, 0) and "symbolic link" in files[path][4], path
    assert files["inbox/le/LAW_ENFORCEMENT/use_of_force.csv"][0] == "UNREADABLE"
    assert "not a regular file" in files["inbox/le/LAW_ENFORCEMENT/use_of_force.csv"][4]
    assert files["inbox/le/LAW_ENFORCEMENT/staff.csv"][:4] == ("UNREADABLE", 0, 0, 0)
    assert "it is a socket, not a file; deliver a plain file" in files["inbox/le/LAW_ENFORCEMENT/staff.csv"][4]
    assert 99.0 not in warehouse.metrics()["value"].to_list()  # the bytes behind the links were never read
    assert_good_loaded(warehouse)


def test_a_withdrawn_unopenable_version_stays_withdrawn_when_its_path_reads_again(warehouse, monkeypatch):
    """helper-56: the path's unopenable versions are retired when it reads again, a withdrawn one too: the next run
    said it was given back, then named the withdrawals.csv row as matching nothing on every run."""
    from jc_pipeline.lib import ingest, pending
    from jc_pipeline.lib.roster import Withdrawal

    folder = warehouse.data_dir / "inbox" / "le" / "LAW_ENFORCEMENT" / "2023"
    folder.mkdir(parents=True)
    monkeypatch.chdir(folder)  # a socket's path must be short: bound relative to here
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind("arrests.csv")
        warehouse.ingest()
    ((path, sha),) = warehouse.con.execute("SELECT path, sha256 FROM source_files").fetchall()
    withdrawn = [Withdrawal(path, sha, "a socket, not a delivery", 2)]
    assert ingest.apply_withdrawals(warehouse.con, withdrawn).withdrawn == 1
    (folder / "arrests.csv").unlink()
    deliver_csv(warehouse.data_dir, *LE, "2023/arrests.csv", [["year", "month", "value"], [2023, 2, 7]])
    assert warehouse.ingest().files_recovered == 1
    assert ingest.apply_withdrawals(warehouse.con, withdrawn) == ingest.WithdrawalChange(0, 0, 0, ())
    assert date(2023, 2, 1) in pending.pending_months(warehouse.con)


def test_file_swapped_for_a_symlink_after_the_scan_is_not_followed(warehouse, tmp_path, monkeypatch):
    from jc_pipeline.lib.ingest import batch, inbox

    outside = tmp_path / "secret.csv"
    outside.write_bytes(csv_bytes([["year", "month", "value"], [2023, 1, 99]]))
    swapped = deliver_csv(warehouse.data_dir, *LE, "reported_crime.csv", [["year", "month", "value"], [2023, 1, 1]])
    deliver_good(warehouse)
    scanned = inbox.scan_inbox(warehouse.data_dir)

    def scan_then_swap(data_dir):
        swapped.unlink()
        swapped.symlink_to(outside)
        return scanned

    monkeypatch.setattr(batch, "scan_inbox", scan_then_swap)
    assert_refused_unread(warehouse, "inbox/le/LAW_ENFORCEMENT/reported_crime.csv", "cannot be opened")


def assert_refused_unread(warehouse, path, reason_says):
    """After an ingest, ``path`` is UNREADABLE for a reason saying ``reason_says``, the 99 outside the data
    directory was never read, and the good file loaded."""
    warehouse.ingest()
    status, *_, reason = outcome(warehouse)[path]
    assert status == "UNREADABLE" and reason_says in reason, reason
    assert 99.0 not in warehouse.metrics()["value"].to_list()
    assert_good_loaded(warehouse)


@pytest.mark.parametrize("when", ["after the scan", "after the hash"])
def test_a_folder_swapped_for_a_symlink_is_not_followed(warehouse, tmp_path, monkeypatch, when):
    """helper-63: O_NOFOLLOW guards a file's own name only; a folder on its path swapped for a symlink, after the
    inbox was listed or after the file was hashed (a big file is opened again to be parsed), led outside the data
    directory, and the files there were quoted in the agency's feedback."""
    from jc_pipeline.lib.ingest import batch, inbox

    secret = tmp_path / "outside" / "2023"
    secret.mkdir(parents=True)
    (secret / "reported_crime.csv").write_bytes(csv_bytes([["year", "month", "value"], [2023, 1, 99]]))
    folder = deliver_csv(warehouse.data_dir, *LE, "2023/reported_crime.csv",
                         [["year", "month", "value"], [2023, 1, 1]]).parent
    deliver_good(warehouse)

    def swap():
        folder.rename(folder.with_name("2023_kept"))
        folder.symlink_to(secret)

    if when == "after the scan":
        scanned = inbox.scan_inbox(warehouse.data_dir)
        monkeypatch.setattr(batch, "scan_inbox", lambda data_dir: swap() or scanned)
    else:
        monkeypatch.setattr(inbox, "IN_MEMORY_LIMIT", 0)  # hashed streaming, read again to be parsed
        hashed = inbox.fingerprint

        def hash_then_swap(file):
            found = hashed(file)
            if file.path.endswith("2023/reported_crime.csv"):
                swap()
            return found

        monkeypatch.setattr(batch, "fingerprint", hash_then_swap)
    assert_refused_unread(warehouse, "inbox/le/LAW_ENFORCEMENT/2023/reported_crime.csv",
                          "a folder on its path is a symbolic link, which is never followed")


def test_a_data_directory_behind_a_symlink_is_read_as_any_other(warehouse, tmp_path):
    """The check above compares a file's real path with the scanned one: the scan resolves the data directory's
    own links (a data directory reached through a link is the state's choice, not an agency's)."""
    from jc_pipeline.lib.ingest import inbox

    deliver_good(warehouse)
    link = tmp_path / "data_link"
    link.symlink_to(warehouse.data_dir)
    files = inbox.scan_inbox(link)
    assert files and all(inbox.fingerprint(file)[1] is not None for file in files)


@pytest.mark.parametrize("name", ["reported_crime.csv", "reported_crime.xlsx", "cad_calls_2023.csv"],
                         ids=["CSV", "workbook", "mapped export"])
def test_a_big_file_swapped_for_a_symlink_after_its_hash_is_not_followed(warehouse, tmp_path, monkeypatch, name):
    """A file too big to keep in memory is hashed, then opened again to be parsed: a symlink put in its place
    between the two was followed, and a file outside the data directory loaded under the hashed file's name."""
    from jc_pipeline.lib.ingest import batch, inbox
    from jc_pipeline_tests.test_mappings_counts import CAD, write_mapping

    write_mapping(warehouse.data_dir, "le", CAD)
    rows = ([["Incident No", "Call Received", "Priority"], ["C1", "2023-01-03 10:00:00", "1"]] if "cad" in name
            else [["year", "month", "value"], [2023, 1, 1]])
    secret = [rows[0], *([f"C{n}", "2023-01-09 10:00:00", "1"] for n in range(99))] if "cad" in name \
        else [rows[0], [2023, 1, 99]]
    outside = tmp_path / f"secret{name[-5:]}"
    if name.endswith(".xlsx"):
        deliver_xlsx(warehouse.data_dir, *LE, name, {"reported_crime": rows})
        outside.write_bytes(small_workbook({"reported_crime": secret}))
    else:
        deliver_csv(warehouse.data_dir, *LE, name, rows)
        outside.write_bytes(csv_bytes(secret))
    deliver_good(warehouse)
    monkeypatch.setattr(inbox, "IN_MEMORY_LIMIT", 0)  # every file is hashed streaming and read again to be parsed
    hashed = inbox.fingerprint

    def hash_then_swap(file):
        found = hashed(file)
        if file.path.endswith(name):
            os.unlink(file.location)
            os.symlink(outside, file.location)
        return found

    monkeypatch.setattr(batch, "fingerprint", hash_then_swap)
    assert_refused_unread(warehouse, f"inbox/le/LAW_ENFORCEMENT/{name}", "")


def test_odd_folder_and_file_names_stay_data(warehouse):
    names = ["O'Brien; DROP TABLE source_files;--", 'say "hi"', "a..b", "%2E%2E%2Fetc", "x;y", "x..\\..\\etc"]
    for name in names:
        deliver_csv(warehouse.data_dir, name, "LAW_ENFORCEMENT", "arrests.csv", GOOD)  # not in the roster: F8
    deliver_csv(warehouse.data_dir, *LE, "2023..2024/reported_crime.csv", GOOD)  # ".." inside a name: fine
    deliver_csv(warehouse.data_dir, *LE, "arrests'; DROP TABLE x;--.csv", GOOD)  # not a sheet name: F3
    deliver_csv(warehouse.data_dir, "nobody", "LAW_ENFORCEMENT", "arrests.csv", GOOD)
    deliver_csv(warehouse.data_dir, "..hidden", "LAW_ENFORCEMENT", "arrests.csv", GOOD)  # a dot name: skipped
    deliver_good(warehouse)
    warehouse.ingest()
    files = outcome(warehouse)
    for name in [*names, "nobody"]:
        path = f"inbox/{name}/LAW_ENFORCEMENT/arrests.csv"
        assert files[path][:4] == ("ERRORED", 2, 0, 2), path
        assert set(findings_of(warehouse, "arrests.csv").join(
            warehouse.table("source_files").filter(pl.col("path") == path).select("file_id"),
            on="file_id")["rule"]) == {"F8"}
    assert files["inbox/le/LAW_ENFORCEMENT/2023..2024/reported_crime.csv"][:4] == ("INGESTED", 2, 2, 0)
    assert files["inbox/le/LAW_ENFORCEMENT/arrests'; DROP TABLE x;--.csv"][:4] == ("ERRORED", 2, 0, 2)
    layout = DataLayout(warehouse.data_dir.resolve())
    for path in files:  # every recorded path names a place inside the data directory
        layout.inside(warehouse.data_dir / path)
    assert len(files) == len(names) + 4 and not any("..hidden" in path for path in files)
    assert_good_loaded(warehouse)


@contextmanager
def nested(root, names: list[str]) -> Iterator[None]:
    """Folders ``names`` one inside the other below ``root``, made one at a time and removed afterwards the same
    way, files in them too (no recursion, which pytest's clean-up of its temporary folders hits, and no call names
    the whole path)."""
    folders = [os.open(root, os.O_RDONLY)]
    for name in names:
        os.mkdir(name, dir_fd=folders[-1])
        folders.append(os.open(name, os.O_RDONLY, dir_fd=folders[-1]))
    try:
        yield
    finally:
        for name in reversed(names):
            folder = folders.pop()
            for entry in os.listdir(folder):
                os.unlink(entry, dir_fd=folder)
            os.close(folder)
            os.rmdir(name, dir_fd=folders[-1])
        os.close(folders.pop())


def test_names_and_folders_the_scan_cannot_take_as_they_are_cost_only_themselves(warehouse):
    """Each made every night's ingest fail without naming a file: a name that is not UTF-8 (Polars and DuckDB
    refused its surrogates), a thousand nested folders (RecursionError), a folder whose path is too long to open."""
    sector = inbox_path(warehouse.data_dir, *LE, "x").parent
    os.makedirs(sector, exist_ok=True)
    (sector / os.fsdecode(b"arrests \xff\xfe.csv")).write_bytes(csv_bytes(GOOD))  # not a sheet name: F3
    (sector / "arrests \\xff\\xfe.csv").write_bytes(csv_bytes(GOOD))  # the same text, spelled out: F3 too
    deliver_good(warehouse)
    # The second path is longer than the system lets a call name.
    with nested(sector, ["d"] * 1_100), nested(sector, [f"{n:02d}{'y' * 240}" for n in range(20)]):
        (sector / "/".join(["d"] * 1_100) / "reported_crime.csv").write_bytes(csv_bytes(GOOD))
        warehouse.ingest()
    files = outcome(warehouse)
    assert files["inbox/le/LAW_ENFORCEMENT/arrests \\xff\\xfe.csv"][:4] == ("ERRORED", 2, 0, 2)
    assert files["inbox/le/LAW_ENFORCEMENT/arrests \\xff\\xfe.csv [2]"][:4] == ("ERRORED", 2, 0, 2)
    assert files["inbox/le/LAW_ENFORCEMENT/" + "d/" * 1_100 + "reported_crime.csv"][:4] == ("INGESTED", 2, 2, 0)
    [too_long] = [path for path in files if "yyyy" in path]
    status, *_, reason = files[too_long]
    assert status == "UNREADABLE" and "File name too long; shorten the names of its folders" in reason
    assert_good_loaded(warehouse)


def test_a_file_gone_while_its_folder_is_listed_is_skipped_not_the_folder(warehouse, monkeypatch):
    from jc_pipeline.lib.ingest import inbox

    deliver_csv(warehouse.data_dir, *LE, "reported_crime.csv", GOOD)
    deliver_good(warehouse)
    listed = os.scandir

    class ListingThenDelete:
        """The folder's listing (a context manager and an iterator, as os.scandir's), reported_crime.csv deleted
        once the listing has begun: its entry is read already, its stat fails."""

        def __init__(self, folder):
            self.folder, self.entries = folder, listed(folder)

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self.entries.close()

        def __iter__(self):
            for n, entry in enumerate(self.entries):
                if n == 0 and str(self.folder).endswith("LAW_ENFORCEMENT"):
                    os.unlink(os.path.join(self.folder, "reported_crime.csv"))
                yield entry

    monkeypatch.setattr(inbox.os, "scandir", ListingThenDelete)
    assert [f.path for f in inbox.scan_inbox(warehouse.data_dir)] == ["inbox/le/LAW_ENFORCEMENT/arrests.csv"]
    monkeypatch.undo()
    warehouse.ingest()
    assert list(outcome(warehouse)) == ["inbox/le/LAW_ENFORCEMENT/arrests.csv"]
    assert_good_loaded(warehouse)


_SCAN_AND_OPEN = """
import json, sys
from jc_pipeline.lib.ingest.batch import _unopenable
from jc_pipeline.lib.ingest.inbox import scan_inbox
from jc_pipeline.lib.regular_files import open_regular
found = {}
for f in scan_inbox(sys.argv[1]):
    try:
        open_regular(f.absolute).close()
        found[f.path] = [f.size, None]
    except OSError as exc:
        found[f.path] = [f.size, _unopenable(exc)]
print(json.dumps(found))
"""


def test_a_folder_listed_but_not_searchable_costs_only_its_files(warehouse, tmp_path):
    """helper-48: a folder with read but no search permission (chmod 644, a common slip) is listed, but its entries'
    stat fails: that failed every agency's ingest for the night. Its files are recorded unreadable, with the fix."""
    import json
    import shutil
    import subprocess
    import sys

    deliver_good(warehouse)
    folder = inbox_path(warehouse.data_dir, *LE, "x").parent / "2024"
    folder.mkdir()
    (folder / "reported_crime.csv").write_bytes(csv_bytes(GOOD))
    folder.chmod(0o644)
    # As an unprivileged process sees it: root reads through any permission (its DAC override is dropped).
    drop = ([] if os.geteuid() != 0 else ["setpriv", "--bounding-set=-dac_override,-dac_read_search"])
    if drop and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permissions cannot be taken away")
    try:
        done = subprocess.run([*drop, sys.executable, "-c", _SCAN_AND_OPEN, str(warehouse.data_dir)],
                              capture_output=True, text=True, timeout=120, check=False)
    finally:
        folder.chmod(0o755)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    size, why = found["inbox/le/LAW_ENFORCEMENT/2024/reported_crime.csv"]
    assert (size, why) == (0, "the file cannot be opened: Permission denied; check its permissions")
    assert found["inbox/le/LAW_ENFORCEMENT/arrests.csv"][1] is None


def test_cells_without_positions_count_towards_the_limits(warehouse):
    # calamine places a <c> without r="..." after the previous cell: 20,000 of them make a row wider than XFD.
    from jc_pipeline_tests.reliability_support import SHEET_HEAD

    unplaced = SHEET_HEAD + b'<sheetData><row r="1">' + b"<c><v>1</v></c>" * 20_000 + b"</row></sheetData></worksheet>"
    inbox_path(warehouse.data_dir, *LE, "unplaced.xlsx").write_bytes(
        with_sheet_xml(small_workbook({"arrests": [["year"]]}), unplaced))
    ingest_beside_good(warehouse, seconds=10, peak_growth_mib=100)
    assert_refused(warehouse, "unplaced.xlsx", "20,000 columns x")  # rows: every row tag may add one
    assert_good_loaded(warehouse)


def test_thousands_of_duplicate_rows_cost_linear_memory(warehouse):
    """P1 names the colliding rows on each of them: the list is capped, or 20,000 duplicates would need gigabytes."""
    rows = [["year", "month", "value"]] + [[2020, 1, i] for i in range(20_000)]
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", rows)
    with bounded(seconds=60, peak_growth_mib=400):
        report = warehouse.ingest()
    assert (report.rows_loaded, report.rows_rejected) == (0, 20_000)
    findings = findings_of(warehouse, "arrests.csv")
    assert findings["rule"].unique().to_list() == ["P1"]
    message = findings["message"][0]
    assert "row 2, " in message and "and 19995 more rows" in message
