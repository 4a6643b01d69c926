"""Agency-native extracts: CAD, RMS, jail, court and supervision exports mapped to Tier 1 metrics.

An agency with ``mappings/<agency_id>.yaml`` in the data directory may deliver its own system's exports in its
inbox folders; a file whose path below ``inbox/<agency_id>/`` matches a source ``pattern`` of the mapping is read
here instead of as a bulk upload (the one dispatch point is :func:`jc_pipeline.lib.ingest.batch.parse_inbox`).
The result has exactly the shapes of bulk-upload ingest (datapoints, findings, per-file row counts), so native
datapoints go through store, resolution, validation and roll-up unchanged. Format: ``docs/mappings.md``.

Accounting: a *row* of a native export is one input record (blank records are skipped, not counted). A record is
rejected when it has an ERROR finding and was counted by no metric of the source; every other record is loaded
(it contributed to at least one datapoint, or the mapping deliberately leaves it out with ``where`` or a value
mapped to null). Findings are grouped: one per distinct problem value and column, on its first row, with the
number of records and their first row numbers.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import polars as pl

from jc_pipeline.lib.ingest.inbox import InboxFile, text_name
from jc_pipeline.lib.ingest.normalize import DATAPOINT_SCHEMA, FINDING_SCHEMA, Normalized
from jc_pipeline.lib.mappings.adp import plan_population
from jc_pipeline.lib.mappings.aggregate import plan_aggregated
from jc_pipeline.lib.mappings.common import BLANK, CODE, OTHER_SECTOR, UNMAPPED, Context, Periods, Records, \
    SourceUnreadable, any_of, grouped_finding, load, match_headers, pinned, single_finding
from jc_pipeline.lib.mappings.records import Plan, plan_events
from jc_pipeline.lib.mappings.spec import AGGREGATED, MAPPINGS, MAX_MAPPING_BYTES, POPULATION, RULES, AgencyMapping, \
    MappingError, MetricSpec, SourceSpec, load_mapping, pattern_matches, raw_patterns
from jc_pipeline.lib.registry import Registry
from jc_pipeline.lib.roster import Agency, Roster

__all__ = ["MAPPINGS", "AgencyMapping", "MappingError", "NativeExtracts", "extract", "load_mapping"]

_COUNTS_SCHEMA = {"file_idx": pl.Int64, "rows_total": pl.UInt32, "rows_rejected": pl.UInt32}
MISSING_MESSAGE = ("The export has no column '{}' ({} in the mapping); the metrics that need it were not computed "
                   "({}). Add the column to the export or fix the header in the mapping's columns")
NO_MONTH_MESSAGE = ("{} is reported monthly by {} (agencies.csv / metric_settings.csv), but the mapping gives its "
                    "rows a year only; map the export's month column (or a date) too")


#: Joins a native export's content hash and its mapping's in the version ingest compares (`NativeExtracts.version`).
_MAPPED = "+mapping:"
#: The scratch folders of the exports being read, under the data directory's pipeline/ (:func:`extract`).
_SCRATCH = "native_"


@dataclass
class _Invalid:
    """A mapping that does not validate: its (raw) patterns and the problems, reported on matching files."""

    problems: list[str]
    patterns: list[str]


@dataclass
class NativeExtracts:
    """Claims inbox files matched by an agency mapping and extracts them; :meth:`merge` adds the results."""

    data_dir: Path
    roster: Roster
    registry: Registry
    now: datetime
    _mappings: dict[str, tuple[AgencyMapping | _Invalid, str] | None] = field(default_factory=dict)
    _datapoints: list[pl.DataFrame] = field(default_factory=list)
    _findings: list[pl.DataFrame] = field(default_factory=list)
    _counts: list[tuple[int, int, int]] = field(default_factory=list)

    def clear_scratch(self) -> None:
        """Remove the scratch folders a killed ingest left beside the store (helper-50: each as big as its export,
        kept for good). Called before the run reads anything; one ingest reads at a time (the store's slot)."""
        for folder in (self.data_dir / "pipeline").glob(f"{_SCRATCH}*"):
            shutil.rmtree(folder, ignore_errors=True)

    def for_next_batch(self) -> NativeExtracts:
        """An empty accumulator for the next ingest batch that shares this one's loaded mappings: each mapping file
        is read once per run, so the files routed ahead of a batch and the batch that reads them see one version."""
        return replace(self, _datapoints=[], _findings=[], _counts=[])

    def _load(self, folder: str | None) -> tuple[AgencyMapping | _Invalid, str] | None:
        """(the mapping of the agency whose inbox folder is ``folder``, sha256 of the mapping file) or None (no
        mapping). Folder and mapping file name the agency's id in any case, as the inbox does."""
        agency = self.roster.agency_of_folder(folder) if folder is not None else None
        if agency is None:
            return None
        agency_id = agency.agency_id
        if agency_id not in self._mappings:
            path = self._mapping_file(agency_id)
            found: tuple[AgencyMapping | _Invalid, str] | None = None
            if path is not None and (path.is_symlink() or not path.is_file()):
                # Never followed, as no link in the data directory is; said, not taken for no mapping (helper-46).
                found = (_Invalid([f"{MAPPINGS}/{path.name}: a symbolic link or not a regular file, which is never "
                                   f"read; put the mapping file itself in {MAPPINGS}/"], []), "")
            elif path is not None:
                small = path.stat().st_size <= MAX_MAPPING_BYTES
                with path.open("rb") as handle:  # streamed: even a mapping too large to read has a version
                    digest = hashlib.file_digest(handle, lambda: hashlib.sha256(f"rules {RULES}\n".encode())
                                                 ).hexdigest()
                try:
                    found = (load_mapping(path, agency_id, self.registry), digest)
                except MappingError as exc:
                    text = path.read_text(encoding="utf-8", errors="replace") if small else ""
                    found = (_Invalid(exc.problems, raw_patterns(text)), digest)
            self._mappings[agency_id] = found
        return self._mappings[agency_id]

    def _mapping_file(self, agency_id: str) -> Path | None:
        """``mappings/<agency_id>.yaml``, or the one entry there whose name is the id in another case (a symbolic
        link or a folder too: :meth:`_load` refuses it)."""
        exact = self.data_dir / MAPPINGS / f"{agency_id}.yaml"
        if exact.is_symlink() or exact.exists():
            return exact
        folder = self.data_dir / MAPPINGS
        spelled = [p for p in folder.glob("*.yaml") if p.stem.casefold() == agency_id.casefold()] if folder.is_dir() \
            else []
        return spelled[0] if len(spelled) == 1 else None

    def _mapping(self, folder: str | None) -> AgencyMapping | _Invalid | None:
        loaded = self._load(folder)
        return loaded[0] if loaded is not None else None

    def claims(self, file: InboxFile) -> bool:
        """Whether ``file`` is a native export of its agency (matched by a source pattern of the mapping)."""
        mapping = self._mapping(file.agency_id)
        if mapping is None or file.is_symlink:
            return False
        relative = _relative(file)
        if isinstance(mapping, _Invalid):
            return any(pattern_matches(pattern, relative) for pattern in mapping.patterns)
        return mapping.source_for(relative) is not None

    def unread_reason(self, file: InboxFile) -> str | None:
        """Why the agency's mapping file cannot read ``file``: it does not validate (None when it does, or when the
        agency has none: its exports are then bulk uploads). A mapping that validates and no longer claims a file
        means it (helper-46: a pattern narrowed on purpose must let a bulk upload it had caught load)."""
        mapping = self._mapping(file.agency_id)
        return f"its mapping does not validate: {mapping.problems[0]}" if isinstance(mapping, _Invalid) else None

    @staticmethod
    def is_native(version: str) -> bool:
        """Whether a version from :meth:`version` is a native export's (read by a mapping)."""
        return _MAPPED in version

    @staticmethod
    def content(version: str) -> str:
        """The sha256 of the bytes of a version from :meth:`version` (without the mapping's, where it has one)."""
        return version.partition(_MAPPED)[0]

    def version(self, file: InboxFile, sha256: str) -> tuple[str, bool]:
        """(the version of a delivered file that ingest compares, whether a mapping claims the file). A native
        export's version is its content *and* the mapping that reads it, so a changed mapping re-reads the
        agency's exports; any other file's is ``sha256`` as is."""
        if not self.claims(file):
            return sha256, False
        return f"{sha256}{_MAPPED}{self._load(file.agency_id)[1][:16]}", True

    def parse(self, file_idx: int, file: InboxFile, data: bytes | None) -> None:
        mapping = self._mapping(file.agency_id)
        if isinstance(mapping, _Invalid):
            message = ("The agency's mapping file is invalid, so this export was not read: "
                       + "; ".join(mapping.problems[:10]) + ("; ..." if len(mapping.problems) > 10 else ""))
            self._findings.append(single_finding(file_idx, None, None, None, file.name, "N1", message))
            return
        source = mapping.source_for(_relative(file))
        agency = self.roster.agency_of_folder(file.agency_id)
        problem = _sector_problem(self.roster, agency, source)
        if problem is not None:
            self._findings.append(single_finding(file_idx, None, None, None, file.name, "F8", problem))
            return
        # Beside the store, not in the system's temp folder: a small /tmp full made the export UNREADABLE for good
        # (helper-49); the data directory's disk is the one the operator watches.
        result = extract(file.absolute, data, source, file_idx=file_idx, agency=agency, roster=self.roster,
                         now=self.now, scratch_in=self.data_dir / "pipeline")
        self._datapoints.append(result.datapoints)
        self._findings.append(result.findings)
        self._counts.append(result.counts)

    def merge(self, result: Normalized) -> Normalized:
        """``result`` (the bulk-upload rows) with the native exports' datapoints, findings and row counts added."""
        if not (self._datapoints or self._findings):
            return result
        counts = pl.DataFrame(self._counts, schema=_COUNTS_SCHEMA, orient="row")
        return Normalized(
            datapoints=pl.concat([result.datapoints, *self._datapoints]),
            findings=pl.concat([result.findings, *self._findings]),
            row_counts=pl.concat([result.row_counts, counts.cast(result.row_counts.schema)]),
        )


def _sector_problem(roster: Roster, agency: Agency, source: SourceSpec) -> str | None:
    """Why the agency cannot deliver the source's sector (F8), or None."""
    if source.agency is not None:
        if not any(source.sector in child.sectors for child in roster.children(agency.agency_id)):
            return (f"no child agency of {agency.agency_id} reports for {source.sector} in agencies.csv, so the "
                    f"export's agency column names no one who could")
        return None
    if source.sector not in agency.sectors:
        return f"{source.sector} is not one of the agency's sectors ({', '.join(agency.sectors)}) in agencies.csv"
    return None


def reporters(roster: Roster, agency: Agency, source: SourceSpec) -> tuple[Agency, ...]:
    """The agencies a source's records are counted for: the uploader, or its children of the source's sector."""
    if source.agency is None:
        return (agency,)
    return tuple(a for a in roster.children(agency.agency_id) if source.sector in a.sectors)


@dataclass(frozen=True)
class Extracted:
    datapoints: pl.DataFrame  # DATAPOINT_SCHEMA
    findings: pl.DataFrame  # FINDING_SCHEMA
    counts: tuple[int, int, int]  # file_idx, rows_total, rows_rejected


def extract(path: Path, data: bytes | None, source: SourceSpec, *, file_idx: int, agency: Agency, roster: Roster,
            now: datetime, scratch_in: Path) -> Extracted:
    """Read one native export with its source mapping (see the module docstring). ``scratch_in``: the folder of
    its scratch folder (an export in another encoding is transcoded there)."""
    scratch_in.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=_SCRATCH, dir=scratch_in) as scratch, ExitStack() as stack:
        try:
            read_from = stack.enter_context(pinned(path, data)) if source.format != "xlsx" else None
            loaded = load(path, data, source, Path(scratch), read_from=read_from)
        except SourceUnreadable as exc:
            return _unreadable(file_idx, path, str(exc))
        found = match_headers(loaded.names, dict(source.columns))
        who = reporters(roster, agency, source)
        ctx = Context(file_idx, loaded.sheet, loaded.header_row, now.replace(tzinfo=None), source, found, who)
        records = Records(ctx, found)
        findings: list[pl.DataFrame] = []
        usable: list[tuple[MetricSpec, Periods]] = []
        for metric in source.metrics:
            needed = [*metric.columns, *((source.agency,) if source.agency else ())]
            periods = Periods.of(roster, who, metric.metric.key, ctx.end)
            if all(c in found for c in needed) and _placeable(metric, periods, ctx, findings):
                usable.append((metric, periods))
        for logical in source.columns:
            needing = [m.metric.key for m in source.metrics if logical in (*m.columns, source.agency)]
            if logical not in found and needing:
                findings.append(single_finding(file_idx, ctx.sheet, ctx.header_row, source.columns[logical], None, "N2",
                                               MISSING_MESSAGE.format(source.columns[logical], logical,
                                                                      ", ".join(needing))))
        if source.agency is not None and source.agency in found:
            records.agency = _child_column(records, source.agency, who, roster, agency)
        plans = [_plan(i, metric, records, periods) for i, (metric, periods) in enumerate(usable)]
        try:
            return _finish(records.materialize(loaded), records, plans, findings)
        except SourceUnreadable as exc:
            return _unreadable(file_idx, path, str(exc))


