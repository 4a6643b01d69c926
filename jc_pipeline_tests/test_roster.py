"""Roster loading (agencies.csv, metric_settings.csv, breakdown_settings.csv): every error located precisely,
effective settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from jc_pipeline.lib.registry import SYSTEM_CODES
from jc_pipeline.lib.roster import (
    AGENCY_COLUMNS,
    BREAKDOWN_SETTINGS_COLUMNS,
    SETTINGS_COLUMNS,
    CategorySetting,
    Problem,
    RosterError,
    load_roster,
)

GOOD_AGENCIES = [
    # agency_id, agency_name, state_code, sectors, county_fips, population, fiscal_year_start_month, superagency_id
    ("harlan_so", "Harlan County Sheriff's Office", "US_XX", "LAW_ENFORCEMENT;JAILS", "99001", "52000", "7", ""),
    ("aoc", "Administrative Office of the Courts", "US_XX", "SUPERAGENCY", "", "1500000", "1", ""),
    ("court_1", "1st District Court", "US_XX", "COURTS_AND_PRETRIAL", "", "300000", "1", "aoc"),
    ("court_2", "2nd District Court", "US_XX", "COURTS_AND_PRETRIAL", "", "250000", "", "aoc"),
    ("dcs", "Department of Community Supervision", "US_XX", "SUPERVISION;PAROLE;PROBATION", "", "1500000", "1", ""),
    ("county_probation", "Harlan County Probation", "US_XX", "SUPERVISION", "99001", "52000", "1", ""),
    ("parole_board", "Parole Board", "US_XX", "PAROLE", "", "1500000", "1", ""),
]


def _write(path: Path, columns, rows) -> None:
    lines = [",".join(columns)] + [",".join(f'"{cell}"' if "," in cell else cell for cell in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _roster_dir(tmp_path: Path, agencies=GOOD_AGENCIES, settings=None, breakdowns=None) -> Path:
    _write(tmp_path / "agencies.csv", AGENCY_COLUMNS, agencies)
    if settings is not None:
        _write(tmp_path / "metric_settings.csv", SETTINGS_COLUMNS, settings)
    if breakdowns is not None:
        _write(tmp_path / "breakdown_settings.csv", BREAKDOWN_SETTINGS_COLUMNS, breakdowns)
    return tmp_path


def _problems(tmp_path: Path, agencies=GOOD_AGENCIES, settings=None, breakdowns=None) -> list[Problem]:
    with pytest.raises(RosterError) as caught:
        load_roster(_roster_dir(tmp_path, agencies, settings, breakdowns))
    error = caught.value
    assert str(error).splitlines() == [str(problem) for problem in error.problems]
    return error.problems


def _only(problems: list[Problem], path: str, line: int | None, column: str | None) -> Problem:
    matching = [p for p in problems if (p.path, p.line, p.column) == (path, line, column)]
    assert len(matching) == 1, problems
    return matching[0]


def _replace(row_index: int, **cells) -> list[tuple[str, ...]]:
    rows = [list(row) for row in GOOD_AGENCIES]
    for column, value in cells.items():
        rows[row_index][AGENCY_COLUMNS.index(column)] = value
    return [tuple(row) for row in rows]


# --- agencies.csv ------------------------------------------------------------------------------------------


def test_good_roster_loads(tmp_path):
    roster = load_roster(_roster_dir(tmp_path))
    so = roster.agencies["harlan_so"]
    assert so.sectors == ("LAW_ENFORCEMENT", "JAILS")
    assert (so.county_fips, so.population, so.fiscal_year_start_month, so.superagency_id) == ("99001", 52000, 7, None)
    assert roster.agencies["court_2"].fiscal_year_start_month == 1  # blank = calendar year
    assert roster.agencies["aoc"].county_fips is None
    assert roster.settings == {}


def test_bom_blank_lines_and_whitespace_are_tolerated(tmp_path):
    text = "\ufeff" + " , ".join(AGENCY_COLUMNS) + "\n  x1 , Some Agency ,US_XX, law_enforcement ; jails ,,10,,\n\n"
    (tmp_path / "agencies.csv").write_text(text, encoding="utf-8")
    agency = load_roster(tmp_path).agencies["x1"]
    assert agency.agency_name == "Some Agency" and agency.sectors == ("LAW_ENFORCEMENT", "JAILS")


def test_missing_agencies_file(tmp_path):
    problems = _problems_no_write(tmp_path)
    assert len(problems) == 1
    assert problems[0].path == "agencies.csv" and problems[0].line is None
    assert "not found" in problems[0].message and "agency_id,agency_name" in problems[0].message


def _problems_no_write(tmp_path):
    with pytest.raises(RosterError) as caught:
        load_roster(tmp_path)
    return caught.value.problems


def test_missing_and_unknown_header_columns(tmp_path):
    columns = [c for c in AGENCY_COLUMNS if c != "population"] + ["populaton"]
    (tmp_path / "agencies.csv").write_text(",".join(columns) + "\n", encoding="utf-8")
    problems = _problems_no_write(tmp_path)
    assert "missing column" in _only(problems, "agencies.csv", 1, "population").message
    unknown = _only(problems, "agencies.csv", 1, "populaton").message
    assert "unknown column" in unknown and "did you mean 'population'" in unknown


def test_a_states_own_columns_are_welcome(tmp_path):
    """Columns beyond the contract's (a state's notes, contacts, ...) are left unread; the roster loads."""
    _write(tmp_path / "agencies.csv", [*AGENCY_COLUMNS, "notes"],
           [(*row, "called 2024-05-02") for row in GOOD_AGENCIES])
    roster = load_roster(tmp_path)
    assert sorted(roster.agencies) == sorted(row[0] for row in GOOD_AGENCIES)
    assert roster.agencies["harlan_so"].population == 52000


def test_blank_required_cells(tmp_path):
    problems = _problems(tmp_path, _replace(0, agency_name="", sectors=""))
    assert "blank" in _only(problems, "agencies.csv", 2, "agency_name").message
    assert "blank" in _only(problems, "agencies.csv", 2, "sectors").message


def test_unknown_sector_code_lists_valid_codes(tmp_path):
    problems = _problems(tmp_path, _replace(0, sectors="LAW_ENFORCEMENT;JAIL"))
    message = _only(problems, "agencies.csv", 2, "sectors").message
    assert "unknown sector code 'JAIL'" in message and "did you mean 'JAILS'" in message
    assert all(code in message for code in SYSTEM_CODES)
    assert str(problems[0]).startswith("agencies.csv, line 2, column 'sectors': unknown sector code 'JAIL'")


def test_duplicate_agency_id_names_both_lines(tmp_path):
    rows = GOOD_AGENCIES + [("HARLAN_SO", "Other", "US_XX", "JAILS", "", "1", "1", "")]
    message = _only(_problems(tmp_path, rows), "agencies.csv", 9, "agency_id").message
    assert "duplicate agency_id 'HARLAN_SO'" in message and "line 2" in message and "'harlan_so'" in message


@pytest.mark.parametrize("value", ["0", "13", "July", "7.5"])
def test_fiscal_year_start_month_must_be_1_to_12(tmp_path, value):
    message = _only(
        _problems(tmp_path, _replace(0, fiscal_year_start_month=value)), "agencies.csv", 2, "fiscal_year_start_month"
    ).message
    assert f"'{value}'" in message and "1..12" in message


@pytest.mark.parametrize("value", ["-5", "12,000", "many"])
def test_population_must_be_non_negative_integer(tmp_path, value):
    message = _only(_problems(tmp_path, _replace(0, population=value)), "agencies.csv", 2, "population").message
    assert f"'{value}'" in message and "non-negative whole number" in message


@pytest.mark.parametrize("typed", ["aocx", "AOC"])  # ids are matched as written; a case slip is named too
def test_superagency_must_exist(tmp_path, typed):
    message = _only(
        _problems(tmp_path, _replace(2, superagency_id=typed)), "agencies.csv", 4, "superagency_id"
    ).message
    assert f"'{typed}' is not an agency_id" in message and "did you mean 'aoc'" in message


def test_superagency_must_have_superagency_sector(tmp_path):
    message = _only(_problems(tmp_path, _replace(2, superagency_id="dcs")), "agencies.csv", 4, "superagency_id").message
    assert "'dcs' (line 6) does not list SUPERAGENCY" in message


def test_agency_cannot_be_its_own_superagency(tmp_path):
    message = _only(_problems(tmp_path, _replace(1, superagency_id="aoc")), "agencies.csv", 3, "superagency_id").message
    assert "names itself as its superagency" in message


def test_children_of_one_superagency_need_distinct_names(tmp_path):
    message = _only(
        _problems(tmp_path, _replace(3, agency_name=" 1ST district  court")), "agencies.csv", 5, "agency_name"
    ).message
    assert "line 4" in message and "same name" in message


def test_a_childs_name_may_not_be_a_siblings_id(tmp_path):
    """The 'agency' column names a child by name or id: court_2 called "Court_1" would take court_1's rows."""
    message = _only(_problems(tmp_path, _replace(3, agency_name="Court_1")), "agencies.csv", 5, "agency_name").message
    assert "line 4" in message and "could not tell them apart" in message


