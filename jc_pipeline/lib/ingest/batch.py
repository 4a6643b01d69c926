"""parse_inbox: every new or changed inbox file -> one :class:`IngestBatch` (pure: reads files, writes nothing);
read_inbox_batches: the same in batches of bounded size, each read first and normalized when the caller wants.

Per file the work is small and in Python (hash, read, plan the sheets; plain CSVs are even parsed in groups, see
:mod:`csv_groups`); the rows of all files are then checked and converted in one vectorized pass
(:func:`normalize.normalize`), because a state sends thousands of small files and per-file overhead dominates.

File status: UNREADABLE when nothing could be read (rows 0/0/0; one F0/F1/F8 finding without a row number),
ERRORED when any ERROR finding exists, DUPLICATE when it holds a version the agency delivered at another path of the
same sector folder (a file moved, renamed or copied: rows 0/0/0, not read, see :func:`read_inbox_batches`), else
INGESTED. ``reason`` says why a file is ERRORED, UNREADABLE or DUPLICATE (and "no data rows" for a readable file
without any).

A file whose (size, mtime, ctime) is the one remembered with its hash at the last run (``seen``, from
:func:`store.file_stats`) is not read at all: its content is taken to be the remembered one (docs/decisions.md,
"Trusting the stat of inbox files"). Only a stat older than the scan by :data:`STAT_SETTLE_NS` is remembered.
"""

from __future__ import annotations

import errno
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import polars as pl

from jc_pipeline.lib.calamine import WorkbookReader
from jc_pipeline.lib.ingest.context import UploadContext, upload_context
from jc_pipeline.lib.ingest.csv_groups import PlainCsv, parse_group, plain_csv
from jc_pipeline.lib.ingest.inbox import UNOPENABLE, InboxFile, fingerprint, scan_inbox, still_arriving
from jc_pipeline.lib.ingest.layout import CATEGORY, ROLES, SheetFinding, SheetPlan, plan_sheet
from jc_pipeline.lib.ingest.normalize import FINDING_SCHEMA, by_position, fmt, normalize
from jc_pipeline.lib.ingest.readers import (
    WORKBOOK_EXTENSIONS,
    PendingWorkbook,
    Unreadable,
    read_file,
)
from jc_pipeline.lib.ingest.rows import EXTRAS, EXTRAS_TYPE, RowCollector
from jc_pipeline.lib.registry import Registry
from jc_pipeline.lib.roster import Roster

if TYPE_CHECKING:  # pragma: no cover
    from jc_pipeline.lib.mappings import NativeExtracts

INGESTED, ERRORED, UNREADABLE, DUPLICATE = "INGESTED", "ERRORED", "UNREADABLE", "DUPLICATE"
#: ``change`` of a file version read again in place (:func:`store.files_to_reread`, or its mapping changed), beside
#: "new" and "changed".
REREAD = "reread"
#: Order of a batch's findings (rejected_rows): file, sheet, row, rule, then the rest, so it is a total order.
FINDING_SORT = ("file_idx", "sheet", "row_number", "rule", "column_name", "raw_value", "severity", "message")
#: New files read into one batch before it is handed over to be written (a 10M-row state read whole needed 10 GB).
BATCH_BYTES = 32 * 1024 * 1024
#: Files hashed (and workbooks handed to calamine's worker) ahead of the one being turned into rows, at most (files,
#: bytes held in memory).
READ_AHEAD_FILES = 32
READ_AHEAD_BYTES = 64 * 1024 * 1024
#: Plain CSVs are parsed in groups once this many bytes wait (bounds memory on huge deliveries).
PENDING_CSV_BYTES = 64 * 1024 * 1024
FILE_SCHEMA = {
    "file_idx": pl.Int64, "path": pl.String, "sha256": pl.String, "agency_id": pl.String,
    "sector": pl.String, "received_at": pl.Datetime("us"), "ingested_at": pl.Datetime("us"), "change": pl.String,
}
#: What :func:`store.record_file_stats` remembers of a hashed file: the stat seen at the scan, and the content hash.
FILE_STAT_SCHEMA = {"path": pl.String, "size": pl.Int64, "mtime_ns": pl.Int64, "ctime_ns": pl.Int64,
                    "sha256": pl.String}
#: A stat is remembered only when the file's times are this much older than the scan: a file written again within
#: one timestamp tick of being read (coarse clocks; 1-2 s on some file systems) would keep the same times.
STAT_SETTLE_NS = 2_000_000_000
_SHEET_SCHEMA = {
    "sheet_idx": pl.Int64, "file_idx": pl.Int64, "sheet": pl.String, "header_row": pl.Int64, "layout": pl.String,
    "sheet_metric": pl.String, "sheet_dimension": pl.String, "use_month": pl.Boolean, "uploader": pl.String,
    "sector": pl.String, "agency_mode": pl.Boolean, "system_mode": pl.Boolean, "has_errors": pl.Boolean,
    "valid_metrics": pl.String, **{f"col_{role}": pl.String for role in ROLES},
}
_SHEET_FINDING_SCHEMA = {"sheet_idx": pl.Int64, "rule": pl.String, "column_name": pl.String,
                         "raw_value": pl.String, "message": pl.String, "extra": pl.Int64}


