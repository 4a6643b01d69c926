"""Native extracts: expected counts computed by hand from small exports written in each test."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest

from jc_pipeline_tests.ingest_support import AGENCIES, Warehouse, deliver_csv, deliver_xlsx

CALL = "metric/law_enforcement/calls_for_service/type"
OFFENSE = "metric/offense/type"
RACE = "global/race_and_ethnicity"
SEX = "global/biological_sex"


def write_mapping(data_dir: Path, agency: str, text: str) -> None:
    (data_dir / "mappings").mkdir(parents=True, exist_ok=True)
    (data_dir / "mappings" / f"{agency}.yaml").write_text(text, encoding="utf-8")


@pytest.fixture
def w(tmp_path):
    warehouse = Warehouse(tmp_path)
    yield warehouse
    warehouse.close()


def values(batch, metric: str, dimension: str | None = None) -> dict:
    """{(period_start, category): value} of one metric and dimension (None = the totals)."""
    frame = batch.datapoints.filter(pl.col("metric_key") == metric)
    frame = frame.filter(pl.col("dimension").is_null() if dimension is None else pl.col("dimension") == dimension)
    return {(row["period_start"], row["category"]): row["value"] for row in frame.iter_rows(named=True)}


def file_row(batch, name: str) -> dict:
    return batch.files.filter(pl.col("path").str.ends_with(name)).row(0, named=True)


def findings(batch, name: str) -> list[tuple]:
    frame = batch.findings.filter(pl.col("path").str.ends_with(name))
    return [(r["rule"], r["row_number"], r["column_name"], r["raw_value"]) for r in frame.iter_rows(named=True)]


CAD = """
sources:
  - name: cad
    pattern: LAW_ENFORCEMENT/cad_calls_*.csv
    kind: records
    columns: {id: Incident No, received: Call Received, priority: Priority}
    metrics:
      - metric: LAW_ENFORCEMENT_CALLS_FOR_SERVICE
        date: received
        breakdowns:
          - dimension: metric/law_enforcement/calls_for_service/type
            column: priority
            values: {"1": EMERGENCY, "2": EMERGENCY, "3": NON_EMERGENCY, ADMIN: null}
"""


def test_cad_calls_counted_by_month_of_the_call_with_mapped_types(w):
    write_mapping(w.data_dir, "le", CAD)
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "cad_calls_2024.csv", [
        ["Incident No", "Call Received", "Priority"],
        ["C1", "2024-01-03 10:00:00", "1"],
        ["C2", "2024-01-31 23:59:59", "2"],
        ["C3", "2024-02-01 00:00:01", "3"],
        ["C4", "2024-02-10 08:00", "admin"],  # mapped to null: left out, not an error
        ["C5", "2024-02-11 09:00:00", ""],  # blank: the dimension's UNKNOWN member
        ["C6", "2024-02-12 09:00:00", "9"],  # no mapping: N3
        ["C7", "02/30/2024", "1"],  # no such date: N4
        ["", "", ""],  # blank record: skipped, not counted
        ["C8", "2024-03-05 12:00:00", "3"],
    ])
    batch = w.parse()
    jan, feb, mar = date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1)
    assert values(batch, "LAW_ENFORCEMENT_CALLS_FOR_SERVICE") == {(jan, None): 2, (feb, None): 2, (mar, None): 1}
    assert values(batch, "LAW_ENFORCEMENT_CALLS_FOR_SERVICE", CALL) == {
        (jan, "EMERGENCY"): 2, (jan, "NON_EMERGENCY"): 0, (jan, "UNKNOWN"): 0,
        (feb, "EMERGENCY"): 0, (feb, "NON_EMERGENCY"): 1, (feb, "UNKNOWN"): 1,
        (mar, "EMERGENCY"): 0, (mar, "NON_EMERGENCY"): 1, (mar, "UNKNOWN"): 0,
    }
    row = file_row(batch, "cad_calls_2024.csv")
    assert (row["rows_total"], row["rows_loaded"], row["rows_rejected"]) == (8, 6, 2)
    assert row["status"] == "ERRORED"
    assert findings(batch, "cad_calls_2024.csv") == [("N3", 7, "Priority", "9"), ("N4", 8, "Call Received",
                                                                                    "02/30/2024")]
    message = batch.findings.filter(pl.col("rule") == "N3")["message"][0]
    assert "'9'" in message and "(1 record, row 7)" in message
    dp = batch.datapoints.row(0, named=True)
    assert dp["frequency"] == "MONTHLY" and dp["sector"] == "LAW_ENFORCEMENT" and dp["agency_id"] == "le"
    assert dp["period_end"] == date(2024, 2, 1) and dp["sheet"] == "cad_calls_2024.csv"


@pytest.mark.parametrize("name", ["cad_calls_2024.csv", "cadx_2024.xlsx"])
def test_rows_of_an_export_below_blank_rows_are_numbered_as_the_file_shows_them(w, name):
    """An export whose header is on row 3 (two blank rows above it): findings and lineage name the spreadsheet's
    rows, as for an export whose header is on row 1."""
    # The CSV source of CAD and the same source as a workbook.
    cadx = CAD.split("sources:\n")[1].replace("name: cad", "name: cadx").replace("cad_calls_*.csv", "cadx_*.xlsx")
    write_mapping(w.data_dir, "le", CAD + cadx.replace("    kind: records", "    format: xlsx\n    kind: records"))
    rows = [["Incident No", "Call Received", "Priority"], ["C1", "2024-01-03 10:00:00", "1"],
            ["C2", "2024-01-31 23:59:59", "9"]]
    if name.endswith(".csv"):
        deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", name, [[], [], *rows])
    else:
        deliver_xlsx(w.data_dir, "le", "LAW_ENFORCEMENT", name, {"Calls": [[None], [None], *rows]})
    batch = w.parse()
    assert findings(batch, name) == [("N3", 5, "Priority", "9")]  # C2 on row 5
    assert set(batch.datapoints.filter(pl.col("path").str.ends_with(name))["row_number"]) == {4}  # C1 on row 4


RMS = """
sources:
  - name: rms
    pattern: LAW_ENFORCEMENT/rms/arrests_*.csv
    kind: records
    delimiter: "|"
    columns: {arrest: ArrestID, when: ArrestDate, code: Offense, race: Race, hisp: Hispanic, sex: Sex}
    date_formats: ["%m/%d/%Y"]
    metrics:
      - metric: LAW_ENFORCEMENT_ARRESTS
        date: when
        id: arrest
        breakdowns:
          - dimension: metric/offense/type
            column: code
            values: {ASSAULT: PERSON, THEFT: PROPERTY, DUI: PUBLIC_ORDER, DRUG_POSS: DRUG}
          - dimension: global/race_and_ethnicity
            race: {column: race, values: {W: WHITE, B: BLACK}}
            ethnicity: {column: hisp, values: {Y: HISPANIC, N: NOT_HISPANIC}}
          - dimension: global/biological_sex
            column: sex
            values: {M: MALE, F: FEMALE}