def test_a_roster_with_no_agency_is_refused(tmp_path):
    """A save that kept only the header would have every delivered file read again as no agency's."""
    (problem,) = _problems(tmp_path, agencies=[])
    assert (problem.path, problem.line, problem.column) == ("agencies.csv", 2, None)
    assert "no agency below the header" in problem.message


@pytest.mark.parametrize("agency_id", ["../etc", ".hidden", "a b", "x/y"])
def test_agency_id_must_be_a_safe_folder_name(tmp_path, agency_id):
    message = _only(_problems(tmp_path, _replace(0, agency_id=agency_id)), "agencies.csv", 2, "agency_id").message
    assert "safe folder name" in message


def test_bad_state_code_and_county_fips(tmp_path):
    problems = _problems(tmp_path, _replace(0, state_code="XX", county_fips="123"))
    assert "US_" in _only(problems, "agencies.csv", 2, "state_code").message
    assert "5-digit" in _only(problems, "agencies.csv", 2, "county_fips").message


def test_all_problems_are_collected(tmp_path):
    rows = _replace(0, sectors="JAIL", population="-1") + [
        ("harlan_so", "Dup", "US_XX", "JAILS", "", "", "13", "nobody")
    ]
    problems = _problems(tmp_path, rows, settings=[("ghost", "JAILS_FUNDING", "", "", "", "")])
    located = {(p.path, p.line, p.column) for p in problems}
    assert {
        ("agencies.csv", 2, "sectors"),
        ("agencies.csv", 2, "population"),
        ("agencies.csv", 9, "fiscal_year_start_month"),
        ("agencies.csv", 9, "agency_id"),
        ("metric_settings.csv", 2, "agency_id"),
    } <= located


