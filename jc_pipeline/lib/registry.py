"""The Justice Counts Tier 1 metric registry: loader and validator.

The registry itself is data (``jc_pipeline/registry/tier1_metrics.yaml``, transcribed from the domain spec
§2/§3/§8.5). This module turns it into frozen dataclasses, generates what the spec defines by rule rather than by
listing (the 24 race/ethnicity members and the 44 supervision-subsystem clones), and validates everything at load
time so a typo in the YAML fails loudly with a :class:`RegistryError` naming the offending metric or dimension.

Pure Python on purpose (no dagster import): ingest, validation and roll-up code all import it.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any

import yaml

TIER1_SECTORS: tuple[str, ...] = (
    "LAW_ENFORCEMENT",
    "PROSECUTION",
    "DEFENSE",
    "COURTS_AND_PRETRIAL",
    "JAILS",
    "PRISONS",
    "SUPERVISION",
)
"""The seven Justice Counts sectors, in spec order."""

SUPERVISION_SUBSYSTEMS: tuple[str, ...] = ("PAROLE", "PROBATION", "PRETRIAL_SUPERVISION", "OTHER_SUPERVISION")
"""Subsystems whose metrics are clones of the SUPERVISION metrics."""

SYSTEM_CODES: tuple[str, ...] = TIER1_SECTORS + SUPERVISION_SUBSYSTEMS + ("SUPERAGENCY",)
"""The 12 system codes an agency may carry (agencies.csv)."""

UNITS: tuple[str, ...] = ("USD", "FTE", "count")
MEASUREMENT_TYPES: tuple[str, ...] = ("DELTA", "INSTANT")
FREQUENCIES: tuple[str, ...] = ("MONTHLY", "ANNUAL")
CATEGORIES: tuple[str, ...] = (
    "CAPACITY_AND_COSTS",
    "OPERATIONS_AND_DYNAMICS",
    "POPULATIONS",
    "PUBLIC_SAFETY",
    "EQUITY",
    "FAIRNESS",
)
RATIO_ROLES: tuple[str, ...] = ("numerator", "denominator")

REGISTRY_FILE = "tier1_metrics.yaml"
"""The registry YAML inside the ``jc_pipeline.registry`` package."""

_SUPERVISION = "SUPERVISION"
# Sectors that may be written in the YAML; subsystem metrics are generated, never hand-written.
_DECLARED_SECTORS = TIER1_SECTORS + ("SUPERAGENCY",)
_MEMBER_NAME = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")

_TOP_LEVEL_FIELDS = {"supervision_subsystems", "column_aliases", "dimensions", "metrics"}
_DIMENSION_FIELDS = {"identifier", "class_name", "members", "cross"}
_METRIC_FIELDS = {
    "key", "sector", "display_name", "reference_unit", "unit", "measurement_type", "default_frequency",
    "category", "sheet", "legacy_sheets", "breakdowns", "v2_key", "ratio_role", "ratio_partner", "notes",
}
_BREAKDOWN_FIELDS = {"dimension", "required", "sheet", "column", "legacy_sheets", "legacy_columns", "sheetless"}


class RegistryError(ValueError):
    """The registry data is inconsistent; the message lists every problem found, each naming its offender."""


def normalize_sheet_name(name: str) -> str:
    """Normalize a workbook sheet / CSV file name the way the reference bulk upload does (spec §5.1).

    Trim, lower-case, spaces to ``_``, then drop anything before the last ``/`` and after the first ``.``
    (so ``" Releases"`` -> ``releases`` and ``"LE/arrests.csv"`` -> ``arrests``).
    """
    normalized = name.strip().lower().replace(" ", "_")
    return normalized.rsplit("/", 1)[-1].split(".", 1)[0]


@dataclass(frozen=True, slots=True)
class Member:
    """One category of a dimension.

    ``name`` is what datapoints store; ``display`` is what bulk-upload breakdown columns contain. For
    RaceAndEthnicity members ``race`` / ``ethnicity`` hold the component codes (e.g. ``BLACK`` /
    ``NOT_HISPANIC``) so separate race and ethnicity source columns can be mapped onto the 24-cell cross.
    """

    name: str
    display: str
    race: str | None = None
    ethnicity: str | None = None


#: Members counting budgeted-but-vacant positions (spec §3.11): the staff dimension holding one sums to the staff
#: total (filled + vacant), where a metric's other staff breakdowns (sex, race) count people only. Prosecution's
#: staff type names it VACANT_POSITIONS, every other sector's VACANT.
VACANCY_MEMBERS = frozenset({"VACANT", "VACANT_POSITIONS"})


@dataclass(frozen=True, slots=True)
class Dimension:
    """A breakdown dimension, identified by its upstream identifier (e.g. ``metric/offense/type``)."""

    identifier: str
    class_name: str
    members: tuple[Member, ...]
    _by_name: Mapping[str, Member] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", MappingProxyType({m.name: m for m in self.members}))

    def member(self, name: str) -> Member:
        """Return the member with this NAME; ``KeyError`` if the dimension has none."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"dimension {self.identifier!r} has no member {name!r}") from None

    @property
    def member_names(self) -> tuple[str, ...]:
        """Member NAMEs in spec order."""
        return tuple(m.name for m in self.members)

    @property
    def vacancy_member(self) -> str | None:
        """The member counting budgeted-but-vacant positions (:data:`VACANCY_MEMBERS`), or None."""
        return next((name for name in self.member_names if name in VACANCY_MEMBERS), None)