"""


def _arrests(w, mapping: str) -> object:
    write_mapping(w.data_dir, "le", mapping)
    path = w.data_dir / "inbox" / "le" / "LAW_ENFORCEMENT" / "rms" / "arrests_2024.csv"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join([
        "ArrestID|ArrestDate|Offense|Race|Hispanic|Sex",
        "A1|01/05/2024|DRUG_POSS|W|N|M",
        "A1|01/05/2024|ASSAULT|W|N|M",  # one arrest, two charges: the person offense wins
        "A2|01/20/2024|THEFT|B||F",  # blank ethnicity: unknown ethnicity
        "A2|01/21/2024|DUI|B||F",  # later charge of the same arrest: counted in the month of the first
        "A3|02/02/2024|DUI|W|Y|M",
        "A4|02/03/2024|XYZ|W|N|M",  # its only charge is unmapped: the arrest is rejected
    ]) + "\n", encoding="utf-8")
    return w.parse()


def test_rms_arrests_one_per_arrest_by_most_serious_offense_with_race_ethnicity_cross(w):
    batch = _arrests(w, RMS)
    jan, feb = date(2024, 1, 1), date(2024, 2, 1)
    assert values(batch, "LAW_ENFORCEMENT_ARRESTS") == {(jan, None): 2, (feb, None): 1}
    offenses = {k: v for k, v in values(batch, "LAW_ENFORCEMENT_ARRESTS", OFFENSE).items() if v}
    assert offenses == {(jan, "PERSON"): 1, (jan, "PROPERTY"): 1, (feb, "PUBLIC_ORDER"): 1}
    races = values(batch, "LAW_ENFORCEMENT_ARRESTS", RACE)
    assert {k: v for k, v in races.items() if v} == {
        (jan, "NOT_HISPANIC_WHITE"): 1, (jan, "UNKNOWN_ETHNICITY_BLACK"): 1, (feb, "HISPANIC_WHITE"): 1}
    assert len(races) == 2 * 9  # 3 races (W, B, blank=Unknown) x 3 ethnicities, zero-filled per month
    assert {k: v for k, v in values(batch, "LAW_ENFORCEMENT_ARRESTS", SEX).items() if v} == {
        (jan, "MALE"): 1, (jan, "FEMALE"): 1, (feb, "MALE"): 1}
    row = file_row(batch, "arrests_2024.csv")
    assert (row["rows_total"], row["rows_loaded"], row["rows_rejected"]) == (6, 5, 1)
    assert findings(batch, "arrests_2024.csv") == [("N3", 7, "Offense", "XYZ")]


def test_an_event_with_a_row_the_mapping_cannot_read_is_not_counted_from_its_other_rows(w):
    """helper-41: A5's most serious charge has no mapping; it was counted from its other charge, a month later
    (its earliest row was the unmapped one) under the lesser offense. Such an event is not counted until the value
    is mapped; its readable row is no rejected row (the N3 names the row to fix)."""
    write_mapping(w.data_dir, "le", RMS)
    path = w.data_dir / "inbox" / "le" / "LAW_ENFORCEMENT" / "rms" / "arrests_2024.csv"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join([
        "ArrestID|ArrestDate|Offense|Race|Hispanic|Sex",
        "A5|01/31/2024|MURDER|W|N|M",  # unmapped
        "A5|02/01/2024|THEFT|W|N|M",
        "A6|02/02/2024|THEFT|B|N|F",
        "A7|02/03/2024|THEFT|B|N|F",
        "A7|02/03/2024|ASSAULT|B|N|Q",  # an unmapped sex: A7 is not counted either
    ]) + "\n", encoding="utf-8")
    batch = w.parse()
    feb = date(2024, 2, 1)
    assert values(batch, "LAW_ENFORCEMENT_ARRESTS") == {(feb, None): 1}  # A6 alone
    assert {k: v for k, v in values(batch, "LAW_ENFORCEMENT_ARRESTS", OFFENSE).items() if v} == {(feb, "PROPERTY"): 1}
    assert findings(batch, "arrests_2024.csv") == [("N3", 2, "Offense", "MURDER"), ("N3", 6, "Sex", "Q")]
    row = file_row(batch, "arrests_2024.csv")
    assert (row["rows_total"], row["rows_loaded"], row["rows_rejected"]) == (5, 3, 2)


def test_an_event_dated_before_the_sources_period_is_not_counted_in_it(w):
    """With `id`, an event is dated by its earliest row and classified by its most serious charge: an arrest
    whose first charge falls before `period.from` is an arrest of that earlier month, not of the first one kept."""
    write_mapping(w.data_dir, "le", RMS.replace("kind: records", "kind: records\n    period: {from: 2024-01}"))
    path = w.data_dir / "inbox" / "le" / "LAW_ENFORCEMENT" / "rms" / "arrests_2024.csv"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join([
        "ArrestID|ArrestDate|Offense|Race|Hispanic|Sex",
        "A1|12/31/2023|ASSAULT|W|N|M",  # a December arrest (person), before the period
        "A1|01/02/2024|DRUG_POSS|W|N|M",
        "A2|01/05/2024|DRUG_POSS|B|N|F",
    ]) + "\n", encoding="utf-8")
    batch = w.parse()
    jan = date(2024, 1, 1)
    assert values(batch, "LAW_ENFORCEMENT_ARRESTS") == {(jan, None): 1}
    by_offense = values(batch, "LAW_ENFORCEMENT_ARRESTS", OFFENSE)
    assert (by_offense[(jan, "DRUG")], by_offense[(jan, "PERSON")]) == (1, 0)


def test_agency_offense_order_overrides_the_default_hierarchy(w):
    batch = _arrests(w, RMS.replace("            values: {ASSAULT", "            order: [DRUG, PUBLIC_ORDER, PERSON, "
                                    "PROPERTY, OTHER, UNKNOWN]\n            values: {ASSAULT"))
    offenses = {k: v for k, v in values(batch, "LAW_ENFORCEMENT_ARRESTS", OFFENSE).items() if v}
    jan, feb = date(2024, 1, 1), date(2024, 2, 1)
    assert offenses == {(jan, "DRUG"): 1, (jan, "PUBLIC_ORDER"): 1, (feb, "PUBLIC_ORDER"): 1}


JAIL = """
sources:
  - name: bookings
    pattern: JAILS/bookings.csv
    kind: records
    columns: {id: BookingNo, in: Booked, out: Released, charge: TopCharge, status: Status, reason: ReleaseReason}
    metrics:
      - metric: JAILS_TOTAL_POPULATION
        count: population
        start: in
        end: out
        breakdowns:
          - dimension: metric/offense/type
            column: charge
            values: {ASSAULT: PERSON, THEFT: PROPERTY}
      - metric: JAILS_TOTAL_ADMISSIONS
        date: in
      - metric: JAILS_TOTAL_RELEASES
        date: out
        where: {column: out, blank: false}
      - metric: JAILS_PRE_ADJUDICATION_RELEASES
        date: out
        where: [{column: out, blank: false}, {column: status, in: [PRE]}]
        breakdowns:
          - dimension: metric/jails/pre_adjudication/release/type
            column: reason
            values: {BOND: BAIL, ROR: AWAITING_TRIAL}