@dataclass(frozen=True)
class IngestBatch:
    """What :func:`parse_inbox` found; :func:`store.write_batch` records it.

    ``files``: one row per new or changed file, in upload order (``received_at``, then path), with its
    ``status, reason, rows_total, rows_loaded, rows_rejected`` and ``change`` (``new``/``changed``).
    ``findings``: rejected_rows rows and ``datapoints``: staged datapoints, both keyed by the file's ``path``
    (``file_id`` and ``upload_seq`` are assigned when the batch is written).
    ``file_stats``: the stat and hash of the files hashed in this batch whose stat can be trusted next time
    (:data:`FILE_STAT_SCHEMA`); record them with :func:`store.record_file_stats` only after the batch is written.
    """

    files: pl.DataFrame
    findings: pl.DataFrame
    datapoints: pl.DataFrame
    files_unchanged: int
    file_stats: pl.DataFrame
    files_arriving: int = 0
    #: (path, why) of the native exports left as they were read: their agency's mapping file does not validate, so
    #: reading them again would take the export's numbers out for a typo (helper-41); read again once it validates
    #: (a roster change's or upgrade's mark stays).
    kept: tuple[tuple[str, str], ...] = ()
    #: Paths recorded unreadable that read again (a file, or a folder listed again): their unreadable versions since
    #: the last one read are retired (:func:`store.write_batch`).
    recovered: tuple[str, ...] = ()


def parse_inbox(data_dir: Path, known: Mapping[str, str], roster: Roster, registry: Registry, *, now: datetime,
                progress: Callable[[int, int], None] | None = None,
                seen: Mapping[str, tuple[int, int, int, str]] | None = None,
                rereads: Mapping[str, str] | None = None,
                unopenable: Mapping[str, str | None] | None = None,
                delivered: Callable[[], Iterable[tuple[str, str, bool, bool]]] | None = None) -> IngestBatch:
    """Read every inbox file whose sha256 differs from ``known[path]`` into one batch (see the module docstring)."""
    (batch,) = parse_inbox_batches(data_dir, known, roster, registry, now=now, progress=progress, batch_bytes=None,
                                   seen=seen, rereads=rereads, unopenable=unopenable, delivered=delivered)
    return batch


def parse_inbox_batches(data_dir: Path, known: Mapping[str, str], roster: Roster, registry: Registry, *,
                        now: datetime, progress: Callable[[int, int], None] | None = None,
                        batch_bytes: int | None = BATCH_BYTES,
                        seen: Mapping[str, tuple[int, int, int, str]] | None = None,
                        rereads: Mapping[str, str] | None = None,
                        unopenable: Mapping[str, str | None] | None = None,
                        delivered: Callable[[], Iterable[tuple[str, str, bool, bool]]] | None = None
                        ) -> Iterator[IngestBatch]:
    """:func:`parse_inbox` in batches of about ``batch_bytes`` of new files (None: one batch), each complete and
    writable on its own, so memory stays bounded however much history a state delivers at once: the batches of
    :func:`read_inbox_batches`, each normalized before the next is read."""
    for batch in read_inbox_batches(data_dir, known, roster, registry, now=now, progress=progress,
                                    batch_bytes=batch_bytes, seen=seen, rereads=rereads, unopenable=unopenable,
                                    delivered=delivered):
        yield batch.normalize()


@dataclass(frozen=True)
class ReadBatch:
    """New inbox files read and their rows collected, not yet checked: :meth:`normalize` (call it once) gives
    the :class:`IngestBatch`. Normalizing is a batch's vectorized pass, mostly Polars work outside the GIL, so a
    caller may run it on another thread while it reads the next batch (the ingest asset does). Normalize the batches
    in the order they come, as they are written: F10 and the upload order follow it (helper-57)."""

    parser: _Parser
    unchanged: int
    arriving: int = 0

    @property
    def paths(self) -> list[str]:
        """The inbox paths of the batch's new and changed files, in upload order."""
        return [path for _, path, *_ in self.parser.files]

    def normalize(self) -> IngestBatch:
        """Check and convert the batch's rows (see :mod:`normalize`); the parser is spent afterwards."""
        return self.parser.finish(self.unchanged, self.arriving)


