"""Unit-level ingest tests: readers, grouped CSV parsing, category table, rule catalogue and its documentation."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jc_pipeline.lib import ingest
from jc_pipeline.lib.ingest import readers, workbook_guard
from jc_pipeline.lib.ingest.categories import AMBIGUOUS, category_lookup, label_key
from jc_pipeline.lib.ingest.csv_groups import parse_group, plain_csv
from jc_pipeline.lib.registry import Dimension, Member
from jc_pipeline_tests.ingest_support import (
    NOW,
    Warehouse,
    assert_accounting,
    cells_below_header,
    deliver_csv,
    deliver_xlsx,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "rules.md"

cell = st.text(alphabet="ab 1,;-\t", max_size=5)
line = st.lists(cell, min_size=0, max_size=5).map(lambda cells: ",".join(c.replace(",", "") for c in cells))


@settings(max_examples=100, deadline=None)
@given(lines=st.lists(st.text(alphabet="ab1,;\t", max_size=12), max_size=8), separator=st.sampled_from(",;\t"),
       end=st.sampled_from(["\n", "\r\n"]), trailing=st.booleans())
def test_the_widest_line_without_quotes_is_counted_as_the_csv_module_counts_it(lines, separator, end, trailing):
    """A big CSV with a line longer than its header is read as wide as its widest line: counted by numpy when the
    file has no quote character, by the csv module otherwise (helper-34 #10: 8 s of 11 for 95 MiB). Lone carriage
    returns are line ends made plain before (_read_big_csv)."""
    data = (end.join(lines) + (end if trailing else "")).encode()
    expected = readers._width(io.StringIO(data.decode(), newline=""), separator)
    assert readers._widest_line(data, separator) == expected


@settings(max_examples=60, deadline=None)
@given(header=st.lists(st.sampled_from(["year", "month", "value", " x "]), min_size=1, max_size=4),
       body=st.lists(line, max_size=8), crlf=st.booleans(), trailing=st.booleans())
def test_grouped_csv_parsing_equals_reading_each_file(header, body, crlf, trailing):
    """The fast path for plain CSVs yields the same cells as the per-file reader (blank cells aside)."""
    end = "\r\n" if crlf else "\n"
    data = (end.join([",".join(header), *body]) + (end if trailing else "")).encode()
    plain = plain_csv(data)
    if plain is None:
        return  # e.g. a header with more ';' than ','
    parsed = parse_group([plain, plain])
    if parsed is None:
        return  # the parser disagreed with the line count: the caller reads such files one by one
    frame, counts = parsed
    alone = readers.read_file(Path("arrests.csv"), data, "arrests.csv")[0]
    width = len(header)

    def normalized(rows):
        return [tuple(c.strip() or None if c is not None else None for c in row) for row in rows]

    expected = list(zip(*cells_below_header(alone)[:width], strict=True))
    expected = [row + (None,) * (width - len(row)) for row in expected]
    got = frame.rows()[:counts[0]]
    # The grouped path drops trailing blank lines; they are blank rows either way.
    while expected and all(c is None or not c.strip() for c in expected[-1]):
        expected.pop()
    while got and all(c is None or not c.strip() for c in got[-1]):
        got.pop()
    assert counts[0] == counts[1] and frame.height == 2 * counts[0]
    assert normalized(got) == normalized(expected)
    assert alone.header_row == 1 and tuple(alone.header[:width]) == plain.header_cells


def test_plain_csv_eligibility():
    assert plain_csv(b"year,value\n2023,1\n") is not None
    assert plain_csv(b"\xef\xbb\xbfyear,value\r\n2023,1\r\n").header == b"year,value"
    assert plain_csv(b'year,value\n2023,"1,000"\n') is None  # quotes: read alone
    assert plain_csv(b"year;value\n2023;1\n") is None  # another delimiter
    assert plain_csv(b"\nyear,value\n2023,1\n") is None  # header not on line 1
    assert plain_csv(b"year,value\r2023,1\r") is None  # old Mac line ends
    assert plain_csv("year,value\n2023,caf\xe9\n".encode("cp1252")) is None  # not UTF-8
    assert plain_csv(b",,\r\nyear,month,value\r\n2023,1,5\r\n") is None  # an empty first row (Excel's ",,")


ODD_LAYOUTS = {
    "an empty first row": ",,\r\nyear,month,value\r\n{rows}",
    "a blank first line": "\nyear,month,value\n{rows}",
    "blank lines and a row of empty cells first": "\n \n,,,,\nyear,month,value\n{rows}",
    "old Mac line ends": "year,month,value\r{rows}",
    "semicolons after an empty row": ";;\nyear;month;value\n{rows}",
}


@pytest.mark.parametrize("layout", ODD_LAYOUTS)
def test_big_and_small_csv_readers_find_the_same_header_and_rows(layout, monkeypatch):
    """CSVs over SMALL_CSV_BYTES are read by Polars, smaller ones by the csv module: both take the first row with
    a non-blank cell as the header, keep every row below it, and number the rows alike."""
    template = ODD_LAYOUTS[layout]
    separator = ";" if "semicolons" in layout else ","
    line_end = "\r" if "Mac" in layout else "\r\n" if "\r\n" in template else "\n"
    rows = "".join(f"2023{separator}{m}{separator}{100 + m}{line_end}" for m in range(1, 13))
    data = template.format(rows=rows).encode()
    small = readers.read_file(Path("arrests.csv"), data, "arrests")[0]
    monkeypatch.setattr(readers, "SMALL_CSV_BYTES", 10)  # the same bytes through the Polars reader
    big = readers.read_file(Path("arrests.csv"), data, "arrests")[0]
    for sheet in (small, big):
        assert tuple(sheet.header[:3]) == ("year", "month", "value"), layout
        assert sheet.header_row == data.decode().replace("\r\n", "\n").replace("\r", "\n").split("\n").index(
            f"year{separator}month{separator}value") + 1
        assert cells_below_header(sheet)[2] == [str(100 + m) for m in range(1, 13)]
    assert big.header_row == small.header_row


def test_every_row_of_a_csv_after_an_empty_row_loads(tmp_path, monkeypatch):
    """A CSV saved from a sheet whose first row is empty starts with ",,": its rows load, numbered as the sheet
    shows them, whether the file is small (grouped, or read alone) or big (Polars)."""
    w = Warehouse(tmp_path)
    body = "".join(f"2023,{m},{100 + m}\r\n" for m in range(1, 13))
    for name in ("arrests.csv", "reported_crime.csv"):
        deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", name, []).write_bytes(
            f",,\r\nyear,month,value\r\n{body}".encode())
    monkeypatch.setattr(readers, "SMALL_CSV_BYTES", 300)  # reported_crime.csv padded past it: the Polars reader
    path = w.data_dir / "inbox" / "le" / "LAW_ENFORCEMENT" / "reported_crime.csv"
    path.write_bytes(path.read_bytes() + b"\r\n" * 200)
    w.ingest()
    assert_accounting(w)
    files = w.table("source_files").select("path", "rows_total", "rows_loaded").sort("path").rows()
    assert [(Path(p).name, total, loaded) for p, total, loaded in files] == [
        ("arrests.csv", 12, 12), ("reported_crime.csv", 12, 12)]
    lineage = w.table("staged").filter(pl.col("metric_key").str.ends_with("ARRESTS")).sort("row_number")
    assert lineage["row_number"].to_list()[:2] == [3, 4]  # the header on row 2, January on row 3


def test_semicolon_cp1252_and_big_csvs(tmp_path, monkeypatch):
    w = Warehouse(tmp_path)
    path = deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", [])
    path.write_bytes("year;month;value\r\n2023;1;5\r\n2023;févr;6\r\n".encode("cp1252"))
    monkeypatch.setattr(readers, "SMALL_CSV_BYTES", 10)  # force the Polars reader for bigger files
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "reported_crime.csv",
                [["year", "month", "value"], *([2023, m, '1,000'] for m in range(1, 13))])
    w.ingest()
    assert_accounting(w)
    rejected = w.table("rejected_rows").select("row_number", "rule", "raw_value").rows()
    assert rejected == [(3, "R3", "févr")]
    assert w.metrics().filter(pl.col("metric_key").str.ends_with("CRIME"))["value"].to_list() == [1000.0] * 12


@pytest.mark.parametrize("small_csv_bytes", [1024, 10], ids=["small", "big"])
def test_a_number_that_means_another_in_european_excel_is_rejected_in_a_semicolon_csv(tmp_path, monkeypatch,
                                                                                      small_csv_bytes):
    """helper-35: Excel in a language with a decimal comma writes CSVs with semicolons and 1.250 for 1250; read
    as a point, that was 1.25 in the state numbers, without a word. One group of three digits after a point or a
    comma is rejected there, with the fix; other numbers load, and a comma-separated file keeps "1,250" = 1250."""
    w = Warehouse(tmp_path)
    path = deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", [])
    path.write_bytes(b"year;month;value\r\n2023;1;1.250\r\n2023;2;1,250\r\n2023;3;1250\r\n2023;4;12.5\r\n"
                     b"2023;5;-1.250\r\n2023;6;0.125\r\n")
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "reported_crime.csv",
                [["year", "month", "value"], [2023, 1, "1,250"], [2023, 2, "1.250"]])
    monkeypatch.setattr(readers, "SMALL_CSV_BYTES", small_csv_bytes)
    w.ingest()
    assert_accounting(w)
    rejected = w.table("rejected_rows").sort("row_number").select(
        "sheet", "row_number", "column_name", "raw_value", "rule", "message").rows()
    assert [r[:5] for r in rejected] == [("arrests.csv", 2, "value", "1.250", "R7"),
                                         ("arrests.csv", 3, "value", "1,250", "R7"),
                                         ("arrests.csv", 6, "value", "-1.250", "R7")]
    assert rejected[0][5] == (
        "Ambiguous 'value' '1.250' in a file separated by semicolons: where Excel writes CSVs with semicolons, "
        "'1.250' means a number in the thousands, elsewhere a decimal; write it without a thousands separator "
        "(1250 or 1.25)")
    values = w.metrics().sort("metric_key", "period_start").select("metric_key", "value").rows()
    assert values == [("LAW_ENFORCEMENT_ARRESTS", 1250.0), ("LAW_ENFORCEMENT_ARRESTS", 12.5),
                      ("LAW_ENFORCEMENT_ARRESTS", 0.125),
                      ("LAW_ENFORCEMENT_REPORTED_CRIME", 1250.0), ("LAW_ENFORCEMENT_REPORTED_CRIME", 1.25)]


@pytest.mark.parametrize("small_csv_bytes", [1024, 10], ids=["small", "big"])
def test_utf8_with_a_stray_byte_stays_utf8(tmp_path, monkeypatch, small_csv_bytes):
    """One Windows-1252 byte in a UTF-8 file: only its own cell is garbled, not every accented cell of the file
    (read as Windows-1252, the UTF-8 "févr" was quoted back to the agency as "fÃ©vr")."""
    w = Warehouse(tmp_path)
    path = deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", [])
    path.write_bytes("year;month;value\r\n2023;1;5\r\n2023;févr;6\r\n".encode() + b"2023;f\xe9vr;7\r\n")
    monkeypatch.setattr(readers, "SMALL_CSV_BYTES", small_csv_bytes)
    w.ingest()
    assert_accounting(w)
    rejected = w.table("rejected_rows").sort("row_number").select("row_number", "rule", "raw_value").rows()
    assert rejected == [(3, "R3", "févr"), (4, "R3", "f\ufffdvr")]


@pytest.mark.parametrize("small_csv_bytes", [1024, 10], ids=["small", "big"])
def test_windows_1252_with_pairs_that_look_like_utf8_stays_windows_1252(tmp_path, monkeypatch, small_csv_bytes):
    """helper-31: "é»" and "é" before a non-breaking space begin UTF-8 sequences; the file is still Windows-1252."""
    w = Warehouse(tmp_path)
    path = deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", [])
    text = "year;month;value;note\r\n2023;1;5;Activité\xa0: «Libéré»\r\n2023;2;6;É»\r\n"
    path.write_bytes(text.encode("cp1252"))
    monkeypatch.setattr(readers, "SMALL_CSV_BYTES", small_csv_bytes)
    w.ingest()
    # The unexpected column (F6) quotes each row's own cell, as written.
    assert w.table("rejected_rows").sort("row_number").select("rule", "raw_value").rows() == [
        ("F6", "Activité\xa0: «Libéré»"), ("F6", "É»")]


def test_workbook_sheets_and_big_csvs_of_one_layout_load_together(tmp_path, monkeypatch):
    """A workbook sheet (Arrow string cells) and a CSV read by Polars (large_string cells) with the same columns
    are collected as one kind of sheet: every row of both loads."""
    w = Warehouse(tmp_path)
    header = ["year", "month", "value"]
    deliver_xlsx(w.data_dir, "le", "LAW_ENFORCEMENT", "upload.xlsx",
                 {"arrests": [header, *([2023, m, m] for m in range(1, 13))]})
    monkeypatch.setattr(readers, "SMALL_CSV_BYTES", 10)  # force the Polars reader
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv",
                [header, *([2022, m, "1,000"] for m in range(1, 13))])
    w.ingest()
    assert_accounting(w)
    assert w.table("source_files")["rows_loaded"].sum() == 24
    arrests = w.metrics().filter(pl.col("metric_key") == "LAW_ENFORCEMENT_ARRESTS").sort("period_start")
    assert arrests["value"].to_list() == [1000.0] * 12 + [float(m) for m in range(1, 13)]


def test_workbook_expanding_too_far_is_refused(tmp_path, monkeypatch):
    w = Warehouse(tmp_path)
    deliver_xlsx(w.data_dir, "le", "LAW_ENFORCEMENT", "big.xlsx", {"arrests": [["year", "month", "value"]]})
    monkeypatch.setattr(workbook_guard, "MAX_UNCOMPRESSED_BYTES", 1000)
    w.ingest()
    (reason,) = w.table("source_files")["reason"].to_list()
    assert "expands to" in reason and "split it" in reason


def test_progress_and_timezone_aware_now(tmp_path):
    w = Warehouse(tmp_path)
    for name in ("arrests.csv", "reported_crime.csv"):
        deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", name, [["year", "month", "value"], [2023, 1, 1]])
    seen = []
    batch = ingest.parse_inbox(w.data_dir, {}, w.roster, w.registry,
                               now=datetime(2024, 6, 1, 12, tzinfo=UTC), progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 2), (2, 2)]
    assert batch.files["ingested_at"].unique().to_list() == [datetime(2024, 6, 1, 12)]


def test_label_key_normalizes_case_punctuation_and_plurals():
    frame = pl.DataFrame({"label": ["  Felonies ", "Non-Emergency Calls", "Race/Ethnicity", "Misdemeanors"]})
    assert frame.select(label_key(pl.col("label"))).to_series().to_list() == [
        "felony", "non emergency call", "race ethnicity", "misdemeanor"]


def test_ambiguous_labels_are_never_guessed():
    dimension = Dimension("test/type", "TestType", (Member("JAIL", "Jail Sentences"),
                                                    Member("JAILS", "Jail Sentence"),
                                                    Member("OTHER", "Other Sentences")))
    lookup = category_lookup(SimpleNamespace(dimensions={"test/type": dimension}))
    row = lookup.filter(pl.col("key") == "jail sentence").row(0, named=True)
    assert row["outcome"] == AMBIGUOUS and row["member"] is None
    assert row["note"] == "'Jail Sentences', 'Jail Sentence'"
    # a short form shared by no other member still matches
    assert lookup.filter(pl.col("key") == "other")["member"].to_list() == ["OTHER"]


def test_rules_are_documented():
    documented = dict(re.findall(r"^\| (\w+) \| (ERROR|WARNING) \|", DOCS.read_text(), flags=re.MULTILINE))
    assert documented == {code: rule.severity for code, rule in ingest.RULES.items()}


def test_every_rule_has_an_actionable_fix():
    for rule in ingest.RULES.values():
        assert rule.severity in ("ERROR", "WARNING") and rule.title and rule.fix.endswith(".")


@pytest.mark.parametrize("now", [NOW])
def test_empty_inbox_gives_an_empty_batch(tmp_path, now):
    w = Warehouse(tmp_path)
    report = ingest.write_batch(w.con, w.parse(now))
    assert (report.files_new, report.rows_total, report.touched_months) == (0, 0, [])