"""


def test_jail_average_daily_population_from_custody_intervals(w):
    write_mapping(w.data_dir, "fy_jail", JAIL)
    deliver_csv(w.data_dir, "fy_jail", "JAILS", "bookings.csv", [
        ["BookingNo", "Booked", "Released", "TopCharge", "Status", "ReleaseReason"],
        # Jan 1..10 held (release day not counted): 10 days in January
        ["B1", "2024-01-01 08:00:00", "2024-01-11 09:00:00", "ASSAULT", "PRE", "ROR"],
        # still in custody: Jan 20..31 = 12 days, all 29 days of February (the extract's last month)
        ["B2", "2024-01-20", "", "THEFT", "SENT", ""],
        # Jan 31 = 1 day, Feb 1..9 = 9 days
        ["B3", "2024-01-31", "2024-02-10", "THEFT", "PRE", "BOND"],
        # booked and released the same day: 0 days, but one admission and one release
        ["B4", "2024-02-05 10:00:00", "2024-02-05 15:00:00", "ASSAULT", "SENT", ""],
    ])
    batch = w.parse()
    jan, feb = date(2024, 1, 1), date(2024, 2, 1)
    adp = values(batch, "JAILS_TOTAL_POPULATION")
    assert adp == {(jan, None): pytest.approx(23 / 31), (feb, None): pytest.approx(38 / 29)}
    assert values(batch, "JAILS_TOTAL_POPULATION", OFFENSE) == {
        (jan, "PERSON"): pytest.approx(10 / 31), (jan, "PROPERTY"): pytest.approx(13 / 31),
        (feb, "PERSON"): 0, (feb, "PROPERTY"): pytest.approx(38 / 29), (jan, "UNKNOWN"): 0, (feb, "UNKNOWN"): 0}
    assert values(batch, "JAILS_TOTAL_ADMISSIONS") == {(jan, None): 3, (feb, None): 1}
    assert values(batch, "JAILS_TOTAL_RELEASES") == {(jan, None): 1, (feb, None): 2}
    assert values(batch, "JAILS_PRE_ADJUDICATION_RELEASES") == {(jan, None): 1, (feb, None): 1}
    releases = values(batch, "JAILS_PRE_ADJUDICATION_RELEASES", "metric/jails/pre_adjudication/release/type")
    assert {k: v for k, v in releases.items() if v} == {(jan, "AWAITING_TRIAL"): 1, (feb, "BAIL"): 1}
    row = file_row(batch, "bookings.csv")
    assert (row["rows_total"], row["rows_loaded"], row["rows_rejected"], row["status"]) == (4, 4, 0, "INGESTED")


def test_a_population_with_an_id_holds_a_stay_with_several_charges_once(w):
    """helper-41: an export with a row per charge held B1 twice (its two charges), and `id` was refused for
    population. With `id`, the rows of one booking with the same dates are one stay, by its most serious charge;
    a booking id used again for another stay (other dates) is another stay."""
    write_mapping(w.data_dir, "fy_jail", JAIL.replace("        count: population\n",
                                                      "        count: population\n        id: id\n"))
    deliver_csv(w.data_dir, "fy_jail", "JAILS", "bookings.csv", [
        ["BookingNo", "Booked", "Released", "TopCharge", "Status", "ReleaseReason"],
        ["B1", "2024-01-01", "2024-01-11", "THEFT", "PRE", "ROR"],  # 10 days, PERSON (the assault below)
        ["B1", "2024-01-01", "2024-01-11", "ASSAULT", "PRE", "ROR"],
        ["B2", "2024-01-31", "2024-02-05", "THEFT", "SENT", ""],  # Jan 31 and Feb 1..4
        ["B2", "2024-02-20", "2024-02-22", "THEFT", "SENT", ""],  # the id again, another stay: 2 days
        ["", "2024-02-01", "2024-02-02", "THEFT", "SENT", ""],  # no id: a stay of its own, 1 day
    ])
    batch = w.parse()
    jan, feb = date(2024, 1, 1), date(2024, 2, 1)
    assert values(batch, "JAILS_TOTAL_POPULATION") == {(jan, None): pytest.approx(11 / 31),
                                                       (feb, None): pytest.approx(7 / 29)}
    assert {k: v for k, v in values(batch, "JAILS_TOTAL_POPULATION", OFFENSE).items() if v} == {
        (jan, "PERSON"): pytest.approx(10 / 31), (jan, "PROPERTY"): pytest.approx(1 / 31),
        (feb, "PROPERTY"): pytest.approx(7 / 29)}
    row = file_row(batch, "bookings.csv")
    assert (row["rows_total"], row["rows_loaded"], row["rows_rejected"]) == (5, 5, 0)


COURT = """
sources:
  - name: cms
    pattern: COURTS_AND_PRETRIAL/cms_*.xlsx
    format: xlsx
    sheet: Charges
    kind: records
    columns: {case: Case Number, level: Charge Level, filed: Filed, disposed: Disposed, how: Disposition,
              sentenced: Sentenced, sentence: Sentence, race: Race}
    metrics:
      - metric: COURTS_AND_PRETRIAL_CASES_FILED
        date: filed
        id: case
        breakdowns:
          - dimension: metric/courts/case/severity/type
            column: level
            values: {F: FELONY, M: MISDEMEANOR, I: MISDEMEANOR}
      - metric: COURTS_AND_PRETRIAL_CASES_DISPOSED
        date: disposed
        id: case
        where: {column: disposed, blank: false}
        breakdowns:
          - dimension: metric/disposition/type
            column: how
            values: {DISMISSED: DISMISSAL, GUILTY PLEA: PLEA, VERDICT: TRIAL}
      - metric: COURTS_AND_PRETRIAL_SENTENCES
        date: sentenced
        id: case
        where: {column: sentenced, blank: false}
        breakdowns:
          - dimension: metric/courts/sentence/type
            column: sentence
            values: {PRISON: PRISON, JAIL: JAIL, PROBATION: COMMUNITY_SUPERVISION}
          - dimension: global/race_and_ethnicity
            race: {column: race, values: {B: BLACK, W: WHITE}}
