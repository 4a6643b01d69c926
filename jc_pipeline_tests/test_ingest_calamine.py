"""calamine reads every workbook in a worker process, ahead of the caller; a worker's death (calamine aborts on a
box it cannot allocate) or a workbook taking too long costs only that file, and the files sent after it are read
by a new worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from jc_pipeline.lib import calamine
from jc_pipeline.lib.ingest import readers, workbook_guard
from jc_pipeline.lib.ingest.rows import RowCollector
from jc_pipeline.lib.ingest.unreadable import Unreadable
from jc_pipeline_tests.ingest_support import cells_below_header, xls_bytes
from jc_pipeline_tests.reliability_support import far_cells_xls, far_cells_xml, small_workbook, with_sheet_xml

ROWS = [["year", "month", "value"], [2023, 1, 10], [2023, 2, 20.5]]


def legacy_xls() -> bytes:
    return xls_bytes({"arrests": ROWS, "use_of_force": ROWS})


def workbooks() -> dict[str, bytes]:
    """Sheets of several widths, an empty sheet and a sheet whose data starts below blank rows, in both formats."""
    sheets = {"arrests": ROWS, "empty": [], "narrow": [["year"], [2023]], "wide": [[None] * 4, ["a", "b", "c", "d"]]}
    return {"xls": xls_bytes(sheets), "xlsx": small_workbook(sheets)}


@pytest.mark.parametrize("kind", ["xls", "xlsx"])
def test_the_worker_reads_what_this_process_reads(kind):
    data = workbooks()[kind]
    here, there = calamine.sheets(data), calamine.sheets_in_worker(data)
    assert [name for name, _ in there] == [name for name, _ in here] == ["arrests", "empty", "narrow", "wide"]
    for (_, a), (_, b) in zip(here, there, strict=True):
        assert (b.num_rows, b.num_columns) == (a.num_rows, a.num_columns)
        assert [c.to_pylist() for c in b.columns] == [c.to_pylist() for c in a.columns]
    assert there[0][1].column(2).to_pylist() == ["value", "10", "20.5"]


def test_calamine_errors_come_back_from_the_worker_as_errors():
    damaged = workbook_guard.OLE_MAGIC + os.urandom(5000)
    for read in (calamine.sheets, calamine.sheets_in_worker):
        with pytest.raises(calamine.CalamineError):
            read(damaged)


def names(read: list) -> list[str]:
    return [name for name, _ in read]


def test_a_dead_worker_costs_only_its_file():
    with pytest.raises(calamine.WorkerDied, match="it ended, usually because the workbook needed more than 4 GiB"):
        calamine.sheets_in_worker(far_cells_xls())
    assert names(calamine.sheets_in_worker(legacy_xls())) == ["arrests", "use_of_force"]


def test_the_workbooks_sent_after_one_that_killed_the_worker_are_read_by_a_new_one():
    with calamine.WorkbookReader() as reader:
        tickets = [reader.submit(data) for data in (legacy_xls(), far_cells_xls(), legacy_xls(), workbooks()["xlsx"])]
        assert names(reader.result(tickets[0])) == ["arrests", "use_of_force"]
        with pytest.raises(calamine.WorkerDied, match="needed more than 4 GiB"):
            reader.result(tickets[1])
        assert names(reader.result(tickets[2])) == ["arrests", "use_of_force"]
        assert names(reader.result(tickets[3])) == ["arrests", "empty", "narrow", "wide"]


def test_results_skipped_are_dropped_and_cannot_be_taken_later():
    with calamine.WorkbookReader() as reader:
        first, second = reader.submit(legacy_xls()), reader.submit(workbooks()["xls"])
        assert names(reader.result(second)) == ["arrests", "empty", "narrow", "wide"]
        with pytest.raises(ValueError, match=f"ticket {first} was taken already or never given"):
            reader.result(first)


def test_a_worker_killed_while_idle_is_replaced():
    calamine.sheets_in_worker(legacy_xls())
    calamine._shared._worker.kill()
    calamine._shared._worker.wait()
    assert names(calamine.sheets_in_worker(legacy_xls())) == ["arrests", "use_of_force"]


def test_a_worker_killed_from_outside_costs_the_workbook_nothing(tmp_path):
    """helper-49: a worker the kernel's OOM killer (or an operator) killed made a good workbook UNREADABLE for good,
    its content unchanged so never read again. It is read once more, in a new worker."""
    with calamine.WorkbookReader() as reader:
        pending = readers.PendingWorkbook(tmp_path / "arrests.xls", legacy_xls(), reader)
        reader._worker.kill()  # still starting: it cannot have answered
        assert [sheet.name for sheet in pending.sheets()] == ["arrests", "use_of_force"]
    with calamine.WorkbookReader() as reader:  # a workbook that kills every worker is still refused
        pending = readers.PendingWorkbook(tmp_path / "far.xls", far_cells_xls(), reader)
        with pytest.raises(Unreadable, match="the spreadsheet reader stopped on this workbook"):
            pending.sheets()


def test_the_worker_keeps_a_lower_address_space_limit_it_is_given(tmp_path):
    """helper-49: under a hard limit below 4 GiB (ulimit -v, systemd's LimitAS=), raising the worker's to 4 GiB
    failed as it started, and every workbook of the night was recorded as one the reader stopped on."""
    workbook = tmp_path / "arrests.xls"
    workbook.write_bytes(legacy_xls())
    limited = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 * 1024**3, 3 * 1024**3)); "
               "from jc_pipeline.lib import calamine; "
               "print([name for name, _ in calamine.sheets_in_worker(sys.argv[1])])")
    done = subprocess.run([sys.executable, "-c", limited, str(workbook)], capture_output=True, text=True,
                          timeout=120, check=False, cwd=Path(__file__).resolve().parents[1])
    assert done.stdout.strip() == "['arrests', 'use_of_force']", done.stderr


def test_a_workbook_taking_too_long_is_stopped(monkeypatch):
    """The largest .xls box calamine accepts (65,536 x 256 cells) takes it about 2 s; given 0.2 s, the worker is
    stopped, and the next file gets a new one."""
    monkeypatch.setattr(calamine, "WORKER_SECONDS", 0.2)
    with calamine.WorkbookReader() as reader:
        slow, after = reader.submit(far_cells_xls(column=255)), reader.submit(legacy_xls())
        with pytest.raises(calamine.WorkerDied, match="it took longer than 0.2 s and was stopped"):
            reader.result(slow)
        monkeypatch.undo()
        assert names(reader.result(after)) == ["arrests", "use_of_force"]


def test_an_xlsx_the_guard_let_through_cannot_abort_this_process(monkeypatch, tmp_path):
    """Every workbook is read in the worker, .xlsx included: should the guard miss a box calamine cannot allocate,
    only that file is refused."""
    monkeypatch.setattr(readers, "screen_workbook", lambda path, data, head: False)
    far = with_sheet_xml(small_workbook({"arrests": [["year"]]}), far_cells_xml("XFD1048576"))
    with pytest.raises(Unreadable, match="the spreadsheet reader stopped on this workbook"):
        readers.read_file(tmp_path / "far.xlsx", far, "far.xlsx")
    assert [sheet.name for sheet in readers.read_file(tmp_path / "ok.xlsx", small_workbook({"arrests": ROWS}),
                                                      "ok.xlsx")] == ["arrests"]


def test_a_script_without_a_main_guard_is_not_run_again_by_the_worker(tmp_path):
    """multiprocessing's workers import the parent's __main__ again: an analyst's unguarded script read its inbox
    a second time inside the worker (and the worker then failed). Ours runs only the reader."""
    (tmp_path / "legacy.xls").write_bytes(legacy_xls())
    script = tmp_path / "read_legacy.py"
    script.write_text(
        "from pathlib import Path\n"
        "from jc_pipeline.lib import calamine\n"
        "here = Path(__file__).parent\n"
        "with open(here / 'runs.txt', 'a') as runs:\n"
        "    runs.write('run\\n')\n"
        "print([name for name, _ in calamine.sheets_in_worker((here / 'legacy.xls').read_bytes())])\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          cwd=Path(calamine.__file__).parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['arrests', 'use_of_force']"
    assert (tmp_path / "runs.txt").read_text() == "run\n"


def test_a_workbooks_sheets_split_together_are_each_sheet_split_alone():
    """The ingest splits a workbook's sheets into header and body together, on the worker's stacked batch
    (readers._workbook_sheets); every kind of sheet comes out as the split of its own batch does, and as written."""
    long_cell = "€" * 30_000  # 90,000 bytes: cut (MAX_CELL_BYTES)
    sheets = {
        "blank_rows_above": [[None, None], [None, None], ["year", "value"], [2023, 5]],
        "empty": [],
        "first_cell_blank": [["year", "month", "value"], [2023, None, "   "], [2023, 2, "  "], [2023, None, None]],
        "header_only": [["year", "value"]],
        "long": [["year", "value"], [2023, long_cell]],
        "wide_after_narrow": [["a", "b", "c", "d", "e"], [1, 2, 3, 4, 5]],
    }
    workbook = calamine.sheets_in_worker(small_workbook(sheets))
    together = readers._workbook_sheets(workbook)
    alone = [readers._sheet_from_arrow(name, batch) for name, batch in workbook]
    for a, b in zip(together, alone, strict=True):
        assert (a.name, a.header_row, a.header, a.height, a.has_data) == (b.name, b.header_row, b.header, b.height,
                                                                           b.has_data)
        assert cells_below_header(a) == cells_below_header(b)
    by_name = {sheet.name: sheet for sheet in together}
    assert (by_name["blank_rows_above"].header_row, by_name["blank_rows_above"].header) == (3, ("year", "value"))
    assert by_name["empty"].header_row == 0 and by_name["empty"].height == 0
    # month: blank under the header, a value further down; value: only blanks.
    assert by_name["first_cell_blank"].has_data == (True, True, False)
    assert (by_name["header_only"].height, by_name["header_only"].has_data) == (0, (False, False))
    assert cells_below_header(by_name["long"])[1][0].startswith("€" * 60 + "... [cell of 90000 bytes cut")
    assert by_name["wide_after_narrow"].header == ("a", "b", "c", "d", "e")


def test_the_row_frame_holds_each_sheets_own_cells_whatever_batch_they_lie_in():
    """The row collector takes each role of a kind of sheet from all their cells at once: sheets of two workbooks'
    stacked batches (rows below blank rows, narrower and wider sheets), a small CSV's cells and a big CSV's
    (large_string), collected under two kinds. Every row it builds is the sheet's own row as its columns read,
    numbered as the spreadsheet shows it, and a role past a sheet's width is blank (in its cells or past them)."""
    first = calamine.sheets_in_worker(small_workbook({
        "arrests": ROWS, "narrow": [["year"], [2021], [2022]],
        "below_blanks": [[None, None], ["year", "value"], [2020, 7], [2020, 8]],
        "wide": [["year", "value", "x"], [2019, 1, "y"]]}))
    second = calamine.sheets_in_worker(small_workbook({"arrests": [["year", "month", "value"], [2018, 5, 50]]}))
    text = b"year,month,value\n2017,1,3\n2017,2,4\n"
    sheets = [*readers._workbook_sheets(first), *readers._workbook_sheets(second),
              readers.read_file(Path("small.csv"), b"year\n2016\n", "small.csv")[0],  # one column: no value
              readers._read_big_csv(Path("big.csv"), text, "big.csv")]
    assert sheets[-1].cells.column(0).type == pa.large_string()
    collector = RowCollector()
    expected = []
    for index, sheet in enumerate(sheets):
        # Two kinds: year and value where a sheet has them, and year, month, value.
        roles = {"year": 0, "month": 1, "value": 2} if sheet.header[:2] == ("year", "month") else {"year": 0,
                                                                                                   "value": 1}
        collector.add(index, sheet, roles, [2] if sheet.name == "wide" else [])
        own = cells_below_header(sheet)
        for offset, row in enumerate(zip(*own, strict=True)):
            expected.append({"sheet_idx": index, "row_number": sheet.header_row + 1 + offset,
                             **{role: row[j] if j < len(row) else None for role, j in roles.items()},
                             "extra": sheet.name == "wide"})
    built = collector.build().select("sheet_idx", "row_number", "year", "month", "value", "extra")
    got = sorted(built.to_dicts(), key=lambda row: (row["sheet_idx"], row["row_number"]))
    assert got == [{"month": None, **row} for row in expected]
    narrow, small = 1, len(sheets) - 2  # without a value column: in the stacked batch, and in cells of their own
    assert [row["value"] for row in got if row["sheet_idx"] in (narrow, small)] == [None, None, None]
