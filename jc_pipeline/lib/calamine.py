"""Reading workbooks with calamine (fastexcel) in a worker process, ahead of the caller.

calamine allocates every cell of a sheet's bounding box at once and **aborts the process** when that fails; it
has no time limit either. The workbook guard (:mod:`jc_pipeline.lib.ingest.workbook_guard`) refuses the hostile
.xlsx files it can recognize, with reasons an agency can act on (a small one's once calamine failed on it), but
calamine opens other formats too, whatever the file's name (.xls: a 6 KB .xls with a cell at column 16,384 of
row 65,536 asked for 32 GiB and aborted the run; .xlsb, .ods). So every workbook is read in a worker process
whose address space is capped at
:data:`WORKER_ADDRESS_SPACE`: when it dies, or has not answered within :data:`WORKER_SECONDS`,
:class:`WorkerDied` says so for that file and the next files are read by a new worker.

The worker also takes calamine off the caller's core: a :class:`WorkbookReader` hands it the next workbooks while
the caller is still turning the previous ones into rows (a thread sends the requests, so the caller never blocks
on a full pipe). Each reply is one Arrow IPC stream per workbook, its sheets stacked into one batch, which costs a
fraction of pickling each sheet's batch (1,500 bench workbooks: 0.30 s to write and 0.12 s to read back, against
0.42 s and 0.28 s).

The worker is ``python -m jc_pipeline.lib.calamine``, speaking length-prefixed pickles on its stdin and stdout
(a request: bytes or a path; a reply: the workbook or calamine's error) through :mod:`jc_pipeline.lib.child_process`.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import resource
import subprocess
import threading
from collections import deque
from collections.abc import Sequence
from typing import BinaryIO

import fastexcel
import pyarrow as pa

from jc_pipeline.lib.child_process import receive, reply, send, serving_pipes, start
from jc_pipeline.lib.regular_files import open_regular

#: The worker's address space: a legitimate .xls (at most 65,536 rows x 256 columns) needs well under 1 GiB.
WORKER_ADDRESS_SPACE = 4 * 1024**3
#: The longest a workbook may take in the worker (the largest legitimate .xls box reads in about 2 s).
WORKER_SECONDS = 300.0

_ENDED = (f"it ended, usually because the workbook needed more than {WORKER_ADDRESS_SPACE // 1024**3} GiB (cells "
          f"far outside the data)")
_Sheets = list[tuple[str, pa.RecordBatch]]
#: (name, rows, columns) of each sheet of a workbook, in order.
Shape = list[tuple[str, int, int]]


class Workbook(Sequence[tuple[str, pa.RecordBatch]]):
    """A workbook's sheets as the worker sends them: ``shape`` (name, rows, columns) of each sheet, in order, and
    ``stacked``, their cells in one batch, each sheet below the one before and padded with nulls to the widest
    (None when no sheet has a column); ``starts[i]`` is the first row of sheet i in it. Also a sequence of
    (name, batch) per sheet, as :func:`sheets` reads them; a caller that handles the sheets together (the ingest:
    a state's 200,000 sheets) reads ``stacked`` instead, which spares an Arrow slice per sheet."""

    def __init__(self, shape: Shape, stacked: pa.RecordBatch | None) -> None:
        self.shape, self.stacked = shape, stacked
        self.starts = list(itertools.accumulate((rows for _, rows, _ in shape), initial=0))[:-1]

    def __len__(self) -> int:
        return len(self.shape)

    def __getitem__(self, index: int) -> tuple[str, pa.RecordBatch]:  # by position only, never a slice
        name, rows, columns = self.shape[index]
        if self.stacked is None:
            return name, pa.RecordBatch.from_pylist([])
        return name, self.stacked.slice(self.starts[index], rows).select(range(columns))


class CalamineError(Exception):
    """calamine could not read the workbook (damaged, encrypted, not a workbook); the message is calamine's."""


class WorkerDied(Exception):
    """The worker process died reading the workbook (calamine aborted, usually on a box it could not allocate), or
    took too long and was stopped; the message says which."""


def sheets(source: bytes | str) -> _Sheets:
    """Every sheet of the workbook (its bytes, or its path) in order, cells as text, read in this process (the
    worker's reading; a workbook that makes calamine abort takes this process with it).

    Raises :class:`CalamineError` when calamine cannot read it."""
    try:
        if isinstance(source, str):  # read as itself: a big delivery swapped for a symlink since its hash is refused
            with open_regular(source) as handle:
                source = handle.read()
        reader = fastexcel.read_excel(source)
        return [(name, _cells(reader, name)) for name in reader.sheet_names]
    except Exception as exc:  # calamine raises several exception types for damaged files
        raise CalamineError(str(exc)) from exc


def _cells(reader: fastexcel.ExcelReader, name: str) -> pa.RecordBatch:
    """The sheet's cells from its cell A1 on, as text in calamine's Arrow batch (a Polars frame per sheet cost more
    than calamine's read)."""
    # header_row=None + skip_rows=0 keeps the blank rows above the first cell, so row numbers match the
    # spreadsheet's; the blank columns before it calamine leaves out, so they are put back, or a column's letter
    # would not be the spreadsheet's (helper-60: F9 sent an agency to column D, its values, for a note in E).
    sheet = reader.load_sheet(name, header_row=None, skip_rows=0, dtypes="string")
    batch, columns = sheet.to_arrow(), sheet.available_columns()
    blank = columns[0].absolute_index if columns else 0
    if not blank:
        return batch
    return pa.RecordBatch.from_arrays([pa.nulls(batch.num_rows, pa.string())] * blank + batch.columns,
                                      names=[f"__BLANK__{j}" for j in range(blank)] + batch.schema.names)


class WorkbookReader:
    """Reads workbooks in a worker process, ahead of the caller: :meth:`submit` hands one over, :meth:`result`
    waits for its sheets. For one thread; results are taken in the order submitted (one skipped is dropped).
    :meth:`close` (or leaving a ``with`` block) stops the worker."""

    def __init__(self) -> None:
        self._worker: subprocess.Popen | None = None
        self._requests: queue.SimpleQueue | None = None
        self._in_flight: deque[tuple[int, bytes | str]] = deque()  # sent to the worker, not answered yet
        self._tickets = 0

    def __enter__(self) -> WorkbookReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def submit(self, source: bytes | str) -> int:
        """Hand the workbook (its bytes, or its path) to the worker; returns its ticket for :meth:`result`."""
        if self._worker is None or (not self._in_flight and self._worker.poll() is not None):
            self._restart()  # first use, or the worker died while idle: no file of ours is to blame
        ticket = self._tickets
        self._tickets += 1
        self._in_flight.append((ticket, source))
        self._requests.put(source)
        return ticket

    def result(self, ticket: int) -> Workbook:
        """The sheets of the workbook of ``ticket``, as :func:`sheets` reads them; results of earlier tickets not
        taken yet are dropped. Raises :class:`CalamineError` as :func:`sheets` does, and :class:`WorkerDied`."""
        if not self._in_flight or ticket < self._in_flight[0][0]:
            raise ValueError(f"ticket {ticket} was taken already or never given")
        while True:
            oldest, _ = self._in_flight[0]
            try:
                ok, answer = reply(self._worker, WORKER_SECONDS,
                                   late=f"it took longer than {WORKER_SECONDS:g} s and was stopped", ended=_ENDED)
            except (OSError, EOFError) as exc:  # TimeoutError is an OSError
                # The worker reads one workbook at a time, in order: the oldest unanswered one stopped it.
                self._in_flight.popleft()
                self._restart()
                if oldest == ticket:
                    raise WorkerDied(str(exc)) from exc
                continue
            self._in_flight.popleft()
            if oldest == ticket:
                if not ok:
                    raise CalamineError(answer)
                return _decode(answer)

    def close(self) -> None:
        """Stop the worker (the workbooks not taken yet are dropped)."""
        self._stop()
        self._in_flight.clear()

    def _restart(self) -> None:
        """A new worker, sent the workbooks still waiting for an answer."""
        self._stop()
        self._worker = start(__name__)
        self._requests = queue.SimpleQueue()
        threading.Thread(target=_send_all, args=(self._requests, self._worker.stdin), daemon=True,
                         name="calamine-requests").start()
        for _, source in self._in_flight:
            self._requests.put(source)

    def _stop(self) -> None:
        # Not child_process.stop, which closes stdin too: the request thread owns stdin and closes it on the None
        # (closed from here, a request still queued before the None would raise ValueError there, not OSError).
        if self._worker is None:
            return
        self._requests.put(None)
        self._worker.kill()
        self._worker.wait()
        self._worker.stdout.close()
        self._worker = None


_shared: WorkbookReader | None = None
_shared_lock = threading.Lock()


def sheets_in_worker(source: bytes | str) -> Workbook:
    """:func:`sheets` read in a worker process shared by the callers of this function, one workbook at a time.

    Raises :class:`CalamineError` as :func:`sheets` does, and :class:`WorkerDied`."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = WorkbookReader()
        return _shared.result(_shared.submit(source))


def _send_all(requests: queue.SimpleQueue, pipe: BinaryIO) -> None:
    """The request thread of one worker: sends what ``requests`` holds until None, or until the worker is gone
    (the reader then finds it dead when it waits for the answer); closes the pipe either way."""
    with contextlib.suppress(OSError):  # a worker gone: closing flushes into a broken pipe, and still closes it
        try:
            while (source := requests.get()) is not None:
                send(pipe, source)
        finally:
            pipe.close()


def _serve() -> None:
    """The worker: capped address space; calamine's dying words (a Rust backtrace) go to /dev/null (the
    parent's log gets a reason instead), and so does anything printed, which would garble the replies; one
    workbook per request until stdin closes."""
    # Never above the limits it was given (helper-49: under a lower hard limit, setting 4 GiB failed, and every
    # workbook of the night was recorded as one the reader stopped on).
    given = [limit for limit in resource.getrlimit(resource.RLIMIT_AS) if limit != resource.RLIM_INFINITY]
    cap = min([WORKER_ADDRESS_SPACE, *given])
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    requests, replies = serving_pipes()
    while True:
        try:
            source = receive(requests)
        except EOFError:
            return
        try:
            answer = (True, _encode(sheets(source)))
        except (CalamineError, pa.ArrowException) as exc:  # Arrow: text too long for one stacked column
            answer = (False, str(exc))
        send(replies, answer)


def _encode(read: _Sheets) -> tuple[Shape, bytes | None]:
    """(name, rows, columns) of each sheet, and one Arrow IPC stream of the sheets stacked (padded with nulls to
    the widest); None when no sheet has a column."""
    shape = [(name, batch.num_rows, batch.num_columns) for name, batch in read]
    width = max((columns for _, _, columns in shape), default=0)
    if width == 0:
        return shape, None
    stacked = pa.RecordBatch.from_arrays(
        [pa.concat_arrays([_text(batch, j) for _, batch in read]) for j in range(width)],
        names=[str(j) for j in range(width)])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, stacked.schema) as stream:
        stream.write_batch(stacked)
    return shape, sink.getvalue().to_pybytes()


def _text(batch: pa.RecordBatch, j: int) -> pa.Array:
    if j >= batch.num_columns:
        return pa.nulls(batch.num_rows, pa.string())
    column = batch.column(j)
    return column if column.type == pa.string() else column.cast(pa.string())


def _decode(answer: tuple[Shape, bytes | None]) -> Workbook:
    shape, stream = answer
    return Workbook(shape, None if stream is None else pa.ipc.open_stream(stream).read_next_batch())


if __name__ == "__main__":
    _serve()
