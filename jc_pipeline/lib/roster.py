"""The state's agency roster (``agencies.csv``), per-agency metric settings (``metric_settings.csv``),
per-agency breakdown-category settings (``breakdown_settings.csv``) and the file versions the state withdrew
(``withdrawals.csv``).

All four files are edited by hand by the state data team, so loading them collects *every* problem (not just the
first) and reports each with file, 1-based line (header = line 1), column, what is wrong and how to fix it. Columns
beyond the contract's are the state's own (DESIGN §3 welcomes them) and are left unread, unless one looks like a
missing contract column misspelt (``populaton``), which is refused with a "did you mean".

Effective settings (``Roster.effective``) — decisions:

* ``enabled`` defaults to true. A disabled metric is not expected from the agency (uploads for it are still
  accepted downstream, spec §4.4). Metrics of sectors the agency does not list are never enabled.
* ``frequency`` defaults to the registry's default frequency for the metric.
* ``starting_month``: MONTHLY metrics always have 1. ANNUAL metrics default to the agency's
  ``fiscal_year_start_month`` — an agency on a July fiscal year reports all its annual metrics July-June unless a
  metric_settings row says otherwise (Publisher stores the fiscal start per metric; the roster column is our
  agency-wide default for it).
* ``disaggregated_by_supervision_subsystems`` only means something for ``SUPERVISION_*`` metrics. It defaults to
  true when the agency's sectors include SUPERVISION and at least one subsystem code (PAROLE, PROBATION, ...),
  else false. Setting it on any other metric, or to true for an agency without a subsystem, is an error.
* Subsystem keys (``PAROLE_*`` ...) are enabled only when the agency has that subsystem sector and the parent
  ``SUPERVISION_*`` metric is disaggregated; they inherit ``enabled``/``frequency``/``starting_month`` from the
  parent's metric_settings row unless their own row sets them (agencies configure supervision once, at the
  combined level). Extension of the rule: an agency that lists a subsystem *without* SUPERVISION (a stand-alone
  parole board) has nothing to combine, so it reports the subsystem keys directly.
* The combined ``SUPERVISION_*`` key is not expected when it is disaggregated (no double counting, spec §7.3).
* ``is_default`` is true when no metric_settings row (the metric's own, or for a subsystem key its parent's)
  touched the setting.

Breakdown-category settings (``Roster.category_enabled``), spec §4.4 "turn individual breakdown members on/off":

* ``breakdown_settings.csv`` is optional; a category without a row is enabled, so a state without the file
  behaves exactly as before. Each row names an agency, a metric, a breakdown dimension and one of its
  members, and sets ``enabled`` (required: a row exists to change something).
* Spellings, like the rest of the roster: metric keys in any case; the dimension as its registry identifier
  (``metric/offense/type``) or as the metric's upload column (``offense_type``), in any case; the member as its
  NAME (``PUBLIC_ORDER``) or its display value (``Public Order Offenses``), in any case and spacing. Stored as the
  identifier and the NAME, which is what ``agency_metrics.dimension`` / ``category`` hold.
* Subsystem keys inherit like the metric settings: a row for ``SUPERVISION_EXPENSES`` also applies to
  ``PAROLE_EXPENSES``, ``PROBATION_EXPENSES``, ... unless a row for the subsystem key itself says otherwise.
* A disabled category is left out of upload templates; data for it is still accepted (spec §4.4) and flagged
  by the ``category_enabled`` validation warning.

Agency names are matched for superagency uploads trimmed, case-insensitively and with runs of inner whitespace
collapsed (``find_child``); agency ids are matched case-insensitively. Ids name inbox folders, so they must be
safe folder names and must not differ only by case.

Withdrawals (``Roster.withdrawals``): ``withdrawals.csv`` is optional; each row names one version of a delivered
file by its ``path`` and ``sha256`` as ``source_files`` holds them, and the ``reason``. A withdrawn version's
datapoints count for nothing (the ingest applies the list, ``lib/ingest/withdrawals.py``); deleting the row puts
them back. The paths are compared with ``source_files``, never opened.
"""

from __future__ import annotations

import csv
import io
import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

from jc_pipeline.lib import csv_text
from jc_pipeline.lib.registry import (
    SUPERVISION_SUBSYSTEMS,
    SYSTEM_CODES,
    Breakdown,
    Member,
    Metric,
    Registry,
    load_registry,
)

AGENCIES_FILE = "agencies.csv"
SETTINGS_FILE = "metric_settings.csv"
BREAKDOWN_SETTINGS_FILE = "breakdown_settings.csv"
AGENCY_COLUMNS = (
    "agency_id",
    "agency_name",
    "state_code",
    "sectors",
    "county_fips",
    "population",
    "fiscal_year_start_month",
    "superagency_id",
)
SETTINGS_COLUMNS = (
    "agency_id",
    "metric_key",
    "enabled",
    "frequency",
    "starting_month",
    "disaggregated_by_supervision_subsystems",
)
BREAKDOWN_SETTINGS_COLUMNS = ("agency_id", "metric_key", "dimension", "member", "enabled")
WITHDRAWALS_FILE = "withdrawals.csv"
WITHDRAWALS_COLUMNS = ("path", "sha256", "reason")
FREQUENCIES = ("MONTHLY", "ANNUAL")
SUPERVISION = "SUPERVISION"
SUPERAGENCY = "SUPERAGENCY"

