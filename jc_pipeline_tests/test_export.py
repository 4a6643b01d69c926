"""Exports: formula injection neutralized in CSV text cells and marked in XLSX ones (kept exactly there), numbers left
numbers, Parquet exact, only known tables exportable."""

from __future__ import annotations

import csv
import html
import io
import math
import re
import zipfile
from datetime import date, datetime
from decimal import Decimal
from xml.etree import ElementTree

import duckdb
import fastexcel
import polars as pl
import pytest

from jc_pipeline.lib import export
from jc_pipeline_tests.test_state_fixture import build_small_state

#: Text an agency could put into a cell of its upload, each a spreadsheet formula if opened unprotected (after a
#: separator: where a spreadsheet splitting on it starts a new cell), and the text the CSV export writes instead.
HOSTILE = {"=cmd|' /C calc'!A0": "'=cmd|' /C calc'!A0", "+1": "'+1", "-2+3": "'-2+3", "@SUM(A1:A2)": "'@SUM(A1:A2)",
           "\t=1+1": "\t'=1+1", "\r=1+1": "\r'=1+1", " =1+1": " '=1+1", "\n@x": "\n'@x", "12;=1+1": "12;'=1+1",
           "1, -2;=3\t+4": "1, '-2;'=3\t'+4"}
HARMLESS = ["Harlan PD", "'already quoted", "1-2", "a=b", "", "Other - Gifts", "2024-01, 2024-02", "\tindented"]
#: Where a spreadsheet may split a CSV cell, and start a formula in the new one.
_SEPARATORS = re.compile("[,;\t\r\n]")


def _could_run(cell: str) -> bool:
    """Some part of the cell, split where a spreadsheet may split it, starts like a formula."""
    return any(part.lstrip(" \t\r\n").startswith(("=", "+", "-", "@")) for part in _SEPARATORS.split(cell))


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    """The small state, plus hostile text where ingest stores agency input (rejected_rows.raw_value)."""
    con = build_small_state(tmp_path_factory.mktemp("export") / "warehouse.duckdb")
    con.executemany(
        "INSERT INTO rejected_rows VALUES ('f1', 'arrests', ?, 'value', ?, 'R7', 'ERROR', ?)",
        [(i + 2, text, f"'{text}' is not a number") for i, text in enumerate([*HOSTILE, *HARMLESS])],
    )
    yield con
    con.close()


def _frame(con, table):
    """The table as the exports order it, as a Polars frame."""
    return pl.from_arrow(export.sorted_rows(con, table).to_arrow_table())


def test_neutralize():
    for text, expected in HOSTILE.items():
        assert _could_run(text) and export.neutralize(text) == expected and not _could_run(expected)
        assert export.neutralize(expected) == expected  # idempotent
    for text in HARMLESS:
        assert export.neutralize(text) == text


def test_csv_neutralizes_text_and_keeps_numbers(con, tmp_path):
    [path] = export.export_tables(con, tmp_path, tables=["rejected_rows"], fmt="csv")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    raw = [row["raw_value"] for row in rows]
    assert raw[: len(HOSTILE)] == list(HOSTILE.values())  # the same as neutralize: DuckDB runs the same pattern
    assert raw[len(HOSTILE):] == HARMLESS
    assert not any(_could_run(cell) for row in rows for cell in row.values())
    assert [row["row_number"] for row in rows][:2] == ["2", "3"]


def test_negative_numbers_stay_numbers_in_csv_and_xlsx(tmp_path):
    con = duckdb.connect()
    con.execute("CREATE TABLE state_metrics AS SELECT * FROM (VALUES (-5.5, '-5.5', DATE '2024-01-01', ['=x', 'y']))"
                " AS t(value, note, period_start, agencies_missing)")
    [path] = export.export_tables(con, tmp_path, tables=["state_metrics"], fmt="csv")
    assert path.read_text(encoding="utf-8").splitlines() == [
        "value,note,period_start,agencies_missing", "-5.5,'-5.5,2024-01-01,'=x; y"]
    [xlsx] = export.export_tables(con, tmp_path, tables=["state_metrics"], fmt="xlsx")
    sheet = fastexcel.read_excel(str(xlsx)).load_sheet("state_metrics").to_polars()
    assert sheet["value"].to_list() == [-5.5]  # a real number cell (DECIMAL in DuckDB)
    assert sheet["note"].to_list() == ["-5.5"]  # text, kept exactly: a string cell, quote-prefixed
    con.close()


