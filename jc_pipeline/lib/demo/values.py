"""Realistic metric values: levels proportional to population, seasonality, mild trends, exact breakdowns.

Every metric of an agency is first simulated as a monthly "truth" series (float), then aggregated to the
periods the agency reports (its effective frequency and fiscal year): money and event counts are summed over the
period's months, populations and staff are averaged. Related metrics are derived from one another at the monthly
level (expenses ~ funding, open cases ~ referrals; post-adjudication admissions = total admissions less the
pre-adjudication ones), so their reported values stay consistent whatever periods they are reported for.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from jc_pipeline.lib.periods import add_months, annual_period, monthly_period, months_between
from jc_pipeline.lib.registry import SUPERVISION_SUBSYSTEMS, Breakdown, Member, Metric, Registry
from jc_pipeline.lib.roster import Roster


@dataclass(frozen=True)
class Base:
    """An independent series. ``rate``: flow = events per 1,000 residents per year; stock/staff = level per 1,000
    residents; money = dollars per resident per year."""

    kind: str  # flow | stock | staff | money
    rate: float


@dataclass(frozen=True)
class Derived:
    """A series proportional to another metric of the same sector (``of`` = metric key without the sector)."""

    of: str
    share: float
    noise: float = 0.04  # month-to-month wobble of the share


@dataclass(frozen=True)
class Remainder:
    """The rest of a whole once one part is taken: ``of`` less ``less`` (metric keys without the sector), month by
    month, so the two parts add up to the whole as a jail's pre- and post-adjudication counts do (spec V-XMETRIC)."""

    of: str
    less: str


