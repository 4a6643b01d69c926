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

from collections.abc import Iterable
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from jc_pipeline.lib.ingest.inbox import InboxFile
from jc_pipeline.lib.ingest.normalize import DATAPOINT_SCHEMA, FINDING_SCHEMA, Normalized
from jc_pipeline.lib.mappings.adp import plan_population
from jc_pipeline.lib.mappings.aggregate import plan_aggregated
from jc_pipeline.lib.mappings.common import Context, SourceUnreadable, grouped_finding, scan, \
    select_columns, single_finding
from jc_pipeline.lib.mappings.records import Plan, plan_events
from jc_pipeline.lib.mappings.spec import AGGREGATED, MAPPINGS, MAX_MAPPING_BYTES, POPULATION, AgencyMapping, \
    MappingError, SourceSpec, load_mapping, pattern_matches, raw_patterns
from jc_pipeline.lib.registry import Registry
from jc_pipeline.lib.roster import Roster

__all__ = ["MAPPINGS", "AgencyMapping", "MappingError", "NativeExtracts", "extract", "load_mapping"]

_COUNTS_SCHEMA = {"file_idx": pl.Int64, "rows_total": pl.UInt32, "rows_rejected": pl.UInt32}
#: Exports up to this size are parsed once into memory; bigger ones are streamed (bounded memory).
MATERIALIZE_BYTES = 64 * 1024 * 1024
MISSING_MESSAGE = ("The export has no column '{}' ({} in the mapping); the metrics that need it were not computed "
                   "({}). Add the column to the export or fix the header in the mapping's columns")


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
    _mappings: dict[str, AgencyMapping | _Invalid | None] = field(default_factory=dict)
    _datapoints: list[pl.DataFrame] = field(default_factory=list)
    _findings: list[pl.DataFrame] = field(default_factory=list)
    _counts: list[tuple[int, int, int]] = field(default_factory=list)

    def mapping(self, agency_id: str | None) -> AgencyMapping | _Invalid | None:
        if agency_id is None or agency_id not in self.roster.agencies:
            return None
        if agency_id not in self._mappings:
            path = self.data_dir / MAPPINGS / f"{agency_id}.yaml"
            found: AgencyMapping | _Invalid | None = None
            if path.is_file() and not path.is_symlink():
                try:
                    found = load_mapping(path, agency_id, self.registry)
                except MappingError as exc:
                    small = path.stat().st_size <= MAX_MAPPING_BYTES
                    text = path.read_text(encoding="utf-8", errors="replace") if small else ""
                    found = _Invalid(exc.problems, raw_patterns(text))
            self._mappings[agency_id] = found
        return self._mappings[agency_id]

    def claims(self, file: InboxFile) -> bool:
        """Whether ``file`` is a native export of its agency (matched by a source pattern of the mapping)."""
        mapping = self.mapping(file.agency_id)
        if mapping is None or file.is_symlink:
            return False
        relative = _relative(file)
        if isinstance(mapping, _Invalid):
            return any(pattern_matches(pattern, relative) for pattern in mapping.patterns)
        return mapping.source_for(relative) is not None

    def parse(self, file_idx: int, file: InboxFile, data: bytes | None) -> None:
        mapping = self.mapping(file.agency_id)
        if isinstance(mapping, _Invalid):
            message = ("The agency's mapping file is invalid, so this export was not read: "
                       + "; ".join(mapping.problems[:10]) + ("; ..." if len(mapping.problems) > 10 else ""))
            self._findings.append(pl.DataFrame([(file_idx, None, None, None, file.absolute.name, "N1", "ERROR",
                                                 message)], schema=FINDING_SCHEMA, orient="row"))
            return
        source = mapping.source_for(_relative(file))
        agency = self.roster.agencies[file.agency_id]
        if source.sector not in agency.sectors:
            self._findings.append(pl.DataFrame([(file_idx, None, None, None, file.absolute.name, "F8", "ERROR",
                                                 f"{source.sector} is not one of the agency's sectors "
                                                 f"({', '.join(agency.sectors)}) in agencies.csv")],
                                               schema=FINDING_SCHEMA, orient="row"))
            return
        result = extract(file.absolute, data, source, file_idx=file_idx, agency_id=agency.agency_id,
                         state_code=agency.state_code, now=self.now)
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


@dataclass(frozen=True)
class Extracted:
    datapoints: pl.DataFrame  # DATAPOINT_SCHEMA
    findings: pl.DataFrame  # FINDING_SCHEMA
    counts: tuple[int, int, int]  # file_idx, rows_total, rows_rejected