_REQUIRED_AGENCY_CELLS = ("agency_id", "agency_name", "state_code", "sectors")
_SAFE_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")
_STATE_CODE = re.compile(r"US_[A-Z]{2}")
_COUNTY_FIPS = re.compile(r"\d{5}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}


@dataclass(frozen=True)
class Agency:
    """One row of agencies.csv."""

    agency_id: str
    agency_name: str
    state_code: str
    sectors: tuple[str, ...]
    county_fips: str | None
    population: int | None
    fiscal_year_start_month: int
    superagency_id: str | None


@dataclass(frozen=True)
class MetricSetting:
    """One row of metric_settings.csv; ``None`` = blank cell = registry default."""

    agency_id: str
    metric_key: str
    enabled: bool | None
    frequency: str | None
    starting_month: int | None
    disaggregated_by_supervision_subsystems: bool | None
    line: int


@dataclass(frozen=True)
class BreakdownSetting:
    """One row of breakdown_settings.csv, spellings resolved: ``dimension`` is the registry identifier and
    ``member`` the member NAME."""

    agency_id: str
    metric_key: str
    dimension: str
    member: str
    enabled: bool
    line: int


@dataclass(frozen=True)
class CategorySetting:
    """A breakdown-category setting in effect (one row of the ``agency_breakdown_settings`` table).

    ``is_inherited`` is true for a subsystem key (``PAROLE_*``, ...) that takes the row of its combined
    ``SUPERVISION_*`` metric.
    """

    agency_id: str
    metric_key: str
    dimension: str
    category: str
    enabled: bool
    is_inherited: bool


@dataclass(frozen=True)
class EffectiveSetting:
    """A metric setting with every default applied (see the module docstring for the rules)."""

    enabled: bool
    frequency: str
    starting_month: int
    disaggregated_by_supervision_subsystems: bool
    is_default: bool


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a roster file, located precisely enough to fix it."""

    path: str
    line: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = [self.path]
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return f"{', '.join(where)}: {self.message}"


class RosterError(ValueError):
    """The roster files have problems; ``.problems`` lists all of them, ``str()`` one per line."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


@dataclass(frozen=True)
class Withdrawal:
    """A row of withdrawals.csv: the version of ``path`` (relative to the data directory) whose bytes hash to
    ``sha256`` is withdrawn, for ``reason``."""

    path: str
    sha256: str
    reason: str
    line: int


@dataclass(frozen=True)
class Roster:
    """The loaded roster: agencies by id, metric settings by (agency_id, metric_key), breakdown-category
    settings by (agency_id, metric_key, dimension, member)."""

    agencies: Mapping[str, Agency]
    settings: Mapping[tuple[str, str], MetricSetting]
    breakdown_settings: Mapping[tuple[str, str, str, str], BreakdownSetting] = field(
        default_factory=lambda: MappingProxyType({})
    )
    registry: Registry = field(default_factory=load_registry, repr=False, compare=False)  # for the defaults
    withdrawals: tuple[Withdrawal, ...] = ()

    def children(self, superagency_id: str) -> tuple[Agency, ...]:
        """Agencies reporting through ``superagency_id``, in roster order."""
        return self._children.get(superagency_id, ())

    def agency_of_folder(self, folder: str) -> Agency | None:
        """The agency whose inbox folder (or mapping file) is named ``folder``: its id, in any case (ids that differ
        only in case are refused, as they name one folder on Windows and macOS)."""
        agency = self.agencies.get(folder)
        if agency is None:
            agency = self._by_folded_id.get(folder.casefold())
        return agency

    @cached_property
    def _by_folded_id(self) -> dict[str, Agency]:
        return {agency_id.casefold(): agency for agency_id, agency in self.agencies.items()}

    def find_child(self, superagency_id: str, label: str) -> Agency | None:
        """The child of ``superagency_id`` named by ``label`` (agency_name or agency_id), else None."""
        wanted = _name_key(label)
        for child in self.children(superagency_id):
            if wanted in (_name_key(child.agency_name), child.agency_id.casefold()):
                return child
        return None

    def effective(self, agency_id: str, metric_key: str) -> EffectiveSetting:
        """The agency's effective setting for ``metric_key`` (KeyError for an unknown agency or metric)."""
        # Remembered: the roster never changes once loaded, and ingest asks once per agency, metric and file.
        setting = self._effective.get((agency_id, metric_key))
        if setting is None:
            setting = self._effective[agency_id, metric_key] = self._resolve_effective(agency_id, metric_key)
        return setting

    def _resolve_effective(self, agency_id: str, metric_key: str) -> EffectiveSetting:
        agency = self.agencies[agency_id]
        metric = self.registry.metrics[metric_key]
        own = self.settings.get((agency_id, metric_key))
        parent_key = self._supervision_parents.get(metric_key)
        if parent_key is None:
            disaggregated = self._disaggregated(agency, metric, own)
            return _resolve(agency, metric, [own], disaggregated, metric.sector in agency.sectors)
        # A subsystem key follows its combined parent: own row first, then the parent's row, field by field.
        parent = self.settings.get((agency_id, parent_key))
        if SUPERVISION in agency.sectors:
            disaggregated = self._disaggregated(agency, self.registry.metrics[parent_key], parent)
        else:
            disaggregated = True  # stand-alone subsystem agency: nothing to combine into
        available = metric.sector in agency.sectors and disaggregated
        return _resolve(agency, metric, [own, parent], disaggregated, available)

    def expected_metric_keys(self, agency_id: str) -> tuple[str, ...]:
        """Metric keys the agency is expected to report, in registry order.

        Enabled metrics of its sectors; for supervision the subsystem keys when disaggregated for that metric,
        else the combined key.
        """
        agency = self.agencies[agency_id]
        keys: list[str] = []
        for sector in agency.sectors:
            for metric in self.registry.metrics_for(sector):
                setting = self.effective(agency_id, metric.key)
                if not setting.enabled:
                    continue
                if metric.sector == SUPERVISION and setting.disaggregated_by_supervision_subsystems:
                    continue
                keys.append(metric.key)
        return tuple(keys)

    def sheet_keys(self, agency_id: str, metric_key: str) -> tuple[str, ...]:
        """The keys the agency's rows on the sheets of ``metric_key`` are stored under: the subsystem keys of its
        subsystem sectors for a SUPERVISION metric it reports by subsystem, else ``metric_key`` itself."""
        if (self.registry.metrics[metric_key].sector == SUPERVISION
                and self.effective(agency_id, metric_key).disaggregated_by_supervision_subsystems):
            return self._subsystem_keys(agency_id, metric_key)
        return (metric_key,)

    def _subsystem_keys(self, agency_id: str, supervision_key: str) -> tuple[str, ...]:
        """The agency's subsystem keys of a SUPERVISION metric: one per subsystem sector it has."""
        sectors = self.agencies[agency_id].sectors
        return tuple(self.registry.subsystem_key(supervision_key, s) for s in SUPERVISION_SUBSYSTEMS if s in sectors)

    def month_column_expected(self, agency_ids: Iterable[str], metric_key: str) -> bool:
        """Whether the sheets of ``metric_key`` that carry these agencies' rows have a month column: when any of
        the keys those rows are stored under (:meth:`sheet_keys`) is reported monthly. The ingest and the
        templates both ask this, so a filled template is read without a month warning."""
        return any(self.effective(agency_id, key).frequency == "MONTHLY"
                   for agency_id in agency_ids for key in self.sheet_keys(agency_id, metric_key))

    def category_enabled(self, agency_id: str, metric_key: str, dimension: str, category: str) -> bool:
        """False when breakdown_settings.csv turns the category (member NAME) of ``dimension`` off for the agency's
        metric — its own row, or for a subsystem key its combined SUPERVISION_* metric's row; else True."""
        row = self._breakdown_row(agency_id, metric_key, dimension, category)
        return row is None or row.enabled

    def category_settings(self) -> tuple[CategorySetting, ...]:
        """Every breakdown-category setting in effect, in file order: each row of breakdown_settings.csv, and for
        a SUPERVISION_* row the same setting on the agency's subsystem keys that have no row of their own."""
        effective: dict[tuple[str, str, str, str], CategorySetting] = {}
        for agency_id, metric_key, dimension, category in self.breakdown_settings:
            keys = [metric_key]
            if self.registry.metrics[metric_key].sector == SUPERVISION:
                keys += self._subsystem_keys(agency_id, metric_key)
            for key in keys:
                row = self._breakdown_row(agency_id, key, dimension, category)
                effective[(agency_id, key, dimension, category)] = CategorySetting(
                    agency_id, key, dimension, category, row.enabled, row.metric_key != key
                )
        return tuple(effective.values())

    def _breakdown_row(self, agency_id: str, metric_key: str, dimension: str, category: str) -> BreakdownSetting | None:
        """The breakdown_settings.csv row that decides the category: the metric's own, else its parent's."""
        for key in (metric_key, self._supervision_parents.get(metric_key)):
            row = self.breakdown_settings.get((agency_id, key, dimension, category))
            if row is not None:
                return row
        return None

    @cached_property
    def _children(self) -> dict[str, tuple[Agency, ...]]:
        # Indexed once: ingest asks for every delivering folder, and a scan of the roster per ask was quadratic.
        children: dict[str, list[Agency]] = {}
        for agency in self.agencies.values():
            if agency.superagency_id is not None:
                children.setdefault(agency.superagency_id, []).append(agency)
        return {parent: tuple(kids) for parent, kids in children.items()}

    @cached_property
    def _effective(self) -> dict[tuple[str, str], EffectiveSetting]:
        return {}

    @cached_property
    def _supervision_parents(self) -> dict[str, str]:
        return _supervision_parents(self.registry)

    @staticmethod
    def _disaggregated(agency: Agency, metric: Metric, row: MetricSetting | None) -> bool:
        if metric.sector != SUPERVISION or SUPERVISION not in agency.sectors:
            return False
        if row is not None and row.disaggregated_by_supervision_subsystems is not None:
            return row.disaggregated_by_supervision_subsystems
        return _has_subsystem(agency.sectors)


def load_roster(data_dir: Path, registry: Registry | None = None) -> Roster:
    """Load ``data_dir/agencies.csv`` (required), ``metric_settings.csv``, ``breakdown_settings.csv`` and
    ``withdrawals.csv`` (all three optional).

    Raises RosterError listing every problem found in the four files.
    """
    registry = registry if registry is not None else load_registry()
    problems: list[Problem] = []
    data_dir = Path(data_dir)
    agencies, raw_sectors = _load_agencies(data_dir / AGENCIES_FILE, problems)
    if problems and not raw_sectors:  # agencies.csv unusable: every settings row would name an "unknown agency"
        raise RosterError(problems)
    settings = _load_settings(data_dir / SETTINGS_FILE, raw_sectors, registry, problems)
    breakdown_settings = _load_breakdown_settings(data_dir / BREAKDOWN_SETTINGS_FILE, raw_sectors, registry, problems)
    withdrawals = _load_withdrawals(data_dir / WITHDRAWALS_FILE, problems)
    if problems:
        raise RosterError(problems)
    return Roster(
        agencies=MappingProxyType(agencies),
        settings=MappingProxyType(settings),
        breakdown_settings=MappingProxyType(breakdown_settings),
        registry=registry,
        withdrawals=withdrawals,
    )


# --- reading -----------------------------------------------------------------------------------------------


def _read_csv(path: Path, columns: tuple[str, ...], problems: list[Problem]) -> list[tuple[int, dict[str, str]]] | None:
    """Rows as (line, {column: stripped cell}); None when the file or its header is unusable."""
    name = path.name
    try:
        # As Excel or LibreOffice saved it: UTF-8, UTF-16 or Windows-1252, comma, semicolon or tab (csv_text).
        data = path.read_bytes()
        text = csv_text.decode(data, mixed=False)
    except FileNotFoundError:
        problems.append(
            Problem(name, None, None, f"file not found at {path}; create it with the header row: {','.join(columns)}")
        )
        return None
    except UnicodeDecodeError as exc:
        if data.startswith(csv_text.UTF16_BOMS):
            problems.append(Problem(name, None, None, f"not UTF-16 text though it starts like it ({exc.reason}); "
                                                      f"save it as CSV UTF-8"))
        else:  # UTF-8 with a stray byte: read as Windows-1252, every accented name was garbled without a word
            problems.append(Problem(name, data[:exc.start].count(b"\n") + 1, None, (
                f"a byte that is not UTF-8 ({data[exc.start]:#04x}) in UTF-8 text; retype the accented letters on "
                f"this line, or save the file again as CSV UTF-8")))
        return None
    if "\x00" in text:
        problems.append(Problem(name, None, None, "not a text file (NUL bytes: UTF-16 without a byte order mark "
                                                  "looks like this); save it as CSV UTF-8"))
        return None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=csv_text.delimiter(csv_text.header_line(text)))
    # (first physical line, cells): a quoted cell may span lines, so count lines, not records.
    lines, previous_end = [], 0
    for cells in reader:
        lines.append((previous_end + 1, cells))
        previous_end = reader.line_num
    # The header is the first line with a cell in it: Excel writes a row of empty cells as ",,,," (as the inbox).
    first = next((i for i, (_, cells) in enumerate(lines) if any(cell.strip() for cell in cells)), None)
    if first is None:
        problems.append(
            Problem(name, 1, None, f"file is empty; the first line must be the header: {','.join(columns)}")
        )
        return None
    header_at, header_cells = lines[first]
    lines = lines[first:]
    header = [cell.strip().lower() for cell in header_cells]
    usable = True
    for index, column in enumerate(header):
        if column and column not in columns:
            # A state's own columns are welcome (DESIGN §3) and left unread; one that looks like a missing
            # column misspelt is a mistake.
            hint = _did_you_mean(column, [c for c in columns if c not in header])
            if hint:
                problems.append(Problem(name, header_at, column,
                                        f"unknown column{hint}; the columns are: {', '.join(columns)}"))
                usable = False
        elif column and header.index(column) != index:
            problems.append(Problem(name, header_at, column, "column appears twice in the header; keep one"))
            usable = False
    for column in columns:
        if column not in header:
            problems.append(Problem(name, header_at, column, f"missing column; add '{column}' to the header row"))
            usable = False
    if not usable:
        return None
    rows = []
    for line, cells in lines[1:]:
        if not any(cell.strip() for cell in cells):
            continue  # blank lines (often trailing) carry nothing
        if len(cells) > len(header) and any(cell.strip() for cell in cells[len(header) :]):
            problems.append(
                Problem(
                    name,
                    line,
                    None,
                    f"{len(cells)} cells but the header has {len(header)}; remove the extra cells or quote values"
                    " containing commas",
                )
            )
        padded = cells + [""] * (len(header) - len(cells))
        rows.append((line, {column: padded[i].strip() for i, column in enumerate(header) if column}))
    return rows


