"""Per-agency report files rewritten only when what they say changed.

A state of thousands of agencies changes a few of them on most nights, yet every report page and workbook was
written again on every run (minutes at 3,000 agencies). A folder's digest file records, per agency, a digest of
the content its files were last written from, and of the code that writes them (the package's files): a file is
written again when either changed or the file is gone, so an upgrade rewrites every agency's files once, in its
words (helper-42: the agencies whose data had not changed kept the old version's pages). Files keep the time they
were generated, which is the time their content last changed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from jc_pipeline.lib.code_version import code_digest
from jc_pipeline.lib.paths import replace_file

#: The digest file in each report folder (hidden, beside the pages).
DIGESTS_FILE = ".page-digests.json"


class PageDigests:
    """The digests of one folder: :meth:`stale` says whether to write an agency's files, :meth:`save` records the
    digests of this run once its files are written (replaced whole: a crash never leaves digests of files that
    were not written)."""

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / DIGESTS_FILE
        try:
            recorded = json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else {}
        except (ValueError, UnicodeDecodeError):
            # Damaged (a power cut before the disk had it): every agency's files are written again, where every
            # publish failed on it (helper-49).
            recorded = {}
        self.previous: dict[str, str] = recorded if isinstance(recorded, dict) else {}
        self.current: dict[str, str] = {}

    def stale(self, agency_id: str, content: Any, files: list[Path]) -> bool:
        """Record the digest of ``content``; true when ``files`` must be written.

        ``content`` is made of plain values (text, numbers, dates, None) in lists, tuples and dicts built in a
        fixed key order (query columns), so its ``repr`` is a faithful, stable text of it: four times cheaper
        than a sorted JSON dump, which took seconds per thousand agencies.
        """
        digest = self.current[agency_id] = hashlib.sha256(f"{code_digest()}\0{content!r}".encode()).hexdigest()
        return self.previous.get(agency_id) != digest or not all(path.is_file() for path in files)

    def save(self, *, others: bool = False) -> None:
        """Record this run's digests; ``others``: also keep those of the agencies it did not look at (a run for
        a few agencies), so that the digests describe every file on disk."""
        kept = {**self.previous, **self.current} if others else self.current
        replace_file(self.path, json.dumps(kept, indent=0, sort_keys=True))