def test_xlsx_neutralizes_text_and_writes_typed_cells(con, tmp_path):
    [path] = export.export_tables(con, tmp_path, tables=["rejected_rows", "state_metrics"], fmt="xlsx")
    reader = fastexcel.read_excel(str(path))
    assert reader.sheet_names == ["rejected_rows", "state_metrics"]
    rejected = reader.load_sheet("rejected_rows", dtypes={"raw_value": "string"}).to_polars()
    assert rejected["raw_value"].to_list() == [*HOSTILE, *HARMLESS]  # kept exactly: string cells never run
    assert rejected["row_number"].dtype == pl.Float64  # numbers are number cells
    metrics = reader.load_sheet("state_metrics").to_polars()
    expected = _frame(con, "state_metrics")
    assert metrics.height == expected.height
    assert metrics["value"].dtype == pl.Float64
    assert math.isclose(metrics["value"].drop_nulls().sum(), expected["value"].drop_nulls().sum())
    assert metrics["period_start"].cast(pl.Date).min() == expected["period_start"].min()
    # The xlsx holds no formula: every cell XML is a value, an inline string or a shared string.
    with zipfile.ZipFile(path) as archive:
        sheets = [archive.read(n).decode() for n in archive.namelist() if n.startswith("xl/worksheets/sheet")]
    assert sheets and not any("<f>" in xml for xml in sheets)
    # Those that look like formulas have Excel's quote-prefix style, so they stay text when a cell is edited.
    styled = re.findall(r'<c r="E\d+" s="4" t="inlineStr"><is><t[^>]*>([^<]*)</t>', sheets[0])  # E: raw_value
    assert sorted(styled) == sorted(html.escape(text, quote=False).replace("\r", "_x000D_") for text in HOSTILE)


def test_workbook_writer_cells_by_type_escaped_filtered_and_well_formed(tmp_path):
    path = tmp_path / "w.xlsx"
    text = ["a < b & c > d", " padded ", "ctrl\x01char", "_x0041_ literal", "=1+1", "x" * 40_000]
    with export.XlsxWorkbook(path) as workbook:
        assert workbook.add_sheet("It's", ("text", "n"), [(t, i) for i, t in enumerate(text)], widths=(20, 8)) == 6
        workbook.add_sheet("Typed", ("day", "moment", "flag", "dec", "nan", "list", "none"),
                           [(date(2024, 2, 29), datetime(2024, 1, 2, 6, 0), True, Decimal("-2.5"), math.nan,
                             ["=x", "y"], None)], autofilter=True)
    reader = fastexcel.read_excel(str(path))
    assert reader.sheet_names == ["It's", "Typed"]
    first = reader.load_sheet("It's", dtypes={"text": "string"}).to_polars()
    assert first["text"].to_list()[:5] == ["a < b & c > d", " padded ", "ctrl\x01char", "_x0041_ literal", "=1+1"]
    assert len(first["text"][5]) == 32_767  # Excel's limit per cell
    assert first["n"].to_list() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    typed = reader.load_sheet("Typed").to_polars().row(0, named=True)
    assert typed["day"] == datetime(2024, 2, 29) and typed["moment"] == datetime(2024, 1, 2, 6, 0)
    assert typed["flag"] is True and typed["dec"] == -2.5 and typed["nan"] is None and typed["list"] == "=x; y"
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    for xml in parts.values():
        ElementTree.fromstring(xml)  # every part is well-formed XML
    assert b'<autoFilter ref="A1:G2"/>' in parts["xl/worksheets/sheet2.xml"]
    assert b"localSheetId=\"1\" hidden=\"1\">'Typed'!$A$1:$G$2</definedName>" in parts["xl/workbook.xml"]
    assert b"<f>" not in parts["xl/worksheets/sheet1.xml"]
    assert b'<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0" quotePrefix="1"/></cellXfs>' in parts[
        "xl/styles.xml"]  # cellXfs 4, the style of text that looks like a formula


def test_workbook_sheets_sharing_a_header_keep_their_own_widths(tmp_path):
    path = tmp_path / "w.xlsx"
    with export.XlsxWorkbook(path) as workbook:
        workbook.add_sheet("a", ("x", "y"), [(1, "=z")], widths=(5, 6))
        workbook.add_sheet("b", ("x", "y"), [(2, "w")], widths=(7, 8))
        workbook.add_sheet("c", ("x", "y"), [])
    with zipfile.ZipFile(path) as archive:
        sheets = [archive.read(f"xl/worksheets/sheet{i}.xml").decode() for i in (1, 2, 3)]
    assert 'width="5.7109375"' in sheets[0] and 'width="7.7109375"' in sheets[1] and "<cols>" not in sheets[2]
    assert all('<c r="B1" s="1" t="inlineStr"><is><t>y</t></is></c>' in sheet for sheet in sheets)
    assert '<c r="B2" s="4" t="inlineStr"><is><t>=z</t></is></c>' in sheets[0]


