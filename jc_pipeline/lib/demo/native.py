"""Agency-native exports for the demo state: a CAD calls export, an RMS arrest export, a jail booking export and
an aggregated jail budget (annual funding by fiscal year), a court case export and a probation roster, each with
its ``mappings/<agency_id>.yaml``.

One agency per sector (the smallest stand-alone one that reports every metric of :data:`METRICS` monthly, and
those of :data:`ANNUAL` annually) delivers these metrics ONLY through its native export: :func:`choose` says which
(agency, metric) pairs the bulk-upload writer must leave out, so the latest-wins rule never has two sources to
choose from.

Records are generated from the demo's observations so the counts agree with the rest of the demo: calls,
arrests, jail admissions, supervision starts and court filings per month and category are exactly the observed
values; populations, releases, discharges, dispositions and sentences follow from simulated stays and cases
(stays and cases start a year before the history so the first months are complete; ``period.from`` keeps that
warm-up year out of the datapoints).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import xlsxwriter

from jc_pipeline.lib.demo.agencies import DemoState
from jc_pipeline.lib.demo.values import Observation
from jc_pipeline.lib.periods import add_months
from jc_pipeline.lib.registry import Registry
from jc_pipeline.lib.roster import Roster

LE, JAIL, COURT, SUP = "LAW_ENFORCEMENT", "JAILS", "COURTS_AND_PRETRIAL", "SUPERVISION"
OFFENSE, RACE, SEX = "metric/offense/type", "global/race_and_ethnicity", "global/biological_sex"
#: Metrics each sector's export delivers (only those the agency is expected to report monthly are used).
METRICS = {
    LE: ("LAW_ENFORCEMENT_CALLS_FOR_SERVICE", "LAW_ENFORCEMENT_ARRESTS"),
    JAIL: ("JAILS_TOTAL_ADMISSIONS", "JAILS_PRE_ADJUDICATION_ADMISSIONS", "JAILS_POST_ADJUDICATION_ADMISSIONS",
           "JAILS_TOTAL_POPULATION", "JAILS_PRE_ADJUDICATION_POPULATION", "JAILS_POST_ADJUDICATION_POPULATION",
           "JAILS_TOTAL_RELEASES", "JAILS_PRE_ADJUDICATION_RELEASES", "JAILS_POST_ADJUDICATION_RELEASES"),
    COURT: ("COURTS_AND_PRETRIAL_CASES_FILED", "COURTS_AND_PRETRIAL_CASES_DISPOSED", "COURTS_AND_PRETRIAL_SENTENCES"),
    SUP: ("SUPERVISION_SUPERVISION_STARTS", "SUPERVISION_SUPERVISION_TERMINATIONS", "SUPERVISION_POPULATION"),
}
#: Annual metrics an export delivers (by fiscal year) when the chosen agency reports them annually.
ANNUAL = {JAIL: ("JAILS_FUNDING",)}
# Source codes of the fictional systems.
CALL_CODES = {"EMERGENCY": ("P1", "P2"), "NON_EMERGENCY": ("P3", "P4"), "OTHER": ("ADM",), "UNKNOWN": ("",)}
OFFENSE_CODES = {"PERSON": ("13A", "13B", "120"), "PROPERTY": ("23C", "220", "290"), "PUBLIC_ORDER": ("90D", "90C"),
                 "DRUG": ("35A", "35B"), "OTHER": ("90Z",), "UNKNOWN": ("",)}
RACE_CODES = {"WHITE": "W", "BLACK": "B", "ASIAN": "A", "AMERICAN_INDIAN_ALASKAN_NATIVE": "I",
              "NATIVE_HAWAIIAN_PACIFIC_ISLANDER": "P", "MORE_THAN_ONE_RACE": "M", "OTHER": "O", "UNKNOWN": "U"}
ETHNICITY_CODES = {"HISPANIC": "H", "NOT_HISPANIC": "N", "UNKNOWN_ETHNICITY": ""}
SEX_CODES = {"MALE": "M", "FEMALE": "F", "UNKNOWN": "U"}
_RACE_MIX = {"WHITE": 60, "BLACK": 25, "ASIAN": 4, "AMERICAN_INDIAN_ALASKAN_NATIVE": 2, "MORE_THAN_ONE_RACE": 3,
             "OTHER": 2, "UNKNOWN": 4}
_ETH_MIX = {"HISPANIC": 15, "NOT_HISPANIC": 75, "UNKNOWN_ETHNICITY": 10}
_SEX_MIX = {"MALE": 78, "FEMALE": 20, "UNKNOWN": 2}
_OFFENSE_MIX = {"PERSON": 25, "PROPERTY": 25, "PUBLIC_ORDER": 15, "DRUG": 20, "OTHER": 10, "UNKNOWN": 5}


@dataclass
class NativePlan:
    """Which agency delivers which metrics natively, and the observations its exports are built from."""

    agencies: dict[str, str] = field(default_factory=dict)  # sector -> agency_id
    metrics: dict[str, tuple[str, ...]] = field(default_factory=dict)  # agency_id -> metric keys
    observed: dict[tuple[str, str], list[Observation]] = field(default_factory=dict)

    def covers(self, observation: Observation) -> bool:
        return observation.metric.key in self.metrics.get(observation.agency_id, ())


def choose(state: DemoState, roster: Roster, observed: Iterable[Observation]) -> NativePlan:
    """One agency per sector of :data:`METRICS` (see the module docstring); may be empty for tiny states."""
    plan = NativePlan()
    for sector, keys in METRICS.items():
        candidates = [a for a in state.agencies if a.sectors == (sector,) and a.last_month is None
                      and not a.quarterly and a.agency_id != state.correction_id]
        for agency in sorted(candidates, key=lambda a: (a.population, a.agency_id)):
            expected = set(roster.expected_metric_keys(agency.agency_id))
            usable = tuple(k for frequency, group in (("MONTHLY", keys), ("ANNUAL", ANNUAL.get(sector, ())))
                           for k in group if k in expected
                           and roster.effective(agency.agency_id, k).frequency == frequency)
            if keys[0] in usable:
                plan.agencies[sector], plan.metrics[agency.agency_id] = agency.agency_id, usable
                break
    for observation in observed:
        if plan.covers(observation):
            plan.observed.setdefault((observation.agency_id, observation.metric.key), []).append(observation)
    return plan


def write_native(data_dir: Path, plan: NativePlan, registry: Registry, seed: int, history: tuple[int, ...]
                 ) -> list[str]:
    """Write the mapping files and exports; returns the written paths relative to ``data_dir``."""
    rng = random.Random(f"native-{seed}")
    writers = {LE: _law_enforcement, JAIL: _jail, COURT: _court, SUP: _supervision}
    written: list[str] = []
    for sector, agency_id in plan.agencies.items():
        export = _Export(data_dir, agency_id, plan, registry, rng, history)
        writers[sector](export)
        written += export.finish()
    return written


@dataclass
class _Export:
    data_dir: Path
    agency_id: str
    plan: NativePlan
    registry: Registry
    rng: random.Random
    history: tuple[int, ...]
    sources: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)

    @property
    def keys(self) -> tuple[str, ...]:
        return self.plan.metrics[self.agency_id]

    def monthly(self, key: str) -> list[Observation]:
        return sorted((o for o in self.plan.observed.get((self.agency_id, key), []) if o.month is not None),
                      key=lambda o: o.start)

    def annual(self, key: str) -> list[Observation]:
        return sorted((o for o in self.plan.observed.get((self.agency_id, key), []) if o.month is None),
                      key=lambda o: o.start)

    def split(self, observation: Observation, identifier: str, total: int, mix: dict[str, int]) -> list[str]:
        """Member names for ``total`` records: the observed breakdown when there is one, else the mix, shuffled."""
        for breakdown, counts in observation.breakdowns:
            if breakdown.dimension.identifier == identifier and sum(c for _, c in counts) == total:
                names = [m.name for m, c in counts for _ in range(c)]
                break
        else:
            names = self.rng.choices(list(mix), weights=list(mix.values()), k=total)
        self.rng.shuffle(names)
        return names

    def moment(self, month: date) -> datetime:
        days = (add_months(month, 1) - month).days
        return datetime(month.year, month.month, 1) + timedelta(seconds=self.rng.randrange(days * 86400))

    def write_csv(self, relative: str, frame: pl.DataFrame, *, separator: str = ",", encoding: str = "utf-8"
                  ) -> None:
        path = self.data_dir / "inbox" / self.agency_id / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(frame.write_csv(separator=separator).encode(encoding))
        self.written.append(path.relative_to(self.data_dir).as_posix())

    def write_xlsx(self, relative: str, sheet: str, frame: pl.DataFrame) -> None:
        path = self.data_dir / "inbox" / self.agency_id / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with xlsxwriter.Workbook(str(path), {"constant_memory": True}) as workbook:
            # Exported after the history's last year; xlsxwriter's default is the time of writing, which made
            # the demo's bytes differ on every write.
            workbook.set_properties({"created": datetime(self.history[-1] + 1, 1, 1)})
            worksheet = workbook.add_worksheet(sheet)
            dates = workbook.add_format({"num_format": "mm/dd/yyyy"})
            worksheet.write_row(0, 0, frame.columns)
            for r, row in enumerate(frame.iter_rows(), start=1):
                for c, cell in enumerate(row):
                    if isinstance(cell, date):
                        worksheet.write_datetime(r, c, datetime(cell.year, cell.month, cell.day), dates)
                    elif cell is not None and cell != "":
                        worksheet.write_string(r, c, cell)
        self.written.append(path.relative_to(self.data_dir).as_posix())

    def finish(self) -> list[str]:
        folder = self.data_dir / "mappings"
        folder.mkdir(parents=True, exist_ok=True)
        text = f"# Native exports of {self.agency_id} (demo); format: docs/mappings.md\nversion: 1\nsources:\n"
        (folder / f"{self.agency_id}.yaml").write_text(text + "".join(self.sources), encoding="utf-8")
        return [*self.written, f"mappings/{self.agency_id}.yaml"]

    @property
    def first_month(self) -> str:
        return f"{self.history[0]}-01"

    def people(self, n: int) -> tuple[list[str], list[str], list[str]]:
        races = self.rng.choices(list(_RACE_MIX), weights=list(_RACE_MIX.values()), k=n)
        eths = self.rng.choices(list(_ETH_MIX), weights=list(_ETH_MIX.values()), k=n)
        sexes = self.rng.choices(list(_SEX_MIX), weights=list(_SEX_MIX.values()), k=n)
        return [RACE_CODES[r] for r in races], [ETHNICITY_CODES[e] for e in eths], [SEX_CODES[s] for s in sexes]


def _by_member(codes: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """{source code: member} -> {member: source codes}."""
    out: dict[str, tuple[str, ...]] = {}
    for code, member in codes.items():
        out[member] = (*out.get(member, ()), code)
    return out


def _values(codes: dict[str, tuple[str, ...] | str], indent: int) -> str:
    """YAML lines ``"<source code>": <member>`` of {member: source code(s)}."""
    pad = " " * indent
    lines = []
    for member, values in codes.items():
        for value in (values,) if isinstance(values, str) else values:
            if value:
                lines.append(f'{pad}"{value}": {member}\n')
    return "".join(lines)


_RACE_BLOCK = """          - dimension: global/race_and_ethnicity
            race:
              column: race
              values:
{races}            ethnicity:
              column: ethnicity
              values:
{eths}"""


def _race_block() -> str:
    return _RACE_BLOCK.format(races=_values(RACE_CODES, 16), eths=_values(ETHNICITY_CODES, 16))


def _simple_block(identifier: str, column: str, codes: dict, extra: str = "") -> str:
    return (f"          - dimension: {identifier}\n            column: {column}\n{extra}            values:\n"
            + _values(codes, 14))


# --- law enforcement: CAD calls (one file per year) and RMS charges ----------------------------------------------


def _law_enforcement(export: _Export) -> None:
    calls = export.monthly("LAW_ENFORCEMENT_CALLS_FOR_SERVICE")
    by_year: dict[int, list[tuple]] = {}
    number = 0
    for observation in calls:
        for member in export.split(observation, "metric/law_enforcement/calls_for_service/type", observation.value,
                                   {"EMERGENCY": 30, "NON_EMERGENCY": 60, "OTHER": 5, "UNKNOWN": 5}):
            number += 1
            code = export.rng.choice(CALL_CODES[member])
            by_year.setdefault(observation.start.year, []).append(
                (f"CAD{number:08d}", export.moment(observation.start), code))
        # Test calls the CAD logs but that are not calls for service: the mapping leaves them out.
        by_year.setdefault(observation.start.year, []).append((f"T{number:08d}", export.moment(observation.start),
                                                                "TEST"))
    for year, rows in by_year.items():
        rows.sort(key=lambda r: r[1])
        export.write_csv(f"{LE}/cad_calls_{year}.csv", pl.DataFrame(
            rows, schema={"Incident Number": pl.String, "Call Received": pl.Datetime("us"), "Priority": pl.String},
            orient="row").with_columns(pl.col("Call Received").dt.strftime("%Y-%m-%d %H:%M:%S")))
    if calls:
        export.sources.append(
            "  - name: cad_calls\n    pattern: LAW_ENFORCEMENT/cad_calls_*.csv\n    kind: records\n"
            "    columns: {incident: Incident Number, received: Call Received, priority: Priority}\n"
            "    metrics:\n      - metric: LAW_ENFORCEMENT_CALLS_FOR_SERVICE\n        date: received\n"
            "        breakdowns:\n"
            + _simple_block("metric/law_enforcement/calls_for_service/type", "priority", CALL_CODES)
            + '              "TEST": null\n')
    arrests = export.monthly("LAW_ENFORCEMENT_ARRESTS") if "LAW_ENFORCEMENT_ARRESTS" in export.keys else []
    rows, number = [], 0
    order = list(OFFENSE_CODES)
    for observation in arrests:
        n = observation.value
        offenses = export.split(observation, OFFENSE, n, _OFFENSE_MIX)
        races = export.split(observation, RACE, n, {f"{e}_{r}": we * wr for e, we in _ETH_MIX.items()
                                                     for r, wr in _RACE_MIX.items()})
        sexes = export.split(observation, SEX, n, _SEX_MIX)
        for offense, race, sex in zip(offenses, races, sexes, strict=True):
            number += 1
            member = export.registry.dimensions[RACE].member(race) if race else None
            race_code = RACE_CODES[member.race] if member else "U"
            eth_code = ETHNICITY_CODES[member.ethnicity] if member else ""
            when = export.moment(observation.start).strftime("%m/%d/%Y %H:%M")
            charges = [offense] + [export.rng.choice(order[order.index(offense):])
                                   for _ in range(export.rng.choice((0, 0, 0, 1, 2)))]
            for seq, charge in enumerate(charges, start=1):
                rows.append((f"A{number:07d}", seq, when, export.rng.choice(OFFENSE_CODES[charge]), race_code,
                             eth_code, SEX_CODES[sex]))
    if rows:
        export.write_csv(f"{LE}/rms/rms_arrest_charges.csv", pl.DataFrame(rows, orient="row", schema=[
            "ArrestNo", "ChargeSeq", "ArrestDateTime", "NIBRS", "Race", "Ethnicity", "Sex"]), separator="|")
        export.sources.append(
            "  - name: rms_arrests\n    pattern: LAW_ENFORCEMENT/rms/rms_arrest_charges.csv\n    kind: records\n"
            '    delimiter: "|"\n    date_formats: ["%m/%d/%Y %H:%M"]\n'
            "    columns: {arrest: ArrestNo, when: ArrestDateTime, nibrs: NIBRS, race: Race, ethnicity: Ethnicity,"
            " sex: Sex}\n"
            "    metrics:\n      - metric: LAW_ENFORCEMENT_ARRESTS\n        date: when\n        id: arrest\n"
            "        breakdowns:\n"
            + _simple_block(OFFENSE, "nibrs", OFFENSE_CODES,
                            "            order: [PERSON, PROPERTY, PUBLIC_ORDER, DRUG, OTHER, UNKNOWN]\n")
            + _race_block() + _simple_block(SEX, "sex", SEX_CODES))


# --- jail: one booking extract with custody intervals -----------------------------------------------------------

PRE_RELEASE = {"ROR": "AWAITING_TRIAL", "BOND": "BAIL", "DECEASED": "DEATH", "ESCAPE": "AWOL", "XFER": "OTHER"}
POST_RELEASE = {"PROB": "PROBATION", "PAROLE": "PAROLE", "CS": "COMMUNITY_SUPERVISION",
                "TIME SERVED": "NO_ADDITIONAL_CONTROL", "DECEASED": "DEATH", "ESCAPE": "AWOL", "XFER": "OTHER"}
_PRE_RELEASE_MIX = {"ROR": 45, "BOND": 45, "XFER": 8, "DECEASED": 1, "ESCAPE": 1}
_POST_RELEASE_MIX = {"PROB": 30, "PAROLE": 10, "CS": 5, "TIME SERVED": 50, "XFER": 4, "DECEASED": 1}
_STATUS = {"PRE": "pretrial", "SENT": "sentenced"}


def _jail(export: _Export) -> None:
    admissions = export.monthly("JAILS_TOTAL_ADMISSIONS")
    if not admissions:
        return
    population = [o.value for o in export.monthly("JAILS_TOTAL_POPULATION")] or [1]
    pre = {o.start: o.value for o in export.monthly("JAILS_PRE_ADJUDICATION_ADMISSIONS")}
    mean_admissions = sum(o.value for o in admissions) / len(admissions)
    stay_days = max(1.0, (sum(population) / len(population)) * 30.4 / max(mean_admissions, 1))
    end = datetime(export.history[-1] + 1, 1, 1)
    # A warm-up year (the first year's admissions a year early) fills the jail before the history starts.
    warmup = [(add_months(o.start, -12), o) for o in admissions[:12]]
    rows, number = [], 0
    for month, observation in [*warmup, *((o.start, o) for o in admissions)]:
        n = observation.value
        offenses = export.split(observation, OFFENSE, n, _OFFENSE_MIX)
        share = pre.get(observation.start, round(n * 0.6)) / max(n, 1)
        races, eths, sexes = export.people(n)
        for i, offense in enumerate(offenses):
            number += 1
            booked = export.moment(month)
            status = "PRE" if export.rng.random() < share else "SENT"
            days = export.rng.expovariate(1 / stay_days) * (0.6 if status == "PRE" else 1.6)
            released = booked + timedelta(days=days)
            reason = export.rng.choices(*zip(*(_PRE_RELEASE_MIX if status == "PRE" else _POST_RELEASE_MIX).items())
                                        )[0]
            out = released.strftime("%Y-%m-%dT%H:%M:%S") if released < end else ""
            rows.append((f"BK{number:07d}", booked.strftime("%Y-%m-%dT%H:%M:%S"), out, status,
                         export.rng.choice(OFFENSE_CODES[offense]), reason if out else "", races[i], eths[i],
                         sexes[i]))
    export.write_csv(f"{JAIL}/jms_bookings_extract.csv", pl.DataFrame(rows, orient="row", schema=[
        "Booking Number", "Booked At", "Released At", "Custody Status", "Top Charge NIBRS", "Release Reason",
        "Race", "Ethnicity", "Sex"]))
    keys = export.keys
    metrics = []
    offense_block = _simple_block(OFFENSE, "charge", OFFENSE_CODES)
    status_where = {"TOTAL": "", "PRE": "        where: {column: status, in: [PRE]}\n",
                    "POST": "        where: {column: status, in: [SENT]}\n"}
    names = {"TOTAL": "TOTAL", "PRE": "PRE_ADJUDICATION", "POST": "POST_ADJUDICATION"}
    for part, name in names.items():
        key = f"JAILS_{name}_ADMISSIONS"
        if key in keys:
            metrics.append(f"      - metric: {key}\n        date: booked\n{status_where[part]}"
                           f"        breakdowns:\n{offense_block}")
        key = f"JAILS_{name}_POPULATION"
        if key in keys:
            metrics.append(f"      - metric: {key}\n        count: population\n        start: booked\n"
                           f"        end: released\n        round: true\n{status_where[part]}"
                           f"        breakdowns:\n{offense_block}{_race_block()}{_simple_block(SEX, 'sex', SEX_CODES)}")
        key = f"JAILS_{name}_RELEASES"
        if key in keys:
            where = status_where[part].replace("where: {", "where: [{column: released, blank: false}, {")
            where = where.replace("]}\n", "]}]\n") if where else "        where: {column: released, blank: false}\n"
            block = ""
            if part != "TOTAL":
                identifier = f"metric/jails/{'pre' if part == 'PRE' else 'post'}_adjudication/release/type"
                block = "        breakdowns:\n" + _simple_block(identifier, "reason", _by_member(
                    PRE_RELEASE if part == "PRE" else POST_RELEASE))
            metrics.append(f"      - metric: {key}\n        date: released\n{where}{block}")
    export.sources.append(
        f"  - name: jms_bookings\n    pattern: JAILS/jms_bookings_extract.csv\n    kind: records\n"
        f"    period: {{from: {export.first_month}}}\n"
        "    columns: {booking: Booking Number, booked: Booked At, released: Released At, status: Custody Status,"
        " charge: Top Charge NIBRS, reason: Release Reason, race: Race, ethnicity: Ethnicity, sex: Sex}\n"
        "    metrics:\n" + "".join(metrics))
    _jail_budget(export)


FUNDING_CODES = {"STATE_APPROPRIATION": "STATE", "COUNTY_MUNICIPAL": "COUNTY", "GRANTS": "GRANT",
                 "COMMISSARY_FEES": "COMMISSARY", "CONTRACT_BEDS": "BEDS", "OTHER": "OTHER"}


def _jail_budget(export: _Export) -> None:
    """The county budget office's funding table: one row per fiscal year and source, the year labelled by the year
    it ends (as bulk uploads label it); a year without a known split is one row with an empty source (UNKNOWN)."""
    rows = []
    for observation in export.annual("JAILS_FUNDING"):
        split = next((counts for breakdown, counts in observation.breakdowns
                      if breakdown.dimension.identifier == "metric/jails/funding/type"), ())
        if sum(c for _, c in split) == observation.value and split:
            rows += [(str(observation.year), FUNDING_CODES.get(m.name, ""), f"{c:,}") for m, c in split if c]
        else:
            rows.append((str(observation.year), "", f"{observation.value:,}"))
    if not rows:
        return
    export.write_csv(f"{JAIL}/jail_budget.csv", pl.DataFrame(rows, orient="row", schema=[
        "Fiscal Year", "Funding Source", "Amount"]))
    export.sources.append(
        "  - name: jail_budget\n    pattern: JAILS/jail_budget.csv\n    kind: aggregated\n"
        "    columns: {year: Fiscal Year, source: Funding Source, amount: Amount}\n"
        "    metrics:\n      - metric: JAILS_FUNDING\n        year: year\n        value: amount\n"
        "        breakdowns:\n" + _simple_block("metric/jails/funding/type", "source", FUNDING_CODES))


# --- courts: case management export, one row per charge (Windows-1252, semicolons) ------------------------------

SEVERITY = {"F": "FELONY", "M": "MISDEMEANOR", "I": "MISDEMEANOR", "O": "OTHER"}
DISPOSITION = {"DISM": "DISMISSAL", "NOLLE": "DISMISSAL", "PLEA": "PLEA", "VERDICT": "TRIAL", "TRANSFER": "OTHER"}
SENTENCE = {"DOC": "PRISON", "JAIL": "JAIL", "SPLIT": "SPLIT", "SUSP": "SUSPENDED", "PROB": "COMMUNITY_SUPERVISION",
            "FINE": "FINES_FEES", "OTHER": "OTHER"}
_DISPOSITION_MIX = {"DISM": 25, "NOLLE": 10, "PLEA": 55, "VERDICT": 5, "TRANSFER": 5}
_SENTENCE_MIX = {"DOC": 10, "JAIL": 25, "SPLIT": 8, "SUSP": 10, "PROB": 30, "FINE": 15, "OTHER": 2}


def _court(export: _Export) -> None:
    filings = export.monthly("COURTS_AND_PRETRIAL_CASES_FILED")
    if not filings:
        return
    end = datetime(export.history[-1] + 1, 1, 1)
    warmup = [(add_months(o.start, -12), o) for o in filings[:12]]
    rows, number = [], 0
    for month, observation in [*warmup, *((o.start, o) for o in filings)]:
        levels = export.split(observation, "metric/courts/case/severity/type", observation.value,
                              {"FELONY": 30, "MISDEMEANOR": 65, "OTHER": 5})
        races, eths, sexes = export.people(len(levels))
        for i, level in enumerate(levels):
            number += 1
            filed = export.moment(month)
            code = {"FELONY": "F", "MISDEMEANOR": export.rng.choice("MMI"), "OTHER": "O"}.get(level, "")
            disposed = filed + timedelta(days=export.rng.uniform(20, 300))
            how = export.rng.choices(*zip(*_DISPOSITION_MIX.items()))[0] if disposed < end else ""
            sentence = ""
            if how in ("PLEA", "VERDICT"):
                sentence = export.rng.choices(*zip(*_SENTENCE_MIX.items()))[0]
            charges = [code] + ["M"] * export.rng.choice((0, 0, 0, 1))  # lesser counts: one case, most serious
            case, filed_text = f"{filed.year}-CR-{number:06d}", filed.strftime("%d.%m.%Y")
            disposed_text = disposed.strftime("%d.%m.%Y") if how else ""
            for seq, charge in enumerate(charges, start=1):
                rows.append((case, seq, charge, filed_text, disposed_text, how, disposed_text if sentence else "",
                             sentence, races[i], eths[i], sexes[i]))
    export.write_csv(f"{COURT}/cms_case_charges.csv", pl.DataFrame(rows, orient="row", schema=[
        "Numéro de dossier", "Charge", "Niveau", "Déposé", "Décidé", "Décision", "Condamné", "Peine", "Race",
        "Ethnicity", "Sexe"]), separator=";", encoding="cp1252")
    keys, metrics = export.keys, []
    if "COURTS_AND_PRETRIAL_CASES_FILED" in keys:
        metrics.append("      - metric: COURTS_AND_PRETRIAL_CASES_FILED\n        date: filed\n        id: case\n"
                       "        breakdowns:\n"
                       + _simple_block("metric/courts/case/severity/type", "level", _by_member(SEVERITY)))
    if "COURTS_AND_PRETRIAL_CASES_DISPOSED" in keys:
        metrics.append("      - metric: COURTS_AND_PRETRIAL_CASES_DISPOSED\n        date: disposed\n        id: case\n"
                       "        where: {column: disposed, blank: false}\n        breakdowns:\n"
                       + _simple_block("metric/disposition/type", "decision", _by_member(DISPOSITION)))
    if "COURTS_AND_PRETRIAL_SENTENCES" in keys:
        metrics.append("      - metric: COURTS_AND_PRETRIAL_SENTENCES\n        date: sentenced\n        id: case\n"
                       "        where: {column: sentenced, blank: false}\n        breakdowns:\n"
                       + _simple_block("metric/courts/sentence/type", "sentence", _by_member(SENTENCE))
                       + _race_block() + _simple_block(SEX, "sex", SEX_CODES))
    export.sources.append(
        f"  - name: cms_cases\n    pattern: COURTS_AND_PRETRIAL/cms_case_charges.csv\n    kind: records\n"
        f"    encoding: cp1252\n    delimiter: \";\"\n    date_formats: [\"%d.%m.%Y\"]\n"
        f"    period: {{from: {export.first_month}}}\n"
        "    columns: {case: Numéro de dossier, level: Niveau, filed: Déposé, disposed: Décidé,"
        " decision: Décision, sentenced: Condamné, sentence: Peine, race: Race, ethnicity: Ethnicity, sex: Sexe}\n"
        "    metrics:\n" + "".join(metrics))


# --- supervision: probation roster workbook (one row per supervision term) -------------------------------------

DISCHARGE = {"COMPLETED": "SUCCESSFUL", "EARLY TERM": "SUCCESSFUL", "EXPIRED": "NEUTRAL", "REVOKED": "UNSUCCESSFUL",
             "ABSCONDED-CLOSED": "UNSUCCESSFUL", "DECEASED": "OTHER"}
LEVEL = {"ACTIVE": "ACTIVE", "ADMIN": "ADMINISTRATIVE", "ABSCONDER": "ABSCONDED", "HOLD": "HOLD_OR_SANCTION"}
_DISCHARGE_MIX = {"COMPLETED": 50, "EARLY TERM": 8, "EXPIRED": 12, "REVOKED": 22, "ABSCONDED-CLOSED": 6,
                  "DECEASED": 2}
_LEVEL_MIX = {"ACTIVE": 75, "ADMIN": 15, "ABSCONDER": 6, "HOLD": 4}


def _supervision(export: _Export) -> None:
    starts = export.monthly("SUPERVISION_SUPERVISION_STARTS")
    if not starts:
        return
    population = [o.value for o in export.monthly("SUPERVISION_POPULATION")] or [1]
    mean_starts = sum(o.value for o in starts) / len(starts)
    term_days = max(30.0, (sum(population) / len(population)) * 30.4 / max(mean_starts, 1))
    end = datetime(export.history[-1] + 1, 1, 1)
    warmup = [(add_months(o.start, -12 * k), o) for k in (3, 2, 1) for o in starts[:12]]
    rows, number = [], 0
    for month, observation in [*warmup, *((o.start, o) for o in starts)]:
        offenses = export.split(observation, OFFENSE, observation.value, _OFFENSE_MIX)
        races, eths, sexes = export.people(len(offenses))
        for i, offense in enumerate(offenses):
            number += 1
            began = export.moment(month).replace(hour=0, minute=0, second=0)
            ended = began + timedelta(days=export.rng.expovariate(1 / term_days))
            closed = ended < end
            rows.append((f"PR{number:07d}", began.date(), ended.date() if closed else None,
                         export.rng.choices(*zip(*_DISCHARGE_MIX.items()))[0] if closed else "",
                         export.rng.choices(*zip(*_LEVEL_MIX.items()))[0], export.rng.choice(OFFENSE_CODES[offense]),
                         races[i], eths[i], sexes[i]))
    export.write_xlsx(f"{SUP}/probation_roster.xlsx", "Roster", pl.DataFrame(rows, orient="row", schema={
        "Offender ID": pl.String, "Term Start": pl.Date, "Term End": pl.Date, "Closure Reason": pl.String,
        "Supervision Level": pl.String, "Lead Offense": pl.String, "Race": pl.String, "Ethnicity": pl.String,
        "Sex": pl.String}))
    keys, metrics = export.keys, []
    if "SUPERVISION_SUPERVISION_STARTS" in keys:
        metrics.append("      - metric: SUPERVISION_SUPERVISION_STARTS\n        date: start\n        breakdowns:\n"
                       + _simple_block(OFFENSE, "offense", OFFENSE_CODES))
    if "SUPERVISION_SUPERVISION_TERMINATIONS" in keys:
        metrics.append("      - metric: SUPERVISION_SUPERVISION_TERMINATIONS\n        date: end\n"
                       "        where: {column: end, blank: false}\n        breakdowns:\n"
                       + _simple_block("metric/supervision/discharge/type", "reason", _by_member(DISCHARGE)))
    if "SUPERVISION_POPULATION" in keys:
        metrics.append("      - metric: SUPERVISION_POPULATION\n        count: population\n        start: start\n"
                       "        end: end\n        round: true\n        breakdowns:\n"
                       + _simple_block("metric/supervision/daily_population/type", "level", _by_member(LEVEL))
                       + _race_block() + _simple_block(SEX, "sex", SEX_CODES))
    export.sources.append(
        f"  - name: probation_roster\n    pattern: SUPERVISION/probation_roster.xlsx\n    format: xlsx\n"
        f"    sheet: Roster\n    kind: records\n    period: {{from: {export.first_month}}}\n"
        "    columns: {offender: Offender ID, start: Term Start, end: Term End, reason: Closure Reason,"
        " level: Supervision Level, offense: Lead Offense, race: Race, ethnicity: Ethnicity, sex: Sex}\n"
        "    metrics:\n" + "".join(metrics))


__all__ = ["METRICS", "NativePlan", "choose", "write_native"]
