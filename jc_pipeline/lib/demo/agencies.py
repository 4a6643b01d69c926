"""The fictional state's agencies: who they are, whom they serve and how each one delivers its files.

Populations are consistent: counties sum to the state total; within a county, city police departments and the
sheriff's office (which patrols the unincorporated remainder) split the county, so law-enforcement populations
also sum to the state; judicial districts group counties; statewide agencies serve the whole state.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from jc_pipeline.lib.demo.manifest import METRIC_CSV, MULTI_SHEET, SINGLE_PAGE
from jc_pipeline.lib.roster import (
    AGENCIES_FILE,
    AGENCY_COLUMNS,
    BREAKDOWN_SETTINGS_COLUMNS,
    BREAKDOWN_SETTINGS_FILE,
    SETTINGS_COLUMNS,
    SETTINGS_FILE,
)

STATE_CODE = "US_XX"
STATE_FIPS = "99"  # not assigned to any real state
MIN_AGENCIES = 20  # the 15 statewide agencies and two counties

COUNTY_NAMES = (
    "Harlan",
    "Brookfield",
    "Cedar",
    "Marlow",
    "Pine Ridge",
    "Oakhaven",
    "Redwater",
    "Stanton",
    "Tillman",
    "Wexford",
    "Ashby",
    "Coleman",
    "Dunmore",
    "Eastvale",
    "Fairmont",
    "Granger",
    "Hollis",
    "Ivey",
    "Jasper",
    "Kendall",
    "Lorain",
    "Medina",
    "Norwood",
    "Orland",
)
TOWN_STEMS = (
    "Ash",
    "Brook",
    "Clear",
    "Elm",
    "Fair",
    "Glen",
    "Green",
    "High",
    "Lake",
    "Mill",
    "Oak",
    "Pine",
    "Red",
    "River",
    "Rock",
    "Silver",
    "Spring",
    "Stone",
    "West",
    "Wood",
    "Maple",
    "Bridge",
    "North",
    "Fox",
)
TOWN_ENDINGS = ("field", "ton", "ville", "wood", "dale", "port", "burg", "view", "ford", "haven", "mont", "wick")
TOWN_PREFIXES = ("North", "South", "East", "West", "New")
TOWN_SUFFIXES = ("Heights", "Springs", "Falls", "Junction", "Mills", "Crossing", "Center")
ORDINALS = ("1st", "2nd", "3rd", "4th", "5th", "6th", "7th", "8th")

# Delivery styles (how an agency's files look), assigned to the (shuffled) local agencies in this order, most
# important first: a state of MIN_AGENCIES has the first few, a state of 30 or more has them all.
_LOCAL_STYLES = (
    dict(layout=MULTI_SHEET, file_format="xlsx"),  # sends the late correction (see DemoState.correction_id)
    dict(layout=MULTI_SHEET, file_format="xlsx", quarterly=True, stops=True),
    dict(layout=MULTI_SHEET, file_format="xls", month_style="full"),
    dict(layout=METRIC_CSV, file_format="csv", thousands_separators=True),
    dict(layout=SINGLE_PAGE, file_format="csv", month_style="abbr"),
    dict(layout=SINGLE_PAGE, file_format="xlsx", label_style="casual"),
    dict(layout=MULTI_SHEET, file_format="xlsx", month_style="casual"),
    dict(layout=MULTI_SHEET, file_format="xls", label_style="short"),
    dict(layout=MULTI_SHEET, file_format="xlsx", label_style="upper"),
    dict(layout=MULTI_SHEET, file_format="xlsx", quarterly=True),
    dict(layout=MULTI_SHEET, file_format="xls"),
    dict(layout=METRIC_CSV, file_format="csv"),
    dict(layout=SINGLE_PAGE, file_format="csv"),
    dict(layout=SINGLE_PAGE, file_format="xlsx"),
)
_CORRECTION_SLOT = 0

# The remaining local agencies: half send yearly workbooks, the others CSV exports of their records systems.
_OTHER_STYLES = (
    dict(layout=MULTI_SHEET, file_format="xlsx"),
    dict(layout=SINGLE_PAGE, file_format="csv"),
    dict(layout=METRIC_CSV, file_format="csv"),
    dict(layout=SINGLE_PAGE, file_format="xlsx"),
)
_OTHER_STYLE_WEIGHTS = (50, 25, 15, 10)


@dataclass(frozen=True)
class DemoAgency:
    """A roster row plus the agency's delivery habits."""

    agency_id: str
    agency_name: str
    sectors: tuple[str, ...]
    county_fips: str | None
    population: int
    fiscal_year_start_month: int = 1
    superagency_id: str | None = None
    layout: str = MULTI_SHEET
    file_format: str = "xlsx"
    quarterly: bool = False
    last_month: tuple[int, int] | None = None  # (year, month) after which nothing is delivered
    label_style: str = "display"  # how category labels are spelled, see deliveries.LABEL_STYLES
    month_style: str = "number"  # how months are written, see deliveries.MONTH_STYLES
    thousands_separators: bool = False  # money written as "1,250,000" text

    def roster_row(self) -> tuple[str, ...]:
        return (
            self.agency_id,
            self.agency_name,
            STATE_CODE,
            ";".join(self.sectors),
            self.county_fips or "",
            str(self.population),
            str(self.fiscal_year_start_month),
            self.superagency_id or "",
        )