"""


def test_court_filings_dispositions_and_sentences_from_a_charge_level_workbook(w):
    write_mapping(w.data_dir, "court_1", COURT)
    header = ["Case Number", "Charge Level", "Filed", "Disposed", "Disposition", "Sentenced", "Sentence", "Race"]
    deliver_xlsx(w.data_dir, "court_1", "COURTS_AND_PRETRIAL", "cms_2024.xlsx", {"Notes": [["x"]], "Charges": [
        header,
        ["K1", "M", "2024-01-02", "2024-02-15", "GUILTY PLEA", "2024-02-15", "JAIL", "B"],
        ["K1", "F", "2024-01-02", "2024-02-15", "GUILTY PLEA", "2024-02-15", "JAIL", "B"],  # felony wins
        ["K2", "I", "2024-01-09", "2024-01-30", "DISMISSED", None, None, "W"],
        ["K3", "F", "2024-02-01", None, None, None, None, "W"],
    ]})
    batch = w.parse()
    jan, feb = date(2024, 1, 1), date(2024, 2, 1)
    assert values(batch, "COURTS_AND_PRETRIAL_CASES_FILED") == {(jan, None): 2, (feb, None): 1}
    filed = values(batch, "COURTS_AND_PRETRIAL_CASES_FILED", "metric/courts/case/severity/type")
    assert filed == {(jan, "FELONY"): 1, (jan, "MISDEMEANOR"): 1, (feb, "FELONY"): 1, (feb, "MISDEMEANOR"): 0,
                     (jan, "UNKNOWN"): 0, (feb, "UNKNOWN"): 0}  # blank levels would count as UNKNOWN
    assert values(batch, "COURTS_AND_PRETRIAL_CASES_DISPOSED") == {(jan, None): 1, (feb, None): 1}
    assert {k: v for k, v in values(batch, "COURTS_AND_PRETRIAL_CASES_DISPOSED", "metric/disposition/type").items()
            if v} == {(jan, "DISMISSAL"): 1, (feb, "PLEA"): 1}
    assert values(batch, "COURTS_AND_PRETRIAL_SENTENCES") == {(feb, None): 1}
    assert {k: v for k, v in values(batch, "COURTS_AND_PRETRIAL_SENTENCES", RACE).items() if v} == {
        (feb, "UNKNOWN_ETHNICITY_BLACK"): 1}
    row = file_row(batch, "cms_2024.xlsx")
    assert (row["rows_total"], row["rows_rejected"], row["status"]) == (4, 0, "INGESTED")
    assert batch.datapoints["sheet"].unique().to_list() == ["Charges"]


SUPERVISION = """
sources:
  - name: roster
    pattern: SUPERVISION/probation_roster.csv
    kind: records
    columns: {person: PersonID, start: StartDate, end: EndDate, outcome: Outcome, offense: Offense}
    period: {from: 2024-01}
    metrics:
      - metric: SUPERVISION_SUPERVISION_STARTS
        date: start
        breakdowns:
          - dimension: metric/offense/type
            column: offense
            values: {VIOLENT: PERSON, DRUG: DRUG}
      - metric: SUPERVISION_SUPERVISION_TERMINATIONS
        date: end
        where: {column: end, blank: false}
        breakdowns:
          - dimension: metric/supervision/discharge/type
            column: outcome
            values: {COMPLETED: SUCCESSFUL, REVOKED: UNSUCCESSFUL, DECEASED: NEUTRAL}
            blank: UNKNOWN
      - metric: SUPERVISION_POPULATION
        count: population
        start: start
        end: end