def _read_optional_csv(
    path: Path, columns: tuple[str, ...], problems: list[Problem]
) -> list[tuple[int, dict[str, str]]]:
    """Rows of a file the state may leave out (absent = no rows); problems as ``_read_csv``."""
    if not path.exists():
        return []
    return _read_csv(path, columns, problems) or []


def _load_agencies(path: Path, problems: list[Problem]) -> tuple[dict[str, Agency], dict[str, tuple[str, ...]]]:
    """Valid agencies by id, plus the sector codes of *every* listed id (even rows with errors).

    The second mapping lets the metric_settings checks run without a cascade of "unknown agency" messages
    for agencies whose only fault is elsewhere in their row.
    """
    rows = _read_csv(path, AGENCY_COLUMNS, problems)
    if rows is None:
        return {}, {}
    name = path.name
    if not rows:
        # Every delivered file would be read again as no agency's (F8), and the roll-up then stopped naming the
        # warehouse structure instead of this file: an empty roster is a mistake (a save that lost the rows).
        problems.append(Problem(name, 2, None, "no agency below the header; list one agency per row (a save that "
                                               "kept only the header, or a sync that cut the file?)"))
        return {}, {}
    parsed: dict[str, tuple[int, dict[str, Any]]] = {}  # agency_id -> (line, Agency fields)
    first_seen: dict[str, tuple[int, str]] = {}  # case-folded id -> (line, id as written)
    broken: set[str] = set()
    for line, cells in rows:
        before = len(problems)
        report = _reporter(problems, name, line)
        for column in _REQUIRED_AGENCY_CELLS:
            if not cells[column]:
                report(column, f"blank; every agency needs a {column.replace('_', ' ')}")
        agency_id = cells["agency_id"]
        if agency_id and not _SAFE_ID.fullmatch(agency_id):
            report(
                "agency_id",
                f"'{agency_id}' is not a safe folder name; use only letters, digits, '_', '-' and '.' (not first), at"
                " most 100 characters",
            )
        if cells["state_code"] and not _STATE_CODE.fullmatch(cells["state_code"]):
            report(
                "state_code",
                f"'{cells['state_code']}' is not a state code; write US_ and the two-letter postal code, e.g. US_NM",
            )
        fips = cells["county_fips"] or None
        if fips and not _COUNTY_FIPS.fullmatch(fips):
            report(
                "county_fips",
                f"'{fips}' is not a 5-digit county FIPS code (state + county digits, e.g. 35001); leave it blank for"
                " agencies that are not county-level",
            )
        superagency_id = cells["superagency_id"] or None
        if agency_id and superagency_id == agency_id:
            report(
                "superagency_id",
                f"agency '{agency_id}' names itself as its superagency; leave superagency_id blank or name the umbrella"
                " agency it reports through",
            )
        values = dict(
            agency_name=cells["agency_name"],
            state_code=cells["state_code"],
            sectors=_parse_sectors(cells["sectors"], report),
            county_fips=fips,
            population=_parse_int(
                cells["population"],
                report,
                "population",
                0,
                None,
                "a non-negative whole number of residents, without separators (leave blank if unknown)",
            ),
            fiscal_year_start_month=_parse_int(
                cells["fiscal_year_start_month"],
                report,
                "fiscal_year_start_month",
                1,
                12,
                "an integer 1..12 (1 = calendar year, 7 = July-June; blank means 1)",
            )
            or 1,
            superagency_id=superagency_id,
        )
        if not agency_id:
            continue
        folded = agency_id.casefold()
        if folded in first_seen:
            first_line, first_id = first_seen[folded]
            spelled = (
                ""
                if first_id == agency_id
                else f" as '{first_id}' (ids that differ only in case name the same inbox folder on Windows and macOS)"
            )
            report(
                "agency_id",
                f"duplicate agency_id '{agency_id}': already defined on line {first_line}{spelled}; keep one row per"
                " agency or give this one another id",
            )
            continue
        first_seen[folded] = (line, agency_id)
        parsed[agency_id] = (line, values)
        if len(problems) > before:
            broken.add(agency_id)
    broken |= _check_superagencies(name, parsed, problems)
    agencies = {
        agency_id: Agency(agency_id=agency_id, **values)
        for agency_id, (_, values) in parsed.items()
        if agency_id not in broken
    }
    return agencies, {agency_id: values["sectors"] for agency_id, (_, values) in parsed.items()}