@dataclass(frozen=True)
class DemoState:
    """The roster, the metric_settings rows and the breakdown_settings rows."""

    agencies: tuple[DemoAgency, ...]
    settings: tuple[tuple[str, ...], ...]
    breakdown_settings: tuple[tuple[str, ...], ...]
    correction_id: str  # the agency that sends a late correction file

    @cached_property
    def by_id(self) -> dict[str, DemoAgency]:
        return {agency.agency_id: agency for agency in self.agencies}


def build_state(rng: random.Random, agencies: int, years: tuple[int, ...]) -> DemoState:
    """A fictional state with exactly ``agencies`` agencies across all seven sectors, reporting over ``years``.

    One agency stops reporting in June two years before the last year (2023 for a history ending in 2025).
    """
    if agencies < MIN_AGENCIES:
        raise ValueError(f"a demo state needs at least {MIN_AGENCIES} agencies, got {agencies}")
    statewide = 15  # DOC, supervision, AOC + 4 courts, 4 DAs, 2 defenders, 2 county probation departments
    n_counties = max(2, min(len(COUNTY_NAMES), round((agencies - statewide) / 4)))
    counties = _counties(rng, n_counties)
    state_population = sum(population for _, _, population in counties)
    districts = _districts(counties, 4)
    n_cities = agencies - statewide - (2 * n_counties - 1)
    local = _county_agencies(rng, counties, n_cities)
    rng.shuffle(local)
    stop = (max(years[0], years[-1] - 2), 6)
    styles = [
        {k: v for k, v in style.items() if k != "stops"} | ({"last_month": stop} if style.get("stops") else {})
        for style in _LOCAL_STYLES
    ]
    local = [replace(agency, **style) for agency, style in zip(local, styles)] + [
        replace(agency, **rng.choices(_OTHER_STYLES, _OTHER_STYLE_WEIGHTS)[0]) for agency in local[len(_LOCAL_STYLES) :]
    ]
    # A few counties run a July fiscal year (annual rows then carry the FY end year).
    local = [replace(a, fiscal_year_start_month=7) if a.county_fips in _fy_counties(counties) else a for a in local]

    courts = [
        DemoAgency(
            f"district_court_{i + 1}",
            f"{ORDINALS[i]} Judicial District Court",
            ("COURTS_AND_PRETRIAL",),
            None,
            population,
            7,
            superagency_id="aoc",
        )
        for i, population in enumerate(districts)
    ]
    prosecutors = [
        DemoAgency(
            f"da_{i + 1}",
            f"{ORDINALS[i]} District Attorney",
            ("PROSECUTION",),
            None,
            population,
            label_style=("short", "display", "casual", "display")[i],
            layout=SINGLE_PAGE if i == 3 else MULTI_SHEET,
        )
        for i, population in enumerate(districts)
    ]
    north = sum(districts[:2])
    defenders = [
        DemoAgency("pd_north", "Northern Region Public Defender", ("DEFENSE",), None, north, 7),
        DemoAgency("pd_south", "Southern Region Public Defender", ("DEFENSE",), None, state_population - north, 7),
    ]
    probation = [
        DemoAgency(
            f"{_slug(name)}_probation",
            f"{name} County Adult Probation",
            ("SUPERVISION",),
            fips,
            population,
            layout=METRIC_CSV if i == 0 else MULTI_SHEET,
            file_format="csv" if i == 0 else "xlsx",
        )
        for i, (name, fips, population) in enumerate(counties[:2])
    ]
    statewide_agencies = [
        DemoAgency("doc", "Department of Corrections", ("PRISONS",), None, state_population, 7),
        DemoAgency(
            "dcs",
            "Division of Community Supervision",
            ("SUPERVISION", "PAROLE", "PROBATION"),
            None,
            state_population,
            7,
        ),
        DemoAgency("aoc", "Administrative Office of the Courts", ("SUPERAGENCY",), None, state_population, 7),
        *courts,
        *prosecutors,
        *defenders,
        *probation,
    ]
    everyone = tuple(statewide_agencies + local)
    assert len(everyone) == agencies, (len(everyone), agencies)
    return DemoState(
        agencies=everyone,
        settings=_settings(local),
        breakdown_settings=_breakdown_settings(local),
        correction_id=local[_CORRECTION_SLOT].agency_id,
    )


