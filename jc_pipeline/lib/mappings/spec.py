"""Parse and validate ``mappings/<agency_id>.yaml`` (the format is documented in ``docs/mappings.md``).

Mapping files are data, never code: read with ``yaml.safe_load``, every key checked against the registry, and
every problem reported with the file, the key path and what is wrong (:class:`MappingError` lists them all).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any

import polars as pl
import yaml

from jc_pipeline.lib.registry import Dimension, Metric, Registry

MAPPINGS = "mappings"
RECORDS, AGGREGATED = "records", "aggregated"
EVENTS, POPULATION = "events", "population"
RACE_DIMENSION = "global/race_and_ethnicity"
OFFENSE_DIMENSION = "metric/offense/type"
#: The technical guides' most-serious-offense order, used when a mapping gives none (spec §3.1).
OFFENSE_ORDER = ("PERSON", "PROPERTY", "PUBLIC_ORDER", "DRUG", "OTHER", "UNKNOWN")
ETHNICITIES = ("HISPANIC", "NOT_HISPANIC", "UNKNOWN_ETHNICITY")
ENCODINGS = {"utf-8": "utf8", "utf8": "utf8", "utf-8-lossy": "utf8-lossy", "utf8-lossy": "utf8-lossy"}
#: Mapping files are short; anything bigger is refused unread (bounded work on hostile input).
MAX_MAPPING_BYTES = 1024 * 1024
#: The version of what makes a mapping valid, part of each mapped export's version (with the mapping file's hash):
#: raised when a mapping valid before may no longer be, so that every export is read again once and an invalid
#: mapping says so (N1) instead of its exports keeping what it made of them. 2 (2026-12-07): a level is never
#: counted as events, nor money or events as a population.
RULES = 2
#: Keys, items and scalars a mapping may hold, its YAML aliases expanded: a written one holds hundreds, but aliases
#: of aliases make a short file expand without bound, and each value a problem names is printed.
MAX_MAPPING_VALUES = 100_000
#: Value of a value map entry meaning "records with this value are not counted for the metric".
EXCLUDED = "\x00excluded"


class MappingError(ValueError):
    """The mapping file has problems; ``.problems`` lists every one as "file: key path: what is wrong"."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class ValueMap:
    """Source values (stripped, case-folded) -> member NAME (or :data:`EXCLUDED`) of one column."""

    column: str
    values: Mapping[str, str]
    default: str | None  # member for values not listed (None: such values are errors, rule N3)
    blank: str | None  # member for empty cells (None: empty cells are errors, rule N3)


@dataclass(frozen=True)
class BreakdownSpec:
    dimension: Dimension
    value_map: ValueMap | None  # a plain category column
    race: ValueMap | None = None  # race + ethnicity columns mapped onto the 24-member cross
    ethnicity: ValueMap | None = None  # None: every record has unknown ethnicity
    order: tuple[str, ...] = ()  # most serious first, for records grouped by an id

    @property
    def columns(self) -> tuple[str, ...]:
        maps = (self.value_map, self.race, self.ethnicity)
        return tuple(m.column for m in maps if m is not None)

    @property
    def targets(self) -> tuple[str, ...]:
        """Every member a record can be counted under (for zero rows)."""
        if self.race is not None:
            races = _targets(self.race)
            ethnicities = _targets(self.ethnicity) if self.ethnicity else ("UNKNOWN_ETHNICITY",)
            return tuple(m.name for m in self.dimension.members if m.race in races and m.ethnicity in ethnicities)
        wanted = set(_targets(self.value_map))
        return tuple(m.name for m in self.dimension.members if m.name in wanted)


def _targets(value_map: ValueMap) -> tuple[str, ...]:
    found = {*value_map.values.values(), value_map.default, value_map.blank} - {None, EXCLUDED}
    return tuple(sorted(found))


@dataclass(frozen=True)
class Where:
    column: str
    keep: frozenset[str]  # stripped, case-folded
    negate: bool
    blank: bool | None = None  # True: keep only records where the column is empty; False: only where it is not