def _check_superagencies(name: str, parsed: dict[str, tuple[int, dict[str, Any]]], problems: list[Problem]) -> set[str]:
    """Check superagency references and child-name uniqueness; return the ids of the rows at fault."""
    broken: set[str] = set()
    # What a superagency's 'agency' column may write for each child: its name or its id (find_child).
    child_labels: dict[tuple[str, str], tuple[int, str]] = {}
    for agency_id, (line, values) in parsed.items():
        superagency_id = values["superagency_id"]
        if superagency_id is None or superagency_id == agency_id:
            continue
        report = _reporter(problems, name, line)
        before = len(problems)
        if superagency_id not in parsed:
            report(
                "superagency_id",
                f"'{superagency_id}' is not an agency_id in {name}{_did_you_mean(superagency_id, parsed)}; add the"
                " superagency's own row or correct the id",
            )
        else:
            super_line, super_values = parsed[superagency_id]
            if SUPERAGENCY not in super_values["sectors"]:
                report(
                    "superagency_id",
                    f"agency '{superagency_id}' (line {super_line}) does not list SUPERAGENCY in its sectors; add"
                    " SUPERAGENCY to that agency's sectors or clear this superagency_id",
                )
        for label in dict.fromkeys((_name_key(values["agency_name"]), _name_key(agency_id))):
            other_line, other = child_labels.setdefault((superagency_id, label), (line, agency_id))
            if other != agency_id:
                report(
                    "agency_name",
                    f"another child of '{superagency_id}' (line {other_line}) has the same name, or an id equal to"
                    f" this name (or this id as its name), so the superagency's 'agency' column could not tell them"
                    f" apart; make each child's name distinct from the other children's names and ids",
                )
        if len(problems) > before:
            broken.add(agency_id)
    return broken


