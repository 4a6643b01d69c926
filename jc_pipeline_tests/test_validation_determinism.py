"""The same datapoints give the same stored results and check samples whatever the order of agency_metrics' rows
and DuckDB's thread count: a finding whose lineage flaps rewrites the agency's feedback every night."""

from __future__ import annotations

from datetime import date

from jc_pipeline.lib.periods import add_months
from jc_pipeline_tests.test_validation_support import Warehouse, month

MARCH = month(2025, 3)
Y2024 = date(2024, 1, 1), date(2025, 1, 1)
ARRESTS = "LAW_ENFORCEMENT_ARRESTS"
CALLS = "LAW_ENFORCEMENT_CALLS_FOR_SERVICE"
STAFF = "LAW_ENFORCEMENT_TOTAL_STAFF"
POPULATION = "JAILS_TOTAL_POPULATION"
OFFENSE = "metric/offense/type"
STAFF_TYPE = "metric/law_enforcement/staff/type"
#: More agencies than a check's sample holds (run.SAMPLE_SIZE), so which ten are sampled matters.
AGENCIES = [f"A{i:02}" for i in range(12)]


def _populate(wh: Warehouse) -> None:
    """Every SQL rule fails for every agency, each failing group having several candidate rows for its lineage:
    totals sent twice (two files, the same row number, different values) and breakdowns whose categories sit on
    different sheets at the same row number."""
    for agency in AGENCIES:
        wh.agency(agency, ["LAW_ENFORCEMENT", "JAILS"])
        # breakdowns_sum_to_total (4 + 8 against 10, the total of the first file), required_breakdowns_present
        # (no race, no sex), no_missing_months (no January or February).
        for file_id, value in (("f-1", 10), ("f-2", 12)):
            wh.add(agency, ARRESTS, MARCH, value, file_id=file_id, sheet="arrests", row=2)
        for sheet, value in (("person", 4), ("property", 8)):
            wh.add(agency, ARRESTS, MARCH, value, dimension=OFFENSE, category=sheet.upper(), sheet=sheet, row=5)
        # no_duplicate_datapoints (Great Expectations): the person count sent again on a third sheet, same row.
        wh.add(agency, ARRESTS, MARCH, 0, dimension=OFFENSE, category="PERSON", sheet="offense", row=5)
        # staff_breakdown_matches_total
        for file_id, value in (("f-1", 5), ("f-2", 9)):
            wh.add(agency, STAFF, Y2024[0], value, end=Y2024[1], file_id=file_id, sheet="staff", row=3)
        for sheet, category in (("officers", "LAW_ENFORCEMENT_OFFICERS"), ("vacant", "VACANT")):
            wh.add(agency, STAFF, Y2024[0], 4, end=Y2024[1], dimension=STAFF_TYPE, category=category, sheet=sheet,
                   row=4)
        # jail_population_parts_match_total and admissions_releases_match_population_change
        wh.add(agency, POPULATION, add_months(MARCH, -1), 100)
        for file_id, value in (("f-1", 100), ("f-2", 150)):
            wh.add(agency, POPULATION, MARCH, value, file_id=file_id, sheet="population", row=6)
        for metric, value in (("JAILS_PRE_ADJUDICATION_POPULATION", 60), ("JAILS_POST_ADJUDICATION_POPULATION", 60),
                              ("JAILS_TOTAL_ADMISSIONS", 300), ("JAILS_TOTAL_RELEASES", 10)):
            wh.add(agency, metric, MARCH, value)
        # no_implausible_jumps: a steady year, one earlier month and March sent twice.
        for i in range(12):
            wh.add(agency, CALLS, add_months(MARCH, i - 12), 100, file_id="f-1", sheet="calls", row=i + 2)
        wh.add(agency, CALLS, add_months(MARCH, -1), 5000, file_id="f-2", sheet="calls", row=13)
        for file_id, value in (("f-1", 400), ("f-2", 10)):
            wh.add(agency, CALLS, MARCH, value, file_id=file_id, sheet="calls", row=14)


def _validate(wh: Warehouse, threads: int) -> tuple[list[tuple], dict[str, list]]:
    """Stored results (without checked_at) in a total order, and each check's sample as reported."""
    wh.con.execute(f"SET threads = {threads}")
    outcomes = wh.validate([MARCH, Y2024[0]])
    stored = wh.con.sql("SELECT * EXCLUDE (checked_at) FROM validation_results ORDER BY ALL").fetchall()
    return stored, {name: outcome.sample for name, outcome in outcomes.items()}


def test_results_do_not_depend_on_row_order_or_threads(tmp_path):
    forward = Warehouse(tmp_path / "forward.duckdb")
    _populate(forward)
    backward = Warehouse(tmp_path / "backward.duckdb")
    _populate(backward)
    backward._pending.reverse()  # the same rows, inserted into agency_metrics in the opposite order
    stored, samples = _validate(forward, threads=1)
    assert (stored, samples) == _validate(backward, threads=2)
    assert (stored, samples) == _validate(forward, threads=2)

    # Each SQL rule failed for every agency and kept the first candidate row: the lowest row number, then file,
    # then sheet (the value used is that row's, too); Great Expectations' groups keep their first row by file, row
    # number, then sheet.
    assert all(len(samples[name]) == 10 for name in (*_SQL_FAILURES, "no_duplicate_datapoints"))
    assert [r["agency_id"] for r in samples["breakdowns_sum_to_total"]] == AGENCIES[:10]
    first: dict[tuple[str, str], tuple] = {}  # each rule's first finding of A00 per metric, in key order
    for r in forward.results(agency_id="A00"):
        first.setdefault((r["check_name"], r["metric_key"]),
                         (r["file_id"], r["sheet"], r["row_number"], r["observed"], r["expected"]))
    assert {key: first[key] for key in (*_SQL_FAILURES.items(), ("no_duplicate_datapoints", ARRESTS))} == {
        ("breakdowns_sum_to_total", ARRESTS): ("file-1", "offense", 5, "12", "10"),
        ("required_breakdowns_present", ARRESTS): ("f-1", "arrests", 2, "1", "1"),
        ("staff_breakdown_matches_total", STAFF): ("file-1", "officers", 4, "8", "5"),
        ("jail_population_parts_match_total", POPULATION): ("f-1", "population", 6, "120", "100"),
        ("admissions_releases_match_population_change", POPULATION): ("f-1", "population", 6, "290", "0"),
        ("no_implausible_jumps", CALLS): ("f-1", "calls", 14, "400", "100"),
        ("no_missing_months", CALLS): (None, None, None, "missing", "reported"),
        ("no_duplicate_datapoints", ARRESTS): ("file-1", "offense", 5, None, None),  # the person count
    }


#: Each SQL rule and the metric of the finding checked above.
_SQL_FAILURES = {
    "breakdowns_sum_to_total": ARRESTS, "required_breakdowns_present": ARRESTS,
    "staff_breakdown_matches_total": STAFF, "jail_population_parts_match_total": POPULATION,
    "admissions_releases_match_population_change": POPULATION, "no_implausible_jumps": CALLS,
    "no_missing_months": CALLS,
}