def extract(path: Path, data: bytes | None, source: SourceSpec, *, file_idx: int, agency_id: str,
            state_code: str | None, now: datetime) -> Extracted:
    """Read one native export with its source mapping (see the module docstring)."""
    now = now.replace(tzinfo=None)
    try:
        lazy, names, sheet = scan(path, data, source)
    except SourceUnreadable as exc:
        finding = pl.DataFrame([(file_idx, None, None, None, path.name, "F0", "ERROR", str(exc))],
                               schema=FINDING_SCHEMA, orient="row")
        return Extracted(pl.DataFrame(schema=DATAPOINT_SCHEMA), finding, (file_idx, 0, 0))
    frame, found = select_columns(lazy, names, dict(source.columns))
    ctx = Context(file_idx, sheet, agency_id, state_code, now, source, found)
    findings: list[pl.LazyFrame | pl.DataFrame] = []
    missing = [logical for logical in source.columns if logical not in found]
    usable = []
    for metric in source.metrics:
        lacking = [c for c in metric.columns if c not in found]
        if not lacking:
            usable.append(metric)
    for logical in missing:
        needing = [m.metric.key for m in source.metrics if logical in m.columns]
        if needing:
            findings.append(single_finding(ctx, 1, source.columns[logical], None, "N2", MISSING_MESSAGE.format(
                source.columns[logical], logical, ", ".join(needing))))
    plans = [_plan(i, metric, ctx) for i, metric in enumerate(usable)]
    # Stage by stage: later stages use the columns of earlier ones.
    depth = max((len(p.stages) for p in plans), default=0)
    for level in range(depth):
        exprs = {name: expr for plan in plans if level < len(plan.stages) for name, expr in plan.stages[level].items()}
        if exprs:
            frame = frame.with_columns(**exprs)
    # Small exports: compute the per-record columns once and group in memory (every metric and finding query
    # reads them). Big ones stay lazy and are grouped by the streaming engine, in bounded memory.
    small = (len(data) if data is not None else path.stat().st_size) <= MATERIALIZE_BYTES
    with tempfile.TemporaryDirectory(prefix="jc_native_") as scratch:
        if plans:
            try:
                if small:
                    frame = frame.collect(engine="in-memory").lazy()
                else:  # streamed once to a scratch Parquet file that every query then scans
                    frame.sink_parquet(Path(scratch) / "records.parquet", engine="streaming")
                    frame = pl.scan_parquet(Path(scratch) / "records.parquet")
            except pl.exceptions.PolarsError as exc:
                return _unreadable(ctx, path, exc)
        return _finish(frame, plans, usable, missing, findings, ctx, path, "in-memory" if small else "streaming")


def _finish(frame: pl.LazyFrame, plans: list[Plan], usable: list, missing: list[str],
            findings: list[pl.LazyFrame | pl.DataFrame], ctx: Context, path: Path, engine: str) -> Extracted:
    file_idx = ctx.file_idx
    counted = pl.any_horizontal(pl.lit(False), *(~pl.col(p.skip) & ~pl.col(p.error) for p in plans))
    errored = pl.any_horizontal(pl.lit(False), *(pl.col(p.error) for p in plans))
    if plans:
        rejected = ~counted & errored
    else:  # nothing can be computed: every record is rejected (the N2 findings say why)
        rejected = pl.lit(bool(missing))
    queries: list[pl.LazyFrame] = [frame.select(total=pl.len(), rejected=rejected.sum())]
    finding_queries = [grouped_finding(frame, flag, raw, ctx, rule, column, message)
                       for plan in plans for flag, raw, rule, column, message in plan.findings]
    value_queries = [plan.values(frame).with_columns(metric_key=pl.lit(metric.metric.key),
                                                     sector=pl.lit(metric.metric.sector))
                     for plan, metric in zip(plans, usable, strict=True)]
    queries += [pl.concat(finding_queries)] if finding_queries else []
    queries += [pl.concat(value_queries)] if value_queries else []
    try:
        collected = pl.collect_all(queries, engine=engine)
    except pl.exceptions.PolarsError as exc:
        return _unreadable(ctx, path, exc)
    totals = collected[0]
    total, rejected_count = int(totals["total"][0]), int(totals["rejected"][0] or 0)
    if finding_queries:
        findings.append(collected[1].unique(subset=["column_name", "raw_value", "rule"], keep="first",
                                            maintain_order=True))
    datapoints = pl.DataFrame(schema=DATAPOINT_SCHEMA)
    if value_queries:
        datapoints = _datapoints(collected[-1], ctx)
    all_findings = pl.concat([f.lazy() if isinstance(f, pl.DataFrame) else f for f in findings]).collect() \
        if findings else pl.DataFrame(schema=FINDING_SCHEMA)
    return Extracted(datapoints, all_findings.sort("row_number", "rule", nulls_last=False),
                     (file_idx, total, rejected_count))


def _unreadable(ctx: Context, path: Path, exc: Exception) -> Extracted:
    finding = single_finding(ctx, None, None, path.name, "F0",
                             f"the export cannot be read with the mapping ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200]}); check the encoding, delimiter and columns")
    return Extracted(pl.DataFrame(schema=DATAPOINT_SCHEMA), finding, (ctx.file_idx, 0, 0))


def _plan(i: int, metric, ctx: Context) -> Plan:
    if ctx.source.kind == AGGREGATED:
        return plan_aggregated(i, metric, ctx)
    if metric.count == POPULATION:
        return plan_population(i, metric, ctx)
    return plan_events(i, metric, ctx)


def _datapoints(values: pl.DataFrame, ctx: Context) -> pl.DataFrame:
    return values.select(
        file_idx=pl.lit(ctx.file_idx, pl.Int64), sheet=pl.lit(ctx.sheet), sheet_idx=pl.lit(0, pl.Int64),
        row_number="row_number", agency_id=pl.lit(ctx.agency_id), state_code=pl.lit(ctx.state_code),
        sector="sector", metric_key="metric_key", frequency=pl.lit("MONTHLY"), period_start="period_start",
        period_end=pl.col("period_start").dt.offset_by("1mo"), dimension="dimension", category="category",
        value="value",
    ).cast(DATAPOINT_SCHEMA).sort("metric_key", "period_start", "dimension", "category", nulls_last=False)


def _relative(file: InboxFile) -> str:
    """The file's path below ``inbox/<agency_id>/`` (what patterns match)."""
    return "/".join(file.path.split("/")[2:])


def claimed_paths(extracts: NativeExtracts, files: Iterable[InboxFile]) -> list[str]:
    """Paths of ``files`` that the mappings claim (for tools and tests)."""
    return [f.path for f in files if extracts.claims(f)]

