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
    outside the data directory too."""
    fd = os.open(location, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "it is not a regular file but a folder, pipe, socket or device; deliver a "
                                        "plain file", location)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def reopen_failed(exc: OSError) -> str:
    """What a delivered file that :func:`open_regular` refused after its hash is told (it was swapped for a symlink
    or a pipe since, or removed)."""
    return f"the file cannot be opened again to be read: {exc.strerror}"