@dataclass(frozen=True)
class MetricSpec:
    metric: Metric
    count: str  # events | population (records); ignored for aggregated sources
    date: str | None  # records/events: the event date; aggregated: a date in the period's month
    year: str | None  # aggregated: year + month columns instead of date
    month: str | None
    value: str | None  # aggregated: the number column
    id: str | None  # records: one event per distinct id (most serious category)
    start: str | None  # population: custody/supervision start
    end: str | None  # population: end (blank = still in custody)
    where: tuple[Where, ...]
    breakdowns: tuple[BreakdownSpec, ...]
    where_text: str  # "sources[0].metrics[1]" for messages
    round: bool = False  # population: whole people (largest remainder, so breakdowns still add up)

    @property
    def columns(self) -> tuple[str, ...]:
        names = [self.date, self.year, self.month, self.value, self.id, self.start, self.end,
                 *(w.column for w in self.where), *(c for b in self.breakdowns for c in b.columns)]
        return tuple(dict.fromkeys(n for n in names if n is not None))


@dataclass(frozen=True)
class SourceSpec:
    name: str
    pattern: str
    format: str
    sheet: str | None
    encoding: str
    delimiter: str
    kind: str
    columns: Mapping[str, str]  # logical name -> header as written in the export
    date_formats: tuple[str, ...]
    period_from: date | None
    period_to: date | None
    metrics: tuple[MetricSpec, ...]
    agency: str | None = None  # superagency exports: the column naming each record's child agency

    @property
    def sector(self) -> str:
        return PurePosixPath(self.pattern).parts[0]

    def matches(self, relative: str) -> bool:
        """``relative``: the file's path below ``inbox/<agency_id>/`` (posix)."""
        return pattern_matches(self.pattern, relative)


@dataclass(frozen=True)
class AgencyMapping:
    agency_id: str
    path: str  # as shown in messages (mappings/<agency_id>.yaml)
    sources: tuple[SourceSpec, ...]

    def source_for(self, relative: str) -> SourceSpec | None:
        return next((s for s in self.sources if s.matches(relative)), None)


def pattern_matches(pattern: str, relative: str) -> bool:
    """Glob ``pattern`` against a path below ``inbox/<agency_id>/``, part by part (``*`` never crosses a '/')."""
    parts, wanted = PurePosixPath(relative).parts, PurePosixPath(pattern).parts
    return len(parts) == len(wanted) and all(fnmatchcase(p, w) for p, w in zip(parts, wanted, strict=True))


def raw_patterns(text: str) -> list[str]:
    """The source patterns of a mapping that does not validate (so its files can be told what is wrong)."""
    try:
        data = yaml.safe_load(text)
        return [s["pattern"] for s in data.get("sources", []) if isinstance(s, dict) and isinstance(
            s.get("pattern"), str) and _pattern_problem(s["pattern"]) is None]
    except Exception:  # noqa: BLE001 - anything unparsable simply has no usable pattern
        return []


def load_mapping(path: Path, agency_id: str, registry: Registry, *, shown: str | None = None) -> AgencyMapping:
    """Read and validate one mapping file; :class:`MappingError` with every problem found."""
    shown = shown or f"{MAPPINGS}/{path.name}"
    try:
        if path.stat().st_size > MAX_MAPPING_BYTES:
            raise MappingError([f"{shown}: larger than {MAX_MAPPING_BYTES // 1024} KiB; a mapping is a short text"])
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError([f"{shown}: cannot be read ({exc})"]) from None
    return parse_mapping(text, agency_id, registry, shown=shown)


def parse_mapping(text: str, agency_id: str, registry: Registry, *, shown: str) -> AgencyMapping:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MappingError([f"{shown}: not valid YAML ({exc})".replace("\n", " ")]) from None
    if _expanded_values(data) > MAX_MAPPING_VALUES:
        raise MappingError([f"{shown}: holds more than {MAX_MAPPING_VALUES:,} values once its YAML aliases (*name) "
                            f"are expanded; write the mapping out without aliases nested in aliases"])
    checker = _Checker(shown, registry)
    mapping = checker.mapping(data, agency_id)
    if checker.problems:
        raise MappingError(checker.problems)
    return mapping