# Rates are in the range of published US figures (e.g. ~30 arrests and ~2.3 police FTE per 1,000 residents).
PROFILES: dict[str, dict[str, Base | Derived | Remainder]] = {
    "LAW_ENFORCEMENT": {
        "FUNDING": Base("money", 320),
        "EXPENSES": Derived("FUNDING", 0.97),
        "TOTAL_STAFF": Base("staff", 2.3),
        "CALLS_FOR_SERVICE": Base("flow", 550),
        "REPORTED_CRIME": Base("flow", 32),
        "ARRESTS": Base("flow", 30),
        "USE_OF_FORCE_INCIDENTS": Derived("ARRESTS", 0.012),
        "COMPLAINTS_SUSTAINED": Derived("TOTAL_STAFF", 0.003),
    },
    "PROSECUTION": {
        "FUNDING": Base("money", 45),
        "EXPENSES": Derived("FUNDING", 0.96),
        "TOTAL_STAFF": Base("staff", 0.35),
        "CASES REFERRED": Base("flow", 28),
        "CASES_DECLINED": Derived("CASES REFERRED", 0.14),
        "CASES_DIVERTED": Derived("CASES REFERRED", 0.08),
        "CASES_PROSECUTED": Derived("CASES REFERRED", 0.72),
        "CASES_DISPOSED": Derived("CASES REFERRED", 0.9),
        "CASELOADS_PEOPLE": Derived("CASES REFERRED", 6.0),
        "CASELOADS_STAFF": Derived("TOTAL_STAFF", 0.45),
        "VIOLATIONS_WITH_DISCIPLINARY_ACTION": Derived("TOTAL_STAFF", 0.002),
    },
    "DEFENSE": {
        "FUNDING": Base("money", 22),
        "EXPENSES": Derived("FUNDING", 0.97),
        "TOTAL_STAFF": Base("staff", 0.18),
        "CASES_APPOINTED_COUNSEL": Base("flow", 16),
        "CASES_DISPOSED": Derived("CASES_APPOINTED_COUNSEL", 0.93),
        "CASELOADS_PEOPLE": Derived("CASES_APPOINTED_COUNSEL", 5.0),
        "CASELOADS_STAFF": Derived("TOTAL_STAFF", 0.55),
        "COMPLAINTS_SUSTAINED": Derived("TOTAL_STAFF", 0.002),
    },
    "COURTS_AND_PRETRIAL": {
        "FUNDING": Base("money", 60),
        "EXPENSES": Derived("FUNDING", 0.98),
        "TOTAL_STAFF": Base("staff", 0.4),
        "CASES_FILED": Base("flow", 26),
        "PRETRIAL_RELEASES": Derived("CASES_FILED", 0.45),
        "CASES_DISPOSED": Derived("CASES_FILED", 0.94),
        "SENTENCES": Derived("CASES_FILED", 0.55),
        "ARRESTS_ON_PRETRIAL_RELEASE": Derived("PRETRIAL_RELEASES", 0.12),
    },
    "JAILS": {
        "FUNDING": Base("money", 95),
        "EXPENSES": Derived("FUNDING", 0.98),
        "TOTAL_STAFF": Base("staff", 0.9),
        "TOTAL_ADMISSIONS": Base("flow", 42),
        "PRE_ADJUDICATION_ADMISSIONS": Derived("TOTAL_ADMISSIONS", 0.82, 0.01),
        "POST_ADJUDICATION_ADMISSIONS": Remainder("TOTAL_ADMISSIONS", "PRE_ADJUDICATION_ADMISSIONS"),
        "TOTAL_POPULATION": Base("stock", 2.6),
        "PRE_ADJUDICATION_POPULATION": Derived("TOTAL_POPULATION", 0.67, 0.01),
        "POST_ADJUDICATION_POPULATION": Remainder("TOTAL_POPULATION", "PRE_ADJUDICATION_POPULATION"),
        "TOTAL_RELEASES": Derived("TOTAL_ADMISSIONS", 0.99),
        "PRE_ADJUDICATION_RELEASES": Derived("TOTAL_RELEASES", 0.82, 0.01),
        "POST_ADJUDICATION_RELEASES": Remainder("TOTAL_RELEASES", "PRE_ADJUDICATION_RELEASES"),
        "READMISSIONS": Derived("TOTAL_ADMISSIONS", 0.35),
        "USE_OF_FORCE_INCIDENTS": Derived("TOTAL_POPULATION", 0.004),
        "GRIEVANCES_UPHELD": Derived("TOTAL_POPULATION", 0.002),
    },
    "PRISONS": {
        "FUNDING": Base("money", 135),
        "EXPENSES": Derived("FUNDING", 0.99),
        "TOTAL_STAFF": Base("staff", 1.45),
        "ADMISSIONS": Base("flow", 1.9),
        "POPULATION": Base("stock", 4.1),
        "RELEASES": Derived("ADMISSIONS", 0.98),
        "READMISSIONS": Derived("ADMISSIONS", 0.3),
        "USE_OF_FORCE_INCIDENTS": Derived("POPULATION", 0.0015),
        "GRIEVANCES_UPHELD": Derived("POPULATION", 0.002),
    },
    "SUPERVISION": {
        "FUNDING": Base("money", 18),
        "EXPENSES": Derived("FUNDING", 0.97),
        "TOTAL_STAFF": Base("staff", 0.22),
        "POPULATION": Base("stock", 11),
        "CASELOADS_PEOPLE": Derived("POPULATION", 1.0),
        "CASELOADS_STAFF": Derived("TOTAL_STAFF", 0.6),
        "SUPERVISION_STARTS": Derived("POPULATION", 0.045),
        "SUPERVISION_TERMINATIONS": Derived("POPULATION", 0.044),
        "SUPERVISION_VIOLATIONS": Derived("POPULATION", 0.03),
        "REVOCATIONS": Derived("POPULATION", 0.006),
        "RECONVICTIONS": Derived("POPULATION", 0.003),
    },
    "SUPERAGENCY": {
        "FUNDING": Base("money", 6),
        "EXPENSES": Derived("FUNDING", 0.97),
        "TOTAL_STAFF": Base("staff", 0.05),
    },
}
# Subsystem clones are the SUPERVISION profile scaled to the subsystem's share of the caseload.
SUBSYSTEM_SHARES = {"PAROLE": 0.22, "PROBATION": 0.78, "PRETRIAL_SUPERVISION": 0.1, "OTHER_SUPERVISION": 0.05}

RACE = "global/race_and_ethnicity"
# Category mixes (member NAME -> weight). Members absent from a mix are never written (an agency's race table
# lists the groups it has); dimensions without a mix use a generic decreasing one.
MIXES: dict[str, dict[str, float]] = {
    "metric/offense/type": {"PERSON": 24, "PROPERTY": 31, "DRUG": 17, "PUBLIC_ORDER": 21, "OTHER": 5, "UNKNOWN": 2},
    "global/biological_sex": {"MALE": 76, "FEMALE": 23, "UNKNOWN": 1},
    RACE: {
        "NOT_HISPANIC_WHITE": 52,
        "NOT_HISPANIC_BLACK": 20,
        "HISPANIC_WHITE": 12,
        "HISPANIC_OTHER": 3,
        "NOT_HISPANIC_AMERICAN_INDIAN_ALASKAN_NATIVE": 4,
        "NOT_HISPANIC_ASIAN": 2,
        "NOT_HISPANIC_MORE_THAN_ONE_RACE": 2,
        "UNKNOWN_ETHNICITY_UNKNOWN": 5,
    },
    "metric/disposition/type": {"DISMISSAL": 30, "PLEA": 60, "TRIAL": 4, "OTHER": 4, "UNKNOWN": 2},
    "metric/law_enforcement/calls_for_service/type": {"EMERGENCY": 35, "NON_EMERGENCY": 60, "OTHER": 4, "UNKNOWN": 1},
    "metric/supervision/daily_population/type": {
        "ACTIVE": 78,
        "ADMINISTRATIVE": 10,
        "ABSCONDED": 6,
        "HOLD_OR_SANCTION": 3,
        "OTHER": 2,
        "UNKNOWN": 1,
    },
}
_GENERIC_TAIL = {"OTHER": 4, "UNKNOWN": 2, "VACANT": 6, "VACANT_POSITIONS": 6}
# Small agencies' records systems rarely capture ethnicity: they skip race breakdowns even when "required"
# (the flag is a UI hint, spec §6.4).
RACE_MIN_POPULATION = 30_000
# Share of optional breakdowns an agency reports (required ones always): small agencies report fewer.
OPTIONAL_BREAKDOWN_SHARE = (0.2, 0.6)  # (smallest agencies, agencies of 100,000 residents or more)