"""


def test_supervision_starts_discharges_and_population_with_a_period_window(w):
    write_mapping(w.data_dir, "county_sup", SUPERVISION)
    deliver_csv(w.data_dir, "county_sup", "SUPERVISION", "probation_roster.csv", [
        ["PersonID", "StartDate", "EndDate", "Outcome", "Offense"],
        # started before the window: not a January start; on supervision all 31 days of January
        ["P1", "2023-12-15", "2024-02-01", "COMPLETED", "DRUG"],
        ["P2", "2024-01-16", "", "", "VIOLENT"],  # open: Jan 16..31 = 16 days, Feb 29 days
        ["P3", "2024-02-10", "2024-02-20", "REVOKED", "DRUG"],  # Feb 10..19 = 10 days
    ])
    batch = w.parse()
    jan, feb = date(2024, 1, 1), date(2024, 2, 1)
    assert values(batch, "SUPERVISION_SUPERVISION_STARTS") == {(jan, None): 1, (feb, None): 1}
    assert values(batch, "SUPERVISION_SUPERVISION_TERMINATIONS") == {(feb, None): 2}
    assert {k: v for k, v in values(batch, "SUPERVISION_SUPERVISION_TERMINATIONS",
                                    "metric/supervision/discharge/type").items() if v} == {
        (feb, "SUCCESSFUL"): 1, (feb, "UNSUCCESSFUL"): 1}
    assert values(batch, "SUPERVISION_POPULATION") == {(jan, None): pytest.approx(47 / 31),
                                                       (feb, None): pytest.approx(39 / 29)}
    row = file_row(batch, "probation_roster.csv")
    assert (row["rows_total"], row["rows_rejected"]) == (3, 0)


AGGREGATED = """
sources:
  - name: monthly
    pattern: LAW_ENFORCEMENT/monthly_calls.csv
    kind: aggregated
    encoding: latin-1
    delimiter: ";"
    columns: {year: Año, month: Mes, type: Tipo, n: Número}
    metrics:
      - metric: LAW_ENFORCEMENT_CALLS_FOR_SERVICE
        year: year
        month: month
        value: n
        breakdowns:
          - dimension: metric/law_enforcement/calls_for_service/type
            column: type
            values: {Urgente: EMERGENCY, Robo en curso: EMERGENCY, Rutina: NON_EMERGENCY, Total: null}