# --- metric_settings.csv -----------------------------------------------------------------------------------


def _settings_problems(tmp_path, *rows) -> list[Problem]:
    return _problems(tmp_path, settings=list(rows))


def test_settings_unknown_agency_and_metric(tmp_path):
    problems = _settings_problems(
        tmp_path,
        ("harlan", "JAILS_FUNDING", "", "", "", ""),
        ("harlan_so", "JAILS_FUNDNG", "", "", "", ""),
    )
    assert "unknown agency 'harlan'" in _only(problems, "metric_settings.csv", 2, "agency_id").message
    message = _only(problems, "metric_settings.csv", 3, "metric_key").message
    assert "unknown metric key 'JAILS_FUNDNG'" in message and "did you mean 'JAILS_FUNDING'" in message


def test_settings_metric_outside_agency_sectors(tmp_path):
    problems = _settings_problems(
        tmp_path,
        ("harlan_so", "PRISONS_FUNDING", "", "", "", ""),
        ("county_probation", "PAROLE_FUNDING", "", "", "", ""),
    )
    assert "PRISONS metric" in _only(problems, "metric_settings.csv", 2, "metric_key").message
    assert "add PAROLE" in _only(problems, "metric_settings.csv", 3, "metric_key").message


def test_settings_bad_values(tmp_path):
    problems = _settings_problems(
        tmp_path,
        ("harlan_so", "JAILS_FUNDING", "maybe", "YEARLY", "13", ""),
        ("dcs", "SUPERVISION_FUNDING", "", "", "", "sometimes"),
    )
    assert "'maybe' is not a yes/no value; write true/false, yes/no or 1/0 (or leave blank for the default)" in _only(
        problems, "metric_settings.csv", 2, "enabled").message
    assert "'YEARLY' is not one of MONTHLY, ANNUAL" in _only(problems, "metric_settings.csv", 2, "frequency").message
    assert "1..12" in _only(problems, "metric_settings.csv", 2, "starting_month").message
    assert "yes/no" in _only(problems, "metric_settings.csv", 3, "disaggregated_by_supervision_subsystems").message