def _expanded_values(data: Any) -> int:
    """How many keys, items and scalars ``data`` holds with its aliases expanded, counted up to just past
    :data:`MAX_MAPPING_VALUES` (the count stops there, so a hostile file costs no more)."""
    count, stack = 0, [data]
    while stack and count <= MAX_MAPPING_VALUES:
        node = stack.pop()
        count += 1
        if isinstance(node, dict):
            stack.extend(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


class _Checker:
    def __init__(self, shown: str, registry: Registry):
        self.shown, self.registry, self.problems = shown, registry, []

    def bad(self, where: str, what: str) -> None:
        self.problems.append(f"{self.shown}: {where}: {what}" if where else f"{self.shown}: {what}")

    def keys(self, where: str, data: Any, required: set[str], optional: set[str]) -> bool:
        if not isinstance(data, dict):
            self.bad(where, f"expected a mapping (key: value), got {type(data).__name__}")
            return False
        missing = sorted(required - set(data))
        for key in missing:
            self.bad(where, f"missing key '{key}'")
        for key in sorted(set(data) - required - optional, key=str):
            self.bad(where, f"unknown key '{key}' (allowed: {', '.join(sorted(required | optional))})")
        return not missing  # the caller reads its required keys: without one, the entry is reported, not read

    def text(self, where: str, value: Any, *, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
            self.bad(where, f"expected a non-empty text, got {value!r}")
            return None
        return str(value)

    def choice(self, where: str, value: Any, choices: tuple[str, ...], default: str) -> str:
        if value is None:
            return default
        if value not in choices:
            self.bad(where, f"{value!r} is not one of {', '.join(choices)}")
            return default
        return value

    def mapping(self, data: Any, agency_id: str) -> AgencyMapping:
        sources: list[SourceSpec] = []
        if self.keys("", data, {"sources"}, {"version", "agency_id"}):
            version = data.get("version", 1)
            if isinstance(version, bool) or version != 1:  # YAML `true` is 1 to Python
                self.bad("version", f"unsupported version {version!r} (only 1)")
            if data.get("agency_id") not in (None, agency_id):
                self.bad("agency_id", f"{data['agency_id']!r} differs from the file name's agency '{agency_id}'")
            raw = data.get("sources")
            if not isinstance(raw, list) or not raw:
                self.bad("sources", "expected a non-empty list of sources")
            else:
                for number, item in enumerate(raw):
                    source = self.source(f"sources[{number}]", item)
                    if source is not None:
                        sources.append(source)
                names = [s.name for s in sources]
                for name in sorted({n for n in names if names.count(n) > 1}):
                    self.bad("sources", f"source name '{name}' is used twice")
        return AgencyMapping(agency_id, self.shown, tuple(sources))

    def source(self, where: str, data: Any) -> SourceSpec | None:
        if not self.keys(where, data, {"name", "pattern", "kind", "columns", "metrics"},
                         {"format", "sheet", "encoding", "delimiter", "date_formats", "period", "agency"}):
            return None
        before = len(self.problems)
        name = self.text(f"{where}.name", data["name"]) or "?"
        pattern = self.text(f"{where}.pattern", data["pattern"]) or ""
        problem = _pattern_problem(pattern) if pattern else None
        if problem:
            self.bad(f"{where}.pattern", problem)
        fmt = self.choice(f"{where}.format", data.get("format"), ("csv", "xlsx"), "csv")
        if fmt == "csv" and pattern and not pattern.lower().endswith(".csv"):
            self.bad(f"{where}.pattern", f"{pattern!r} must end in .csv for format csv")
        if fmt == "xlsx" and pattern and not pattern.lower().endswith((".xlsx", ".xls")):
            self.bad(f"{where}.pattern", f"{pattern!r} must end in .xlsx or .xls for format xlsx")
        sheet = self.text(f"{where}.sheet", data.get("sheet"), optional=True)
        if sheet is not None and fmt != "xlsx":
            self.bad(f"{where}.sheet", "only workbooks (format xlsx) have sheets")
        encoding = str(data.get("encoding", "utf-8")).lower()
        try:
            "".encode(encoding)
        except (LookupError, UnicodeError):  # an unknown name; or a codec that cannot encode ('undefined')
            self.bad(f"{where}.encoding", f"unknown encoding {encoding!r} (e.g. utf-8, latin-1, cp1252)")
        delimiter = data.get("delimiter", ",")
        if not isinstance(delimiter, str) or len(delimiter.encode()) != 1:
            self.bad(f"{where}.delimiter", f"expected one single-byte character, got {delimiter!r}")
            delimiter = ","
        kind = self.choice(f"{where}.kind", data["kind"], (RECORDS, AGGREGATED), RECORDS)
        columns = self.columns(f"{where}.columns", data["columns"])
        formats = data.get("date_formats", [])
        if isinstance(formats, str):
            formats = [formats]
        if not isinstance(formats, list) or not all(isinstance(f, str) and "%" in f for f in formats):
            self.bad(f"{where}.date_formats", "expected a list of strftime formats such as '%m/%d/%Y %H:%M'")
            formats = []
        for number, text in enumerate(formats):
            if not _reads_dates(text):
                self.bad(f"{where}.date_formats[{number}]", f"{text!r} does not read a date back to its month "
                         "(chrono strftime: e.g. '%m/%d/%Y %H:%M', '%d.%m.%Y', '%Y-%m')")
        agency = self.column_ref(f"{where}.agency", data.get("agency"), columns, optional=True)
        period_from, period_to = self.period(f"{where}.period", data.get("period"))
        metrics = []
        raw_metrics = data["metrics"]
        if not isinstance(raw_metrics, list) or not raw_metrics:
            self.bad(f"{where}.metrics", "expected a non-empty list of metrics")
        else:
            for number, item in enumerate(raw_metrics):
                metric = self.metric(f"{where}.metrics[{number}]", item, kind, columns,
                                     PurePosixPath(pattern).parts[0] if pattern else None)
                if metric is not None:
                    metrics.append(metric)
        if len(self.problems) > before:
            return None
        return SourceSpec(name, pattern, fmt, sheet, encoding, delimiter, kind, columns, tuple(formats),
                          period_from, period_to, tuple(metrics), agency)

    def columns(self, where: str, data: Any) -> dict[str, str]:
        if not isinstance(data, dict) or not data:
            self.bad(where, "expected a mapping of column names to the headers written in the export")
            return {}
        out = {}
        for key, header in data.items():
            text = self.text(f"{where}.{key}", header)
            if text is not None:
                out[str(key)] = text.strip()
        return out

    def period(self, where: str, data: Any) -> tuple[date | None, date | None]:
        if data is None:
            return None, None
        if not self.keys(where, data, set(), {"from", "to"}):
            return None, None
        out = []
        for key in ("from", "to"):
            value = data.get(key)
            if value is None:
                out.append(None)
                continue
            try:
                year, month = (int(p) for p in str(value).split("-"))
                out.append(date(year, month, 1))
            except ValueError:
                self.bad(f"{where}.{key}", f"expected a month as YYYY-MM, got {value!r}")
                out.append(None)
        if out[0] and out[1] and out[0] > out[1]:
            self.bad(where, f"'from' ({out[0]:%Y-%m}) is after 'to' ({out[1]:%Y-%m}): no month would be counted")
        return out[0], out[1]

    def column_ref(self, where: str, value: Any, columns: Mapping[str, str], *, optional: bool = False) -> str | None:
        name = self.text(where, value, optional=optional)
        if name is not None and name not in columns:
            self.bad(where, f"'{name}' is not declared under columns (declared: {', '.join(columns) or 'none'})")
            return None
        return name

    def metric(self, where: str, data: Any, kind: str, columns: Mapping[str, str], sector: str | None
               ) -> MetricSpec | None:
        allowed = ({"count", "date", "id", "start", "end", "where", "breakdowns", "round"} if kind == RECORDS
                   else {"value", "date", "year", "month", "where", "breakdowns"})
        if not self.keys(where, data, {"metric"}, allowed):
            return None
        key = data["metric"]
        metric = self.registry.metrics.get(key) if isinstance(key, str) else None
        if metric is None:
            self.bad(f"{where}.metric", f"unknown metric key {key!r} (e.g. LAW_ENFORCEMENT_ARRESTS)")
            return None
        if sector is not None and metric.parent_sector != sector and metric.sector != sector:
            self.bad(f"{where}.metric", f"{metric.key} belongs to sector {metric.parent_sector}, but the source "
                                        f"pattern's folder is {sector}")
        ref = lambda name, optional=True: self.column_ref(f"{where}.{name}", data.get(name), columns,  # noqa: E731
                                                          optional=optional)
        count = self.choice(f"{where}.count", data.get("count"), (EVENTS, POPULATION), EVENTS)
        date_col = year = month = value = id_col = start = end = None
        if kind == RECORDS:
            id_col = ref("id")
            if count == EVENTS:
                if metric.is_level:  # counting records per month would store admissions as a population
                    self.bad(f"{where}.count", f"{metric.key} is a level at a point in time (a population, staff or "
                                               f"open cases), not a count of events: give count: population with "
                                               f"start and end columns")
                date_col = ref("date", optional=False)
                for extra in ("start", "end"):
                    if extra in data:
                        self.bad(f"{where}.{extra}", "only population metrics (count: population) take start/end")
            else:
                start, end = ref("start", optional=False), ref("end", optional=False)
                if "date" in data:
                    self.bad(where, "a population metric takes start and end, not date")
                if not metric.is_level:
                    self.bad(f"{where}.count", f"{metric.key} counts events or money, not a level at a point in "
                                               f"time; population is for daily-population metrics")
        else:
            value = ref("value", optional=False)
            date_col, year, month = ref("date"), ref("year"), ref("month")
            if (date_col is None) == (year is None) or (month is not None and year is None):
                self.bad(where, "give either 'date' (a date in the period) or 'year' with 'month' (monthly and "
                                "annual metrics) or 'year' alone (annual metrics)")
        wheres = self.wheres(f"{where}.where", data.get("where"), columns)
        breakdowns = []
        raw = data.get("breakdowns", [])
        if not isinstance(raw, list):
            self.bad(f"{where}.breakdowns", "expected a list")
            raw = []
        seen = set()
        for number, item in enumerate(raw):
            breakdown = self.breakdown(f"{where}.breakdowns[{number}]", item, metric, columns, id_col is not None)
            if breakdown is not None:
                if breakdown.dimension.identifier in seen:
                    self.bad(f"{where}.breakdowns[{number}]", f"dimension {breakdown.dimension.identifier} twice")
                seen.add(breakdown.dimension.identifier)
                breakdowns.append(breakdown)
        rounded = data.get("round", False)
        if not isinstance(rounded, bool) or (rounded and count != POPULATION):
            self.bad(f"{where}.round", "round: true|false, for population metrics only")
            rounded = False
        return MetricSpec(metric, count, date_col, year, month, value, id_col, start, end, wheres,
                          tuple(breakdowns), where, rounded)

    def wheres(self, where: str, data: Any, columns: Mapping[str, str]) -> tuple[Where, ...]:
        if data is None:
            return ()
        items = data if isinstance(data, list) else [data]
        out = []
        for number, item in enumerate(items):
            here = f"{where}[{number}]" if isinstance(data, list) else where
            if not self.keys(here, item, {"column"}, {"in", "not_in", "blank"}):
                continue
            column = self.column_ref(f"{here}.column", item["column"], columns)
            if sum(k in item for k in ("in", "not_in", "blank")) != 1:
                self.bad(here, "give exactly one of 'in', 'not_in' and 'blank'")
                continue
            if "blank" in item:
                if not isinstance(item["blank"], bool):
                    self.bad(f"{here}.blank", f"expected true or false, got {item['blank']!r}")
                elif column is not None:
                    out.append(Where(column, frozenset(), False, item["blank"]))
                continue
            values = item.get("in", item.get("not_in"))
            if not isinstance(values, list) or not values:
                self.bad(here, "expected a non-empty list of values")
                continue
            if column is not None:
                out.append(Where(column, frozenset(_key(v) for v in values), "not_in" in item))
        return tuple(out)

    def breakdown(self, where: str, data: Any, metric: Metric, columns: Mapping[str, str], by_id: bool
                  ) -> BreakdownSpec | None:
        if not self.keys(where, data, {"dimension"}, {"column", "values", "default", "blank", "order", "race",
                                                      "ethnicity"}):
            return None
        identifier = data["dimension"]
        found = next((b for b in metric.breakdowns if b.dimension.identifier == identifier), None)
        if found is None:
            options = ", ".join(b.dimension.identifier for b in metric.breakdowns) or "none"
            self.bad(f"{where}.dimension", f"{metric.key} has no breakdown {identifier!r} (it has: {options})")
            return None
        dimension = found.dimension
        if identifier == RACE_DIMENSION and "race" in data:
            for key in ("column", "values", "default", "blank", "order"):
                if key in data:
                    self.bad(f"{where}.{key}", "with separate race/ethnicity columns, put it under race or "
                                               "ethnicity")
            races = tuple(dict.fromkeys(m.race for m in dimension.members))
            race = self.value_map(f"{where}.race", data["race"], columns, races, "UNKNOWN")
            ethnicity = None
            if data.get("ethnicity") is not None:
                ethnicity = self.value_map(f"{where}.ethnicity", data["ethnicity"], columns, ETHNICITIES,
                                           "UNKNOWN_ETHNICITY")
            if race is None:
                return None
            return BreakdownSpec(dimension, None, race, ethnicity)
        if "ethnicity" in data or "race" in data:
            self.bad(where, "race/ethnicity columns are only for the dimension global/race_and_ethnicity")
        value_map = self.value_map(where, {k: data.get(k) for k in ("column", "values", "default", "blank")
                                           if k in data}, columns, dimension.member_names, "UNKNOWN")
        order: tuple[str, ...] = ()
        if "order" in data:
            order = tuple(data["order"]) if isinstance(data["order"], list) else ()
            unknown = [m for m in order if m not in dimension.member_names]
            if not order or unknown:
                self.bad(f"{where}.order", f"expected a list of members of {identifier} (most serious first); "
                                           f"not members: {unknown}")
        elif by_id:
            order = OFFENSE_ORDER if identifier == OFFENSE_DIMENSION else dimension.member_names
        if value_map is None:
            return None
        return BreakdownSpec(dimension, value_map, order=order)

    def value_map(self, where: str, data: Any, columns: Mapping[str, str], allowed: tuple[str, ...],
                  unknown: str) -> ValueMap | None:
        if not self.keys(where, data, {"column", "values"}, {"default", "blank"}):
            return None
        column = self.column_ref(f"{where}.column", data["column"], columns)
        raw = data["values"]
        if not isinstance(raw, dict) or not raw:
            self.bad(f"{where}.values", "expected a mapping of source values to member names")
            return None
        values: dict[str, str] = {}
        spelled: dict[str, Any] = {}
        for source, target in raw.items():
            key, mapped = _key(source), EXCLUDED if target is None else target
            if mapped != EXCLUDED and mapped not in allowed:
                self.bad(f"{where}.values.{source}", f"{target!r} is not one of {', '.join(allowed)}")
            elif key in values and values[key] != mapped:
                # Source values are compared stripped and case-folded, so these two are one value.
                self.bad(f"{where}.values.{source}", f"{source!r} and {spelled[key]!r} are the same value once "
                         "case and spaces are ignored, and map to different members; keep one")
            else:
                values[key], spelled[key] = mapped, source
        default = data.get("default")
        if default is not None and default not in allowed:
            self.bad(f"{where}.default", f"{default!r} is not one of {', '.join(allowed)}")
        blank = data.get("blank", unknown if unknown in allowed else None)
        if blank is not None and blank not in allowed:
            self.bad(f"{where}.blank", f"{blank!r} is not one of {', '.join(allowed)}")
        if column is None:
            return None
        return ValueMap(column, values, default, blank)


def _reads_dates(text: str) -> bool:
    """A date format reads back what it writes, to the day or to the month (the day then read as the 1st)."""
    moment = datetime(2024, 3, 17, 8, 15, 42, tzinfo=UTC)  # aware: offsets (%z) are formats exports use
    try:
        written = pl.Series([moment]).dt.strftime(text.replace("%#z", "%z"))  # %#z: chrono reads it, cannot write
        read = written.str.to_date(text, strict=False, cache=False).item()
    except pl.exceptions.PolarsError:  # a directive chrono does not know
        return False
    return read in (moment.date(), moment.date().replace(day=1))


def _key(value: Any) -> str:
    """How source values are compared: text, stripped, case-folded (``True`` from YAML ``yes`` -> "true")."""
    return str(value).strip().casefold()


def _pattern_problem(pattern: str) -> str | None:
    path = PurePosixPath(pattern)
    if "\\" in pattern or path.is_absolute() or pattern.startswith("~"):
        return f"{pattern!r} must be a relative glob with '/' separators (e.g. LAW_ENFORCEMENT/cad_*.csv)"
    if ".." in path.parts:
        return f"{pattern!r} may not contain '..'"
    if "**" in pattern:
        return f"{pattern!r}: '**' is not supported ('*' stays within one folder); write one pattern per folder depth"
    if len(path.parts) < 2 or any(c in path.parts[0] for c in "*?["):
        return f"{pattern!r} must start with the sector folder (e.g. LAW_ENFORCEMENT/cad_*.csv)"
    return None