@dataclass(frozen=True, slots=True)
class Breakdown:
    """A dimension reported for one metric, and where bulk uploads carry it.

    ``sheet`` and ``column`` are ``None`` only for breakdowns that cannot be bulk-uploaded (jail behavioral
    health, spec §9.14). ``legacy_sheets`` / ``legacy_columns`` are older names accepted as aliases.
    """

    dimension: Dimension
    required: bool
    sheet: str | None
    column: str | None
    legacy_sheets: tuple[str, ...]
    legacy_columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric definition (a Tier 1 sector metric, a supervision-subsystem clone or a superagency metric).

    ``unit`` is our normalized unit (``USD``/``FTE``/``count``); ``reference_unit`` is the upstream label, kept
    for documentation even where it is wrong (spec §9.2). ``parent_sector`` is ``SUPERVISION`` for subsystem
    clones and equals ``sector`` otherwise. ``ratio_role``/``ratio_partner`` mark the caseload numerator and
    denominator metrics of the derived caseload ratio.
    """

    key: str
    sector: str
    parent_sector: str
    display_name: str
    unit: str
    reference_unit: str
    measurement_type: str
    default_frequency: str
    category: str
    sheet: str
    legacy_sheets: tuple[str, ...]
    breakdowns: tuple[Breakdown, ...]
    v2_key: str | None
    ratio_role: str | None
    ratio_partner: str | None
    notes: tuple[str, ...]

    @property
    def is_level(self) -> bool:
        """A level (populations, staff, open cases: INSTANT, not money), which a year of months averages; events
        and money (funding and expenses, whatever their upstream type, spec §9.3) add up over months. Stored as
        ``metric_definitions.is_level``, which the roll-up and the jumps check read."""
        return self.measurement_type == "INSTANT" and self.unit != "USD"

    def breakdown(self, identifier: str) -> Breakdown:
        """Return the breakdown on this dimension identifier; ``KeyError`` if the metric has none."""
        for bd in self.breakdowns:
            if bd.dimension.identifier == identifier:
                return bd
        raise KeyError(f"metric {self.key!r} has no breakdown {identifier!r}")


@dataclass(frozen=True, slots=True)
class SheetTarget:
    """What a bulk-upload sheet holds: a metric's aggregate (``breakdown`` None) or one of its breakdowns."""

    metric: Metric
    breakdown: Breakdown | None