def read_inbox_batches(data_dir: Path, known: Mapping[str, str], roster: Roster, registry: Registry, *,
                       now: datetime, progress: Callable[[int, int], None] | None = None,
                       batch_bytes: int | None = BATCH_BYTES,
                       seen: Mapping[str, tuple[int, int, int, str]] | None = None,
                       rereads: Mapping[str, str] | None = None, unopenable: Mapping[str, str | None] | None = None,
                       delivered: Callable[[], Iterable[tuple[str, str, bool, bool]]] | None = None,
                       settle_seconds: float = 0) -> Iterator[ReadBatch]:
    """Every inbox file whose sha256 differs from ``known[path]``, read in batches of about ``batch_bytes`` of new
    files (None: one batch), each to be normalized on its own (:meth:`ReadBatch.normalize`).

    Files are read in upload order (``received_at``, then path), the order :func:`store.write_batch` numbers them
    in, so writing the batches one after another numbers the uploads exactly as one batch would: which upload
    wins a datapoint never depends on where the batches were cut. Always yields at least one batch.

    ``seen``: {path: (size, mtime_ns, ctime_ns, sha256)} from :func:`store.file_stats`; a file whose stat is the
    remembered one counts as unchanged without being read (None or empty: hash every file), and a native export
    whose remembered bytes are its known version's, while its agency's mapping file does not validate, is kept
    without being read (``IngestBatch.kept``).

    ``rereads``: {path: sha256} from :func:`store.files_to_reread` (paths left out of ``known``): a file still
    holding that version is read again in place (change :data:`REREAD`), one holding another is a changed file. A
    known file whose bytes are unchanged but whose mapping changed (its version differs only by the mapping's hash)
    is read again in place too.

    ``unopenable``: {path: sha256 of its latest version read, or None} from :func:`store.unopenable_files`, the
    paths whose latest version could not be opened (nor, for a folder, listed). One that reads again (a file that
    opens, a folder listed) is recovered (``IngestBatch.recovered``: those versions are retired), and a file is
    compared with the version before them: the same bytes are unchanged, not a new upload that would win over the
    corrections sent since (helper-48).

    ``delivered``: gives the (path, sha256, whether it loaded a row, whether it counts: not withdrawn) of every
    version recorded, in upload order, as :func:`store.delivered_versions` does; called once, before anything is
    read and only when something is (a run with nothing new spares the query). A file read (new, changed, or read
    again) whose bytes another path of its agency and sector folder delivered first (a version that loaded
    something: a file that loaded nothing, read as the wrong kind, moved where it is read, is the agency's fix,
    helper-51), this run's files included, and its own path never held, is a DUPLICATE: not read, so a file moved
    into an archive folder, renamed or copied does not become a new upload that wins over the corrections sent
    since, nor does a withdrawn one count again (helper-48). Bytes, not versions: a native export's version also
    holds its mapping's hash (helper-50: after a mapping change the copy was read). The versions that loaded a row
    and count are also what F10 names (:meth:`_Parser._name_copies`).

    ``settle_seconds``: a file modified less than this long before ``now`` may still be arriving (an upload that
    writes its final name directly): it is left out, for the next run, and counted in the first batch's
    ``arriving`` (:func:`inbox.still_arriving`).
    """
    arriving = still_arriving(now, settle_seconds)
    now = now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now
    seen, rereads, unopenable = seen or {}, rereads or {}, unopenable or {}
    settled = time.time_ns() - STAT_SETTLE_NS
    scanned = scan_inbox(Path(data_dir))
    from jc_pipeline.lib.mappings import NativeExtracts  # here: jc_pipeline.lib.mappings imports ingest modules

    native = NativeExtracts(Path(data_dir), roster, registry, now)  # agency-native exports (mappings/)
    native.clear_scratch()

    loaded_first: dict[str, str] = {}  # _Parser.loaded_first, shared by the run's batches

    def new_parser() -> _Parser:
        return _Parser(roster, registry, now, native.for_next_batch(), loaded_first)

    parser, unchanged, read, waiting = new_parser(), 0, 0, 0
    listed = {file.path for file in scanned}
    parser.recovered.extend(path for path in unopenable if path not in listed and _is_folder(Path(data_dir, path)))
    inbox = []
    for file in scanned:
        if arriving(file):
            waiting += 1
            continue
        remembered, version = seen.get(file.path), known.get(file.path)
        # The remembered hash is still the file's (its stat did not move): unchanged unless the mapping changed.
        if remembered is not None and remembered[:3] == file.signature and version is not None:
            if version == native.version(file, remembered[3])[0]:
                unchanged += 1
                continue
            # Its bytes are the version its mapping read, and the mapping does not validate: kept, not read again.
            why = native.unread_reason(file) if native.is_native(version) else None
            if why is not None and native.content(version) == remembered[3]:
                parser.kept.append((file.path, why))
                continue
        inbox.append(file)
    inbox.sort(key=lambda f: (f.received_at, f.path))
    # Before any batch is written: what the store held, then this run's files as they are read.
    deliveries = _Deliveries(delivered() if delivered is not None and inbox else (), loaded_first)
    total = len(scanned) - waiting  # the files this run looks at
    looked_at = unchanged + len(parser.kept)
    with WorkbookReader() as workbooks:
        # A workbook that opens again is compared with its last reading too: the same bytes are not read.
        readable = {**known, **{p: sha for p, sha in unopenable.items() if sha is not None}} if unopenable else known
        for done, fetched in enumerate(_read_ahead(inbox, readable, deliveries, native, workbooks),
                                       start=looked_at + 1):
            if batch_bytes is not None and read >= batch_bytes:
                yield ReadBatch(parser, unchanged, waiting)
                parser, unchanged, read, waiting = new_parser(), 0, 0, 0
            if fetched is None:  # deleted or moved away since the scan: no longer delivered
                continue
            file, sha = fetched.file, fetched.sha
            # A symlink is never remembered (reading its target name is as cheap as a stat), nor a file touched
            # too recently for its times to tell a later write apart.
            if (fetched.content is not None and not file.is_symlink and max(file.mtime_ns, file.ctime_ns) < settled
                    and seen.get(file.path) != (*file.signature, fetched.content)):
                parser.file_stats.append((file.path, *file.signature, fetched.content))
            # Read again in place when its bytes are still the latest version's and only how it is read changed:
            # the roster (a marked path) or the agency's mapping, whose hash a native export's version holds (one
            # added, edited or removed). The same delivery keeps its place among the uploads (docs/decisions.md).
            # An export its mapping read is not read again while the agency's mapping file does not validate.
            current = known.get(file.path)
            if fetched.problem is None and file.path in unopenable:  # opens again: compared with its last reading
                parser.recovered.append(file.path)
                current = unopenable[file.path]
            earlier = rereads.get(file.path, current)
            change = (REREAD if earlier is not None and native.content(earlier) == native.content(sha)
                      else "changed" if earlier is not None else "new")
            kept = (native.unread_reason(file) if change == REREAD and native.is_native(earlier) else None)
            # fetched.content: the bytes' sha256, a native export's version without its mapping's hash
            first = deliveries.first_of(file, fetched.content) if fetched.content is not None else None
            if current == sha:
                unchanged += 1
            elif kept is not None:
                parser.kept.append((file.path, kept))
            elif fetched.problem is not None:
                parser.unopenable(file, sha, change, fetched.problem)
            elif first is not None:
                parser.duplicate(file, sha, change, first)
            else:
                parser.parse(file, sha, fetched.data, change, fetched.route, fetched.workbook, fetched.content)
                read += file.size
            if fetched.content is not None and kept is None:
                deliveries.add(file.path, fetched.content, loaded=first is None)
            if progress is not None:
                progress(done, total)
    if progress is not None and not inbox:
        progress(looked_at, total)
    yield ReadBatch(parser, unchanged, waiting)