def test_workbook_written_into_memory_is_the_one_written_to_a_file(tmp_path):
    def write(target):
        with export.XlsxWorkbook(target) as workbook:
            workbook.add_sheet("a", ("x", "y"), [(1, "=z"), (date(2024, 1, 31), None)], autofilter=True)
    write(tmp_path / "w.xlsx")
    memory = io.BytesIO()
    write(memory)
    assert not memory.closed and memory.getvalue() == (tmp_path / "w.xlsx").read_bytes()


def test_workbook_container_is_the_one_zipfile_writes(tmp_path):
    """The zip is written by hand (export._Zip); the standard library, given the same parts, writes the same bytes.
    A sheet longer than one deflated piece and a part shared by many workbooks (deflated once) included."""
    rows = [(i, f"agency {i % 97}", date(2020, 1 + i % 12, 1), None if i % 3 else "=x") for i in range(20_000)]
    for target in (tmp_path / "a.xlsx", tmp_path / "b.xlsx"):
        with export.XlsxWorkbook(target) as workbook:
            workbook.add_sheet("big", ("n", "name", "day", "t"), rows, autofilter=True)
            workbook.add_sheet("small", ("a",), [("b",)])
    ours = (tmp_path / "b.xlsx").read_bytes()
    assert (tmp_path / "a.xlsx").read_bytes() == ours
    with zipfile.ZipFile(io.BytesIO(ours)) as archive:
        assert archive.testzip() is None  # every part's CRC and size check out
        parts = [(info.filename, archive.read(info)) for info in archive.infolist()]
    assert parts[0][0] == "xl/worksheets/sheet1.xml" and len(parts[0][1]) > 4 * (1 << 16)
    expected = io.BytesIO()
    with zipfile.ZipFile(expected, "w") as archive:
        for name, data in parts:
            entry = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
            entry.compress_type, entry.external_attr = zipfile.ZIP_DEFLATED, 0o600 << 16
            archive.writestr(entry, data, compresslevel=1)
    assert ours == expected.getvalue()


def test_workbook_past_the_zip_limit_is_refused_with_the_way_out(tmp_path):
    match = "over 2 GiB at its part huge.xml; export this table as csv"
    with export.XlsxWorkbook(tmp_path / "w.xlsx") as workbook, pytest.raises(export.ExportError, match=match):
        workbook._zip.add("huge.xml", 0, 1 << 31, b"")


def test_parquet_round_trips_exactly(con, tmp_path):
    paths = export.export_tables(con, tmp_path, tables=export.DEFAULT_TABLES, fmt="parquet")
    assert [p.name for p in paths] == [f"{t}.parquet" for t in export.DEFAULT_TABLES]
    for table, path in zip(export.DEFAULT_TABLES, paths, strict=True):
        assert pl.read_parquet(path).equals(_frame(con, table)), table
    [raw] = export.export_tables(con, tmp_path, tables=["rejected_rows"], fmt="parquet")
    assert pl.read_parquet(raw)["raw_value"].to_list()[0] == next(iter(HOSTILE))  # data kept exactly, not quoted


def test_every_exportable_table_exports_every_row(con, tmp_path):
    """agency_metrics and the other tables beyond the default export too, every row and column, in every format."""
    counts = {table: con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0] for table in export.EXPORTABLE}
    assert counts["agency_metrics"] > 0 and counts["state_metric_inputs"] == counts["agency_metrics"]
    for path in export.export_tables(con, tmp_path, tables=export.EXPORTABLE, fmt="csv"):
        table = path.stem
        frame = pl.read_csv(path, infer_schema=False)
        assert (frame.height, frame.columns) == (counts[table], con.table(table).columns), table
    for path in export.export_tables(con, tmp_path, tables=export.EXPORTABLE, fmt="parquet"):
        assert pl.read_parquet(path).equals(_frame(con, path.stem)), path.stem
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{table}.{fmt}" for table in export.EXPORTABLE for fmt in ("csv", "parquet"))


def test_a_large_table_is_exported_sorted(tmp_path):
    """Sorted on every column at any size: with the spreadsheet projection over the sort, DuckDB's CSV writer put
    rows out of order from ~200,000 rows on (34 breaks at 200,000, 415 at 2M)."""
    con = duckdb.connect()
    con.execute("CREATE TABLE state_metrics AS SELECT (hash(range) % 1000)::INTEGER AS n, "
                "'x' || hash(range * 7) % 100000 AS t FROM range(300000)")
    expected = pl.from_arrow(con.table("state_metrics").to_arrow_table()).sort(pl.all())
    [csv_path] = export.export_tables(con, tmp_path, tables=["state_metrics"], fmt="csv")
    assert pl.read_csv(csv_path, schema=expected.schema).equals(expected)
    [parquet_path] = export.export_tables(con, tmp_path, tables=["state_metrics"], fmt="parquet")
    assert pl.read_parquet(parquet_path).equals(expected)
    con.close()