@dataclass(frozen=True, slots=True)
class Registry:
    """All metric definitions (by key, in spec order) and dimensions (by identifier)."""

    metrics: Mapping[str, Metric]
    dimensions: Mapping[str, Dimension]
    _sheet_targets: Mapping[str, Mapping[str, SheetTarget]] = field(repr=False, compare=False)

    def metrics_for(self, sector: str) -> tuple[Metric, ...]:
        """Metrics whose ``sector`` is this system code, in spec order; ``KeyError`` for an unknown code."""
        _check_system_code(sector)
        return tuple(m for m in self.metrics.values() if m.sector == sector)

    def sheet_targets(self, sector: str) -> Mapping[str, SheetTarget]:
        """Normalized sheet name (canonical and legacy) -> target, for the metrics of this system code.

        Look sheets up with :func:`normalize_sheet_name` applied. For a subsystem code the targets are its
        clones (same sheet names as SUPERVISION). ``KeyError`` for an unknown code.
        """
        _check_system_code(sector)
        return self._sheet_targets[sector]

    def metric_labels(self) -> dict[str, str]:
        """Metric key -> the name findings give it: its display name, with its sector when other metrics share that
        name ("Daily Population (Prisons)" and "Daily Population (Supervision)", for an agency reporting both)."""
        shared = Counter(m.display_name for m in self.metrics.values())
        return {key: f"{m.display_name} ({sector_title(m.sector)})" if shared[m.display_name] > 1 else m.display_name
                for key, m in self.metrics.items()}

    def subsystem_key(self, supervision_key: str, subsystem: str) -> str:
        """Key of a SUPERVISION metric's clone for a subsystem (``SUPERVISION_FUNDING``, ``PAROLE`` ->
        ``PAROLE_FUNDING``); ``KeyError`` if either argument is not a SUPERVISION key / subsystem code."""
        metric = self.metrics.get(supervision_key)
        if metric is None or metric.sector != _SUPERVISION:
            raise KeyError(f"{supervision_key!r} is not a SUPERVISION metric key")
        if subsystem not in SUPERVISION_SUBSYSTEMS:
            raise KeyError(f"{subsystem!r} is not a supervision subsystem (one of {SUPERVISION_SUBSYSTEMS})")
        return _clone_key(supervision_key, subsystem)


def sector_title(code: str) -> str:
    """``COURTS_AND_PRETRIAL`` -> ``Courts and pretrial``."""
    return code.replace("_", " ").capitalize()


def _check_system_code(sector: str) -> None:
    if sector not in SYSTEM_CODES:
        raise KeyError(f"unknown system code {sector!r} (expected one of {SYSTEM_CODES})")


def _clone_key(supervision_key: str, subsystem: str) -> str:
    # Upstream keys are "<SYSTEM>_<MetricType>", so only the system prefix changes.
    return subsystem + supervision_key[len(_SUPERVISION):]