def test_settings_starting_month_for_monthly_metric(tmp_path):
    problems = _settings_problems(
        tmp_path,
        ("harlan_so", "LAW_ENFORCEMENT_ARRESTS", "", "", "7", ""),  # monthly by default
        ("harlan_so", "JAILS_FUNDING", "", "MONTHLY", "7", ""),  # switched to monthly
    )
    assert "MONTHLY" in _only(problems, "metric_settings.csv", 2, "starting_month").message
    assert "MONTHLY" in _only(problems, "metric_settings.csv", 3, "starting_month").message


def test_settings_duplicate_row(tmp_path):
    problems = _settings_problems(
        tmp_path,
        ("harlan_so", "JAILS_FUNDING", "yes", "", "", ""),
        ("harlan_so", "jails_funding", "no", "", "", ""),
    )
    message = _only(problems, "metric_settings.csv", 3, "metric_key").message
    assert "duplicate setting" in message and "line 2" in message


def test_settings_disaggregation_only_for_supervision(tmp_path):
    problems = _settings_problems(
        tmp_path,
        ("harlan_so", "JAILS_FUNDING", "", "", "", "true"),
        ("county_probation", "SUPERVISION_FUNDING", "", "", "", "true"),
    )
    column = "disaggregated_by_supervision_subsystems"
    assert "only applies to SUPERVISION_*" in _only(problems, "metric_settings.csv", 2, column).message
    assert "no supervision subsystem" in _only(problems, "metric_settings.csv", 3, column).message


def test_settings_missing_header(tmp_path):
    _roster_dir(tmp_path)
    (tmp_path / "metric_settings.csv").write_text("agency_id,metric_key,enabled\n", encoding="utf-8")
    problems = _problems_no_write(tmp_path)
    assert "missing column" in _only(problems, "metric_settings.csv", 1, "frequency").message


# --- breakdown_settings.csv --------------------------------------------------------------------------------

OFFENSE = "metric/offense/type"
ARRESTS = "LAW_ENFORCEMENT_ARRESTS"


def test_without_breakdown_settings_every_category_is_enabled(tmp_path):
    roster = load_roster(_roster_dir(tmp_path))
    assert roster.breakdown_settings == {} and roster.category_settings() == ()
    assert roster.category_enabled("harlan_so", ARRESTS, OFFENSE, "PUBLIC_ORDER") is True


def test_breakdown_settings_accept_the_roster_spellings(tmp_path):
    """Metric keys in any case; the dimension as identifier or upload column; the member as NAME or display."""
    roster = load_roster(_roster_dir(tmp_path, breakdowns=[
        ("harlan_so", "law_enforcement_arrests", "Offense_Type", "public order  offenses", "no"),
        ("harlan_so", ARRESTS, "GLOBAL/BIOLOGICAL_SEX", "unknown", "0"),
        ("harlan_so", "JAILS_TOTAL_POPULATION", "metric/jails/behavioral_health/type", "None", "FALSE"),
    ]))
    setting = roster.breakdown_settings[("harlan_so", ARRESTS, OFFENSE, "PUBLIC_ORDER")]
    assert (setting.enabled, setting.line) == (False, 2)
    assert roster.category_enabled("harlan_so", ARRESTS, "global/biological_sex", "UNKNOWN") is False
    # A category is turned off for one metric only, and only for that agency.
    assert roster.category_enabled("harlan_so", "LAW_ENFORCEMENT_REPORTED_CRIME", OFFENSE, "PUBLIC_ORDER") is True
    assert roster.category_enabled("harlan_so", ARRESTS, OFFENSE, "DRUG") is True
    # A breakdown that cannot be bulk-uploaded (behavioral health, no upload column) can still be configured.
    assert roster.category_enabled("harlan_so", "JAILS_TOTAL_POPULATION", "metric/jails/behavioral_health/type",
                                   "NONE") is False


