"""Shared pieces of native-extract counting: reading an export once into a compact frame, periods, findings.

An export is read once, streaming, into a compact per-record frame (:class:`Records`): one row per input record in
file order, holding only what the metrics need, in few bytes per record:

* the record's spreadsheet row (:data:`ROW`, as a spreadsheet program shows it) and whether it is blank (``keep``);
* each date column parsed with its most likely format (see :meth:`Records.date`);
* each coded column (mapped values, filters, the child agency, a year or month) as a Polars Categorical, so the
  mapping's rules -- strip, compare case-insensitively, look up, default, blank -- run once per *distinct*
  value in Python (:meth:`Records.categories`) and the records only get small integer codes;
* ids and numbers where a metric needs them.

Dates that did not parse with that format, and dates a check may report (out of range, an end before its start),
are read again from the export with their raw text, only for those records: a clean export is read once, and a
finding can always quote the cell. Every count is then a group-by on integer columns of that frame; the results
are small (periods x categories).

Cells are read as text; a cell is stripped of surrounding white space before it is compared, and an empty cell
is null. A record whose declared columns are all empty is blank: skipped and not counted.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import cached_property
from datetime import date, datetime
from pathlib import Path
from typing import TypeVar

import polars as pl
import pyarrow as pa

from jc_pipeline.lib.ingest.inbox import text_name
from jc_pipeline.lib.ingest.normalize import FINDING_SCHEMA, fmt
from jc_pipeline.lib.ingest.readers import PendingWorkbook, RawSheet
from jc_pipeline.lib.ingest.rules import RULES
from jc_pipeline.lib.ingest.unreadable import Unreadable
from jc_pipeline.lib.mappings.spec import EXCLUDED as EXCLUDED_VALUE, SourceSpec, ValueMap, Where
from jc_pipeline.lib.periods import add_months
from jc_pipeline.lib.regular_files import open_regular, reopen_failed
from jc_pipeline.lib.roster import Agency, Roster
from jc_pipeline.lib.state_clock import state_date, state_timezone

#: Column of a record's row number as a spreadsheet program shows it (the first record's is the header's + 1).
ROW = "\x00row"
#: Category codes below zero: a value mapped to null (left out of the metric), a value without mapping, an empty
#: cell without a ``blank`` member (both N3 errors), a child agency that does not report for the sector.
#: Codes >= 0 index the breakdown's member list (or the reporters, for the agency column).
EXCLUDED, UNMAPPED, BLANK, OTHER_SECTOR = -1, -2, -3, -4
CODE = pl.Int16
#: Tried in order when a source gives no ``date_formats``. A text matches at most one of them (their separators
#: differ), so they may be tried in any order: the one matching most of the export's leading values goes first.
DEFAULT_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M",
                        "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d", "%m/%d/%Y %H:%M:%S",
                        "%m/%d/%Y %H:%M", "%m/%d/%Y")
#: A UTC offset in a format (``%z``, ``%:z``, ``%::z``, ``%#z``, which also reads ``Z``).
_OFFSET = re.compile(r"%:{0,2}#?z")
#: Rows listed in a grouped finding's message.
ROWS_LISTED = 5
#: Leading records whose dates decide which default format is tried first.
_FORMAT_SAMPLE = 1000
_UTF8 = {"utf-8", "utf8", "utf-8-sig", "utf_8"}
_TRANSCODE_CHUNK = 4 * 1024 * 1024
#: Bytes of a CSV export in which the empty lines before its header are counted.
_HEAD_BYTES = 64 * 1024


T = TypeVar("T")


class SourceUnreadable(Exception):
    """The export cannot be read at all (rule F0)."""


class ScratchUnwritable(Exception):
    """The scratch copy of an export cannot be written (a full disk): the run's fault, not the export's."""


@dataclass(frozen=True)
class Context:
    """What every datapoint and finding of one export carries, and the months it may produce."""

    file_idx: int
    sheet: str
    header_row: int  # as a spreadsheet program shows it: where findings about the header go
    now: datetime
    source: SourceSpec
    headers: dict[str, str]  # logical column -> header as found in the file
    #: Agencies the records are counted for: the uploader, or the superagency's children of the source's sector
    #: (``source.agency`` names one on every record; its code indexes this tuple).
    reporters: tuple[Agency, ...]

    def header(self, logical: str) -> str:
        return self.headers.get(logical) or self.source.columns.get(logical, logical)

    @property
    def first(self) -> date:
        """First month that may be emitted: 2000-01, or the source's ``period.from``."""
        return max(date(2000, 1, 1), self.source.period_from or date(2000, 1, 1))

    @property
    def last(self) -> date:
        """Last month that may be emitted: the ingest month, or the source's ``period.to``."""
        this_month = state_date(self.now).replace(day=1)
        return min(this_month, self.source.period_to) if self.source.period_to else this_month

    @property
    def end(self) -> date:
        """The day after the last month that may be emitted."""
        return add_months(self.last, 1)