def test_a_failed_export_leaves_the_earlier_one(tmp_path):
    """Each file is written under a temporary name: a table that fails halfway (here a view that raises at its
    500th row) leaves the last good export byte for byte, and no partial file."""
    con = duckdb.connect()
    con.execute("CREATE TABLE state_metrics AS SELECT range AS i, 'agency ' || range AS name FROM range(1000)")
    earlier = {fmt: export.export_tables(con, tmp_path, tables=["state_metrics"], fmt=fmt)[0] for fmt in export.FORMATS}
    kept = {path: path.read_bytes() for path in earlier.values()}
    con.execute("ALTER TABLE state_metrics RENAME TO good")
    con.execute("CREATE VIEW state_metrics AS SELECT CASE WHEN i = 500 THEN error('the warehouse broke') ELSE i END "
                "AS i, name FROM good")
    for fmt in export.FORMATS:
        with pytest.raises(duckdb.Error, match="the warehouse broke"):
            export.export_tables(con, tmp_path, tables=["state_metrics"], fmt=fmt)
    assert {path: path.read_bytes() for path in tmp_path.iterdir()} == kept
    con.close()


def test_xlsx_refuses_a_table_longer_than_a_worksheet(tmp_path):
    con = duckdb.connect()
    con.execute("CREATE TABLE agencies AS SELECT 'a' AS agency_id")
    con.execute(f"CREATE VIEW agency_metrics AS SELECT range AS value FROM range({export.XLSX_MAX_ROWS - 1})")
    [path] = export.export_tables(con, tmp_path, tables=["agencies", "agency_metrics"], fmt="xlsx")
    assert fastexcel.read_excel(str(path)).load_sheet("agency_metrics").height == export.XLSX_MAX_ROWS - 1
    written = path.read_bytes()
    con.execute(f"CREATE OR REPLACE VIEW agency_metrics AS SELECT range AS value FROM range({export.XLSX_MAX_ROWS})")
    refused = r"agency_metrics has more than 1,048,575 rows; export it as csv or parquet"
    with pytest.raises(export.ExportError, match=refused):
        export.export_tables(con, tmp_path, tables=["agencies", "agency_metrics"], fmt="xlsx")
    assert [p.name for p in tmp_path.iterdir()] == [export.XLSX_WORKBOOK] and path.read_bytes() == written
    con.close()


def test_a_table_named_twice_is_exported_once(con, tmp_path):
    """Excel calls a workbook with two sheets of one name damaged."""
    [path] = export.export_tables(con, tmp_path, tables=["agencies", "state_metrics", "agencies"], fmt="xlsx")
    assert fastexcel.read_excel(str(path)).sheet_names == ["agencies", "state_metrics"]
    paths = export.export_tables(con, tmp_path, tables=["agencies", "agencies"], fmt="csv")
    assert paths == [tmp_path / "agencies.csv"]


def test_only_known_tables_and_formats(con, tmp_path):
    with pytest.raises(export.ExportError, match="cannot export 'x; DROP TABLE agencies'"):
        export.export_tables(con, tmp_path, tables=["x; DROP TABLE agencies"])
    with pytest.raises(export.ExportError, match="unknown format"):
        export.export_tables(con, tmp_path, fmt="xls")
    assert con.execute("SELECT count(*) FROM agencies").fetchall()[0][0] > 0


def test_export_command(con, tmp_path, capsys):
    from jc_pipeline import cli

    data = tmp_path / "data"
    data.mkdir()
    with duckdb.connect(str(data / "warehouse.duckdb")) as published:  # a published copy of three tables
        for table in ("state_metrics", "agencies", "agency_metrics"):
            frame = export.sorted_rows(con, table).to_arrow_table()  # noqa: F841 - read by the replacement scan
            published.execute(f"CREATE TABLE {table} AS SELECT * FROM frame")
    assert cli.main(["export", "--data-dir", str(data), "--format", "parquet", "--tables", "state_metrics"]) == 0
    assert pl.read_parquet(data / "exports" / "state_metrics.parquet").equals(_frame(con, "state_metrics"))
    assert cli.main(["export", "--data-dir", str(data), "--tables", "agency_metrics"]) == 0
    exported = pl.read_csv(data / "exports" / "agency_metrics.csv", infer_schema=False)
    assert exported.height == con.table("agency_metrics").shape[0] > 0
    assert capsys.readouterr().out.split() == [str(data / "exports" / f) for f in ("state_metrics.parquet",
                                                                                  "agency_metrics.csv")]
    assert cli.main(["export", "--data-dir", str(data), "--tables", "agencies; DROP TABLE agencies"]) == 1
    assert "cannot export" in capsys.readouterr().err
