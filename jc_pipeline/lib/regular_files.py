"""Opening a delivered file only as itself: never through a symbolic link, never a pipe or device.

Standard library only: calamine's worker process imports it, and keeps its start-up small.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO


def open_regular(location: str | Path) -> BinaryIO:
    """The file at ``location`` opened for reading, never through a symlink (``O_NOFOLLOW``: ``ELOOP``) and only
    when it is a regular file: opened non-blocking, so a FIFO cannot hang the caller. Raises OSError otherwise.

    Every read of a delivered file after it was hashed goes through here: a file swapped for a symlink between the
    hash and the read (a big one is read again for parsing) would otherwise be read from wherever the link points,
    outside the data directory too. ``O_NOFOLLOW`` guards the last name only: a folder on the way swapped for a
    symlink after the inbox was listed led elsewhere all the same (helper-63: files outside the data directory
    quoted in an agency's feedback). So the file opened must be the one ``location`` names without a link: the
    system's name of it (``/proc/self/fd``, where the system has it) is ``location`` made absolute, which the inbox
    scan gives as a real path (``ELOOP`` otherwise)."""
    fd = os.open(location, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "it is not a regular file but a folder, pipe, socket or device; deliver a "
                                        "plain file", location)
        if _opened_name(fd) not in (None, os.path.abspath(location)):
            raise OSError(errno.ELOOP, "a folder on its path is a symbolic link, which is never followed", location)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _opened_name(fd: int) -> str | None:
    """The path the system gives the file open as ``fd`` (None where it has no /proc)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def reopen_failed(exc: OSError) -> str:
    """What a delivered file that :func:`open_regular` refused after its hash is told (it was swapped for a symlink
    or a pipe since, or removed)."""
    return f"the file cannot be opened again to be read: {exc.strerror}"
