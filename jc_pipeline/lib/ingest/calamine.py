"""Reading workbooks with calamine (fastexcel): in this process, or in a worker process when the file is not an
.xlsx the workbook guard has scanned.

calamine allocates every cell of a sheet's bounding box at once and **aborts the process** when that fails. The
guard (:mod:`workbook_guard`) bounds the box of .xlsx files from their XML before calamine reads them. calamine
opens other formats too, whatever the file's name: .xls (BIFF; a 6 KB .xls with a cell at column 16,384 of row
65,536 asked for 32 GiB and aborted the run), .xlsb and .ods. Those are read by calamine in a worker process
whose address space is capped at :data:`WORKER_ADDRESS_SPACE`: when it dies, the file is refused with a reason
(:class:`Unreadable`) and the next one is read by a new worker. They are rare (legacy exports), so the worker's
start (about half a second, once per process) and one round trip per file are cheap.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import fastexcel
import pyarrow as pa

from jc_pipeline.lib.ingest.unreadable import Unreadable

#: The worker's address space: a legitimate .xls (at most 65,536 rows x 256 columns) needs well under 1 GiB.
WORKER_ADDRESS_SPACE = 4 * 1024**3

_lock = threading.Lock()
_worker: ProcessPoolExecutor | None = None


class CalamineError(Exception):
    """calamine could not read the workbook (damaged, encrypted, not a workbook); the message is calamine's."""


def sheets(source: bytes | str) -> list[tuple[str, pa.RecordBatch]]:
    """Every sheet of the workbook (its bytes, or its path) in order, cells as text, read in this process.

    Raises :class:`CalamineError` when calamine cannot read it."""
    try:
        reader = fastexcel.read_excel(source)
        # header_row=None + skip_rows=0 keeps leading blank rows, so row numbers match the spreadsheet;
        # eager: calamine's Arrow batch as is (a Polars frame per sheet cost more than calamine's read).
        return [(name, reader.load_sheet(name, header_row=None, skip_rows=0, dtypes="string", eager=True))
                for name in reader.sheet_names]
    except Exception as exc:  # calamine raises several exception types for damaged files
        raise CalamineError(str(exc)) from exc


def sheets_in_worker(source: bytes | str) -> list[tuple[str, pa.RecordBatch]]:
    """:func:`sheets` read in the worker process (started on first use, again after it died).

    Raises :class:`CalamineError` as :func:`sheets` does, and :class:`Unreadable` when the worker died reading
    the file."""
    global _worker
    with _lock:  # one file at a time: the worker reads one, and a death must be told apart from the next file's
        if _worker is None:
            _worker = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                          initializer=_confine)
        try:
            return _worker.submit(sheets, source).result()
        except BrokenProcessPool:
            _worker.shutdown(wait=False)
            _worker = None
    raise Unreadable(f"the spreadsheet reader stopped on this workbook (it needed more than "
                     f"{WORKER_ADDRESS_SPACE // 1024**3} GiB, usually for cells far outside the data); delete the "
                     f"rows and columns after the data (Ctrl+End shows the last cell), save it as .xlsx and deliver "
                     f"it again")


def _confine() -> None:
    """The worker's set-up: its address space capped, and calamine's dying words (a Rust backtrace) kept out of
    the pipeline's log, which gets the reason instead."""
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_ADDRESS_SPACE, WORKER_ADDRESS_SPACE))
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