def _load_settings(
    path: Path,
    sectors_by_id: dict[str, tuple[str, ...]],
    registry: Registry,
    problems: list[Problem],
) -> dict[tuple[str, str], MetricSetting]:
    """Parse metric_settings.csv (absent file = no overrides) against the roster and the metric registry."""
    rows = _read_optional_csv(path, SETTINGS_COLUMNS, problems)
    name = path.name
    settings: dict[tuple[str, str], MetricSetting] = {}
    for line, cells in rows:
        report = _reporter(problems, name, line)
        agency_id, metric_key = cells["agency_id"], cells["metric_key"].upper()
        metric = _agency_metric(cells, report, sectors_by_id, registry)
        sectors = sectors_by_id.get(agency_id)
        setting = MetricSetting(
            agency_id=agency_id,
            metric_key=metric_key,
            enabled=_parse_bool(cells["enabled"], report, "enabled"),
            frequency=_parse_choice(cells["frequency"], report, "frequency", FREQUENCIES),
            starting_month=_parse_int(
                cells["starting_month"],
                report,
                "starting_month",
                1,
                12,
                "an integer 1..12 (the first month of the fiscal year)",
            ),
            disaggregated_by_supervision_subsystems=_parse_bool(
                cells["disaggregated_by_supervision_subsystems"], report, "disaggregated_by_supervision_subsystems"
            ),
            line=line,
        )
        if metric is not None and sectors is not None:
            _check_disaggregation(setting, metric, sectors, report)
        if agency_id and metric_key:
            if (agency_id, metric_key) in settings:
                first = settings[(agency_id, metric_key)].line
                report(
                    "metric_key",
                    f"duplicate setting for agency '{agency_id}' and {metric_key}: already set on line {first}; merge"
                    " the two rows into one",
                )
            else:
                settings[(agency_id, metric_key)] = setting
    _check_starting_months(name, settings, registry, problems)
    return settings