def _placeable(metric: MetricSpec, periods: Periods, ctx: Context, findings: list[pl.DataFrame]) -> bool:
    """A metric reported monthly needs rows with months: not a year alone (one N2 finding otherwise)."""
    if metric.year is None or metric.month is not None or not periods.monthly:
        return True
    monthly = ", ".join(a.agency_id for a, s in zip(ctx.reporters, periods.starts, strict=True) if not s)
    findings.append(single_finding(ctx.file_idx, ctx.sheet, ctx.header_row, ctx.header(metric.year), None, "N2",
                                   NO_MONTH_MESSAGE.format(metric.metric.key, monthly)))
    return False


def _child_column(records: Records, logical: str, who: tuple[Agency, ...], roster: Roster, agency: Agency) -> str:
    """Register the column naming each record's child: its index in ``who``, or UNMAPPED / BLANK / OTHER_SECTOR
    (a child of the superagency that does not report for the source's sector). Matched like bulk uploads'
    agency column (roster.find_child: agency_name or agency_id, trimmed, case-insensitively)."""

    def child(label: str | None) -> int:
        if label is None:
            return BLANK
        found = roster.find_child(agency.agency_id, label)
        if found is None:
            return UNMAPPED
        return who.index(found) if found in who else OTHER_SECTOR

    return records.mapped(("agency", logical), logical, child, CODE)


