"""Worker processes of our own: ``python -m <module>`` on pipes, speaking length-prefixed pickles.

Three workers use it: calamine's (:mod:`jc_pipeline.lib.calamine`: a workbook that kills calamine kills only its
worker), Great Expectations' (:mod:`jc_pipeline.lib.validation.gx_worker`: its import and its pandas work on the
other core, outside this process's GIL) and the agency feedback's (:mod:`jc_pipeline.lib.feedback`: thousands of
workbooks and pages written on both cores). Not :mod:`multiprocessing`: its children import the parent's
``__main__`` again, which re-ran a caller's unguarded script inside the child.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import select
import struct
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

_LENGTH = struct.Struct("<Q")
#: The pipes are widened to this (Linux; where it cannot be, the default 64 KiB only means less read-ahead).
_PIPE_BYTES = 1 << 20


def start(module: str) -> subprocess.Popen:
    """``python -m module`` with binary pipes on its stdin and stdout (its stderr to /dev/null: a worker's words
    reach the parent in its replies), importing this package from wherever this process did."""
    package_root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    child = subprocess.Popen([sys.executable, "-m", module], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": path})
    for pipe in (child.stdin, child.stdout):
        with contextlib.suppress(AttributeError, OSError):  # F_SETPIPE_SZ: Linux only, capped by pipe-max-size
            fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    return child


def reply(child: subprocess.Popen, seconds: float, *, late: str, ended: str) -> object:
    """The worker's next reply, waited for at most ``seconds``: TimeoutError(``late``) after that, EOFError
    (``ended``) when the worker ended before it."""
    if not ready(child, seconds):
        raise TimeoutError(late)
    return receive(child.stdout.raw, ended)


def ready(child: subprocess.Popen, seconds: float = 0) -> bool:
    """Whether the worker has written (a reply, or its end) within ``seconds``; 0: already."""
    # Unbuffered: select() must see the reply's bytes, which a buffered read could have taken in already.
    return bool(select.select([child.stdout.raw], [], [], seconds)[0])


def stop(child: subprocess.Popen) -> None:
    """Kill the worker, reap it and close its pipes."""
    child.kill()
    child.wait()
    for pipe in (child.stdin, child.stdout):
        with contextlib.suppress(OSError):  # closing flushes into a pipe the dead worker no longer reads
            pipe.close()


def serving_pipes() -> tuple[BinaryIO, BinaryIO]:
    """In a worker: (requests, replies). Anything the worker prints goes to stderr, where it cannot garble a
    reply."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    return sys.stdin.buffer, replies


def send(pipe: BinaryIO, message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.write(_LENGTH.pack(len(data)))
    pipe.write(data)
    pipe.flush()


def receive(pipe: BinaryIO, ended: str = "it ended") -> object:
    """The next message; EOFError when there is none (``ended`` when the stream ended between messages)."""
    head = _read(pipe, _LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError(ended)
    (length,) = _LENGTH.unpack(head)
    data = _read(pipe, length)
    if len(data) < length:
        raise EOFError("it ended in the middle of its reply")
    return pickle.loads(data)  # noqa: S301 - our own process's message


def _read(pipe: BinaryIO, size: int) -> memoryview:
    """``size`` bytes, or fewer at the end of the stream; from an unbuffered pipe too (its reads return what
    has arrived)."""
    buffer = memoryview(bytearray(size))
    got = 0
    while got < size and (count := pipe.readinto(buffer[got:])):
        got += count
    return buffer[:got]
