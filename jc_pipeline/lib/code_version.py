"""This version of jc_pipeline, as a digest of its files: what an upgrade changes.

What the pipeline makes of the same inputs (which rows a file loads and rejects and the words of its findings, what
an agency's feedback says) is its code's; a store or a report folder records the digest of the code that wrote it,
and other code reads or writes it again, once (helper-42: an upgrade's fixes never reached the files and pages
written before it). One automatic mark, where a hand-kept version number could be forgotten (helper-43).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path


@functools.cache
def code_digest() -> str:
    """The sha256 of every file of the jc_pipeline package (code, SQL, the registry, templates), by relative path;
    compiled caches left out. About 200 files, read once per process (~10 ms)."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