def test_subsystem_keys_inherit_the_combined_metrics_category_settings(tmp_path):
    daily = "metric/supervision/daily_population/type"
    roster = load_roster(_roster_dir(tmp_path, breakdowns=[
        ("dcs", "SUPERVISION_POPULATION", daily, "ADMINISTRATIVE", "false"),
        ("dcs", "PROBATION_POPULATION", daily, "ADMINISTRATIVE", "true"),
        ("parole_board", "PAROLE_POPULATION", daily, "ABSCONDED", "false"),
    ]))
    assert roster.category_enabled("dcs", "PAROLE_POPULATION", daily, "ADMINISTRATIVE") is False
    assert roster.category_enabled("dcs", "PROBATION_POPULATION", daily, "ADMINISTRATIVE") is True
    assert roster.category_enabled("dcs", "PAROLE_POPULATION", daily, "ACTIVE") is True
    assert set(roster.category_settings()) == {
        CategorySetting("dcs", "SUPERVISION_POPULATION", daily, "ADMINISTRATIVE", False, False),
        CategorySetting("dcs", "PAROLE_POPULATION", daily, "ADMINISTRATIVE", False, True),
        CategorySetting("dcs", "PROBATION_POPULATION", daily, "ADMINISTRATIVE", True, False),
        CategorySetting("parole_board", "PAROLE_POPULATION", daily, "ABSCONDED", False, False),
    }


def test_breakdown_settings_unknown_agency_metric_and_sector(tmp_path):
    problems = _problems(tmp_path, breakdowns=[
        ("harlan", ARRESTS, OFFENSE, "DRUG", "false"),
        ("harlan_so", "LAW_ENFORCEMENT_ARRESTZ", OFFENSE, "DRUG", "false"),
        ("harlan_so", "PRISONS_POPULATION", OFFENSE, "DRUG", "false"),
    ])
    message = _only(problems, "breakdown_settings.csv", 2, "agency_id").message
    assert "unknown agency 'harlan'" in message and "use an agency_id from agencies.csv" in message
    message = _only(problems, "breakdown_settings.csv", 3, "metric_key").message
    assert "did you mean 'LAW_ENFORCEMENT_ARRESTS'" in message
    message = _only(problems, "breakdown_settings.csv", 4, "metric_key").message
    assert "PRISONS metric" in message and "add PRISONS to the agency's sectors" in message


def test_breakdown_settings_unknown_dimension_lists_the_metrics_breakdowns(tmp_path):
    problems = _problems(tmp_path, breakdowns=[
        ("harlan_so", ARRESTS, "metric/ofense/type", "DRUG", "false"),
        ("harlan_so", ARRESTS, "global/race/census", "ASIAN", "false"),  # a dimension, but not one of ARRESTS
        ("harlan_so", "JAILS_TOTAL_RELEASES", "metric/offense/type", "DRUG", "false"),
        ("dcs", "SUPERVISION_RECONVICTIONS", OFFENSE, "DRUG", "false"),
    ])
    first = _only(problems, "breakdown_settings.csv", 2, "dimension")
    assert str(first).startswith("breakdown_settings.csv, line 2, column 'dimension': 'metric/ofense/type' is not a")
    assert "did you mean 'metric/offense/type'" in first.message
    assert "metric/offense/type (offense_type), global/race_and_ethnicity (race/ethnicity)" in first.message
    assert "is not a breakdown of LAW_ENFORCEMENT_ARRESTS" in _only(
        problems, "breakdown_settings.csv", 3, "dimension").message
    # Behavioral health is the only breakdown of total releases and has no upload column: listed without one.
    releases = _only(problems, "breakdown_settings.csv", 4, "dimension").message
    assert releases.endswith("(or their upload columns): metric/jails/behavioral_health/type")
    assert "has no breakdowns" in _only(problems, "breakdown_settings.csv", 5, "dimension").message