def _plan(i: int, metric: MetricSpec, records: Records, periods: Periods) -> Plan:
    if records.ctx.source.kind == AGGREGATED:
        return plan_aggregated(i, metric, records, periods)
    if metric.count == POPULATION:
        return plan_population(i, metric, records, periods)
    return plan_events(i, metric, records, periods)


def _finish(frame: pl.DataFrame, records: Records, plans: list[Plan], findings: list[pl.DataFrame]) -> Extracted:
    """Accounting, grouped findings and datapoints of the per-record frame."""
    ctx = records.ctx
    keep = pl.col("keep")
    # Checks whose problem no record has at all are dropped before the records are checked one by one: a clean
    # export pays one cheap pass over a few columns.
    every = [flag for plan in plans for flag in plan.flags]
    possible = frame.select(f.problem.any().alias(str(k)) for k, f in enumerate(every)).row(0) if every else ()
    kept = {id(f) for f, may in zip(every, possible, strict=True) if may}
    flags = [f for f in every if id(f) in kept]
    counted = {f"counted{i}": keep & plan.live & ~_flagged(plan, kept) for i, plan in enumerate(plans)}
    flagged = keep & any_of(f.condition for f in flags)
    frame = frame.with_columns(**counted, flagged=flagged)
    # With no metric computable (the N2 findings say why), every record is rejected.
    rejected = pl.col("flagged") & ~any_of(pl.col(name) for name in counted) if plans else keep
    total, rejected_count, problems = frame.select(keep.sum().alias("total"), rejected.sum().alias("rejected"),
                                                   pl.col("flagged").sum().alias("problems")).row(0)
    if problems:  # the flags are counted one by one only when some record raised one
        hits = frame.select((keep & f.condition).sum().alias(str(k)) for k, f in enumerate(flags)).row(0)
        found = [grouped_finding(frame.filter(keep), flag, ctx) for flag, hit in zip(flags, hits, strict=True)
                 if hit]
        findings.append(pl.concat(found).unique(subset=["column_name", "raw_value", "rule"], keep="first",
                                                maintain_order=True))
    values = [p.values(frame.lazy().filter(pl.col(f"counted{i}"))).with_columns(
        metric_key=pl.lit(p.metric.metric.key), sector=pl.lit(p.metric.metric.sector)) for i, p in enumerate(plans)]
    datapoints = _datapoints(pl.concat(values, how="diagonal_relaxed"), ctx) if values else \
        pl.DataFrame(schema=DATAPOINT_SCHEMA)
    return Extracted(datapoints, _sorted(findings), (ctx.file_idx, int(total), int(rejected_count)))


