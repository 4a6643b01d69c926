"""Native extracts: every kind of mapping problem is specific, and the rest of the export still loads."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest

from jc_pipeline.lib.mappings import MappingError
from jc_pipeline.lib.mappings.spec import parse_mapping
from jc_pipeline.lib.registry import load_registry
from jc_pipeline.lib.roster import load_roster
from jc_pipeline_tests.ingest_support import Warehouse, deliver_csv, deliver_xlsx, write_roster
from jc_pipeline_tests.reliability_support import far_cells_xml, small_workbook, with_sheet_xml
from jc_pipeline_tests.test_mappings_counts import CAD, file_row, findings, values, write_mapping

REGISTRY = load_registry()


def problems(text: str) -> list[str]:
    with pytest.raises(MappingError) as caught:
        parse_mapping(text, "le", REGISTRY, shown="mappings/le.yaml")
    return caught.value.problems


@pytest.fixture
def w(tmp_path):
    warehouse = Warehouse(tmp_path)
    yield warehouse
    warehouse.close()


def test_a_valid_mapping_parses():
    mapping = parse_mapping(CAD, "le", REGISTRY, shown="mappings/le.yaml")
    (source,) = mapping.sources
    assert source.matches("LAW_ENFORCEMENT/cad_calls_2024.csv")
    assert not source.matches("LAW_ENFORCEMENT/sub/cad_calls_2024.csv")
    assert not source.matches("JAILS/cad_calls_2024.csv")


@pytest.mark.parametrize(("change", "expected"), [
    ("pattern: LAW_ENFORCEMENT/cad_calls_*.csv", "pattern: ../le/LAW_ENFORCEMENT/x.csv"),
    ("pattern: LAW_ENFORCEMENT/cad_calls_*.csv", "pattern: /etc/LAW_ENFORCEMENT/x.csv"),
    ("pattern: LAW_ENFORCEMENT/cad_calls_*.csv", "pattern: LAW_ENFORCEMENT/../../x.csv"),
    ("pattern: LAW_ENFORCEMENT/cad_calls_*.csv", "pattern: LAW_ENFORCEMENT/**/x.csv"),  # matched one folder only
])
def test_patterns_may_not_leave_the_agency_folder(change, expected):
    found = problems(CAD.replace(change, expected))
    assert any("sources[0].pattern" in p for p in found), found


def test_problems_name_the_file_the_key_path_and_what_is_wrong():
    text = (CAD.replace("LAW_ENFORCEMENT_CALLS_FOR_SERVICE", "LAW_ENFORCEMENT_CALLS")
            .replace("kind: records", "kind: records\n    colour: red")
            + "  - name: second\n    pattern: JAILS/x.csv\n    kind: records\n    columns: {a: A}\n"
              "    metrics:\n      - metric: JAILS_TOTAL_ADMISSIONS\n        date: b\n"
              "        breakdowns:\n          - dimension: metric/offense/type\n            column: a\n"
              "            values: {x: VIOLENT}\n")
    found = problems(text)
    assert "mappings/le.yaml: sources[0]: unknown key 'colour' (allowed: agency, columns, date_formats, delimiter, " \
           "encoding, format, kind, metrics, name, pattern, period, sheet)" in found
    assert any(p.startswith("mappings/le.yaml: sources[0].metrics[0].metric: unknown metric key "
                            "'LAW_ENFORCEMENT_CALLS'") for p in found)
    assert any(p.startswith("mappings/le.yaml: sources[1].metrics[0].date: 'b' is not declared under columns")
               for p in found)
    assert any(p.startswith("mappings/le.yaml: sources[1].metrics[0].breakdowns[0].values.x: 'VIOLENT' is not one "
                            "of PERSON") for p in found)


def test_yaml_is_data_never_code():
    found = problems("sources: !!python/object/apply:os.system ['echo hi']\n")
    assert len(found) == 1 and found[0].startswith("mappings/le.yaml: not valid YAML")


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("      - metric: LAW_ENFORCEMENT_CALLS_FOR_SERVICE\n        date: received", "      - date: received",
     "sources[0].metrics[0]: missing key 'metric'"),
    ("            column: priority\n", "", "sources[0].metrics[0].breakdowns[0]: missing key 'column'"),
    ("  - name: cad\n    pattern:", "  - pattern:", "sources[0]: missing key 'name'"),
])
def test_a_missing_key_is_a_problem_of_the_mapping_not_a_crash(old, new, expected):
    found = problems(CAD.replace(old, new))
    assert any(expected in p for p in found), found


def test_an_encoding_that_cannot_read_text_is_refused():
    found = problems(CAD.replace("kind: records", "kind: records\n    encoding: undefined"))
    assert any("sources[0].encoding: unknown encoding 'undefined'" in p for p in found), found


def test_a_period_whose_first_month_is_after_its_last_is_refused():
    found = problems(CAD.replace("kind: records", "kind: records\n    period: {from: 2025-01, to: 2024-01}"))
    assert any("sources[0].period: 'from' (2025-01) is after 'to' (2024-01)" in p for p in found), found


@pytest.mark.parametrize("fmt", ["%Q", "%H:%M", "%Y", "%%d"])
def test_a_date_format_that_cannot_read_a_records_month_is_refused(fmt):
    found = problems(CAD.replace("kind: records", f"kind: records\n    date_formats: ['%d.%m.%Y', '{fmt}']"))
    assert found == [f"mappings/le.yaml: sources[0].date_formats[1]: {fmt!r} does not read a date back to its month "
                     "(chrono strftime: e.g. '%m/%d/%Y %H:%M', '%d.%m.%Y', '%Y-%m')"]


@pytest.mark.parametrize("fmt", ["%Y-%m", "%m/%d/%y %I:%M %p", "%Y-%m-%dT%H:%M:%S%:z", "%Y-%m-%dT%H:%M:%S%#z",
                                 "%b %d %Y"])
def test_date_formats_that_read_a_month_are_accepted(fmt):
    mapping = parse_mapping(CAD.replace("kind: records", f"kind: records\n    date_formats: ['{fmt}']"), "le",
                            REGISTRY, shown="mappings/le.yaml")
    assert mapping.sources[0].date_formats == (fmt,)


@pytest.mark.parametrize("version", ["true", "1.5", "'1'"])
def test_only_version_1_is_accepted(version):
    assert problems(f"version: {version}\n" + CAD)[0].startswith("mappings/le.yaml: version: unsupported version")


def test_two_spellings_of_one_source_value_mapped_to_different_members_are_refused():
    found = problems(CAD.replace('"3": NON_EMERGENCY', '"3": NON_EMERGENCY, "Admin ": EMERGENCY'))
    assert found == ["mappings/le.yaml: sources[0].metrics[0].breakdowns[0].values.ADMIN: 'ADMIN' and 'Admin ' are "
                     "the same value once case and spaces are ignored, and map to different members; keep one"]
    same = CAD.replace('"3": NON_EMERGENCY', '"3": NON_EMERGENCY, " 3": NON_EMERGENCY')
    assert parse_mapping(same, "le", REGISTRY, shown="mappings/le.yaml").sources  # one meaning: no problem


def test_yaml_aliases_that_expand_without_bound_are_refused_at_once():
    """Aliases of aliases: 700 bytes that expand to 9^8 values, each printed in a message if read."""
    levels = ["a0: &a0 [x]"] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    text = "defs:\n" + "".join(f"  {line}\n" for line in levels) + CAD.replace("name: cad", "name: *a8")
    assert len(text) < 2000
    found = problems(text)
    assert found == ["mappings/le.yaml: holds more than 100,000 values once its YAML aliases (*name) are expanded; "
                     "write the mapping out without aliases nested in aliases"]


def test_a_wrong_dimension_or_member_for_the_metric_is_reported():
    found = problems(CAD.replace("metric/law_enforcement/calls_for_service/type", "metric/offense/type"))
    assert any("breakdowns[0].dimension: LAW_ENFORCEMENT_CALLS_FOR_SERVICE has no breakdown 'metric/offense/type'"
               in p for p in found)
    found = problems(CAD.replace("LAW_ENFORCEMENT/cad", "JAILS/cad"))
    assert any("belongs to sector LAW_ENFORCEMENT, but the source pattern's folder is JAILS" in p for p in found)


def test_a_level_is_never_counted_as_events_nor_events_as_a_population():
    """Counting records per month of a population, staff or open-cases metric would store admissions as a
    population; the reverse, days in custody as events."""
    staff = CAD.replace("LAW_ENFORCEMENT_CALLS_FOR_SERVICE", "LAW_ENFORCEMENT_TOTAL_STAFF")
    staff = staff.split("        breakdowns:")[0]
    assert problems(staff) == [
        "mappings/le.yaml: sources[0].metrics[0].count: LAW_ENFORCEMENT_TOTAL_STAFF is a level at a point in time (a "
        "population, staff or open cases), not a count of events: give count: population with start and end columns"]
    calls = CAD.replace("        date: received\n", "        count: population\n        start: received\n"
                        "        end: received\n").replace("id: Incident No, ", "")
    assert problems(calls) == ["mappings/le.yaml: sources[0].metrics[0].count: LAW_ENFORCEMENT_CALLS_FOR_SERVICE "
                               "counts events or money, not a level at a point in time; population is for "
                               "daily-population metrics"]
    # Money is no level either, INSTANT upstream as prosecution's funding is (spec §9.3).
    funding = calls.replace("LAW_ENFORCEMENT_CALLS_FOR_SERVICE", "PROSECUTION_FUNDING")
    funding = funding.replace("LAW_ENFORCEMENT/cad", "PROSECUTION/cad").split("        breakdowns:")[0]
    assert problems(funding) == [p.replace("LAW_ENFORCEMENT_CALLS_FOR_SERVICE", "PROSECUTION_FUNDING")
                                 for p in problems(calls)]


def test_an_invalid_mapping_makes_its_exports_unreadable_with_n1_and_leaves_bulk_files_alone(w):
    write_mapping(w.data_dir, "le", CAD.replace("Priority}", "Priority}\n    shape: round"))
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "cad_calls_2024.csv", [["Call Received"], ["2024-01-01"]])
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", [["year", "month", "value"], [2023, 1, 5]])
    batch = w.parse()
    native = file_row(batch, "cad_calls_2024.csv")
    assert native["status"] == "UNREADABLE" and "unknown key 'shape'" in native["reason"]
    assert findings(batch, "cad_calls_2024.csv")[0][0] == "N1"
    bulk = file_row(batch, "arrests.csv")
    assert bulk["status"] == "INGESTED" and bulk["rows_loaded"] == 1


JAIL = """
sources:
  - name: bookings
    pattern: JAILS/bookings_*.csv
    kind: records
    columns: {in: Booked, out: Released, charge: Charge, unit: Housing}
    metrics:
      - metric: JAILS_TOTAL_ADMISSIONS
        date: in
      - metric: JAILS_TOTAL_POPULATION
        count: population
        start: in
        end: out
      - metric: JAILS_PRE_ADJUDICATION_ADMISSIONS
        date: in
        where: {column: unit, in: [PRETRIAL]}
