"""Reading workbooks with calamine (fastexcel): in this process, or in a worker process when the file is not an
.xlsx the workbook guard has scanned.

calamine allocates every cell of a sheet's bounding box at once and **aborts the process** when that fails. The
guard (:mod:`jc_pipeline.lib.ingest.workbook_guard`) bounds the box of .xlsx files from their XML before calamine
reads them. calamine opens other formats too, whatever the file's name: .xls (BIFF; a 6 KB .xls with a cell at
column 16,384 of row 65,536 asked for 32 GiB and aborted the run), .xlsb and .ods. Those are read by calamine in
a worker process whose address space is capped at :data:`WORKER_ADDRESS_SPACE`. When it dies, or has not
answered within :data:`WORKER_SECONDS`, :class:`WorkerDied` says so and the next file is read by a new worker.
Such files are rare (legacy exports), so the worker's start (once per process) and one round trip per file are
cheap.

The worker is ``python -m jc_pipeline.lib.calamine``, speaking length-prefixed pickles on its stdin and stdout
(a request: bytes or a path; a reply: the sheets or calamine's error). Not :mod:`multiprocessing`: its workers
import the parent's ``__main__`` again, which re-ran a caller's unguarded script inside the worker.
"""

from __future__ import annotations

import os
import pickle
import resource
import select
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import BinaryIO

import fastexcel
import pyarrow as pa

#: The worker's address space: a legitimate .xls (at most 65,536 rows x 256 columns) needs well under 1 GiB.
WORKER_ADDRESS_SPACE = 4 * 1024**3
#: The longest a workbook may take in the worker (the largest legitimate .xls box reads in about 2 s).
WORKER_SECONDS = 300.0

_LENGTH = struct.Struct("<Q")
_lock = threading.Lock()
_worker: subprocess.Popen | None = None


class CalamineError(Exception):
    """calamine could not read the workbook (damaged, encrypted, not a workbook); the message is calamine's."""


class WorkerDied(Exception):
    """The worker process died reading the workbook (calamine aborted, usually on a box it could not allocate), or
    took too long and was stopped; the message says which."""


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

    Raises :class:`CalamineError` as :func:`sheets` does, and :class:`WorkerDied`."""
    global _worker
    with _lock:  # one file at a time: a death must be told apart from the next file's
        if _worker is None or _worker.poll() is not None:
            _worker = _start()
        try:
            _send(_worker.stdin, source)
            if not select.select([_worker.stdout], [], [], WORKER_SECONDS)[0]:
                raise TimeoutError(f"it took longer than {WORKER_SECONDS:g} s and was stopped")
            ok, reply = _receive(_worker.stdout)
        except (OSError, EOFError) as exc:  # TimeoutError is an OSError
            _worker.kill()
            _worker.wait()
            _worker = None
            raise WorkerDied(str(exc)) from exc
    if not ok:
        raise CalamineError(reply)
    return reply


def _start() -> subprocess.Popen:
    # The worker imports this module by name: from wherever this process imported it.
    package_root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    return subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": path})


def _send(pipe: BinaryIO, message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.write(_LENGTH.pack(len(data)))
    pipe.write(data)
    pipe.flush()


def _receive(pipe: BinaryIO) -> object:
    head = pipe.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError(f"it ended, usually because the workbook needed more than "
                       f"{WORKER_ADDRESS_SPACE // 1024**3} GiB (cells far outside the data)")
    (length,) = _LENGTH.unpack(head)
    data = pipe.read(length)
    if len(data) < length:
        raise EOFError("it ended in the middle of its reply")
    return pickle.loads(data)  # noqa: S301 - our own worker's reply


def _serve() -> None:
    """The worker: capped address space; calamine's dying words (a Rust backtrace) go to /dev/null (the
    parent's log gets a reason instead), and so does anything printed, which would garble the replies; one
    workbook per request until stdin closes."""
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_ADDRESS_SPACE, WORKER_ADDRESS_SPACE))
    requests, replies = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    while True:
        try:
            source = _receive(requests)
        except EOFError:
            return
        try:
            _send(replies, (True, sheets(source)))
        except CalamineError as exc:
            _send(replies, (False, str(exc)))


if __name__ == "__main__":
    _serve()