def _load_breakdown_settings(
    path: Path,
    sectors_by_id: dict[str, tuple[str, ...]],
    registry: Registry,
    problems: list[Problem],
) -> dict[tuple[str, str, str, str], BreakdownSetting]:
    """Parse breakdown_settings.csv (absent file = every category enabled) against the roster and the registry."""
    rows = _read_optional_csv(path, BREAKDOWN_SETTINGS_COLUMNS, problems)
    name = path.name
    found: dict[tuple[str, str, str, str], BreakdownSetting] = {}
    for line, cells in rows:
        report = _reporter(problems, name, line)
        metric = _agency_metric(cells, report, sectors_by_id, registry)
        breakdown = _find_breakdown(cells["dimension"], metric, report)
        member = _find_member(cells["member"], breakdown, report)
        enabled = _parse_bool(cells["enabled"], report, "enabled", blank_is_default=False)
        if not cells["enabled"]:
            report(
                "enabled",
                "blank; write false to turn the category off (or true to turn on, for one supervision subsystem, a"
                " category its combined SUPERVISION_* metric turns off)",
            )
        if metric is None or breakdown is None or member is None or enabled is None:
            continue
        setting = BreakdownSetting(
            cells["agency_id"], metric.key, breakdown.dimension.identifier, member.name, enabled, line
        )
        key = (setting.agency_id, setting.metric_key, setting.dimension, setting.member)
        if key in found:
            report(
                "member",
                f"duplicate setting for agency '{setting.agency_id}', {setting.metric_key} and member {setting.member}"
                f" of {setting.dimension}: already set on line {found[key].line}; keep one of the two rows",
            )
        else:
            found[key] = setting
    return found