def _flagged(plan: Plan, kept: set[int]) -> pl.Expr:
    """The records ``plan`` leaves uncounted for a finding of its own: with ``id``, every row of such a row's event
    (the window only when some record may have a finding: a clean export pays nothing for it)."""
    conditions = [f.condition for f in plan.flags if id(f) in kept]
    if plan.event is None or not conditions:
        return any_of(conditions)
    return any_of(conditions).any().over(plan.event)


def _sorted(findings: list[pl.DataFrame]) -> pl.DataFrame:
    if not findings:
        return pl.DataFrame(schema=FINDING_SCHEMA)
    return pl.concat(findings).sort("row_number", "rule", nulls_last=False)


def _unreadable(file_idx: int, path: Path, message: str) -> Extracted:
    return Extracted(pl.DataFrame(schema=DATAPOINT_SCHEMA),
                     single_finding(file_idx, None, None, None, text_name(path.name), "F0", message), (file_idx, 0, 0))


def _datapoints(values: pl.DataFrame, ctx: Context) -> pl.DataFrame:
    """The values as staged datapoints, each under its reporter (the uploader, or the child agency named)."""
    index = list(range(len(ctx.reporters)))
    return values.select(
        file_idx=pl.lit(ctx.file_idx, pl.Int64), sheet=pl.lit(ctx.sheet), sheet_idx=pl.lit(0, pl.Int64),
        row_number="row_number",
        agency_id=pl.col("reporter").replace_strict(index, [a.agency_id for a in ctx.reporters],
                                                    return_dtype=pl.String),
        sector="sector", metric_key="metric_key",
        frequency="frequency",
        period_start="period_start", period_end="period_end", dimension="dimension", category="category",
        value="value",
    ).cast(DATAPOINT_SCHEMA).sort("agency_id", "metric_key", "period_start", "dimension", "category",
                                  nulls_last=False)


def _relative(file: InboxFile) -> str:
    """The file's path below ``inbox/<agency_id>/`` (what patterns match)."""
    return "/".join(file.path.split("/")[2:])


def claimed_paths(extracts: NativeExtracts, files: Iterable[InboxFile]) -> list[str]:
    """Paths of ``files`` that the mappings claim (for tools and tests)."""
    return [f.path for f in files if extracts.claims(f)]