def write_roster_files(state: DemoState, data_dir: Path) -> None:
    """Write agencies.csv, metric_settings.csv and breakdown_settings.csv."""
    _write_csv(data_dir / AGENCIES_FILE, AGENCY_COLUMNS, [agency.roster_row() for agency in state.agencies])
    _write_csv(data_dir / SETTINGS_FILE, SETTINGS_COLUMNS, state.settings)
    _write_csv(data_dir / BREAKDOWN_SETTINGS_FILE, BREAKDOWN_SETTINGS_COLUMNS, state.breakdown_settings)


def _counties(rng: random.Random, count: int) -> list[tuple[str, str, int]]:
    """(name, FIPS, population): a Zipf-like spread, like real states (one metro county, many rural ones)."""
    counties = []
    for index, name in enumerate(COUNTY_NAMES[:count]):
        population = round(420_000 / (index + 1) ** 1.1 * rng.uniform(0.85, 1.15), -2)
        counties.append((name, f"{STATE_FIPS}{2 * index + 1:03d}", int(max(population, 9_000))))
    return counties


def _districts(counties: list[tuple[str, str, int]], count: int) -> list[int]:
    """Populations of judicial districts formed by dealing counties round-robin (each gets a mix of sizes)."""
    populations = [0] * count
    for index, (_, _, population) in enumerate(counties):
        populations[index % count] += population
    return populations


def _fy_counties(counties: list[tuple[str, str, int]]) -> set[str]:
    return {counties[1][1], counties[min(3, len(counties) - 1)][1]}


def _county_agencies(rng: random.Random, counties: list[tuple[str, str, int]], n_cities: int) -> list[DemoAgency]:
    """Sheriff's office and jail per county (the smallest county's sheriff runs the jail) plus city police."""
    towns = [stem + ending for stem in TOWN_STEMS for ending in TOWN_ENDINGS]
    rng.shuffle(towns)
    # Big states run out of plain names: "North Ashfield", "New Ashfield", ... (taken first, so popped last).
    towns = [f"{prefix} {town}" for prefix in TOWN_PREFIXES for town in towns] + towns
    # A benchmark-sized state (thousands of agencies) needs more: "Ashfield Heights", "North Ashfield Falls", ...
    # Prepended, so they are only taken once the names above run out and small states keep their towns.
    towns = [f"{town} {suffix}" for suffix in TOWN_SUFFIXES for town in towns] + towns
    total = sum(population for _, _, population in counties)
    # Bigger counties get more cities: deal cities in proportion to population (largest remainder).
    quotas = [n_cities * population / total for _, _, population in counties]
    cities_per_county = [int(q) for q in quotas]
    for index in sorted(range(len(quotas)), key=lambda i: quotas[i] - int(quotas[i]), reverse=True)[
        : n_cities - sum(cities_per_county)
    ]:
        cities_per_county[index] += 1
    agencies: list[DemoAgency] = []
    for index, ((name, fips, population), n_here) in enumerate(zip(counties, cities_per_county)):
        slug = _slug(name)
        city_shares = [rng.uniform(0.08, 0.3) for _ in range(n_here)]
        scale = min(1.0, 0.8 / sum(city_shares)) if city_shares else 1.0  # the sheriff keeps at least 20%
        unincorporated = population
        for share in city_shares:
            town = towns.pop()
            city_population = int(population * share * scale)
            unincorporated -= city_population
            agencies.append(
                DemoAgency(
                    f"{_slug(town)}_pd", f"{town} Police Department", ("LAW_ENFORCEMENT",), fips, city_population
                )
            )
        runs_jail = index == len(counties) - 1
        agencies.append(
            DemoAgency(
                f"{slug}_so",
                f"{name} County Sheriff's Office",
                ("LAW_ENFORCEMENT", "JAILS") if runs_jail else ("LAW_ENFORCEMENT",),
                fips,
                unincorporated,
            )
        )
        if not runs_jail:
            agencies.append(DemoAgency(f"{slug}_jail", f"{name} County Jail", ("JAILS",), fips, population))
    return agencies