"""


def test_not_in_keeps_empty_cells_and_blank_false_drops_them(w):
    """An empty cell is in no list: `in` leaves it out, `not_in` keeps it."""
    write_mapping(w.data_dir, "fy_jail", JAIL.replace("in: [PRETRIAL]}", "not_in: [SENTENCED]}") + """\
      - metric: JAILS_POST_ADJUDICATION_ADMISSIONS
        date: in
        where: [{column: unit, not_in: [PRETRIAL]}, {column: unit, blank: false}]
""")
    deliver_csv(w.data_dir, "fy_jail", "JAILS", "bookings_3.csv", [
        ["Booked", "Released", "Charge", "Housing"], ["2024-01-05", "", "X", "PRETRIAL"],
        ["2024-01-06", "", "X", ""], ["2024-01-07", "", "X", "SENTENCED"], ["2024-01-08", "", "X", "  "]])
    batch = w.parse()
    assert values(batch, "JAILS_PRE_ADJUDICATION_ADMISSIONS") == {(date(2024, 1, 1), None): 3}
    assert values(batch, "JAILS_POST_ADJUDICATION_ADMISSIONS") == {(date(2024, 1, 1), None): 1}


def test_missing_column_stops_only_the_metrics_that_need_it(w):
    write_mapping(w.data_dir, "fy_jail", JAIL)
    deliver_csv(w.data_dir, "fy_jail", "JAILS", "bookings_1.csv", [
        ["Booked", "Released", "Charge"], ["2024-01-05", "2024-01-07", "X"]])
    batch = w.parse()
    assert findings(batch, "bookings_1.csv") == [("N2", 1, "Housing", None)]
    message = batch.findings["message"][0]
    assert "JAILS_PRE_ADJUDICATION_ADMISSIONS" in message and "no column 'Housing'" in message
    assert values(batch, "JAILS_TOTAL_ADMISSIONS") == {(date(2024, 1, 1), None): 1}
    assert values(batch, "JAILS_TOTAL_POPULATION") == {(date(2024, 1, 1), None): pytest.approx(2 / 31)}
    row = file_row(batch, "bookings_1.csv")
    assert (row["rows_total"], row["rows_rejected"], row["status"]) == (1, 0, "ERRORED")


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_a_missing_column_is_named_on_the_header_row_below_blank_lines(w, kind):
    """helper-65: N2 was written on row 1 whatever row the header was on; an export without any header names row 1
    (helper-66: row 0 for an empty sheet, one past the end for blank lines)."""
    rows = [[], [], ["Booked", "Released", "Charge"], ["2024-01-05", "2024-01-07", "X"]]
    if kind == "xlsx":
        write_mapping(w.data_dir, "fy_jail", JAIL.replace("bookings_*.csv", "bookings_*.xlsx") + "    format: xlsx\n")
        deliver_xlsx(w.data_dir, "fy_jail", "JAILS", "bookings_1.xlsx", {"Bookings": rows})
        deliver_xlsx(w.data_dir, "fy_jail", "JAILS", "bookings_2.xlsx", {"Bookings": [[None]]})
    else:
        write_mapping(w.data_dir, "fy_jail", JAIL)
        deliver_csv(w.data_dir, "fy_jail", "JAILS", "bookings_1.csv", rows)
        (w.data_dir / "inbox" / "fy_jail" / "JAILS" / "bookings_2.csv").write_text("\n\n\n")
    batch = w.parse()
    assert findings(batch, f"bookings_1.{kind}") == [("N2", 3, "Housing", None)]
    assert {row for _, row, *_ in findings(batch, f"bookings_2.{kind}")} == {1}


def test_dates_out_of_range_and_intervals_ending_before_they_start(w):
    write_mapping(w.data_dir, "fy_jail", JAIL)
    deliver_csv(w.data_dir, "fy_jail", "JAILS", "bookings_2.csv", [
        ["Booked", "Released", "Charge", "Housing"],
        ["1999-12-31", "2000-01-02", "X", "GEN"],  # admission before 2000: N5; the stay still counts 1 day
        ["2024-01-10", "2024-01-05", "X", "GEN"],  # released before booked: N6 (admission still counted)
        ["2024-01-10", "2024-01-12", "X", "PRETRIAL"],
        ["2030-01-01", "", "X", "GEN"],  # booked in the future: N5
        ["soon", "", "X", "GEN"],  # N4 for both metrics, reported once
    ])
    batch = w.parse()
    assert findings(batch, "bookings_2.csv") == [("N5", 2, "Booked", "1999-12-31"), ("N6", 3, "Released", "2024-01-05"),
                                                 ("N5", 5, "Booked", "2030-01-01"), ("N4", 6, "Booked", "soon")]
    assert values(batch, "JAILS_TOTAL_ADMISSIONS") == {(date(2024, 1, 1), None): 2}
    assert values(batch, "JAILS_PRE_ADJUDICATION_ADMISSIONS") == {(date(2024, 1, 1), None): 1}
    row = file_row(batch, "bookings_2.csv")
    assert (row["rows_total"], row["rows_loaded"], row["rows_rejected"]) == (5, 4, 1)


def test_an_export_in_the_wrong_encoding_is_unreadable_not_a_crash(w):
    write_mapping(w.data_dir, "le", CAD)
    path = w.data_dir / "inbox" / "le" / "LAW_ENFORCEMENT" / "cad_calls_x.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes("Incident No,Call Received,Priority\nC1,2024-01-01,Ürgent\n".encode("utf-16"))
    batch = w.parse()
    row = file_row(batch, "cad_calls_x.csv")
    assert (row["status"], row["rows_total"], batch.datapoints.height) == ("UNREADABLE", 0, 0)
    assert row["reason"].startswith("inbox/le/LAW_ENFORCEMENT/cad_calls_x.csv: the export cannot be read")
    assert "invalid utf-8" in row["reason"] and "check the encoding" in row["reason"]
    assert findings(batch, "cad_calls_x.csv") == [("F0", None, None, "cad_calls_x.csv")]  # no row: the file


def test_a_hostile_export_workbook_is_refused_for_itself_not_the_run(w):
    """A 2 KB workbook with a cell at XFD1048576 made calamine allocate 512 GiB in the ingest's own process, which
    aborted: the export is read as bulk workbooks are, screened and in the capped worker."""
    cadx = CAD.replace("cad_calls_*.csv", "cadx_*.xlsx").replace("    kind: records",
                                                                  "    format: xlsx\n    kind: records")
    write_mapping(w.data_dir, "le", cadx)
    far = with_sheet_xml(small_workbook({"Calls": [["Incident No", "Call Received", "Priority"]]}),
                         far_cells_xml("XFD1048576"))
    (w.data_dir / "inbox" / "le" / "LAW_ENFORCEMENT").mkdir(parents=True)
    (w.data_dir / "inbox" / "le" / "LAW_ENFORCEMENT" / "cadx_2024.xlsx").write_bytes(far)
    deliver_xlsx(w.data_dir, "le", "LAW_ENFORCEMENT", "cadx_good.xlsx", {"Calls": [
        ["Incident No", "Call Received", "Priority"], ["C1", "2024-01-03 10:00:00", "1"]]})
    batch = w.parse()
    assert file_row(batch, "cadx_2024.xlsx")["status"] == "UNREADABLE"
    [message] = batch.findings.filter(pl.col("path").str.ends_with("cadx_2024.xlsx"))["message"].to_list()
    assert "16,384 columns x 1,048,576 rows" in message
    assert file_row(batch, "cadx_good.xlsx")["rows_loaded"] == 1


def test_exports_are_counted_alike_from_memory_or_streamed_from_disk(tmp_path):
    """Small files arrive as bytes, big ones are scanned from disk, streaming: same datapoints, findings and
    accounting either way."""
    import jc_pipeline.lib.mappings as native

    write_roster(tmp_path)
    roster = load_roster(tmp_path, REGISTRY)
    mapping = parse_mapping(RMS_FOR_STREAMING, "le", REGISTRY, shown="mappings/le.yaml")
    path = Path(tmp_path) / "arrests.csv"
    lines = ["ArrestID|ArrestDate|Offense|Race|Hispanic|Sex"]
    for i in range(200_000):
        lines.append(f"A{i // 2}|{1 + i % 12:02d}/{1 + i % 28:02d}/2023|{('THEFT', 'ASSAULT', 'DUI', 'X')[i % 4]}|"
                     f"{'WB'[i % 2]}|{'YN '[i % 3].strip()}|{'MF'[i % 2]}")
    path.write_text("\n".join(lines) + "\n")
    run = lambda data: native.extract(path, data, mapping.sources[0], file_idx=0,  # noqa: E731
                                      agency=roster.agencies["le"], roster=roster, now=datetime(2024, 6, 1),
                                      scratch_in=tmp_path / "pipeline")
    in_memory, from_disk = run(path.read_bytes()), run(None)
    keys = ["metric_key", "period_start", "dimension", "category"]
    assert in_memory.datapoints.sort(keys, nulls_last=False).equals(from_disk.datapoints.sort(keys, nulls_last=False))
    assert in_memory.findings.equals(from_disk.findings)
    assert in_memory.counts == from_disk.counts == (0, 200_000, 50_000)
    totals = in_memory.datapoints.filter(pl.col("dimension").is_null())
    # two charges per arrest: every 4th charge is an unmapped X (that record is rejected), so every other arrest is
    # not counted (it cannot be classified without that charge)
    assert totals["value"].sum() == 50_000
    assert in_memory.findings["rule"].to_list() == ["N3"] and "50000 records" in in_memory.findings["message"][0]
    assert "rows 5, 9, 13, 17, 21, ..." in in_memory.findings["message"][0]


RMS_FOR_STREAMING = """
sources:
  - name: rms
    pattern: LAW_ENFORCEMENT/arrests.csv
    kind: records
    delimiter: "|"
    date_formats: ["%m/%d/%Y"]
    columns: {arrest: ArrestID, when: ArrestDate, code: Offense, race: Race, hisp: Hispanic, sex: Sex}
    metrics:
      - metric: LAW_ENFORCEMENT_ARRESTS
        date: when
        id: arrest
        breakdowns:
          - dimension: metric/offense/type
            column: code
            values: {ASSAULT: PERSON, THEFT: PROPERTY, DUI: PUBLIC_ORDER}
          - dimension: global/race_and_ethnicity
            race: {column: race, values: {W: WHITE, B: BLACK}}
            ethnicity: {column: hisp, values: {Y: HISPANIC, N: NOT_HISPANIC}}
"""