def test_breakdown_settings_unknown_member_lists_the_members(tmp_path):
    problems = _problems(tmp_path, breakdowns=[("harlan_so", ARRESTS, OFFENSE, "DRUGS", "false")])
    message = _only(problems, "breakdown_settings.csv", 2, "member").message
    assert "'DRUGS' is not a category of metric/offense/type" in message and "did you mean 'DRUG'" in message
    assert "PERSON, PROPERTY, DRUG, PUBLIC_ORDER, OTHER, UNKNOWN" in message


def test_breakdown_settings_blank_cells_and_bad_enabled(tmp_path):
    problems = _problems(tmp_path, breakdowns=[
        ("harlan_so", ARRESTS, OFFENSE, "DRUG", ""),
        ("harlan_so", ARRESTS, OFFENSE, "PERSON", "off"),
        ("harlan_so", ARRESTS, "", "", "false"),
    ])
    assert "write false to turn the category off" in _only(problems, "breakdown_settings.csv", 2, "enabled").message
    bad = _only(problems, "breakdown_settings.csv", 3, "enabled").message
    assert "'off' is not a yes/no value" in bad and "blank" not in bad  # blank is refused here (line 2)
    assert "e.g. metric/offense/type" in _only(problems, "breakdown_settings.csv", 4, "dimension").message
    assert "name the category" in _only(problems, "breakdown_settings.csv", 4, "member").message


def test_breakdown_settings_duplicate_row_names_the_first(tmp_path):
    problems = _problems(tmp_path, breakdowns=[
        ("harlan_so", ARRESTS, OFFENSE, "DRUG", "false"),
        ("harlan_so", ARRESTS, OFFENSE, "OTHER", "false"),
        ("harlan_so", ARRESTS, "offense_type", "Drug Offenses", "true"),  # the same category, spelled otherwise
    ])
    message = _only(problems, "breakdown_settings.csv", 4, "member").message
    assert "duplicate setting" in message and "line 2" in message and "keep one of the two rows" in message


def test_breakdown_settings_missing_header_and_problems_of_every_file_together(tmp_path):
    _roster_dir(tmp_path, settings=[("ghost", "JAILS_FUNDING", "", "", "", "")])
    (tmp_path / "breakdown_settings.csv").write_text("agency_id,metric_key,dimension,category,enabled\n")
    problems = _problems_no_write(tmp_path)
    assert "missing column; add 'member'" in _only(problems, "breakdown_settings.csv", 1, "member").message
    # 'category' is not close to 'member': a column of the state's own, welcome (the missing 'member' is the error).
    assert not [p for p in problems if p.column == "category"]
    assert _only(problems, "metric_settings.csv", 2, "agency_id")


# --- effective settings ------------------------------------------------------------------------------------


def test_effective_defaults(tmp_path):
    roster = load_roster(_roster_dir(tmp_path))
    arrests = roster.effective("harlan_so", "LAW_ENFORCEMENT_ARRESTS")
    assert (arrests.enabled, arrests.frequency, arrests.starting_month, arrests.is_default) == (
        True,
        "MONTHLY",
        1,
        True,
    )
    # A July fiscal-year agency reports its annual metrics July-June by default.
    funding = roster.effective("harlan_so", "JAILS_FUNDING")
    assert (funding.frequency, funding.starting_month, funding.disaggregated_by_supervision_subsystems) == (
        "ANNUAL",
        7,
        False,
    )
    assert roster.effective("court_1", "COURTS_AND_PRETRIAL_FUNDING").starting_month == 1


