"""Where things live in the data directory (DESIGN.md §3.1), and how input names stay inside it."""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

DEFAULT_DATA_DIR = "data"


class UnsafePathError(ValueError):
    """An input-derived path would leave the data directory."""


@dataclass(frozen=True)
class DataLayout:
    """The fixed layout of one state's data directory."""

    root: Path

    @classmethod
    def from_env(cls, data_dir: str | os.PathLike[str] | None = None) -> DataLayout:
        """`data_dir`, else `$JC_DATA_DIR`, else `./data`, made absolute once so no later step depends on the cwd."""
        chosen = data_dir or os.environ.get("JC_DATA_DIR") or DEFAULT_DATA_DIR
        return cls(Path(chosen).expanduser().resolve())

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def roster(self) -> Path:
        return self.root / "agencies.csv"

    @property
    def warehouse(self) -> Path:
        """The published analyst warehouse; replaced atomically, never written in place."""
        return self.root / "warehouse.duckdb"

    @property
    def store(self) -> Path:
        """The pipeline's working database (single writer, behind a file lock)."""
        return self.root / "pipeline" / "store.duckdb"

    @property
    def inbox_sensor(self) -> Path:
        """Where the inbox sensor keeps what it saw of each file: one file per cursor, which the tick names."""
        return self.root / "pipeline" / "inbox_sensor"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def dagster_home(self) -> Path:
        return self.root / "pipeline" / "dagster_home"

    def inside(self, candidate: Path) -> Path:
        """`candidate` resolved, or UnsafePathError when it (or a symlink on the way) points outside the root."""
        resolved = candidate.resolve()
        if not resolved.is_relative_to(self.root):
            raise UnsafePathError(f"{candidate} resolves to {resolved}, outside the data directory {self.root}")
        return resolved


def replace_file(path: Path, content: str | bytes | memoryview, *, durable: bool = False) -> None:
    """Write ``content`` (text as UTF-8) beside ``path`` and rename it over ``path``: a reader (a browser, a web
    server, the next run) sees the old file or the new one, never half of one, also when the run is killed.
    ``durable``: the file is flushed to disk before the rename and its folder after it, so that a record made
    next (a commit naming the file) never outlives the file in a power cut."""
    # Plain os calls on str paths: the feedback writes two files per agency on every run (6,000 at 3,000 agencies).
    target = os.fspath(path)
    partial = f"{target}.partial"
    try:
        with open(partial, "wb") as handle:
            handle.write(content.encode("utf-8") if isinstance(content, str) else content)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise
    if durable:
        fsync(Path(target).parent)


#: The lock every writer of a report folder holds (hidden, in the folder), and how long a writer waits for it.
WRITE_LOCK = ".write.lock"
WRITE_LOCK_SECONDS = 600.0


@contextlib.contextmanager
def folder_lock(folder: Path, timeout: float = WRITE_LOCK_SECONDS) -> Iterator[None]:
    """Hold ``folder``'s write lock (waiting for it), creating the folder. Writers of what the published warehouse
    says (the publish steps, the `report`, `feedback` and `export` commands) take it before they open the
    warehouse, so a folder is written from one warehouse at a time and the last writer has read the latest: a slow
    writer of an older warehouse no longer overwrites a newer one's files, nor do two writers share a file's
    ``.partial`` or ``.tmp``. The lock is the system's (``flock``): a killed holder releases it; one stopped or
    stuck is named after ``timeout`` seconds, as the store's lock is."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(os.fspath(folder / WRITE_LOCK), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise TimeoutError(
            f"{folder} has been written by another process for {timeout:.0f} s (it holds {folder / WRITE_LOCK}): a "
            f"`jc-pipeline report`, `feedback` or `export`, or a run's publish, stopped (Ctrl-Z) or stuck; let it "
            f"finish or stop it, then run this again") from None
    try:
        yield
    finally:
        lock.release()


def fsync(path: Path) -> None:
    """Flush a file or directory to disk, so that a crash after a rename never leaves an empty file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileWriter:
    """Files written by :func:`replace_file` on one background thread, in the order given, while the caller goes
    on computing the next ones: the reports write thousands of small files per run, and creating and renaming a
    file waits on the file system (0.06-0.6 ms each on this machine, the most while other writes are flushed)
    outside the GIL.

    ``with FileWriter() as writer: writer.write(path, content)``; leaving the block waits for every file and raises
    the first write error, if any (later files are then not written). When the block itself raises, files not
    yet written are dropped. At most ``pending`` files wait in memory.
    """

    def __init__(self, pending: int = 64) -> None:
        self._queue: queue.Queue[tuple[Path, str | bytes | memoryview] | None] = queue.Queue(maxsize=pending)
        self._error: BaseException | None = None
        self._dropping = False
        self._thread = threading.Thread(target=self._run, name="jc-file-writer", daemon=True)

    def __enter__(self) -> FileWriter:
        self._thread.start()
        return self

    def write(self, path: Path, content: str | bytes | memoryview) -> None:
        """Queue ``replace_file(path, content)``; raise at once if an earlier write failed."""
        if self._error is not None:
            raise self._error
        self._queue.put((path, content))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None and not self._dropping:
                try:
                    replace_file(*item)
                except BaseException as error:  # handed to the caller's thread, raised there
                    self._error = error

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._dropping = exc_type is not None
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and exc_type is None:
            raise self._error