@dataclass(frozen=True)
class Observation:
    """One reported period of one metric: the total and the breakdowns the agency reports for it."""

    agency_id: str
    metric: Metric
    system: str | None  # supervision subsystem code for rows routed by the `system` column
    year: int  # label as uploaded: calendar year, or the year a fiscal year ends
    month: int | None  # None for annual rows
    start: date
    value: int
    breakdowns: tuple[tuple[Breakdown, tuple[tuple[Member, int], ...]], ...]

    @property
    def last_month(self) -> date:
        """First day of the period's last month (when the data can be delivered at the earliest)."""
        return self.start if self.month is not None else add_months(self.start, 11)


def observations(
    rng: random.Random, roster: Roster, registry: Registry, years: tuple[int, ...]
) -> Iterator[Observation]:
    """Every period of every metric each agency is expected to report, over the calendar ``years``."""
    first = date(years[0] - 1, 1, 1)  # fiscal years labelled with the first year start the year before
    months = months_between(first, date(years[-1] + 1, 1, 1))
    for agency in roster.agencies.values():
        simulator = _AgencySimulator(rng, agency.population or 0, months)
        for key in roster.expected_metric_keys(agency.agency_id):
            metric = registry.metrics[key]
            setting = roster.effective(agency.agency_id, key)
            series = simulator.series(metric)
            mixes = _choose_mixes(rng, metric, agency.population or 0)
            for year, month, period_months in _periods(years, setting.frequency, setting.starting_month):
                values = [series[(m.year - first.year) * 12 + m.month - 1] for m in period_months]
                total = _aggregate(metric, values)
                yield Observation(
                    agency_id=agency.agency_id,
                    metric=metric,
                    system=metric.sector if metric.sector in SUPERVISION_SUBSYSTEMS else None,
                    year=year,
                    month=month,
                    start=period_months[0],
                    value=total,
                    breakdowns=tuple((bd, allocate(rng, total, mix, _granularity(metric))) for bd, mix in mixes),
                )


def allocate(rng: random.Random, total: int, mix: dict[Member, float], unit: int = 1) -> tuple[tuple[Member, int], ...]:
    """Split ``total`` (a multiple of ``unit``) over the mix with period-to-period noise, summing exactly to it.

    Largest-remainder rounding in whole ``unit``s: floor every share, then hand the leftover units to the
    largest fractions.
    """
    units, rest = divmod(total, unit)
    if rest:
        raise ValueError(f"{total} is not a multiple of {unit}")
    members, weights = list(mix), list(mix.values())  # lists, not Member-keyed dicts: hashing is the hot path
    noisy = [weight * max(0.05, 1 + rng.gauss(0, 0.08)) for weight in weights]
    scale = units / sum(noisy)
    quotas = [weight * scale for weight in noisy]
    counts = [math.floor(quota) for quota in quotas]
    by_fraction = sorted(range(len(quotas)), key=lambda i: quotas[i] - counts[i], reverse=True)
    for index in by_fraction[: units - sum(counts)]:
        counts[index] += 1
    return tuple((member, count * unit) for member, count in zip(members, counts))


def _periods(
    years: tuple[int, ...], frequency: str, starting_month: int
) -> Iterator[tuple[int, int | None, list[date]]]:
    """(year label, month or None, months covered) for every period in the history."""
    for year in years:
        if frequency == "MONTHLY":
            for month in range(1, 13):
                yield year, month, [monthly_period(year, month)[0]]
        else:
            yield year, None, months_between(*annual_period(year, starting_month))


def _aggregate(metric: Metric, values: list[float]) -> int:
    """Reported value of a period: sums for money and events, averages for populations and staff."""
    if metric.unit == "USD":
        return int(round(sum(values), -3))  # budgets are stated to the thousand dollars
    if metric.unit == "FTE" or metric.measurement_type == "INSTANT":
        return max(0, round(sum(values) / len(values)))
    return max(0, round(sum(values)))