"""


def test_aggregated_export_sums_rows_per_month_and_member(w):
    write_mapping(w.data_dir, "le", AGGREGATED)
    path = w.data_dir / "inbox" / "le" / "LAW_ENFORCEMENT" / "monthly_calls.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes("\n".join([
        "Año;Mes;Tipo;Número",
        "2024;1;Urgente;10",
        "2024;1;Robo en curso;1,200",
        "2024;January;Rutina;30",
        "2024;1;Total;1240",  # the export's own total row, mapped to null
        "2024;2;Urgente;N/A",  # N6
        "2024;2;Urgente;NaN",  # N6: not a count, though a float parser reads it
        "2024;2;Urgente;inf",  # N6
        "2024;2;Rutina;5",
        "2024;13;Rutina;5",  # N4: no month 13
    ]).encode("latin-1") + b"\n")
    batch = w.parse()
    jan, feb = date(2024, 1, 1), date(2024, 2, 1)
    assert values(batch, "LAW_ENFORCEMENT_CALLS_FOR_SERVICE") == {(jan, None): 1240, (feb, None): 5}
    assert values(batch, "LAW_ENFORCEMENT_CALLS_FOR_SERVICE", CALL) == {
        (jan, "EMERGENCY"): 1210, (jan, "NON_EMERGENCY"): 30, (feb, "NON_EMERGENCY"): 5}
    row = file_row(batch, "monthly_calls.csv")
    assert (row["rows_total"], row["rows_loaded"], row["rows_rejected"]) == (9, 5, 4)
    assert findings(batch, "monthly_calls.csv") == [
        ("N6", 6, "Número", "N/A"), ("N6", 7, "Número", "NaN"), ("N6", 8, "Número", "inf"), ("N4", 10, "Mes", "13")]


def test_a_big_export_in_another_encoding_is_transcoded_beside_the_store(w, monkeypatch, tmp_path):
    """helper-49: the transcoded copy was written to the system's temp folder; a small /tmp full made the export
    UNREADABLE for good, blamed on "the mapping's encoding and delimiter". It goes beside the store, and a scratch
    copy that cannot be written fails the run rather than the export."""
    import tempfile

    from jc_pipeline.lib.ingest import inbox
    from jc_pipeline.lib.mappings import common, spec

    write_mapping(w.data_dir, "le", AGGREGATED)
    path = w.data_dir / "inbox" / "le" / "LAW_ENFORCEMENT" / "monthly_calls.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes("Año;Mes;Tipo;Número\n2024;1;Urgente;10\n".encode("latin-1"))
    monkeypatch.setattr(inbox, "IN_MEMORY_LIMIT", 0)  # read from disk, so transcoded into a scratch file
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no such temp folder"))
    left = w.data_dir / "pipeline" / "native_killed" / "export.csv"  # what an ingest killed mid-export leaves
    left.parent.mkdir(parents=True)
    left.write_bytes(b"x" * 1000)
    assert values(w.parse(), "LAW_ENFORCEMENT_CALLS_FOR_SERVICE") == {(date(2024, 1, 1), None): 10}
    assert list((w.data_dir / "pipeline").iterdir()) == []  # its own scratch gone too
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full to fill a scratch file with")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "export.csv").symlink_to("/dev/full")  # every write: No space left on device
    source = spec.parse_mapping(AGGREGATED, "le", w.registry, shown="mappings/le.yaml").sources[0]
    with pytest.raises(common.ScratchUnwritable, match="cannot be written .No space left on device.; free space"):
        common.load(path, None, source, scratch)


def test_native_datapoints_flow_through_store_and_resolution(w):
    write_mapping(w.data_dir, "le", CAD)
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "cad_calls_2024.csv", [
        ["Incident No", "Call Received", "Priority"],
        ["C1", "2024-01-03 10:00:00", "1"], ["C2", "2024-01-04 10:00:00", "3"], ["C3", "2024-01-05", "7"]])
    w.ingest()
    files, found = w.table("source_files"), w.table("rejected_rows")
    assert (files["rows_total"] == files["rows_loaded"] + files["rows_rejected"]).all()
    assert found.select("rule", "row_number", "column_name", "raw_value", "severity").rows() == [
        ("N3", 4, "Priority", "7", "ERROR")]
    metrics = w.metrics().filter(pl.col("metric_key") == "LAW_ENFORCEMENT_CALLS_FOR_SERVICE")
    total = metrics.filter(pl.col("dimension").is_null())
    assert total["value"].to_list() == [2.0] and total["period_start"].to_list() == [date(2024, 1, 1)]
    assert metrics.height == 1 + 3  # total + EMERGENCY, NON_EMERGENCY and UNKNOWN (0)
    files = w.table("source_files")
    assert files.select("rows_total", "rows_loaded", "rows_rejected").row(0) == (3, 2, 1)
    assert w.parse().files.height == 0  # unchanged: not read again


def test_population_rounded_to_whole_people_keeps_breakdowns_adding_up(w):
    write_mapping(w.data_dir, "fy_jail", JAIL.replace("        end: out\n", "        end: out\n        round: true\n"))
    deliver_csv(w.data_dir, "fy_jail", "JAILS", "bookings.csv", [
        ["BookingNo", "Booked", "Released", "TopCharge", "Status", "ReleaseReason"],
        ["B1", "2024-01-01", "2024-01-21", "ASSAULT", "PRE", "ROR"],  # 20 days: 20/31 = 0.65
        ["B2", "2024-01-01", "2024-01-21", "THEFT", "PRE", "ROR"],  # 0.65
        ["B3", "2024-01-01", "2024-01-21", "", "PRE", "ROR"],  # 0.65 (unknown offense)
        ["B4", "2024-01-01", "2024-02-01", "THEFT", "PRE", "ROR"],  # 1
    ])
    batch = w.parse()
    jan = date(2024, 1, 1)
    assert values(batch, "JAILS_TOTAL_POPULATION") == {(jan, None): 3}  # 60/31 + 1 = 2.94
    # PERSON 0.65, PROPERTY 1.65, UNKNOWN 0.65: floors 0+1+0 = 1, two more go to the largest remainders
    offenses = values(batch, "JAILS_TOTAL_POPULATION", OFFENSE)
    assert sum(offenses.values()) == 3 and offenses[(jan, "PROPERTY")] in (1, 2)
    assert all(v == int(v) for v in offenses.values())


def test_dates_in_other_formats_and_padded_cells_count_like_any_other(w):
    """Each date column is read with its most common format first; the records it misses are read again with
    every format, and every cell is compared stripped and case-insensitively."""
    write_mapping(w.data_dir, "le", CAD)
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "cad_calls_2024.csv", [
        ["Incident No", "Call Received", "Priority"],
        ["C1", "2024-01-03 10:00:00", "1"],  # the export's usual format
        ["C2", "01/04/2024", " 2 "],  # m/d/Y, and a padded code
        ["C3", " 2024-01-05 ", "3"],  # a padded date
        ["C4", "2024-02-01T08:00:00", "admin"],  # mapped to null, in other letters: left out
        ["  ", " ", "   "],  # white space only: a blank record, skipped but numbered
        ["C5", "2024-02-30", "1"],  # no such day: N4
        ["C6", "1999-12-31", "1"],  # before 2000: N5
    ])
    batch = w.parse()
    jan = date(2024, 1, 1)
    assert values(batch, "LAW_ENFORCEMENT_CALLS_FOR_SERVICE") == {(jan, None): 3}
    assert {k: v for k, v in values(batch, "LAW_ENFORCEMENT_CALLS_FOR_SERVICE", CALL).items() if v} == {
        (jan, "EMERGENCY"): 2, (jan, "NON_EMERGENCY"): 1}
    assert findings(batch, "cad_calls_2024.csv") == [("N4", 7, "Call Received", "2024-02-30"),
                                                     ("N5", 8, "Call Received", "1999-12-31")]
    row = file_row(batch, "cad_calls_2024.csv")
    assert (row["rows_total"], row["rows_loaded"], row["rows_rejected"]) == (6, 4, 2)


def test_listed_date_formats_are_tried_in_their_order(w):
    write_mapping(w.data_dir, "le", CAD.replace("    kind: records\n", '    kind: records\n    date_formats: '
                                                '["%d.%m.%Y", "%m/%d/%Y"]\n'))
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "cad_calls_2024.csv", [
        ["Incident No", "Call Received", "Priority"],
        ["C1", "02.03.2024", "1"],  # 2 March
        ["C2", "03/02/2024", "1"],  # only the second format reads it: 2 March
        ["C3", "2024-03-02", "1"],  # neither: N4
    ])
    batch = w.parse()
    assert values(batch, "LAW_ENFORCEMENT_CALLS_FOR_SERVICE") == {(date(2024, 3, 1), None): 2}
    assert findings(batch, "cad_calls_2024.csv") == [("N4", 4, "Call Received", "2024-03-02")]


@pytest.mark.parametrize("listed", [None, ["%m/%d/%Y"]], ids=["defaults", "listed"])
def test_a_date_that_reads_day_first_says_so(w, listed):
    """helper-41: an export that writes the day first, read month first (the defaults' US order, or a format listed
    so), reads 03/04/2024 as 4 March without a word; only its dates past the 12th fail. Their N4 names the format
    that reads them, and why it matters for the others."""
    formats = f"    date_formats: {listed}\n".replace("'", '"') if listed else ""
    write_mapping(w.data_dir, "le", CAD.replace("    kind: records\n", "    kind: records\n" + formats))
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "cad_calls_2024.csv", [
        ["Incident No", "Call Received", "Priority"],
        ["C1", "03/04/2024", "1"],  # read 4 March: the hint is for this one
        ["C2", "13/04/2024", "1"],  # only day first reads it
        ["C3", "13/13/2024", "1"],  # no order reads it: the plain N4
    ])
    batch = w.parse()
    assert values(batch, "LAW_ENFORCEMENT_CALLS_FOR_SERVICE") == {(date(2024, 3, 1), None): 1}
    found = batch.findings.select("row_number", "raw_value", "message").rows()
    assert [row[:2] for row in found] == [(3, "13/04/2024"), (4, "13/13/2024")]
    assert found[0][2].startswith("'13/04/2024' in column 'Call Received' is not a date the mapping reads (1 record, "
                                  "row 3), but it reads with day and month the other way round, '%d/%m/%Y")
    assert "its dates with a day of 12 or less are read month first" in found[0][2]
    assert found[1][2].endswith("fix the export or list its format under date_formats")


def test_default_formats_read_iso_minutes_and_a_two_digit_year_is_named(w):
    """helper-47: '2024-01-31T19:30' (ISO with T, no seconds) was N4 though the defaults claim ISO with T; a two-digit
    year read by '%m/%d/%Y' as the year 24 was an N5 "outside 2000-01" without a word of why, and, as a stay's start
    (helper-50), no finding at all: the stay was counted from 2000-01. Any date column says so now (N4)."""
    write_mapping(w.data_dir, "le", CAD)
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "cad_calls_2024.csv", [
        ["Incident No", "Call Received", "Priority"],
        ["C1", "2024-01-31T19:30", "1"],
        ["C2", "2024-02-01T08:00", "1"],
    ])
    assert values(w.parse(), "LAW_ENFORCEMENT_CALLS_FOR_SERVICE") == {(date(2024, 1, 1), None): 1,
                                                                      (date(2024, 2, 1), None): 1}
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "cad_calls_2024.csv", [
        ["Incident No", "Call Received", "Priority"], ["C1", "1/31/24 19:30", "1"], ["C2", "1/31/2024 19:30", "1"]])
    write_mapping(w.data_dir, "fy_jail", JAIL)
    deliver_csv(w.data_dir, "fy_jail", "JAILS", "bookings.csv", [
        ["BookingNo", "Booked", "Released", "TopCharge", "Status", "ReleaseReason"],
        ["B1", "01/05/24", "", "THEFT", "SENT", ""], ["B2", "2024-01-20", "2024-01-21", "THEFT", "SENT", ""]])
    batch = w.parse()
    assert values(batch, "LAW_ENFORCEMENT_CALLS_FOR_SERVICE") == {(date(2024, 1, 1), None): 1}
    assert values(batch, "JAILS_TOTAL_POPULATION") == {(date(2024, 1, 1), None): pytest.approx(1 / 31)}
    found = batch.findings.select("rule", "raw_value", "message").sort("raw_value").rows()
    assert [row[:2] for row in found] == [("N4", "01/05/24"), ("N4", "1/31/24 19:30")]
    assert all("reads as a date in the year 0-99 (1 record, row 2): a two-digit year? List the format with %y" in m
               for _, _, m in found)
    # helper-51: a %y listed after a %Y reads it (the %Y reading of the year 24 is not the one kept)
    write_mapping(w.data_dir, "le", CAD.replace("    kind: records\n", "    kind: records\n    date_formats: "
                                                '["%m/%d/%Y %H:%M", "%m/%d/%y %H:%M"]\n'))
    batch = w.parse()
    assert values(batch, "LAW_ENFORCEMENT_CALLS_FOR_SERVICE") == {(date(2024, 1, 1), None): 2}
    assert "1/31/24 19:30" not in batch.findings["raw_value"].to_list()


def test_a_time_with_a_utc_offset_is_dated_in_the_state_s_time_zone(w, monkeypatch):
    """helper-47: three calls on the evening of January 31 in New York, stamped in UTC, counted one in January and two
    in February: the date was taken as written, the offset dropped."""
    monkeypatch.setenv("JC_TIMEZONE", "America/New_York")
    write_mapping(w.data_dir, "le", CAD.replace("    kind: records\n",
                                                '    kind: records\n    date_formats: ["%Y-%m-%dT%H:%M:%S%#z"]\n'))
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "cad_calls_2024.csv", [
        ["Incident No", "Call Received", "Priority"],
        ["C1", "2024-01-31T23:59:00Z", "1"],  # 18:59 in New York
        ["C2", "2024-02-01T00:30:00Z", "1"],  # 19:30 on January 31
        ["C3", "2024-02-01T04:59:00+00:00", "1"],  # 23:59 on January 31
        ["C4", "2024-01-31T19:30:00-05:00", "1"],
        ["C5", "2024-02-01T05:00:00Z", "1"],  # midnight: February 1
    ])
    assert values(w.parse(), "LAW_ENFORCEMENT_CALLS_FOR_SERVICE") == {(date(2024, 1, 1), None): 4,
                                                                      (date(2024, 2, 1), None): 1}


def test_a_month_starts_at_the_state_s_midnight_for_the_ingest_too(w, monkeypatch):
    """helper-47: Guam's nightly run at 02:00 on February 1 (16:00 UTC on January 31) rejected February's rows, R13
    "starts after the file was ingested (2026-01-31)", and the export's calls after midnight, N5."""
    monkeypatch.setenv("JC_TIMEZONE", "Pacific/Guam")
    write_mapping(w.data_dir, "le", CAD)
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "cad_calls_2026.csv", [
        ["Incident No", "Call Received", "Priority"], ["C1", "2026-02-01 00:20:00", "1"]])
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", [["year", "month", "value"], [2026, 2, 4]])
    batch = w.parse(now=datetime(2026, 1, 31, 16, 0))
    assert batch.findings.filter(pl.col("severity") == "ERROR").height == 0
    assert values(batch, "LAW_ENFORCEMENT_CALLS_FOR_SERVICE") == {(date(2026, 2, 1), None): 1}
    assert values(batch, "LAW_ENFORCEMENT_ARRESTS") == {(date(2026, 2, 1), None): 4}
    monkeypatch.setenv("JC_TIMEZONE", "America/New_York")  # 11:00 on January 31 there: February has not begun
    assert set(w.parse(now=datetime(2026, 1, 31, 16, 0)).findings["rule"]) == {"N5", "R13"}


@pytest.mark.parametrize(("agency_id", "mapping_name"), [("LE", "le"), ("le", "LE")])
def test_an_export_is_the_mapping_s_whatever_case_the_id_folder_and_mapping_file_use(tmp_path, agency_id, mapping_name):
    """Inbox folders match agency ids in any case (one folder on Windows and macOS); the mapping file does too, so
    an id spelled 'LE' in agencies.csv does not turn its export into a bulk upload (F3) (helper-26)."""
    w = Warehouse(tmp_path, agencies=[(agency_id, *a[1:]) if a[0] == "le" else a for a in AGENCIES])
    write_mapping(w.data_dir, mapping_name, CAD)
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "cad_calls_2024.csv",
                [["Incident No", "Call Received", "Priority"], ["C1", "2024-01-03 10:00:00", "1"]])
    batch = w.parse()
    assert values(batch, "LAW_ENFORCEMENT_CALLS_FOR_SERVICE") == {(date(2024, 1, 1), None): 1}
    assert batch.findings.filter(pl.col("severity") == "ERROR").height == 0
    w.close()