def _load_withdrawals(path: Path, problems: list[Problem]) -> tuple[Withdrawal, ...]:
    """Parse withdrawals.csv (absent file = nothing withdrawn). Paths are only checked for their form: whether a
    version was read is the ingest's to say (it may arrive in the same run)."""
    found: dict[tuple[str, str], Withdrawal] = {}
    for line, cells in _read_optional_csv(path, WITHDRAWALS_COLUMNS, problems):
        report = _reporter(problems, path.name, line)
        # A native export's sha256 in source_files carries its mapping's ("<bytes' sha256>+mapping:..."): the bytes
        # name the version, whichever mapping reads it.
        sha256 = cells["sha256"].lower().partition("+")[0]
        withdrawal = Withdrawal(cells["path"].replace("\\", "/"), sha256, cells["reason"], line)
        if not withdrawal.path.startswith("inbox/"):
            report("path", f"'{cells['path']}' is not a path of source_files; copy it from there, e.g. "
                           "inbox/<agency_id>/<SECTOR>/<file name>")
        if not _SHA256.fullmatch(withdrawal.sha256):
            report("sha256", f"'{cells['sha256']}' is not a SHA-256 (64 hexadecimal digits); copy the version's "
                             "sha256 from source_files")
        if not withdrawal.reason:
            report("reason", "blank; say why the file is withdrawn (the agency and the data-quality report read it)")
        key = (withdrawal.path, withdrawal.sha256)
        if key in found:
            report("sha256", f"this version is already withdrawn on line {found[key].line}; keep one of the rows")
        found.setdefault(key, withdrawal)
    return tuple(found.values())


def _agency_metric(
    cells: dict[str, str], report: _Report, sectors_by_id: dict[str, tuple[str, ...]], registry: Registry
) -> Metric | None:
    """Check the agency_id and metric_key cells a settings row starts with; the metric when its key is known."""
    agency_id, metric_key = cells["agency_id"], cells["metric_key"].upper()
    for column in ("agency_id", "metric_key"):
        if not cells[column]:
            report(column, f"blank; every row names the {column.replace('_', ' ')} it configures")
    if agency_id and agency_id not in sectors_by_id:
        report(
            "agency_id",
            f"unknown agency '{agency_id}'{_did_you_mean(agency_id, sectors_by_id)}; use an agency_id from"
            f" {AGENCIES_FILE}",
        )
    metric = registry.metrics.get(metric_key)
    if metric_key and metric is None:
        report(
            "metric_key",
            f"unknown metric key '{cells['metric_key']}'{_did_you_mean(metric_key, registry.metrics)}; use a key of"
            " the metric registry, e.g. LAW_ENFORCEMENT_ARRESTS",
        )
    sectors = sectors_by_id.get(agency_id)
    if metric is not None and sectors is not None and metric.sector not in sectors:
        report(
            "metric_key",
            f"{metric_key} is a {metric.sector} metric but agency '{agency_id}' reports for"
            f" {';'.join(sectors) or 'no sector'}; remove the row or add {metric.sector} to the agency's sectors",
        )
    return metric


def _find_breakdown(cell: str, metric: Metric | None, report: _Report) -> Breakdown | None:
    """The metric's breakdown named by its dimension identifier or its upload column (any case)."""
    if not cell:
        report(
            "dimension", "blank; name the breakdown dimension, e.g. metric/offense/type (or its column, offense_type)"
        )
        return None
    if metric is None:
        return None  # the metric_key problem is already reported
    wanted = cell.casefold()
    for breakdown in metric.breakdowns:
        if wanted in (breakdown.dimension.identifier.casefold(), (breakdown.column or "").casefold()):
            return breakdown
    if not metric.breakdowns:
        report("dimension", f"{metric.key} has no breakdowns, so it has no categories to turn off; remove the row")
        return None
    options = [b.dimension.identifier for b in metric.breakdowns]
    listed = ", ".join(f"{b.dimension.identifier} ({b.column})" if b.column else b.dimension.identifier
                       for b in metric.breakdowns)
    report(
        "dimension",
        f"'{cell}' is not a breakdown of {metric.key}{_did_you_mean(wanted, options)}; use one of its dimensions"
        f" (or their upload columns): {listed}",
    )
    return None


def _find_member(cell: str, breakdown: Breakdown | None, report: _Report) -> Member | None:
    """The dimension's member named by its NAME or its display value (any case and spacing)."""
    if not cell:
        report("member", "blank; name the category to turn on or off, e.g. OTHER")
        return None
    if breakdown is None:
        return None  # the dimension problem is already reported
    wanted = _name_key(cell)
    members = breakdown.dimension.members
    for label in (lambda m: m.name, lambda m: m.display):  # a NAME wins over another member's display value
        match = next((m for m in members if _name_key(label(m)) == wanted), None)
        if match is not None:
            return match
    names = [m.name for m in members]
    report(
        "member",
        f"'{cell}' is not a category of {breakdown.dimension.identifier}{_did_you_mean(cell.upper(), names)}; use a"
        f" member NAME or its display value: {', '.join(names)}",
    )
    return None


def _check_disaggregation(setting: MetricSetting, metric: Metric, sectors: tuple[str, ...], report: _Report) -> None:
    if setting.disaggregated_by_supervision_subsystems is None:
        return
    column = "disaggregated_by_supervision_subsystems"
    if metric.sector != SUPERVISION:
        report(column, f"only applies to SUPERVISION_* metrics, not {setting.metric_key}; leave it blank")
    elif setting.disaggregated_by_supervision_subsystems and not _has_subsystem(sectors):
        report(
            column,
            f"agency '{setting.agency_id}' has no supervision subsystem sector ({', '.join(SUPERVISION_SUBSYSTEMS)}) to"
            f" split {setting.metric_key} into; set it to false or add the subsystems to the agency's sectors",
        )


