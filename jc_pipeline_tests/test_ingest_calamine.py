"""calamine reads the .xlsx files the guard scanned in this process and every other workbook in a worker process,
whose death (calamine aborts on a box it cannot allocate) costs only that file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jc_pipeline.lib import calamine
from jc_pipeline.lib.ingest import workbook_guard
from jc_pipeline_tests.ingest_support import xls_bytes
from jc_pipeline_tests.reliability_support import far_cells_xls, rewritten_zip, small_workbook

ROWS = [["year", "month", "value"], [2023, 1, 10], [2023, 2, 20.5]]


def legacy_xls() -> bytes:
    return xls_bytes({"arrests": ROWS, "use_of_force": ROWS})


def test_the_worker_reads_what_this_process_reads():
    data = legacy_xls()
    here, there = calamine.sheets(data), calamine.sheets_in_worker(data)
    assert [name for name, _ in there] == ["arrests", "use_of_force"]
    assert all(a[0] == b[0] and a[1].equals(b[1]) for a, b in zip(here, there, strict=True))
    assert there[0][1].column(2).to_pylist() == ["value", "10", "20.5"]


def test_calamine_errors_come_back_from_the_worker_as_errors():
    damaged = workbook_guard.OLE_MAGIC + os.urandom(5000)
    for read in (calamine.sheets, calamine.sheets_in_worker):
        with pytest.raises(calamine.CalamineError):
            read(damaged)


def test_a_dead_worker_costs_only_its_file():
    with pytest.raises(calamine.WorkerDied, match="it ended, usually because the workbook needed more than 4 GiB"):
        calamine.sheets_in_worker(far_cells_xls())
    assert [name for name, _ in calamine.sheets_in_worker(legacy_xls())] == ["arrests", "use_of_force"]


def test_a_worker_killed_while_idle_is_replaced():
    calamine.sheets_in_worker(legacy_xls())
    calamine._worker.kill()
    calamine._worker.wait()
    assert [name for name, _ in calamine.sheets_in_worker(legacy_xls())] == ["arrests", "use_of_force"]


def test_a_workbook_taking_too_long_is_stopped(monkeypatch):
    """The largest .xls box calamine accepts (65,536 x 256 cells) takes it about 2 s; given 0.2 s, the worker is
    stopped, and the next file gets a new one."""
    monkeypatch.setattr(calamine, "WORKER_SECONDS", 0.2)
    with pytest.raises(calamine.WorkerDied, match="it took longer than 0.2 s and was stopped"):
        calamine.sheets_in_worker(far_cells_xls(column=255))
    monkeypatch.undo()
    assert [name for name, _ in calamine.sheets_in_worker(legacy_xls())] == ["arrests", "use_of_force"]


XLSX = small_workbook({"arrests": ROWS})
VERDICTS = {
    "an .xlsx": (XLSX, True),
    "an .xls": (legacy_xls(), False),
    "an .xls header before an .xlsx": (workbook_guard.OLE_MAGIC + bytes(504) + XLSX, False),
    "an .xlsx holding an .ods content.xml": (rewritten_zip(XLSX, parts={"content.xml": b"<office:document/>"}), False),
    "an .xlsx holding an .xlsb workbook.bin": (rewritten_zip(XLSX, parts={"xl/workbook.bin": b"\x83\x01\x00"}), False),
    "a zip without xl/workbook.xml": (rewritten_zip(XLSX, parts={"xl/workbook.xml": None}), False),
}


@pytest.mark.parametrize(("data", "in_process"), VERDICTS.values(), ids=VERDICTS.keys())
def test_only_the_xlsx_files_the_guard_scanned_are_read_in_this_process(data, in_process):
    assert workbook_guard.refuse_hostile_workbook(Path("w.xlsx"), data, data[:8]) is in_process


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