def _granularity(metric: Metric) -> int:
    return 1000 if metric.unit == "USD" else 1


def _choose_mixes(rng: random.Random, metric: Metric, population: int) -> list[tuple[Breakdown, dict[Member, float]]]:
    """The uploadable breakdowns this agency reports for the metric, each with the agency's own mix."""
    low, high = OPTIONAL_BREAKDOWN_SHARE
    optional_share = low + (high - low) * min(1.0, population / 100_000)
    chosen = []
    for breakdown in metric.breakdowns:
        if breakdown.sheet is None or not (breakdown.required or rng.random() < optional_share):
            continue
        if breakdown.dimension.identifier == RACE and population < RACE_MIN_POPULATION:
            continue
        weights = _mix(breakdown.dimension.identifier, breakdown.dimension.members)
        # Agencies differ: jitter the state-wide mix once per agency and metric.
        chosen.append((breakdown, {m: w * math.exp(rng.gauss(0, 0.25)) for m, w in weights.items() if w > 0}))
    return chosen


def _mix(identifier: str, members: tuple[Member, ...]) -> dict[Member, float]:
    if identifier in MIXES:
        return {member: MIXES[identifier].get(member.name, 0) for member in members}
    main = [member for member in members if member.name not in _GENERIC_TAIL]
    weights = {member: 100 * 0.6**index for index, member in enumerate(main)}
    return weights | {member: _GENERIC_TAIL[member.name] for member in members if member.name in _GENERIC_TAIL}


class _AgencySimulator:
    """Monthly truth series for one agency; derived metrics reuse their base series."""

    def __init__(self, rng: random.Random, population: int, months: list[date]):
        self.rng, self.population, self.months = rng, population, months
        self._cache: dict[str, list[float]] = {}

    def series(self, metric: Metric) -> list[float]:
        sector = metric.parent_sector
        scale = SUBSYSTEM_SHARES.get(metric.sector, 1.0)
        return self._series(sector, metric.key[len(metric.sector) + 1 :], scale)

    def _series(self, sector: str, name: str, scale: float) -> list[float]:
        cache_key = f"{sector}:{name}:{scale}"
        if cache_key not in self._cache:
            profile = PROFILES[sector][name]
            if isinstance(profile, Derived):
                base = self._series(sector, profile.of, scale)
                values = [value * profile.share * (1 + self.rng.gauss(0, profile.noise)) for value in base]
            elif isinstance(profile, Remainder):
                whole, part = self._series(sector, profile.of, scale), self._series(sector, profile.less, scale)
                values = [w - p for w, p in zip(whole, part)]
            else:
                values = self._base(profile, scale)
            self._cache[cache_key] = [max(0.0, value) for value in values]
        return self._cache[cache_key]

    def _base(self, profile: Base, scale: float) -> list[float]:
        rng = self.rng
        per = 1 if profile.kind == "money" else 1000  # money rates are per resident, the others per 1,000
        level = profile.rate * self.population / per * scale * math.exp(rng.gauss(0, 0.2))
        trend = rng.uniform(-0.03, 0.03)  # per year
        first_year = self.months[0].year
        if profile.kind == "money":
            # One budget per calendar year, growing with inflation, spread evenly over its months.
            budgets = {}
            for year in range(first_year, self.months[-1].year + 1):
                budgets[year] = level * 1.035 ** (year - first_year) * (1 + rng.gauss(0, 0.015))
            return [budgets[m.year] / 12 for m in self.months]
        if profile.kind == "staff":
            # Positions change once a year, by a few percent.
            levels, current = {}, level
            for year in range(first_year, self.months[-1].year + 1):
                current *= 1 + rng.gauss(0.01, 0.02)
                levels[year] = current
            return [levels[m.year] for m in self.months]
        values, drift = [], 0.0
        for index, month in enumerate(self.months):
            growth = (1 + trend) ** (index / 12)
            if profile.kind == "stock":
                drift = 0.85 * drift + rng.gauss(0, 0.02)  # populations move slowly
                values.append(level * growth * (1 + drift + 0.02 * _season(month)))
            else:
                expected = level / 12 * growth * (1 + 0.07 * _season(month)) * _pandemic(month)
                values.append(expected * (1 + rng.gauss(0, 0.05)) + rng.gauss(0, math.sqrt(max(expected, 1.0))) * 0.5)
        return values


def _season(month: date) -> float:
    """+1 in July, -1 in January: crime and admissions peak in summer."""
    return math.cos(2 * math.pi * (month.month - 7) / 12)


def _pandemic(month: date) -> float:
    """Spring 2020 lockdowns cut events by a fifth."""
    return 0.8 if date(2020, 4, 1) <= month < date(2020, 7, 1) else 1.0