class _Deliveries:
    """The bytes delivered so far, by path: per agency and sector folder (as the inbox matches them, in any case),
    the path that delivered each content first; each path's latest content, and the contents it held before that
    (``delivered`` of :func:`read_inbox_batches`)."""

    def __init__(self, versions: Iterable[tuple[str, str, bool, bool]], loaded_first: dict[str, str]) -> None:
        self.first: dict[tuple[str, str, str, str], str] = {}
        self.latest: dict[str, str] = {}
        self.earlier: set[tuple[str, str]] = set()
        for path, content, loaded, counts in versions:
            if self.add(path, content, loaded=loaded) and loaded and counts:
                loaded_first.setdefault(content, path)  # _Parser.loaded_first: what F10 names

    def add(self, path: str, content: str, *, loaded: bool) -> bool:
        """Record ``path`` holding ``content``; one that ``loaded`` something may be the first of its copies.
        Whether ``path`` is below a sector folder (it has a copy key, :func:`_folders`)."""
        key = _folders(path, content)
        if key is not None and loaded:
            self.first.setdefault(key, path)
        before = self.latest.get(path)
        if before is not None and before != content:
            self.earlier.add((path, before))
        self.latest[path] = content
        return key is not None

    def first_of(self, file: InboxFile, content: str) -> str | None:
        """The path that delivered ``file``'s bytes first, when ``file`` is a copy of it (None otherwise): another
        path, and ``file``'s own path did not hold them before its latest version (that is a revert, an edit read as
        always; a copy read again in place stays one)."""
        key = _folders(file.path, content)
        first = self.first.get(key) if key is not None else None
        return first if first not in (None, file.path) and (file.path, content) not in self.earlier else None


def _folders(path: str, content: str) -> tuple[str, str, str, str] | None:
    """The key a copy shares with what it copies: agency and sector folder, bytes, and, but for a workbook, the file's
    name, which says what a CSV holds (reported_crime.csv and arrests.csv with the same rows are two metrics) and
    which source of a mapping reads an export. None for a file not below a sector folder."""
    parts = path.split("/", 3)
    if len(parts) < 4:
        return None
    name = parts[3].rsplit("/", 1)[-1]
    named = "" if name.lower().endswith(WORKBOOK_EXTENSIONS) else name.strip().casefold()
    return parts[1].lower(), parts[2].upper(), named, content


def _unsupported(name: str) -> str:
    """Why a file of this name is not read (F1), and what to deliver."""
    suffix = Path(name).suffix
    if suffix != suffix.strip() and suffix.strip().lower() in (*WORKBOOK_EXTENSIONS, ".csv"):
        # A space after the extension cannot be seen in a listing (helper-48): say it.
        return f"the name ends with a space after '{suffix.strip()}'; rename the file to '{name.strip()}'"
    return f"'{suffix or name}' files are not read; deliver .xlsx, .xls or .csv files"