@functools.cache
def load_registry() -> Registry:
    """Load and validate the packaged registry YAML (cached: the registry is immutable)."""
    text = resources.files("jc_pipeline.registry").joinpath(REGISTRY_FILE).read_text(encoding="utf-8")
    return validate(yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


def validate(raw: Any) -> Registry:
    """Build a :class:`Registry` from parsed registry YAML, or raise :class:`RegistryError` listing every problem."""
    return _Builder(raw).build()


class _Builder:
    """Accumulates errors while building, so one run reports every problem in the data at once."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.errors: list[str] = []

    # -- generic field checks ---------------------------------------------------------------------------------

    def _error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")

    def _mapping(self, where: str, value: Any, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self._error(where, f"expected a mapping, got {type(value).__name__}")
            return {}
        # Unknown fields are almost always typos (e.g. `legacy_sheet`) that would silently drop data.
        for unknown in sorted(set(value) - allowed, key=str):
            self._error(where, f"unknown field {unknown!r}")
        return value

    def _text(self, where: str, entry: dict[str, Any], name: str, *, optional: bool = False) -> str | None:
        value = entry.get(name)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip():
            self._error(where, f"{name!r} must be a non-empty string, got {value!r}")
            return None
        return value

    def _choice(self, where: str, entry: dict[str, Any], name: str, allowed: tuple[str, ...],
                *, optional: bool = False) -> str | None:
        value = entry.get(name)
        if value is None and optional:
            return None
        if value not in allowed:
            self._error(where, f"{name} {value!r} is not one of {allowed}")
            return None
        return value

    def _texts(self, where: str, entry: dict[str, Any], name: str) -> tuple[str, ...]:
        value = entry.get(name) or []
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self._error(where, f"{name!r} must be a list of non-empty strings, got {value!r}")
            return ()
        return tuple(value)

    def _sheet_names(self, where: str, names: Iterable[str]) -> None:
        for name in names:
            if normalize_sheet_name(name) != name:
                self._error(where, f"sheet name {name!r} is not normalized (expected {normalize_sheet_name(name)!r})")

    # -- build ------------------------------------------------------------------------------------------------

    def build(self) -> Registry:
        root = self._mapping("registry", self.raw, _TOP_LEVEL_FIELDS)
        subsystems = self._subsystems(root.get("supervision_subsystems"))
        column_aliases = self._column_aliases(root.get("column_aliases") or {})
        dimensions = self._dimensions(root.get("dimensions"))
        metrics = self._metrics(root.get("metrics"), dimensions, column_aliases)
        metrics = self._with_subsystem_clones(metrics, subsystems)
        self._check_ratios(metrics)
        targets = self._sheet_targets(metrics)
        if self.errors:
            raise RegistryError(f"invalid metric registry ({len(self.errors)} problem(s)):\n  "
                                + "\n  ".join(self.errors))
        return Registry(
            metrics=MappingProxyType({m.key: m for m in metrics}),
            dimensions=MappingProxyType(dimensions),
            _sheet_targets=MappingProxyType(targets),
        )

    def _subsystems(self, raw: Any) -> tuple[tuple[str, str], ...]:
        where = "supervision_subsystems"
        if not isinstance(raw, list):
            self._error(where, "must be a list of {code, display}")
            return ()
        result = []
        for i, item in enumerate(raw):
            entry = self._mapping(f"{where}[{i}]", item, {"code", "display"})
            code = self._text(f"{where}[{i}]", entry, "code")
            display = self._text(f"{where}[{i}]", entry, "display")
            if code and display:
                result.append((code, display))
        # The codes are part of the public API (SUPERVISION_SUBSYSTEMS); the YAML only adds display names.
        if tuple(code for code, _ in result) != SUPERVISION_SUBSYSTEMS:
            self._error(where, f"codes must be exactly {SUPERVISION_SUBSYSTEMS}, got {[c for c, _ in result]}")
        return tuple(result)

    def _column_aliases(self, raw: Any) -> dict[str, tuple[str, ...]]:
        if not isinstance(raw, dict):
            self._error("column_aliases", "must map a canonical column to a list of aliases")
            return {}
        return {column: self._texts(f"column_aliases[{column!r}]", raw, column) for column in raw}

    def _dimensions(self, raw: Any) -> dict[str, Dimension]:
        if not isinstance(raw, list):
            self._error("dimensions", "must be a list")
            return {}
        dimensions: dict[str, Dimension] = {}
        for i, item in enumerate(raw):
            entry = self._mapping(f"dimensions[{i}]", item, _DIMENSION_FIELDS)
            identifier = self._text(f"dimensions[{i}]", entry, "identifier")
            where = f"dimension {identifier!r}" if identifier else f"dimensions[{i}]"
            class_name = self._text(where, entry, "class_name")
            if ("members" in entry) == ("cross" in entry):
                self._error(where, "needs exactly one of 'members' or 'cross'")
                continue
            if "cross" in entry:
                members = self._cross_members(where, entry["cross"])
            else:
                members = self._members(where, entry["members"], "members")
            self._check_members(where, members)
            if identifier is None or class_name is None:
                continue
            if identifier in dimensions:
                self._error(where, "duplicate dimension identifier")
                continue
            dimensions[identifier] = Dimension(identifier, class_name, members)
        return dimensions

    def _members(self, where: str, raw: Any, name: str) -> tuple[Member, ...]:
        if not isinstance(raw, list) or not raw:
            self._error(where, f"{name!r} must be a non-empty list of {{name, display}}")
            return ()
        members = []
        for j, item in enumerate(raw):
            entry = self._mapping(f"{where} {name}[{j}]", item, {"name", "display"})
            member_name = self._text(f"{where} {name}[{j}]", entry, "name")
            display = self._text(f"{where} {name}[{j}]", entry, "display")
            if member_name is not None and display is not None:
                members.append(Member(member_name, display))
        return tuple(members)

    def _cross_members(self, where: str, raw: Any) -> tuple[Member, ...]:
        entry = self._mapping(f"{where} cross", raw, {"ethnicities", "races"})
        ethnicities = self._members(where, entry.get("ethnicities"), "ethnicities")
        races = self._members(where, entry.get("races"), "races")
        # Ethnicity-major order and "<Race> / <Ethnicity>" display, as the reference RaceAndEthnicity enum.
        return tuple(
            Member(f"{eth.name}_{race.name}", f"{race.display} / {eth.display}", race=race.name, ethnicity=eth.name)
            for eth in ethnicities
            for race in races
        )

    def _check_members(self, where: str, members: tuple[Member, ...]) -> None:
        names: set[str] = set()
        displays: set[str] = set()
        for member in members:
            if not _MEMBER_NAME.match(member.name):
                self._error(where, f"member NAME {member.name!r} is not UPPER_SNAKE_CASE")
            if member.name in names:
                self._error(where, f"duplicate member NAME {member.name!r}")
            # Bulk uploads identify members by display value, so two equal displays would be ambiguous.
            if member.display in displays:
                self._error(where, f"duplicate member display {member.display!r}")
            names.add(member.name)
            displays.add(member.display)

    def _metrics(self, raw: Any, dimensions: dict[str, Dimension],
                 column_aliases: dict[str, tuple[str, ...]]) -> list[Metric]:
        if not isinstance(raw, list):
            self._error("metrics", "must be a list")
            return []
        metrics: list[Metric] = []
        seen: set[str] = set()
        for i, item in enumerate(raw):
            entry = self._mapping(f"metrics[{i}]", item, _METRIC_FIELDS)
            key = self._text(f"metrics[{i}]", entry, "key")
            where = f"metric {key!r}" if key else f"metrics[{i}]"
            duplicate = key in seen
            if duplicate:
                self._error(where, "duplicate metric key")
            if key is not None:
                seen.add(key)
            metric = self._metric(where, key, entry, dimensions, column_aliases)
            # A duplicate is still checked field by field, but kept out so it does not cause follow-up errors.
            if metric is not None and not duplicate:
                metrics.append(metric)
        return metrics

    def _metric(self, where: str, key: str | None, entry: dict[str, Any], dimensions: dict[str, Dimension],
                column_aliases: dict[str, tuple[str, ...]]) -> Metric | None:
        sector = self._choice(where, entry, "sector", _DECLARED_SECTORS)
        if key is not None and sector is not None and not key.startswith(sector + "_"):
            self._error(where, f"key must start with its sector {sector + '_'!r}")
        sheet = self._text(where, entry, "sheet")
        legacy_sheets = self._texts(where, entry, "legacy_sheets")
        self._sheet_names(where, ((sheet,) if sheet else ()) + legacy_sheets)
        ratio_role = self._choice(where, entry, "ratio_role", RATIO_ROLES, optional=True)
        ratio_partner = self._text(where, entry, "ratio_partner", optional=True)
        if (ratio_role is None) != (ratio_partner is None):
            self._error(where, "'ratio_role' and 'ratio_partner' must be given together")
        fields = dict(
            display_name=self._text(where, entry, "display_name"),
            reference_unit=self._text(where, entry, "reference_unit"),
            unit=self._choice(where, entry, "unit", UNITS),
            measurement_type=self._choice(where, entry, "measurement_type", MEASUREMENT_TYPES),
            default_frequency=self._choice(where, entry, "default_frequency", FREQUENCIES),
            category=self._choice(where, entry, "category", CATEGORIES),
        )
        breakdowns = self._breakdowns(where, entry.get("breakdowns") or [], dimensions, column_aliases)
        notes = self._texts(where, entry, "notes")
        v2_key = self._text(where, entry, "v2_key", optional=True)
        if key is None or sector is None or sheet is None or any(v is None for v in fields.values()):
            return None
        return Metric(
            key=key, sector=sector, parent_sector=sector, sheet=sheet, legacy_sheets=legacy_sheets,
            breakdowns=breakdowns, v2_key=v2_key, ratio_role=ratio_role, ratio_partner=ratio_partner,
            notes=notes, **fields,
        )

    def _breakdowns(self, where: str, raw: Any, dimensions: dict[str, Dimension],
                    column_aliases: dict[str, tuple[str, ...]]) -> tuple[Breakdown, ...]:
        if not isinstance(raw, list):
            self._error(where, "'breakdowns' must be a list")
            return ()
        breakdowns: list[Breakdown] = []
        for j, item in enumerate(raw):
            entry = self._mapping(f"{where} breakdowns[{j}]", item, _BREAKDOWN_FIELDS)
            identifier = self._text(f"{where} breakdowns[{j}]", entry, "dimension")
            bd_where = f"{where} breakdown {identifier!r}"
            dimension = dimensions.get(identifier) if identifier else None
            if identifier and dimension is None:
                self._error(bd_where, "unknown dimension")
            if identifier and any(b.dimension.identifier == identifier for b in breakdowns):
                self._error(bd_where, "dimension used twice by the same metric")
            required = entry.get("required")
            if not isinstance(required, bool):
                self._error(bd_where, f"'required' must be true or false, got {required!r}")
            sheetless = entry.get("sheetless", False)
            if sheetless is True:
                if any(entry.get(f) for f in ("sheet", "column", "legacy_sheets", "legacy_columns")):
                    self._error(bd_where, "a sheetless breakdown cannot have sheets or columns")
                sheet = column = None
                legacy_sheets = legacy_columns = ()
            elif sheetless is False:
                sheet = self._text(bd_where, entry, "sheet")
                column = self._text(bd_where, entry, "column")
                legacy_sheets = self._texts(bd_where, entry, "legacy_sheets")
                self._sheet_names(bd_where, ((sheet,) if sheet else ()) + legacy_sheets)
                legacy_columns = self._texts(bd_where, entry, "legacy_columns")
                legacy_columns += tuple(a for a in column_aliases.get(column or "", ()) if a not in legacy_columns)
                if column in legacy_columns:
                    self._error(bd_where, f"column {column!r} is also listed as its own legacy alias")
            else:
                self._error(bd_where, f"'sheetless' must be true or false, got {sheetless!r}")
                continue
            if dimension is not None and isinstance(required, bool):
                breakdowns.append(Breakdown(dimension, required, sheet, column, legacy_sheets, legacy_columns))
        return tuple(breakdowns)

    def _with_subsystem_clones(self, metrics: list[Metric],
                               subsystems: tuple[tuple[str, str], ...]) -> list[Metric]:
        supervision = [m for m in metrics if m.sector == _SUPERVISION]
        clones = [
            Metric(
                key=_clone_key(m.key, code),
                sector=code,
                parent_sector=_SUPERVISION,
                display_name=f"{m.display_name} ({display})",
                unit=m.unit,
                reference_unit=m.reference_unit,
                measurement_type=m.measurement_type,
                default_frequency=m.default_frequency,
                category=m.category,
                sheet=m.sheet,
                legacy_sheets=m.legacy_sheets,
                breakdowns=m.breakdowns,
                # The v2 renames are only documented for the SUPERVISION_* keys themselves (spec §1).
                v2_key=None,
                ratio_role=m.ratio_role,
                ratio_partner=_clone_key(m.ratio_partner, code) if m.ratio_partner else None,
                notes=m.notes + (f"Subsystem clone of {m.key}: same sheets as SUPERVISION, rows routed by the "
                                 f"'system' column (spec §5.2).",),
            )
            for code, display in subsystems
            for m in supervision
        ]
        if not supervision:
            return metrics
        # Spec order: the clones follow the SUPERVISION metrics they are generated from.
        split = max(i for i, m in enumerate(metrics) if m.sector == _SUPERVISION) + 1
        return metrics[:split] + clones + metrics[split:]

    def _check_ratios(self, metrics: list[Metric]) -> None:
        by_key = {m.key: m for m in metrics}
        v2_keys: set[str] = set()
        for m in metrics:
            if m.v2_key is not None:
                if m.v2_key in v2_keys or (m.v2_key in by_key and m.v2_key != m.key):
                    self._error(f"metric {m.key!r}", f"v2_key {m.v2_key!r} collides with another key")
                v2_keys.add(m.v2_key)
            if m.ratio_partner is None:
                continue
            partner = by_key.get(m.ratio_partner)
            if partner is None:
                self._error(f"metric {m.key!r}", f"ratio_partner {m.ratio_partner!r} is not a metric key")
            elif (partner.ratio_partner != m.key or partner.ratio_role == m.ratio_role
                  or partner.sector != m.sector):
                self._error(f"metric {m.key!r}", f"ratio_partner {partner.key!r} must point back, have the "
                                                 f"opposite ratio_role and the same sector")

    def _sheet_targets(self, metrics: list[Metric]) -> dict[str, Mapping[str, SheetTarget]]:
        result: dict[str, Mapping[str, SheetTarget]] = {}
        for sector in SYSTEM_CODES:
            targets: dict[str, SheetTarget] = {}
            for m in metrics:
                if m.sector != sector:
                    continue
                named = [(name, SheetTarget(m, None)) for name in (m.sheet, *m.legacy_sheets)]
                named += [(name, SheetTarget(m, bd)) for bd in m.breakdowns if bd.sheet
                          for name in (bd.sheet, *bd.legacy_sheets)]
                for name, target in named:
                    other = targets.get(name)
                    if other is not None:
                        self._error(f"metric {m.key!r}", f"sheet name {name!r} is already used in {sector} by "
                                                         f"{_describe(other)}")
                        continue
                    targets[name] = target
            result[sector] = MappingProxyType(targets)
        return result


def _describe(target: SheetTarget) -> str:
    if target.breakdown is None:
        return f"the aggregate of {target.metric.key!r}"
    return f"breakdown {target.breakdown.dimension.identifier!r} of {target.metric.key!r}"