def _check_starting_months(
    name: str, settings: dict[tuple[str, str], MetricSetting], registry: Registry, problems: list[Problem]
) -> None:
    """A starting month only makes sense for an annual metric (after the subsystem-parent inheritance)."""
    parents = _supervision_parents(registry)
    for (agency_id, metric_key), setting in settings.items():
        metric = registry.metrics.get(metric_key)
        if setting.starting_month is None or metric is None:
            continue
        parent = settings.get((agency_id, parents.get(metric_key, "")))
        frequency = setting.frequency or (parent.frequency if parent else None) or metric.default_frequency
        if frequency == "MONTHLY":
            problems.append(
                Problem(
                    name,
                    setting.line,
                    "starting_month",
                    f"{metric_key} is reported MONTHLY, so it has no starting month; clear starting_month or set"
                    " frequency to ANNUAL",
                )
            )


# --- effective settings ------------------------------------------------------------------------------------


def _supervision_parents(registry: Registry) -> dict[str, str]:
    """Subsystem metric key (PAROLE_FUNDING) -> combined key (SUPERVISION_FUNDING)."""
    return {
        registry.subsystem_key(metric.key, subsystem): metric.key
        for metric in registry.metrics_for(SUPERVISION)
        for subsystem in SUPERVISION_SUBSYSTEMS
    }


def _resolve(
    agency: Agency, metric: Metric, rows: list[MetricSetting | None], disaggregated: bool, available: bool
) -> EffectiveSetting:
    """Apply the rows (first non-blank value wins) over the defaults."""
    present = [row for row in rows if row is not None]

    def first(attribute: str) -> Any:
        return next((value for row in present if (value := getattr(row, attribute)) is not None), None)

    enabled = first("enabled")
    frequency = first("frequency") or metric.default_frequency
    starting_month = 1 if frequency == "MONTHLY" else first("starting_month") or agency.fiscal_year_start_month
    return EffectiveSetting(
        enabled=available and enabled is not False,
        frequency=frequency,
        starting_month=starting_month,
        disaggregated_by_supervision_subsystems=disaggregated,
        is_default=not present,
    )


def _has_subsystem(sectors: tuple[str, ...]) -> bool:
    return any(sector in SUPERVISION_SUBSYSTEMS for sector in sectors)


# --- cell parsing ------------------------------------------------------------------------------------------

_Report = Callable[[str, str], None]


def _reporter(problems: list[Problem], path: str, line: int) -> _Report:
    """A function recording a problem at (path, line, column)."""
    return lambda column, message: problems.append(Problem(path, line, column, message))


def _parse_sectors(cell: str, report: _Report) -> tuple[str, ...]:
    """Valid sector codes of a ';'-separated cell (case-insensitive, duplicates dropped)."""
    codes = [code.strip().upper() for code in cell.split(";") if code.strip()]
    for code in codes:
        if code not in SYSTEM_CODES:
            report(
                "sectors",
                f"unknown sector code '{code}'{_did_you_mean(code, SYSTEM_CODES)} (valid codes:"
                f" {', '.join(SYSTEM_CODES)}); separate several codes with ';'",
            )
    return tuple(dict.fromkeys(code for code in codes if code in SYSTEM_CODES))


def _parse_int(cell: str, report: _Report, column: str, low: int, high: int | None, expected: str) -> int | None:
    """A whole number within [low, high]; None for a blank cell or after reporting a problem."""
    if not cell:
        return None
    try:
        number = int(cell)
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        report(column, f"'{cell}' is not valid; write {expected}")
        return None
    return number


def _parse_bool(cell: str, report: _Report, column: str, *, blank_is_default: bool = True) -> bool | None:
    """``blank_is_default``: a blank cell means the default, so the message offers it."""
    if not cell:
        return None
    lowered = cell.lower()
    if lowered in _TRUE | _FALSE:
        return lowered in _TRUE
    blank = " (or leave blank for the default)" if blank_is_default else ""
    report(column, f"'{cell}' is not a yes/no value; write true/false, yes/no or 1/0{blank}")
    return None


def _parse_choice(cell: str, report: _Report, column: str, choices: tuple[str, ...]) -> str | None:
    if not cell:
        return None
    if cell.upper() in choices:
        return cell.upper()
    report(column, f"'{cell}' is not one of {', '.join(choices)} (or blank for the registry default)")
    return None


def _did_you_mean(text: str, options: Any) -> str:
    # Compared without case: 'AOC' for 'aoc' is the likeliest slip, and difflib alone found no match for it.
    folded = {option.casefold(): option for option in options}
    close = difflib.get_close_matches(text.casefold(), list(folded), n=1, cutoff=0.75)
    return f" (did you mean '{folded[close[0]]}'?)" if close else ""


def _name_key(label: str) -> str:
    """Agency-name comparison key: trimmed, inner whitespace collapsed, case-folded."""
    return " ".join(label.split()).casefold()