def _is_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _unopenable(exc: OSError) -> str:
    """Why a delivered file cannot be opened, and what to do about it."""
    fix = {errno.EACCES: "check its permissions", errno.EPERM: "check its permissions",
           errno.ENAMETOOLONG: "shorten the names of its folders or its own name",
           errno.ELOOP: "deliver the file itself, not a link to it",
           # What opening a socket gives (helper-48: the bare "No such device or address" named no fix).
           errno.ENXIO: "it is a socket, not a file; deliver a plain file"}.get(exc.errno, "")
    return f"the file cannot be opened: {exc.strerror}" + (f"; {fix}" if fix else "")


class _Route(Enum):
    """Which reader a delivered file goes to, decided once per file (:func:`_route`)."""

    SYMLINK = "symlink"  # never followed: refused (F8)
    NATIVE = "native"  # an agency's own export, claimed by its mapping
    UNSUPPORTED = "unsupported"  # not .xlsx, .xls or .csv: refused (F1)
    CSV = "csv"  # a bulk upload as .csv
    WORKBOOK = "workbook"  # a bulk upload as .xlsx or .xls, read by calamine's worker


def _route(file: InboxFile, claimed: bool) -> _Route:
    """``claimed``: whether an agency's mapping claims the file."""
    if file.is_symlink:
        return _Route.SYMLINK
    if claimed:
        return _Route.NATIVE
    suffix = file.absolute.suffix.lower()
    if suffix in WORKBOOK_EXTENSIONS:
        return _Route.WORKBOOK
    return _Route.CSV if suffix == ".csv" else _Route.UNSUPPORTED


class _Fetched(NamedTuple):
    """An inbox file hashed (``content``: its sha256; None when it cannot be opened, then ``problem`` says why),
    ``sha`` the version compared with the known one, ``route`` its reader; a workbook to be read is handed to
    calamine's worker (``workbook``) as soon as it is hashed."""

    file: InboxFile
    content: str | None
    data: bytes | None
    sha: str
    problem: str | None
    route: _Route | None
    workbook: PendingWorkbook | None


def _read_ahead(inbox: list[InboxFile], known: Mapping[str, str], deliveries: _Deliveries, native: NativeExtracts,
                workbooks: WorkbookReader) -> Iterator[_Fetched | None]:
    """The ``inbox`` files hashed, in order (None for a file gone since the scan), up to :data:`READ_AHEAD_FILES`
    files or :data:`READ_AHEAD_BYTES` ahead of the one yielded; each workbook to be read is handed to ``workbooks``
    when hashed, so calamine reads it in its worker while this process turns the files before it into rows. A
    workbook with the bytes of one handed already in its folder is not (helper-51: its reading was then dropped as a
    DUPLICATE's); read after all, it would be read by its turn."""
    window: deque[_Fetched | None] = deque()
    held = 0
    handed: set[tuple[str, str, str, str]] = set()  # _folders keys of the workbooks handed
    for file in inbox:
        try:
            content, data = fingerprint(file)
        except FileNotFoundError:
            window.append(None)
        except OSError as exc:  # e.g. permissions: recorded once per distinct error, like any content
            window.append(_Fetched(file, None, None, f"{UNOPENABLE}{exc.errno}", _unopenable(exc), None, None))
        else:
            sha, claimed = native.version(file, content)  # a native export's version includes its mapping's
            route = _route(file, claimed)
            workbook = None
            key = _folders(file.path, content)
            if (route is _Route.WORKBOOK and known.get(file.path) != sha
                    and deliveries.first_of(file, content) is None and key not in handed):  # a copy is not read
                workbook = PendingWorkbook(file.absolute, data, workbooks)
                if key is not None:
                    handed.add(key)
            window.append(_Fetched(file, content, data, sha, None, route, workbook))
            held += len(data) if data is not None else 0
        while len(window) > READ_AHEAD_FILES or held > READ_AHEAD_BYTES:
            fetched = window.popleft()
            held -= len(fetched.data) if fetched is not None and fetched.data is not None else 0
            yield fetched
    yield from window