# --- reading ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    """An export's records as text (with :data:`ROW`), lazily; its header names; the sheet name and the header's
    row (as a spreadsheet program shows it) for findings."""

    records: pl.LazyFrame
    names: list[str]
    sheet: str
    header_row: int


@contextmanager
def pinned(path: Path, data: bytes | None) -> Iterator[Path]:
    """Where to read a delivered export from while the block runs: ``path`` when its bytes are in memory already,
    else the file opened as itself (:func:`open_regular`) and named through ``/proc/self/fd`` where the system has
    it, so that an export swapped for a symlink since its hash is refused, or read as the file that was hashed.
    (A workbook goes to calamine's worker by ``path``, which opens it as itself.)"""
    if data is not None:
        yield path
        return
    try:
        handle = open_regular(path)
    except OSError as exc:
        raise SourceUnreadable(reopen_failed(exc)) from None
    with handle:
        opened = Path(f"/proc/self/fd/{handle.fileno()}")
        yield opened if opened.exists() else path


def load(path: Path, data: bytes | None, source: SourceSpec, scratch: Path, *, read_from: Path | None = None
         ) -> Loaded:
    """Prepare the records of one export (:class:`SourceUnreadable` if it cannot be read).

    ``data``: the file's bytes when ingest already holds them (what was fingerprinted is what is counted). Big
    UTF-8 exports are scanned from disk, streaming; other encodings are transcoded to UTF-8 first (in chunks).
    ``read_from``: where a CSV's bytes are read (:func:`pinned`), ``path`` when None.
    """
    if source.format == "xlsx":
        return _load_workbook(path, data, source)
    name, path = text_name(path.name), read_from or path
    try:
        if source.encoding in _UTF8:
            target: Path | bytes = data if data is not None else path
        elif data is not None:
            target = data.decode(source.encoding).encode()
        else:
            target = _transcode(path, source.encoding, scratch / "export.csv")
        # Polars skips the empty lines before the header; the rows are numbered as the file shows them.
        header_row = 1 + _leading_empty_lines(target)
        options = dict(separator=source.delimiter, infer_schema=False, row_index_name=ROW, raise_if_empty=False,
                       row_index_offset=header_row + 1, glob=False)
        records = pl.scan_csv(target, **options) if isinstance(target, Path) else \
            pl.scan_csv(io.BytesIO(target), **options)
        names = [n for n in records.collect_schema().names() if n != ROW]
    except (pl.exceptions.PolarsError, UnicodeError, OSError) as exc:
        raise SourceUnreadable(f"the CSV cannot be read as {source.encoding} with delimiter '{source.delimiter}' "
                               f"({type(exc).__name__}); check the mapping's encoding and delimiter") from None
    return Loaded(records, names, name, header_row if names else 1)  # blank lines only: no header row to name


def _leading_empty_lines(target: Path | bytes) -> int:
    if isinstance(target, Path):
        with target.open("rb") as handle:
            target = handle.read(_HEAD_BYTES)
    head = target[:_HEAD_BYTES].removeprefix(codecs.BOM_UTF8)
    return head[:len(head) - len(head.lstrip(b"\r\n"))].count(b"\n")


def _transcode(path: Path, encoding: str, out: Path) -> Path:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    with path.open("rb") as source:
        sink = _on_scratch(out, lambda: out.open("wb"))
        try:
            while chunk := source.read(_TRANSCODE_CHUNK):
                text = decoder.decode(chunk).encode()
                _on_scratch(out, lambda: sink.write(text))
            tail = decoder.decode(b"", final=True).encode()
            _on_scratch(out, lambda: (sink.write(tail), sink.flush()))
        finally:
            with suppress(OSError):  # after a failed flush, closing fails again: the first error stands
                sink.close()
    return out


def _on_scratch(out: Path, action: Callable[[], T]) -> T:
    """``action`` on the scratch file ``out``: its OSError (the disk full) is the run's, not the export's."""
    try:
        return action()
    except OSError as exc:
        raise ScratchUnwritable(f"the scratch folder {out.parent} cannot be written ({exc.strerror}); free space on "
                                f"the data directory's disk and run again (nothing is lost)") from exc


def _load_workbook(path: Path, data: bytes | None, source: SourceSpec) -> Loaded:
    """The export's sheet, read as bulk uploads are (:class:`readers.PendingWorkbook`): screened by the workbook
    guard and read by calamine's capped worker, so that a hostile workbook is refused for itself instead of
    aborting the run, and its header found on its first non-blank row."""
    try:
        sheets = {sheet.name: sheet for sheet in PendingWorkbook(path, data, None).sheets()}
    except Unreadable as exc:
        raise SourceUnreadable(str(exc)) from None
    if not sheets:
        raise SourceUnreadable("the workbook has no sheet; export it again")
    sheet = source.sheet if source.sheet is not None else next(iter(sheets))
    if sheet not in sheets:
        raise SourceUnreadable(f"the workbook has no sheet '{sheet}' (it has: {', '.join(sheets)}); "
                               f"fix the mapping's sheet or the export")
    frame = _named_rows(sheets[sheet]).with_row_index(ROW, offset=sheets[sheet].header_row + 1)
    # An empty sheet has no header row (0): its findings go on row 1.
    return Loaded(frame.lazy(), [c for c in frame.columns if c != ROW], sheet, max(sheets[sheet].header_row, 1))


def _named_rows(sheet: RawSheet) -> pl.DataFrame:
    """The rows below the sheet's header, named by it (the rows numbered from the header's, which is the sheet's
    first non-blank row). Blank header cells are named ``__UNNAMED__<i>`` and repeated ones ``<name>_<i>``, as
    fastexcel names them; the first of equal headers keeps its name."""
    names: list[str] = []
    for i, cell in enumerate(sheet.header):
        name = cell if cell else f"__UNNAMED__{i}"
        while name in names:
            name = f"{name}_{i}"
        names.append(name)
    if sheet.cells is None:
        return pl.DataFrame(schema={name: pl.String for name in names})
    columns = [sheet.cells.column(i).slice(sheet.first, sheet.height) for i in range(len(names))]
    return pl.from_arrow(pa.table(columns, names=names)).cast(pl.String)


def match_headers(names: Sequence[str], wanted: dict[str, str]) -> dict[str, str]:
    """{logical column: header as found} for the headers found (compared stripped and case-insensitively; the
    first of equal headers)."""
    by_key: dict[str, str] = {}
    for name in names:
        by_key.setdefault(name.strip().casefold(), name)
    return {logical: by_key[h.casefold()] for logical, h in wanted.items() if h.casefold() in by_key}


def strip(value: str | None) -> str | None:
    """A cell's text as compared: without surrounding white space, None when nothing is left."""
    if value is None:
        return None
    value = value.strip()
    return value or None


# --- the per-record frame --------------------------------------------------------------------------------------


@dataclass
class Records:
    """The compact per-record frame of one export, planned column by column by the metric plans.

    Plans ask for columns (:meth:`date`, :meth:`code`, :meth:`where`, :meth:`ident`, :meth:`derived`) and get
    their names; :meth:`materialize` reads the export once and computes them. Each distinct column is computed
    once (two metrics reading the same date column share its dates).
    """

    ctx: Context
    found: dict[str, str]  # logical column -> header in the export
    agency: str | None = None  # column of the reporter's index (superagency sources), see :meth:`reporter`
    _dates: dict[str, str] = field(default_factory=dict)
    _formats: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _categorical: set[str] = field(default_factory=set)  # logical columns read as categories
    _mapped: dict[tuple, tuple[str, str, Callable[[str | None], object], pl.DataType]] = field(default_factory=dict)
    _scanned: dict[str, pl.Expr] = field(default_factory=dict)  # name -> expression over the export's cells
    _derived: dict[tuple, tuple[str, Callable[[], pl.Expr]]] = field(default_factory=dict)
    _suspects: list[tuple[str, Callable[[], pl.Expr]]] = field(default_factory=list)  # (logical date, condition)

    def _new(self, prefix: str) -> str:
        return f"{prefix}{len(self._dates) + len(self._scanned) + len(self._mapped) + len(self._derived)}"

    def cell(self, logical: str) -> pl.Expr:
        return pl.col(self.found[logical])

    def date(self, logical: str) -> str:
        """Column: the cell as a Date (null when empty or not a date the source reads; time dropped)."""
        if logical not in self._dates:
            self._dates[logical] = name = self._new("d")
            self._formats[logical] = self.ctx.source.date_formats or DEFAULT_DATE_FORMATS
            self._scanned[f"n:{logical}"] = self.cell(logical).is_not_null()
            self.suspect(logical, lambda: ~pl.col(name).is_between(date(2000, 1, 1), self.ctx.end, closed="left"))
        return self._dates[logical]

    def swapped_formats(self, logical: str) -> list[tuple[str, pl.Expr]]:
        """For date column ``logical``: each format it is read with that writes the year last (``%m/%d/%Y``), with
        day and month the other way round, unless listed too; and whether a record's raw text (records read again)
        reads with it."""
        listed = self._formats.get(logical, ())
        turned = (f.replace("%d", "\x00").replace("%m", "%d").replace("\x00", "%m") for f in listed
                  if -1 < f.find("%d") < f.find("%Y") and -1 < f.find("%m") < f.find("%Y"))
        return [(f, self._parse(self.raw(logical), [f]).is_not_null().fill_null(False))
                for f in dict.fromkeys(turned) if f not in listed]

    def suspect(self, logical: str, condition: Callable[[], pl.Expr]) -> None:
        """Read the raw text of date column ``logical`` again where ``condition`` holds (a check may fail)."""
        self._suspects.append((logical, condition))

    def raw(self, logical: str) -> pl.Expr:
        """The stripped raw text of a coded column, or of a date column on the records read again."""
        if logical in self._dates:
            return pl.col(f"r:{logical}")
        return pl.col(self._category(logical)).cast(pl.String).str.strip_chars()

    def _category(self, logical: str) -> str:
        self._categorical.add(logical)
        return f"k:{logical}"

    def mapped(self, key: tuple, logical: str, rule: Callable[[str | None], object], dtype: pl.DataType) -> str:
        """Column: ``rule`` applied to each distinct (stripped) value of ``logical``; ``rule(None)`` for empty
        cells. The export's column is read as categories, so the rule runs once per distinct value."""
        if key not in self._mapped:
            self._mapped[key] = (self._new("m"), self._category(logical), rule, dtype)
        return self._mapped[key][0]

    def code(self, value_map: ValueMap, members: Sequence[str]) -> str:
        """Column: the index in ``members`` of the member each record's value maps to, or a negative code
        (:data:`EXCLUDED`, :data:`UNMAPPED`, :data:`BLANK`)."""

        def rule(value: str | None) -> int:
            if value is None:
                return members.index(value_map.blank) if value_map.blank else BLANK
            target = value_map.values.get(value.casefold())
            if target is None:
                return members.index(value_map.default) if value_map.default else UNMAPPED
            return EXCLUDED if target == EXCLUDED_VALUE else members.index(target)

        key = ("code", value_map.column, tuple(value_map.values.items()), value_map.default, value_map.blank,
               tuple(members))
        return self.mapped(key, value_map.column, rule, CODE)

    def where(self, wheres: Sequence[Where]) -> pl.Expr:
        """The record passes every filter."""
        keep = pl.lit(True)
        for w in wheres:
            if w.blank is not None:
                keep = keep & (~self.present(w.column) if w.blank else self.present(w.column))
                continue
            # An empty cell is in no list: `in` drops it, `not_in` keeps it (`blank: false` drops it).
            passes = (lambda value, w=w: (value is not None and value.casefold() in w.keep) != w.negate)
            keep = keep & pl.col(self.mapped(("where", w), w.column, passes, pl.Boolean))
        return keep

    def present(self, logical: str) -> pl.Expr:
        """The cell has something other than white space (decided once the export is read: see :meth:`_keep`)."""
        return pl.col(f"p:{logical}")

    def ident(self, logical: str) -> str:
        """Column: the stripped text itself (ids)."""
        name = f"i:{logical}"
        self._scanned[name] = self.cell(logical).str.strip_chars().replace("", None)
        return name

    def scanned(self, key: str, expr: pl.Expr) -> str:
        """Column computed while the export is read (over its cells)."""
        self._scanned[key] = expr
        return key

    def derived(self, key: tuple, build: Callable[[], pl.Expr]) -> str:
        """Column computed on the frame after the export was read (over the other columns)."""
        if key not in self._derived:
            self._derived[key] = (self._new("x"), build)
        return self._derived[key][0]

    def reporter(self) -> pl.Expr:
        """The reporter's index of each record (0 unless the source names child agencies)."""
        return pl.col(self.agency) if self.agency is not None else pl.lit(0, CODE)

    # --- reading the export -----------------------------------------------------------------------------------

    def materialize(self, loaded: Loaded) -> pl.DataFrame:
        """Read the export once into the per-record frame (:class:`SourceUnreadable` when Polars cannot parse it)."""
        plain = [lg for lg in self.found if lg not in self._dates and lg not in self._categorical]
        coded = [lg for lg in self._categorical if lg not in self._dates]  # a date column's presence is its own
        for logical in coded:
            self.mapped(("present", logical), logical, lambda value: value is not None, pl.Boolean)
        try:
            self._order_formats(loaded.records)
            frame = loaded.records.select(ROW, *(expr.alias(name) for name, expr in self._scanned.items()), *(
                (self.cell(lg).str.strip_chars().str.len_bytes() > 0).fill_null(False).alias(f"p:{lg}")
                for lg in plain), *(
                self._parse(self.cell(lg), self._formats[lg][:1]).alias(name) for lg, name in self._dates.items()),
                *(self.cell(lg).cast(pl.Categorical).alias(f"k:{lg}") for lg in self._categorical),
            ).collect(engine="streaming")
            frame = self._read_again(loaded, self._map(frame))
        except pl.exceptions.PolarsError as exc:
            raise SourceUnreadable(f"the export cannot be read with the mapping ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0][:200]}); check the encoding, delimiter and columns"
                                   ) from None
        frame = frame.with_columns(*(pl.col(self._mapped[("present", lg)][0]).alias(f"p:{lg}") for lg in coded),
                                   *((pl.col(name).is_not_null() | pl.col(f"r:{lg}").is_not_null()).alias(f"p:{lg}")
                                     for lg, name in self._dates.items()))
        # Blank records (every declared cell empty or white space) are skipped and not counted.
        keep = pl.any_horizontal(pl.col(f"p:{lg}") for lg in self.found) if self.found else pl.lit(True)
        frame = frame.with_columns(keep=keep)
        return frame.with_columns(build().alias(name) for name, build in self._derived.values())

    @staticmethod
    def _parse(text: pl.Expr, formats: Sequence[str]) -> pl.Expr:
        """The dates ``text`` reads with the first of ``formats`` that reads it; none in the years 0-99 (a two-digit
        year read with %Y: :meth:`short_year`)."""
        # Each format's years 0-99 dropped before the next is tried: %Y reads 1/31/24 as the year 24, and a %y
        # listed after it must still read it (helper-51).
        return pl.coalesce([pl.when(read.dt.year() >= 100).then(read) for read in Records._read_each(text, formats)])

    @staticmethod
    def _read_each(text: pl.Expr, formats: Sequence[str]) -> list[pl.Expr]:
        # No cache: datetimes are mostly distinct, and caching them costs more than parsing them twice over. A time
        # with a UTC offset is dated in the state's time zone (helper-47: a call at 19:30 New York time on January
        # 31, stamped 00:30Z, counted in February).
        return [text.str.to_datetime(f, strict=False, cache=False).dt.convert_time_zone(state_timezone()).dt.date()
                if _OFFSET.search(f) else text.str.to_date(f, strict=False, cache=False) for f in formats]

    def short_year(self, logical: str) -> pl.Expr:
        """Whether a record's raw text (records read again) of date column ``logical`` reads as a date in the years
        0-99: a two-digit year (``1/31/24``) read with %Y. False for a column of year labels (aggregated exports)."""
        if logical not in self._dates:
            return pl.lit(False)
        read = pl.coalesce(self._read_each(self.raw(logical), self._formats[logical]))
        return (read.dt.year() < 100).fill_null(False)

    def _order_formats(self, records: pl.LazyFrame) -> None:
        """Default formats go first that parse most of a column's leading values."""
        defaults = [lg for lg, formats in self._formats.items() if formats == DEFAULT_DATE_FORMATS]
        if not defaults:
            return
        sample = records.head(_FORMAT_SAMPLE).select(
            pl.col(self.found[lg]).str.strip_chars().alias(lg) for lg in defaults).collect()
        for logical in defaults:
            hits = [sample.select(self._parse(pl.col(logical), [f]).is_not_null().sum()).item()
                    for f in DEFAULT_DATE_FORMATS]
            ranked = sorted(range(len(DEFAULT_DATE_FORMATS)), key=lambda i: -hits[i])
            self._formats[logical] = tuple(DEFAULT_DATE_FORMATS[i] for i in ranked)

    def _map(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The mapped columns: each rule applied to the distinct values of its categorical column, then looked up
        per record by the category's integer id (an array index, not a hash)."""
        distinct = {lg: frame.select(pl.col(f"k:{lg}").unique().drop_nulls()).to_series() for lg in self._categorical}
        columns = []
        for name, category, rule, dtype in self._mapped.values():
            values = distinct[category[2:]]
            ids = values.to_physical().to_numpy()
            table = pl.Series([rule(None)] * (int(ids.max()) + 1 if len(ids) else 1), dtype=dtype)
            table = table.scatter(ids, pl.Series([rule(strip(v)) for v in values.cast(pl.String).to_list()],
                                                 dtype=dtype))
            columns.append(pl.lit(table).gather(pl.col(category).to_physical()).fill_null(pl.lit(rule(None), dtype))
                           .alias(name))
        return frame.with_columns(columns)

    def _read_again(self, loaded: Loaded, frame: pl.DataFrame) -> pl.DataFrame:
        """Dates that did not parse with their first format, or that a check may report: read again with their
        raw text (every format, in order, on the stripped text), only for those records."""
        if not self._dates:
            return frame
        failed = [pl.col(name).is_null() & pl.col(f"n:{lg}") for lg, name in self._dates.items()]
        suspects = [condition() for _, condition in self._suspects]
        chosen = frame.filter(pl.any_horizontal(*failed, *suspects).fill_null(False)).select(ROW)
        frame = frame.drop(f"n:{lg}" for lg in self._dates)
        if not chosen.height:
            return frame.with_columns(pl.lit(None, pl.String).alias(f"r:{lg}") for lg in self._dates)
        texts = loaded.records.join(chosen.lazy(), on=ROW, how="semi").select(ROW, *(
            self.cell(lg).str.strip_chars().replace("", None).alias(f"r:{lg}") for lg in self._dates)).collect()
        again = texts.select(ROW, *(pl.col(f"r:{lg}") for lg in self._dates), *(
            self._parse(pl.col(f"r:{lg}"), self._formats[lg]).alias(name) for lg, name in self._dates.items()))
        return frame.update(again.drop(f"r:{lg}" for lg in self._dates), on=ROW, include_nulls=True).join(
            again.drop(*self._dates.values()), on=ROW, how="left")


# --- report periods --------------------------------------------------------------------------------------------

MONTHLY = "MONTHLY"


@dataclass(frozen=True)
class Periods:
    """One metric's report periods per reporter: months, or (fiscal) years starting in a given month.

    ``starts[r]`` is 0 when reporter ``r`` reports the metric monthly, else the first month of its year (the
    agency's effective setting: metric_settings.csv, else agencies.csv ``fiscal_year_start_month``). The period
    of a date is looked up in a table of every day from 2000-01-01 to ``until`` (truncating millions of dates
    one by one is an order of magnitude slower); dates outside that range (which checks reject) are clamped.
    """

    starts: tuple[int, ...]
    until: date

    @classmethod
    def of(cls, roster: Roster, reporters: Sequence[Agency], metric_key: str, until: date) -> Periods:
        settings = [roster.effective(a.agency_id, metric_key) for a in reporters]
        return cls(tuple(0 if s.frequency == MONTHLY else s.starting_month for s in settings), until)

    @property
    def annual(self) -> bool:
        return any(self.starts)

    @property
    def monthly(self) -> bool:
        return not all(self.starts)

    def _per_reporter(self, values: Sequence[int], reporter: pl.Expr) -> pl.Expr:
        if len(set(values)) == 1:
            return pl.lit(values[0], pl.Int32)
        return reporter.replace_strict(list(range(len(values))), list(values), return_dtype=pl.Int32)

    @cached_property
    def _table(self) -> pl.Series:
        """Period start of every day from 2000-01-01 to ``until``, once per distinct kind of period in turn."""
        day = pl.col("day")
        return pl.DataFrame({"day": pl.date_range(_FIRST_DAY, self.until, "1d", closed="left", eager=True)}).select(
            pl.concat([day.dt.month_start() if first == 0 else
                       pl.date(day.dt.year().cast(pl.Int32) - (day.dt.month() < first).cast(pl.Int32), first, 1)
                       for first in sorted(set(self.starts))])).to_series()

    def start(self, day: pl.Expr, reporter: pl.Expr) -> pl.Expr:
        """The first day of the period containing ``day`` (a Date)."""
        kinds = sorted(set(self.starts))
        width = len(self._table) // len(kinds)
        offset = (day.cast(pl.Int32) - (_FIRST_DAY - date(1970, 1, 1)).days).clip(0, width - 1)
        kind = self._per_reporter([kinds.index(first) for first in self.starts], reporter)
        return pl.lit(self._table).gather(kind * width + offset)

    def labelled(self, end_year: pl.Expr, reporter: pl.Expr) -> pl.Expr:
        """The first day of the year labelled ``end_year`` (the year it ends in, spec §5.4)."""
        first = self._per_reporter(self.starts, reporter)
        return pl.date(end_year - (first != 1).cast(pl.Int32), first, 1)

    def lengths(self) -> pl.Expr:
        """The period length in months of column ``reporter`` (of a result frame)."""
        return self._per_reporter([12 if s else 1 for s in self.starts], pl.col("reporter"))


_FIRST_DAY = date(2000, 1, 1)


# --- findings --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """One check of a metric: records the metric keeps (``live``) where ``problem`` holds have the problem."""

    live: pl.Expr  # over the frame
    problem: pl.Expr  # over the frame; cheap on its own, so whether it ever holds is asked first
    raw: pl.Expr | None  # the value the finding quotes
    rule: str
    column: str  # logical column the finding names
    message: str  # template: {raw}, {records} ("3 records, rows 7, 9, 12"), {column}

    @property
    def condition(self) -> pl.Expr:
        return self.live & self.problem


def grouped_finding(frame: pl.DataFrame, flag: Flag, ctx: Context) -> pl.DataFrame:
    """One finding per distinct raw value of the flagged records: on its first row, with its count and rows."""
    raw = flag.raw if flag.raw is not None else pl.lit(None, pl.String)
    grouped = frame.lazy().filter(flag.condition).select(ROW, __raw=raw).group_by("__raw").agg(
        first=pl.col(ROW).min(), n=pl.len(),
        rows=pl.col(ROW).sort().head(ROWS_LISTED).cast(pl.String).str.join(", "))
    header = ctx.header(flag.column)
    pieces, values = [], []
    rest = flag.message.replace("{column}", header.replace("{", "(").replace("}", ")"))
    while "{" in rest:
        before, _, after = rest.partition("{")
        name, _, rest = after.partition("}")
        pieces.append(before)
        listed = pl.when(pl.col("n") > ROWS_LISTED).then(pl.col("rows") + pl.lit(", ...")).otherwise(pl.col("rows"))
        values.append({"raw": pl.col("__raw").fill_null("(empty)"),
                       "records": pl.when(pl.col("n") == 1).then(pl.lit("1 record, row ") + listed)
                       .otherwise(pl.col("n").cast(pl.String) + pl.lit(" records, rows ") + listed)}[name])
    template = "{}".join([*pieces, rest])
    return grouped.select(
        file_idx=pl.lit(ctx.file_idx, pl.Int64), sheet=pl.lit(ctx.sheet), row_number=pl.col("first"),
        column_name=pl.lit(header), raw_value=pl.col("__raw"), rule=pl.lit(flag.rule),
        severity=pl.lit(RULES[flag.rule].severity), message=fmt(template, *values),
    ).cast(FINDING_SCHEMA).collect()


def single_finding(file_idx: int, sheet: str | None, row: int | None, column: str | None, raw: str | None,
                   rule: str, message: str) -> pl.DataFrame:
    return pl.DataFrame([(file_idx, sheet, row, column, raw, rule, RULES[rule].severity, message)],
                        schema=FINDING_SCHEMA, orient="row")


def any_of(conditions: Iterable[pl.Expr]) -> pl.Expr:
    return pl.any_horizontal(pl.lit(False), *conditions)