def _settings(local: list[DemoAgency]) -> tuple[tuple[str, ...], ...]:
    """metric_settings.csv rows: a frequency switch, a fiscal-year metric, disabled metrics, combined supervision."""
    police = sorted(
        (a for a in local if a.agency_id.endswith("_pd") and a.last_month is None), key=lambda a: a.population
    )
    jails = [a for a in local if a.agency_id.endswith("_jail") and a.fiscal_year_start_month == 1]
    rows = []
    if police:
        # Large departments publish use of force monthly; a small one does not track sustained complaints.
        rows.append((police[-1].agency_id, "LAW_ENFORCEMENT_USE_OF_FORCE_INCIDENTS", "", "MONTHLY", "", ""))
        rows.append((police[0].agency_id, "LAW_ENFORCEMENT_COMPLAINTS_SUSTAINED", "no", "", "", ""))
    if jails:
        # County budget on an October fiscal year, everything else calendar.
        rows.append((jails[0].agency_id, "JAILS_FUNDING", "", "ANNUAL", "10", ""))
    rows.append(("da_4", "PROSECUTION_VIOLATIONS_WITH_DISCIPLINARY_ACTION", "false", "", "", ""))
    # Supervision money comes from one appropriation, reported combined; everything else by subsystem.
    rows.append(("dcs", "SUPERVISION_FUNDING", "", "", "", "false"))
    return tuple(rows)


def _breakdown_settings(local: list[DemoAgency]) -> tuple[tuple[str, ...], ...]:
    """breakdown_settings.csv rows: four agencies turn a category off (no random draw, so the rest of the demo
    is the same with or without them).

    Two still deliver the category, so the category_enabled warning shows: district court 1 says it has no
    'Other Funding', yet the AOC's yearly upload carries an Other Funding row for it; the largest sheriff's office
    stopped counting restraints as force, but its records system still exports them. Two never deliver it (the
    quiet case): the DOC's race codes have no 'not Hispanic, other race', and a county jail's screening does not
    record 'no behavioral health need' (a breakdown that cannot be bulk-uploaded anyway).
    """
    sheriffs = sorted((a for a in local if a.agency_id.endswith("_so")), key=lambda a: (-a.population, a.agency_id))
    # Every county has a sheriff, and every county but the smallest (at least one: build_state makes two or more)
    # a jail of its own.
    jail = min(a.agency_id for a in local if a.agency_id.endswith("_jail"))
    return (
        ("district_court_1", "COURTS_AND_PRETRIAL_FUNDING", "metric/courts/funding/type", "OTHER", "false"),
        (sheriffs[0].agency_id, "LAW_ENFORCEMENT_USE_OF_FORCE_INCIDENTS",
         "metric/law_enforcement/officer_use_of_force_incidents/type", "RESTRAINT", "false"),
        ("doc", "PRISONS_POPULATION", "global/race_and_ethnicity", "NOT_HISPANIC_OTHER", "false"),
        (jail, "JAILS_TOTAL_POPULATION", "metric/jails/behavioral_health/type", "NONE", "false"),
    )


def _slug(name: str) -> str:
    return name.lower().replace(" ", "_").replace("'", "")


def _write_csv(path: Path, columns: tuple[str, ...], rows) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