def test_effective_applies_settings_rows(tmp_path):
    roster = load_roster(
        _roster_dir(
            tmp_path,
            settings=[
                ("harlan_so", "LAW_ENFORCEMENT_ARRESTS", "", "ANNUAL", "", ""),
                ("harlan_so", "JAILS_FUNDING", "", "", "10", ""),
                ("harlan_so", "JAILS_EXPENSES", "", "MONTHLY", "", ""),
                ("harlan_so", "JAILS_READMISSIONS", "No", "", "", ""),
            ],
        )
    )
    arrests = roster.effective("harlan_so", "LAW_ENFORCEMENT_ARRESTS")
    assert (arrests.frequency, arrests.starting_month, arrests.is_default) == ("ANNUAL", 7, False)
    assert roster.effective("harlan_so", "JAILS_FUNDING").starting_month == 10
    assert (
        roster.effective("harlan_so", "JAILS_EXPENSES").frequency,
        roster.effective("harlan_so", "JAILS_EXPENSES").starting_month,
    ) == ("MONTHLY", 1)
    assert roster.effective("harlan_so", "JAILS_READMISSIONS").enabled is False
    expected = roster.expected_metric_keys("harlan_so")
    assert (
        "JAILS_READMISSIONS" not in expected and "JAILS_FUNDING" in expected and "LAW_ENFORCEMENT_ARRESTS" in expected
    )
    assert roster.settings[("harlan_so", "JAILS_FUNDING")].line == 3


def test_supervision_disaggregated_by_default_when_agency_has_subsystems(tmp_path):
    roster = load_roster(_roster_dir(tmp_path))
    assert roster.effective("dcs", "SUPERVISION_FUNDING").disaggregated_by_supervision_subsystems is True
    assert roster.effective("dcs", "PAROLE_FUNDING").enabled is True
    assert roster.effective("dcs", "PRETRIAL_SUPERVISION_FUNDING").enabled is False  # no such sector
    expected = roster.expected_metric_keys("dcs")
    assert "PAROLE_FUNDING" in expected and "PROBATION_POPULATION" in expected
    assert not any(key.startswith(("SUPERVISION_", "PRETRIAL_", "OTHER_SUPERVISION_")) for key in expected)
    # without subsystems: combined keys only
    combined = roster.expected_metric_keys("county_probation")
    assert "SUPERVISION_FUNDING" in combined and not any(key.startswith("PAROLE_") for key in combined)
    assert roster.effective("county_probation", "SUPERVISION_FUNDING").disaggregated_by_supervision_subsystems is False


def test_supervision_combined_metric_when_not_disaggregated(tmp_path):
    roster = load_roster(
        _roster_dir(
            tmp_path,
            settings=[
                ("dcs", "SUPERVISION_FUNDING", "", "ANNUAL", "7", "false"),
                ("dcs", "SUPERVISION_POPULATION", "", "", "", "yes"),
                ("dcs", "PAROLE_POPULATION", "no", "", "", ""),
            ],
        )
    )
    expected = roster.expected_metric_keys("dcs")
    assert (
        "SUPERVISION_FUNDING" in expected and "PAROLE_FUNDING" not in expected and "PROBATION_FUNDING" not in expected
    )
    parole_funding = roster.effective("dcs", "PAROLE_FUNDING")
    assert parole_funding.enabled is False and parole_funding.is_default is False
    # subsystem keys inherit from the parent row unless their own row says otherwise
    assert "PROBATION_POPULATION" in expected and "PAROLE_POPULATION" not in expected
    assert roster.effective("dcs", "PROBATION_POPULATION").disaggregated_by_supervision_subsystems is True
    assert roster.effective("dcs", "PROBATION_EXPENSES").is_default is True


def test_subsystem_inherits_fiscal_year_from_parent_row(tmp_path):
    roster = load_roster(_roster_dir(tmp_path, settings=[("dcs", "SUPERVISION_EXPENSES", "", "", "7", "")]))
    assert roster.effective("dcs", "PAROLE_EXPENSES").starting_month == 7
    assert roster.effective("dcs", "PAROLE_FUNDING").starting_month == 1


def test_standalone_subsystem_agency_reports_subsystem_keys(tmp_path):
    expected = load_roster(_roster_dir(tmp_path)).expected_metric_keys("parole_board")
    assert "PAROLE_FUNDING" in expected and not any(key.startswith("SUPERVISION_") for key in expected)


def test_unknown_agency_or_metric_in_effective_raises_key_error(tmp_path):
    roster = load_roster(_roster_dir(tmp_path))
    with pytest.raises(KeyError):
        roster.effective("nobody", "JAILS_FUNDING")
    with pytest.raises(KeyError):
        roster.effective("harlan_so", "NOPE")