class _Parser:
    """Accumulates files, sheets and rows; :meth:`finish` normalizes them all at once."""

    def __init__(self, roster: Roster, registry: Registry, now: datetime, native: NativeExtracts,
                 loaded_first: dict[str, str]) -> None:
        self.roster, self.registry, self.now = roster, registry, now
        # F10: bytes -> the first path below a sector folder that loaded them and counts (not withdrawn), the
        # recorded versions' (_Deliveries) and, once read, the run's; and (file index, bytes, folder context, file)
        # of this batch's files read as bulk uploads from a folder that takes them.
        self.loaded_first = loaded_first
        self.copies: list[tuple[int, str, UploadContext, InboxFile]] = []
        self.contexts: dict[tuple[str | None, str | None], UploadContext] = {}
        # Plans depend on (what the folder's settings say about the sheet, its name, header and which columns
        # hold data) only, so thousands of files share a few of them.
        self.plans: dict[tuple, SheetPlan] = {}
        # A sheet's row after its name and header row, by (plan, context): as few as the plans and folders.
        self.described: dict[tuple[int, int], tuple] = {}
        self.files: list[tuple] = []
        self.file_findings: list[tuple] = []  # file-level findings of unreadable files
        self.sheets: list[tuple] = []
        self.semicolon_sheets: list[int] = []  # the sheet_idx of CSVs separated by semicolons
        self.sheet_findings: list[tuple] = []
        self.rows = RowCollector()
        self.pending: list[_PendingCsv] = []
        self.pending_bytes = 0
        self.native = native  # files matched by an agency mapping are read there
        self.file_stats: list[tuple] = []
        self.kept: list[tuple[str, str]] = []  # IngestBatch.kept
        self.recovered: list[str] = []  # IngestBatch.recovered
        self.duplicates: dict[int, str] = {}  # file index -> the path that delivered its version first

    def unopenable(self, file: InboxFile, sha: str, change: str, reason: str) -> None:
        index = self._add_file(file, sha, change)
        self.file_findings.append((index, None, None, None, file.name, "F0", "ERROR", reason))

    def duplicate(self, file: InboxFile, sha: str, change: str, first: str) -> None:
        self.duplicates[self._add_file(file, sha, change)] = first

    def parse(self, file: InboxFile, sha: str, data: bytes | None, change: str, route: _Route,
              workbook: PendingWorkbook | None, content: str | None) -> None:
        """Collect the file's sheets and rows (``workbook``: the file handed to calamine's worker already;
        ``content``: the bytes' sha256, for F10)."""
        index = self._add_file(file, sha, change)
        # Not an export read through the agency's mapping: it may be a shared one (a regional system's, each mapping
        # reading its own rows: helper-54); nor a file its folder refuses whole (F1, F8).
        if content is not None and route in (_Route.CSV, _Route.WORKBOOK):
            context = self._context(file)
            if context.location_error is None:
                self.copies.append((index, content, context, file))
        path = file.absolute  # built once: a Path costs microseconds, and a state sends thousands of files
        if route is _Route.SYMLINK:
            self.file_findings.append((index, None, None, None, file.name, "F8", "ERROR",
                                       "the file is a symbolic link, which is never followed; copy the file "
                                       "itself into the inbox"))
            return
        if route is _Route.NATIVE:
            self.native.parse(index, file, data)
            return
        if route is _Route.UNSUPPORTED:
            self.file_findings.append((index, None, None, None, file.name, "F1", "ERROR", _unsupported(file.name)))
            return
        plain = plain_csv(data) if data is not None and route is _Route.CSV else None
        if plain is not None:
            self.pending.append(_PendingCsv(index, file, data, plain))
            self.pending_bytes += len(data)
            if self.pending_bytes > PENDING_CSV_BYTES:
                self._flush_csvs()
            return
        self._read_alone(index, file, data, path, workbook)

    def _read_alone(self, index: int, file: InboxFile, data: bytes | None, path: Path,
                    workbook: PendingWorkbook | None) -> None:
        """Read ``file`` (at ``path``, its ``file.absolute``) on its own and collect its sheets."""
        try:
            sheets = workbook.sheets() if workbook is not None else read_file(path, data, file.name)
        except Unreadable as exc:
            self.file_findings.append((index, None, None, None, file.name, "F0", "ERROR", str(exc)))
            return
        context = self._context(file)
        is_csv = path.suffix.lower() == ".csv"
        # Sheets are processed in alphabetical order, as the reference does (spec §5.1).
        for sheet in sorted(sheets, key=lambda s: s.name):
            if sheet.height == 0:
                continue
            plan = self._plan(sheet.name, sheet.header, sheet.has_data, context, is_csv)
            sheet_idx = self._add_sheet(index, sheet.header_row, plan, context)
            if sheet.semicolons:
                self.semicolon_sheets.append(sheet_idx)
            self.rows.add(sheet_idx, sheet, plan.roles, plan.extra_columns)

    def _flush_csvs(self) -> None:
        """Parse the pending plain CSVs, one Polars call per distinct header line (see :mod:`csv_groups`)."""
        groups: dict[bytes, list[_PendingCsv]] = defaultdict(list)
        for pending in self.pending:
            groups[pending.plain.header].append(pending)
        self.pending, self.pending_bytes = [], 0
        for members in groups.values():
            self._parse_csvs(members)

    def _parse_csvs(self, members: list[_PendingCsv]) -> None:
        """Parse ``members`` together, or in halves when that fails (a file among them does not parse as its group:
        a line longer than the header), down to the file read alone: one such file costs a few more calls, not a
        call per file of its group."""
        parsed = parse_group([m.plain for m in members])
        if parsed is not None:
            self._add_csv_group(members, *parsed)
        elif len(members) == 1:
            self._read_alone(members[0].index, members[0].file, members[0].data, members[0].file.absolute, None)
        else:
            self._parse_csvs(members[:len(members) // 2])
            self._parse_csvs(members[len(members) // 2:])

    def _add_csv_group(self, members: list[_PendingCsv], frame: pl.DataFrame, counts: list[int]) -> None:
        header = members[0].plain.header_cells
        columns = frame.columns
        frame = frame.with_columns(f=pl.Series(np.repeat(np.arange(len(members)), counts)))
        filled = frame.group_by("f").agg(
            (pl.col(c).str.strip_chars().str.len_bytes() > 0).any().fill_null(False) for c in columns)
        has_data = {row[0]: tuple(bool(v) for v in row[1:]) for row in filled.iter_rows()}
        # Files whose plans give the same roles become one chunk of the row frame.
        chunks: dict[tuple, dict[int, int]] = defaultdict(dict)
        for number, member in enumerate(members):
            if counts[number] == 0:
                continue
            context = self._context(member.file)
            plan = self._plan(member.file.name, header, has_data[number], context, True)
            sheet_idx = self._add_sheet(member.index, 1, plan, context)
            chunks[(tuple(plan.roles.items()), tuple(plan.extra_columns))][number] = sheet_idx
        for (roles, extras), sheet_of in chunks.items():
            part = frame.filter(pl.col("f").is_in(list(sheet_of)))
            self.rows.add_frame(part.select(
                sheet_idx=pl.col("f").replace_strict(sheet_of, return_dtype=pl.Int64),
                row_number=pl.int_range(pl.len()).over("f") + 2,
                **{role: pl.col(columns[index]) for role, index in roles},
                extra=pl.any_horizontal(pl.col(columns[i]).str.strip_chars().str.len_bytes() > 0 for i in extras
                                        ).fill_null(False) if extras else pl.lit(False),
                **({EXTRAS: pl.concat_list(pl.col(columns[i]) for i in extras).cast(EXTRAS_TYPE)} if extras else {}),
            ))

    def _add_sheet(self, file_idx: int, header_row: int, plan: SheetPlan, context: UploadContext) -> int:
        sheet_idx = len(self.sheets)
        key = (id(plan), id(context))  # both kept in self.plans and self.contexts, so their ids stay theirs
        described = self.described.get(key)
        if described is None:
            described = self.described[key] = _describe_sheet(plan, context)
        self.sheets.append((sheet_idx, file_idx, plan.name, header_row, *described))
        self.sheet_findings.extend(_sheet_finding_row(sheet_idx, f) for f in [*plan.errors, *plan.warnings])
        return sheet_idx

    def _plan(self, name: str, header: tuple[str | None, ...], has_data: tuple[bool, ...], context: UploadContext,
              is_csv: bool) -> SheetPlan:
        key = (context.plan_key(name, is_csv), name, is_csv, header, has_data)
        plan = self.plans.get(key)
        if plan is None:
            plan = self.plans[key] = plan_sheet(name, header, has_data, context, is_csv=is_csv)
        return plan

    def _add_file(self, file: InboxFile, sha: str, change: str) -> int:
        sector = file.sector.upper() if file.sector else None
        # The roster's spelling of a folder named in another case (helper-48: its findings went to a page of their own,
        # "not on the roster", while its rows counted for the agency).
        agency = self.roster.agency_of_folder(file.agency_id) if file.agency_id is not None else None
        self.files.append((len(self.files), file.path, sha, agency.agency_id if agency else file.agency_id, sector,
                           file.received_at, self.now, change))
        return len(self.files) - 1

    def _name_copies(self, counts: pl.DataFrame) -> None:
        """F10 on each of :attr:`copies` holding the bytes that another agency's same sector folder loaded first
        (helper-48: one agency's file sent into another's folder replaced its numbers without a word); then the
        batch's files that loaded a row are the first of their bytes for the files read after them."""
        loaded = set(counts.filter(pl.col("rows_total") > pl.col("rows_rejected"))["file_idx"].to_list())
        for index, content, context, file in self.copies:
            first = self.loaded_first.get(content)
            if first is not None and index in loaded:  # a copy that loaded nothing replaced no number (helper-57)
                _, folder, sector, _ = first.split("/", 3)
                other = self.roster.agency_of_folder(folder)
                if (other is not None and other.agency_id != context.agency_id
                        and sector.upper() == context.sector):
                    self.file_findings.append((index, None, None, None, file.name, "F10", "WARNING",
                                               f"the same bytes as {first}, which agency '{other.agency_id}' "
                                               f"delivered: its numbers are read as this agency's"))
            if index in loaded:
                self.loaded_first.setdefault(content, file.path)

    def _context(self, file: InboxFile) -> UploadContext:
        key = (file.agency_id, file.sector)
        if key not in self.contexts:
            self.contexts[key] = upload_context(self.roster, self.registry, file.agency_id, file.sector)
        return self.contexts[key]

    def finish(self, unchanged: int, arriving: int) -> IngestBatch:
        self._flush_csvs()
        files = pl.DataFrame(self.files, schema=FILE_SCHEMA, orient="row")
        sheets = pl.DataFrame(self.sheets, schema=_SHEET_SCHEMA, orient="row")
        sheet_findings = pl.DataFrame(self.sheet_findings, schema=_SHEET_FINDING_SCHEMA, orient="row")
        result = normalize(self.rows.build(), sheets, sheet_findings, self.roster, self.registry, self.now,
                           self.semicolon_sheets)
        result = self.native.merge(result)
        self._name_copies(result.row_counts)
        findings = pl.concat([pl.DataFrame(self.file_findings, schema=FINDING_SCHEMA, orient="row"),
                              result.findings])
        paths = files.select("path")
        files = _with_status(files, result.row_counts, findings, self.duplicates)
        return IngestBatch(
            files=files.sort("received_at", "path").drop("file_idx"),
            # Every column in the key: two findings of one rule on one row (two cells) keep one order run to run.
            findings=by_position(findings, paths, "file_idx").sort(*FINDING_SORT, nulls_last=False).drop("file_idx"),
            datapoints=by_position(result.datapoints, paths, "file_idx").drop("file_idx"),
            files_unchanged=unchanged,
            file_stats=pl.DataFrame(self.file_stats, schema=FILE_STAT_SCHEMA, orient="row"),
            files_arriving=arriving,
            kept=tuple(self.kept),
            recovered=tuple(self.recovered),
        )


@dataclass(frozen=True)
class _PendingCsv:
    index: int
    file: InboxFile
    data: bytes
    plain: PlainCsv


def _describe_sheet(plan: SheetPlan, context: UploadContext) -> tuple:
    """The columns of a sheet's row (``_SHEET_SCHEMA``) after its index, file, name and header row."""
    target = plan.target
    written = {role: plan.written.get(role) for role in ROLES}
    written[CATEGORY] = written[CATEGORY] or (target.breakdown.column if target and target.breakdown else None)
    valid_metrics = ", ".join(sorted(t.metric.sheet for t in context.targets.values() if t.breakdown is None)
                              ) if plan.layout == "single" else None
    return (
        plan.layout,
        target.metric.key if target else None,
        target.breakdown.dimension.identifier if target and target.breakdown else None,
        plan.use_month, context.agency_id, context.sector,
        "agency" in plan.roles and context.agency_expected,
        "system" in plan.roles and context.system_expected(target.metric if target else None),
        bool(plan.errors), valid_metrics, *written.values(),
    )


def _sheet_finding_row(sheet_idx: int, finding: SheetFinding) -> tuple:
    return sheet_idx, finding.rule, finding.column, finding.raw_value, finding.message, finding.extra


def _with_status(files: pl.DataFrame, counts: pl.DataFrame, findings: pl.DataFrame,
                 duplicates: Mapping[int, str]) -> pl.DataFrame:
    errors = findings.filter(pl.col("severity") == "ERROR")
    unreadable = errors.filter(pl.col("row_number").is_null()).group_by("file_idx").agg(
        unreadable_reason=pl.col("message").first())
    by_rule = errors.filter(pl.col("row_number").is_not_null()).group_by("file_idx", "rule").agg(n=pl.len()).sort(
        "file_idx", "n", "rule", descending=[False, True, False]).group_by("file_idx", maintain_order=True).agg(
        rules=fmt("{} x{}", pl.col("rule"), pl.col("n")).str.join(", "))
    files = files.join(counts, on="file_idx", how="left").join(unreadable, on="file_idx", how="left").join(
        by_rule, on="file_idx", how="left").with_columns(
        rows_total=pl.col("rows_total").fill_null(0), rows_rejected=pl.col("rows_rejected").fill_null(0))
    first = pl.col("file_idx").replace_strict(list(duplicates), list(duplicates.values()), default=None,
                                              return_dtype=pl.String)
    status = (pl.when(first.is_not_null()).then(pl.lit(DUPLICATE))
              .when(pl.col("unreadable_reason").is_not_null()).then(pl.lit(UNREADABLE))
              .when(pl.col("rules").is_not_null()).then(pl.lit(ERRORED)).otherwise(pl.lit(INGESTED)))
    reason = (
        pl.when(first.is_not_null())
        .then(fmt("{}: the same bytes as {}, read there, so not read again (a file moved, renamed or copied); to "
                  "send its numbers again, change the file", pl.col("path"), first))
        .when(pl.col("unreadable_reason").is_not_null())
        .then(fmt("{}: {}", pl.col("path"), pl.col("unreadable_reason")))
        .when(pl.col("rules").is_not_null())
        .then(fmt("{} of {} rows rejected ({}); see rejected_rows", pl.col("rows_rejected"),
                        pl.col("rows_total"), pl.col("rules")))
        .when(pl.col("rows_total") == 0).then(pl.lit("no data rows"))
    )
    return files.with_columns(
        status=status, reason=reason, rows_loaded=pl.col("rows_total") - pl.col("rows_rejected"),
    ).drop("unreadable_reason", "rules")
