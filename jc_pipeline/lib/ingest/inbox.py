"""Finding delivered files in ``<data_dir>/inbox/<agency_id>/<SECTOR>/`` and fingerprinting them.

Decisions:

* Everything below a sector folder belongs to that agency and sector, sub-folders included (agencies sort their
  deliveries by year).
* Names starting with ``.`` (hidden files, partial uploads of rsync/sftp) or ``~$`` (Office lock files) are not
  deliveries and are skipped, as are hidden folders; so are names ending like an upload or download still in
  progress (``.filepart`` of WinSCP, ``.part``, ``.partial``, ``.crdownload``, ``.download``, ``.tmp``), which the
  client renames once the file is whole. Recorded, such a file stayed UNREADABLE on the agency's feedback after its
  upload ended. So are what operating systems and file shares put in folders (:data:`_SKIPPED_NAMES`: Windows'
  ``Thumbs.db`` and ``desktop.ini``, macOS's ``Icon\r``, Synology's ``@eaDir``, recycle bins and snapshots) and a
  Windows download's ``:Zone.Identifier`` copied by WSL: each was an F1 or F8 on the agency's feedback for good
  (helper-48).
* A client that writes the final name directly cannot be told apart from a finished file by its name, only by its
  modification time: the runs nobody watches (the nightly schedule, the inbox sensor, ``jc-pipeline run --settle``
  from cron) leave a file modified in the last :data:`SETTLE_SECONDS` for the next run (:func:`still_arriving`),
  where a half-written ``april.csv`` was read, counted and published that night. A run started by hand reads
  everything: whoever starts it has just put the files there.
* Symbolic links are never followed, file or folder: they are reported (as unreadable) so nobody wonders why
  the data did not arrive, but the bytes behind them are never read. Files are opened with ``O_NOFOLLOW``, so
  a file swapped for a symlink between the scan and the read is refused too (``ELOOP``).
* Only regular files are read: a FIFO, socket or device in the inbox is refused when opened (a FIFO would
  otherwise block the run forever); it is opened non-blocking and checked with ``fstat``.
* Names are data: a folder called ``O'Brien; --`` or ``a..b`` is just a name (``..`` itself cannot be a
  directory entry, and names starting with ``.`` are skipped), so every path stays below ``inbox/``. A name that
  is not UTF-8 is recorded with ``\\xff`` escapes (:func:`text_name`) and opened by its real name; should it then
  read as another file's name, it is numbered (``[2]``).
* The folders are walked in a loop (a thousand nested ones made a RecursionError of the night). A folder that
  cannot be listed (its path too long, no permission) is recorded as an unreadable file with the reason; a file
  gone between the listing and its stat is no longer delivered.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from jc_pipeline.lib.regular_files import open_regular

INBOX = "inbox"
#: Files up to this size are read into memory once (hash + parse); bigger ones are hashed and parsed streaming.
IN_MEMORY_LIMIT = 16 * 1024 * 1024
_SKIPPED_PREFIXES = (".", "~$")
_SKIPPED_SUFFIXES = (".filepart", ".part", ".partial", ".crdownload", ".download", ".tmp", ":zone.identifier")
#: Files and folders (compared case-insensitively) that systems and shares write beside the deliveries.
_SKIPPED_NAMES = frozenset({"thumbs.db", "desktop.ini", "icon\r", "@eadir", "#recycle", "$recycle.bin",
                            "#snapshot", "system volume information"})
#: The version recorded for a delivered path that cannot be opened (or listed): this prefix, then the errno.
UNOPENABLE = "unopenable:"
#: How long a file must have stood unmodified before an unattended run reads it: an upload still writing touches
#: it every few seconds; two minutes is far longer than a stalled network write keeps its connection quiet.
SETTLE_SECONDS = 120


class InboxFile(NamedTuple):
    """One delivered file. ``agency_id``/``sector`` are the folder names (None when the file is not deep enough).

    ``mtime_ns``/``ctime_ns`` are the entry's own (``lstat``) times; ``size`` is 0 for a symlink. A tuple, with
    ``absolute`` and ``received_at`` derived on use: a state's 32,000 files are mostly only compared by stat, and
    a Path, a datetime and a dataclass per file cost as much Python as the scan's system calls."""

    path: str
    location: str
    agency_id: str | None
    sector: str | None
    size: int
    mtime: float
    mtime_ns: int
    ctime_ns: int
    is_symlink: bool

    @property
    def absolute(self) -> Path:
        return Path(self.location)

    @property
    def name(self) -> str:
        """The file's name as text (:func:`text_name`), as its ``path`` ends."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def received_at(self) -> datetime:
        return datetime.fromtimestamp(self.mtime, UTC).replace(tzinfo=None)

    @property
    def signature(self) -> tuple[int, int, int]:
        """(size, mtime_ns, ctime_ns): what :func:`store.file_stats` remembers of the file as last hashed."""
        return self.size, self.mtime_ns, self.ctime_ns


def scan_inbox(data_dir: Path) -> list[InboxFile]:
    """Every delivered file under ``data_dir/inbox``, sorted by relative path; symlinks listed, never followed.
    Locations are real paths (the data directory's own links resolved), as :func:`open_regular` checks them."""
    root = Path(data_dir)
    found: list[InboxFile] = []
    if (root / INBOX).is_dir():
        _scan(os.path.realpath(root / INBOX), found)
    found.sort(key=lambda f: f.path)
    return _distinct_paths(found)


def _distinct_paths(found: list[InboxFile]) -> list[InboxFile]:
    """``found`` (sorted by path) with each path once: a name that is not UTF-8 escapes to text another file's
    name may spell (``calls\\xff.csv``), and the escaped one is then numbered, ``calls\\xff.csv [2]``, rather
    than the two taken for one file."""
    paths = {file.path for file in found}
    if len(paths) == len(found):
        return found
    distinct, taken = [], set()
    # The real names decide which of a pair keeps the path, the same every run.
    for file in sorted(found, key=lambda f: (f.path, os.fsencode(f.location))):
        path, n = file.path, 1
        while path in taken or (path != file.path and path in paths):
            n += 1
            path = f"{file.path} [{n}]"
        taken.add(path)
        distinct.append(file._replace(path=path))
    return sorted(distinct, key=lambda f: f.path)


def _scan(inbox: str, found: list[InboxFile]) -> None:
    # A loop, not recursion: a thousand nested folders made a RecursionError of every night's run.
    folders: list[tuple[str, str, int, tuple[str | None, str | None]]] = [(inbox, INBOX, 1, (None, None))]
    while folders:
        folder, relative, depth, owner = folders.pop()
        agency, sector = owner if depth > 2 else (None, None)
        try:
            # os.scandir entries carry their type, so the only system call per file is its lstat.
            entries = os.scandir(folder)
        except OSError:
            # A folder that cannot be listed (its path too long, no permission) is listed itself: opening it
            # fails with the same reason, which its entry in source_files and the agency's feedback then give.
            found.append(InboxFile(relative, folder, agency, sector, 0, 0.0, 0, 0, False))
            continue
        with entries:
            for entry in entries:
                name = text_name(entry.name)
                if _skipped_name(name):
                    continue
                here = f"{relative}/{name}"
                try:
                    if entry.is_dir(follow_symlinks=False):
                        # depth 1 is an agency's folder, depth 2 its sector's; deeper files belong to both.
                        folders.append((entry.path, here, depth + 1, (name, None) if depth == 1 else
                                        (owner[0], name) if depth == 2 else owner))
                        continue
                    if name.lower().endswith(_SKIPPED_SUFFIXES):
                        continue
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # gone since the folder was listed: no longer delivered
                    continue
                except OSError:
                    # Listed but not reachable (a folder readable without search permission): recorded like a folder
                    # that cannot be listed, with the reason opening it gives (helper-48: the night's ingest failed).
                    found.append(InboxFile(here, entry.path, agency, sector, 0, 0.0, 0, 0, False))
                    continue
                is_symlink = entry.is_symlink()
                found.append(InboxFile(here, entry.path, agency, sector, 0 if is_symlink else stat.st_size,
                                       stat.st_mtime, stat.st_mtime_ns, stat.st_ctime_ns, is_symlink))


def _skipped_name(name: str) -> bool:
    """Whether a file or folder of this name is no delivery (the module's docstring), whatever its suffix."""
    return name.startswith(_SKIPPED_PREFIXES) or name.lower() in _SKIPPED_NAMES


def is_skipped(path: str) -> bool:
    """Whether the scan skips this relative path (``inbox/<agency>/<SECTOR>/…``): a name in it or its file's suffix
    says it is no delivery. A store that recorded such a path before the rule retires it
    (:func:`~jc_pipeline.lib.ingest.store.mark_read_by_this_version`)."""
    names = path.split("/")[1:]
    return any(_skipped_name(name) for name in names) or names[-1].lower().endswith(_SKIPPED_SUFFIXES)


def text_name(name: str) -> str:
    """A directory entry's name as text: bytes that are not UTF-8 (kept by Python as surrogates, which neither
    DuckDB nor Polars can store) are written as ``\\xff`` escapes. The file is still opened by its real name."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return name


def still_arriving(now: datetime, settle_seconds: float) -> Callable[[InboxFile], bool]:
    """Whether a file was modified less than ``settle_seconds`` before ``now`` (naive: UTC), so it may still be
    arriving. A modification time further ahead than that is no write in progress (writes stamp the current
    time; a client restoring the sender's times from a clock ahead of ours does that) and does not hold the file."""
    if settle_seconds <= 0:
        return lambda file: False
    instant = (now if now.tzinfo else now.replace(tzinfo=UTC)).timestamp()
    return lambda file: abs(file.mtime - instant) < settle_seconds


def fingerprint(file: InboxFile) -> tuple[str, bytes | None]:
    """(sha256 hex, the bytes when small enough to keep in memory). A symlink hashes its target *name* only.

    Raises OSError for anything but a regular file (see the module docstring)."""
    if file.is_symlink:
        return hashlib.sha256(b"symlink\0" + os.fsencode(os.readlink(file.location))).hexdigest(), None
    with open_regular(file.location) as handle:
        if file.size <= IN_MEMORY_LIMIT:
            # The scanned size + 1, not the limit: read(n) allocates n bytes first (16 MiB for every small file).
            data = handle.read(file.size + 1)
            if len(data) <= file.size:
                return hashlib.sha256(data).hexdigest(), data
            handle.seek(0)  # it grew since the scan: hash it streaming like any big file
        return hashlib.file_digest(handle, "sha256").hexdigest(), None