# --- superagency children ----------------------------------------------------------------------------------


def test_children_and_find_child(tmp_path):
    roster = load_roster(_roster_dir(tmp_path))
    assert [a.agency_id for a in roster.children("aoc")] == ["court_1", "court_2"]
    assert roster.children("harlan_so") == ()
    assert roster.find_child("aoc", "  1st DISTRICT   court ").agency_id == "court_1"
    assert roster.find_child("aoc", "COURT_2").agency_id == "court_2"
    assert roster.find_child("aoc", "3rd District Court") is None
    assert roster.find_child("aoc", "harlan_so") is None  # not a child of aoc


@pytest.mark.parametrize(("encoding", "delimiter"), [("cp1252", ","), ("utf-16", "\t"), ("utf-8-sig", ";"),
                                                     ("utf-8", ",")])
def test_agencies_csv_as_excel_saves_it(tmp_path, encoding, delimiter):
    """Windows Excel's "CSV" is Windows-1252, its "Unicode text" UTF-16 with tabs, and in much of Europe the
    delimiter is a semicolon: each loads, names included (the inbox reads uploads by the same rule)."""
    rows = _replace(0, agency_name="Doña Ana County Sheriff; Jail")
    lines = [delimiter.join(AGENCY_COLUMNS)] + [
        delimiter.join(f'"{cell}"' if delimiter in cell else cell for cell in row) for row in rows]
    (tmp_path / "agencies.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    roster = load_roster(tmp_path)
    assert roster.agencies["harlan_so"].agency_name == "Doña Ana County Sheriff; Jail"
    assert set(roster.agencies) == {row[0] for row in GOOD_AGENCIES}


def test_an_unreadable_agencies_csv_is_the_only_problem_named(tmp_path):
    """UTF-16 without its byte order mark: one problem naming the file and the fix, not one per settings row."""
    _roster_dir(tmp_path, settings=[("harlan_so", "JAILS_FUNDING", "", "", "", "")])
    text = (tmp_path / "agencies.csv").read_text(encoding="utf-8")
    (tmp_path / "agencies.csv").write_bytes(text.encode("utf-16-le"))
    with pytest.raises(RosterError) as caught:
        load_roster(tmp_path)
    (problem,) = caught.value.problems
    assert problem.path == "agencies.csv" and "save it as CSV UTF-8" in problem.message


def test_utf8_with_one_stray_byte_is_refused_naming_its_line(tmp_path):
    """Read as Windows-1252 it loaded with every accented name garbled ("DoÃ±a"), and the renamed children
    re-read their superagency's files; refused instead, on the line of the byte (helper-28)."""
    rows = _replace(0, agency_name="Doña Ana County Sheriff")
    _roster_dir(tmp_path, rows)
    data = (tmp_path / "agencies.csv").read_bytes().replace(b"Harlan County Probation", b"Harlan County Probati\xf3n")
    (tmp_path / "agencies.csv").write_bytes(data)
    with pytest.raises(RosterError) as caught:
        load_roster(tmp_path)
    (problem,) = caught.value.problems
    assert (problem.path, problem.line) == ("agencies.csv", 7)
    assert "0xf3" in problem.message and "CSV UTF-8" in problem.message


def test_a_blank_first_row_is_not_the_header(tmp_path):
    """Excel saves an empty first row as ",,,,": the header is the first row with a cell, as in the inbox."""
    _roster_dir(tmp_path)
    text = (tmp_path / "agencies.csv").read_text(encoding="utf-8")
    (tmp_path / "agencies.csv").write_text(",,,,,,,\n" + text, encoding="utf-8")
    assert set(load_roster(tmp_path).agencies) == {row[0] for row in GOOD_AGENCIES}
    (tmp_path / "agencies.csv").write_text(",,,,,,,\n" + text.replace("population", "populaton", 1), encoding="utf-8")
    with pytest.raises(RosterError) as caught:
        load_roster(tmp_path)
    assert [(p.line, p.column) for p in caught.value.problems] == [(2, "populaton"), (2, "population")]
