"""Re-uploads (latest wins per datapoint, lineage), total inference, and the resolve step."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from jc_pipeline.lib import ingest
from jc_pipeline_tests.ingest_support import (Warehouse, assert_accounting, deliver_csv, deliver_xlsx, stage_rows,
                                              touch_later)


@pytest.fixture
def warehouse(tmp_path):
    w = Warehouse(tmp_path)
    yield w
    assert_accounting(w)
    w.close()


def current(w: Warehouse) -> list[tuple]:
    """(metric, period_start, category, value, file path, sheet, row, inferred) of agency_metrics."""
    paths = w.table("source_files").select("file_id", "path")
    frame = w.metrics().join(paths, on="file_id", how="left")
    return frame.select("metric_key", "period_start", "category", "value", "path", "sheet", "row_number",
                        "is_inferred_total").rows()


def test_byte_identical_reupload_is_a_no_op(warehouse):
    path = deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv",
                       [["year", "month", "value"], [2023, 1, 5]])
    first = warehouse.ingest()
    before = [warehouse.table(t) for t in ("source_files", "rejected_rows", "staged", "agency_metrics")]
    touch_later(path, 60)  # a new modification time alone changes nothing
    second = warehouse.ingest()
    assert (first.files_new, second.files_new, second.files_changed, second.files_unchanged) == (1, 0, 0, 1)
    assert second.touched_months == [] and second.rows_total == 0
    after = [warehouse.table(t) for t in ("source_files", "rejected_rows", "staged", "agency_metrics")]
    assert all(b.equals(a) for b, a in zip(before, after, strict=True))


def test_newer_file_overrides_only_the_datapoints_it_carries(warehouse):
    old = deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv",
                      [["year", "month", "value"], [2023, 1, 10], [2023, 2, 20]])
    warehouse.ingest()
    new = deliver_xlsx(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "correction.xlsx", {
        "arrests": [["year", "month", "value"], [2023, 3, 31], [2023, 2, 21]]})
    touch_later(new, 60)
    report = warehouse.ingest()
    assert report.touched_months == [date(2023, 2, 1), date(2023, 3, 1)]
    inbox = "inbox/le/LAW_ENFORCEMENT/"
    assert current(warehouse) == [
        ("LAW_ENFORCEMENT_ARRESTS", date(2023, 1, 1), None, 10.0, inbox + "arrests.csv", "arrests.csv", 2, False),
        ("LAW_ENFORCEMENT_ARRESTS", date(2023, 2, 1), None, 21.0, inbox + "correction.xlsx", "arrests", 3, False),
        ("LAW_ENFORCEMENT_ARRESTS", date(2023, 3, 1), None, 31.0, inbox + "correction.xlsx", "arrests", 2, False),
    ]
    # Changing the first file again makes it the latest upload: its February wins back, January changes.
    old.write_bytes(old.read_bytes().replace(b"2023,1,10", b"2023,1,11"))
    touch_later(old, 120)
    report = warehouse.ingest()
    assert (report.files_changed, report.files_new) == (1, 0)
    assert [(row[1].month, row[3], row[4].rsplit("/", 1)[-1]) for row in current(warehouse)] == [
        (1, 11.0, "arrests.csv"), (2, 20.0, "arrests.csv"), (3, 31.0, "correction.xlsx")]
    versions = warehouse.table("source_files", "upload_seq").filter(pl.col("path") == inbox + "arrests.csv")
    assert versions["file_id"].n_unique() == 2 and versions["upload_seq"].to_list() == [1, 3]


def test_reverting_a_file_makes_the_old_content_win_again(warehouse):
    path = deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", [["year", "month", "value"],
                                                                                      [2023, 1, 1]])
    original = path.read_bytes()
    warehouse.ingest()
    path.write_bytes(original.replace(b"2023,1,1", b"2023,1,2"))
    warehouse.ingest()
    path.write_bytes(original)
    report = warehouse.ingest()
    assert report.files_changed == 1
    assert [row[3] for row in current(warehouse)] == [1.0]
    files = warehouse.table("source_files", "upload_seq")
    assert files["file_id"].n_unique() == 3  # every ingestion of a version has its own id
    assert current(warehouse)[0][4:7] == ("inbox/le/LAW_ENFORCEMENT/arrests.csv", "arrests.csv", 2)
    assert warehouse.metrics()["file_id"].item() == files["file_id"][-1]


def test_total_inferred_from_the_first_breakdown_sheet(warehouse):
    deliver_xlsx(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "b.xlsx", {
        "arrests_by_type": [["year", "month", "offense_type", "value"], [2023, 1, "Person", 3], [2023, 1, "Drug", 4]],
        "arrests_by_biological_sex": [["year", "month", "biological_sex", "value"], [2023, 1, "Male", 5],
                                      [2023, 1, "Female", 1]],
    })
    warehouse.ingest()
    totals = warehouse.metrics().filter(pl.col("dimension").is_null())
    assert totals.select("value", "is_inferred_total", "file_id", "sheet", "row_number").rows() == [
        (6.0, True, None, None, None)]  # arrests_by_biological_sex sorts before arrests_by_type
    later = deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv",
                        [["year", "month", "value"], [2023, 1, 8]])
    touch_later(later, 60)
    warehouse.ingest()
    totals = warehouse.metrics().filter(pl.col("dimension").is_null())
    assert totals.select("value", "is_inferred_total", "sheet").rows() == [(8.0, False, "arrests.csv")]


def test_staff_total_inferred_from_the_staff_types_with_the_vacancies(warehouse):
    """Staff by sex sorts first but counts people; the total counts budgeted positions, vacant ones too (§3.11)."""
    deliver_xlsx(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "staff.xlsx", {
        "staff_by_biological_sex": [["year", "biological_sex", "value"], [2023, "Male", 38], [2023, "Female", 12]],
        "staff_by_type": [["year", "staff_type", "value"], [2023, "Sworn/Uniformed Police Officers", 40],
                          [2023, "Civilian Staff", 10], [2023, "Vacant Positions (Any Staff Type)", 5]],
    })
    warehouse.ingest()
    totals = warehouse.metrics().filter(pl.col("dimension").is_null())
    assert totals.select("metric_key", "value", "is_inferred_total").rows() == [
        ("LAW_ENFORCEMENT_TOTAL_STAFF", 55.0, True)]


def test_resolve_is_idempotent_and_limited_to_its_months(warehouse):
    deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv",
                [["year", "month", "value"], [2023, 1, 1], [2023, 2, 2]])
    report = ingest.write_batch(warehouse.con, warehouse.parse())
    assert ingest.resolve_agency_metrics(warehouse.con, [date(2023, 2, 14)], warehouse.roster,
                                         warehouse.registry) == 1
    assert warehouse.metrics()["period_start"].to_list() == [date(2023, 2, 1)]
    for _ in range(2):
        assert ingest.resolve_agency_metrics(warehouse.con, report.touched_months, warehouse.roster,
                                             warehouse.registry) == 2
    assert warehouse.metrics()["value"].to_list() == [1.0, 2.0]
    assert ingest.resolve_agency_metrics(warehouse.con, [], warehouse.roster, warehouse.registry) == 0


def test_same_datapoint_in_two_new_files_latest_received_wins(warehouse):
    first = deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "b/arrests.csv",
                        [["year", "month", "value"], [2023, 1, 1]])
    second = deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "a/arrests.csv",
                         [["year", "month", "value"], [2023, 1, 2]])
    touch_later(first, 10)
    touch_later(second, 20)  # received later, although its path sorts first
    warehouse.ingest()
    assert [(row[3], row[4]) for row in current(warehouse)] == [(2.0, "inbox/le/LAW_ENFORCEMENT/a/arrests.csv")]


def test_resolve_keeps_one_winner_per_key_also_for_repeated_totals(tmp_path):
    """The resolve orders only the keys sent more than once; a total's NULL dimension and category must still
    match its repeats (one winner, never every copy), and a key sent once must win as it is."""
    w = Warehouse(tmp_path)
    offense = "metric/offense/type"
    # (upload_seq, sheet_order, row_number, period month, dimension, category, value)
    staged = [
        (1, 0, 5, 1, None, None, 1.0), (2, 0, 3, 1, None, None, 2.0), (2, 1, 2, 1, None, None, 3.0),  # total
        (1, 0, 7, 1, offense, "PERSON", 4.0), (1, 0, 9, 1, offense, "PERSON", 5.0),  # a category, one file
        (1, 0, 4, 1, offense, "DRUG", 6.0),  # sent once
        (3, 0, 2, 2, None, None, 7.0), (1, 0, 2, 2, None, None, 8.0),  # newest upload first in the table
    ]
    rows = [(f"s{order}", order, row, seq, "le", "LAW_ENFORCEMENT", "LAW_ENFORCEMENT_ARRESTS", "MONTHLY",
             date(2023, month, 1), date(2023, month + 1, 1), dimension, category, value)
            for seq, order, row, month, dimension, category, value in staged]
    stage_rows(w.con, rows)
    winners: dict[tuple, tuple] = {}
    for row in sorted(staged):  # ascending (upload_seq, sheet_order, row_number): the last one seen wins
        winners[(row[3], row[4], row[5])] = row
    expected = {(date(2023, m, 1), d, c): v for (m, d, c), (*_, v) in winners.items()}

    ingest.resolve_agency_metrics(w.con, [date(2023, 1, 1), date(2023, 2, 1)], w.roster, w.registry)

    got = w.metrics().select("period_start", "dimension", "category", "value").rows()
    assert len(got) == len(expected)  # one row per key: a repeated total is not kept twice
    assert {(s, d, c): v for s, d, c, v in got} == expected
    assert [v for _, d, _, v in got if d is None] == [3.0, 7.0]
    w.close()


def test_resolve_writes_each_year_annual_rows_first_then_months_in_order(tmp_path):
    """agency_metrics is stored year by year, each year's ANNUAL rows first, then its months in order: the month
    filters of the checks and the roll-up rely on it to skip the other row groups (zone maps)."""
    w = Warehouse(tmp_path)
    # (frequency, period start, period end), staged out of order; an ANNUAL fiscal year starting in July.
    periods = [("MONTHLY", date(2024, 2, 1), date(2024, 3, 1)), ("ANNUAL", date(2024, 1, 1), date(2025, 1, 1)),
               ("MONTHLY", date(2023, 12, 1), date(2024, 1, 1)), ("ANNUAL", date(2023, 7, 1), date(2024, 7, 1)),
               ("MONTHLY", date(2023, 1, 1), date(2023, 2, 1)), ("MONTHLY", date(2024, 1, 1), date(2024, 2, 1)),
               ("ANNUAL", date(2023, 1, 1), date(2024, 1, 1))]
    rows = [("s", 0, row, 1, "le", "LAW_ENFORCEMENT", f"METRIC_{frequency}", frequency, start, end, None, None,
             float(row)) for row, (frequency, start, end) in enumerate(periods, start=2)]
    stage_rows(w.con, rows)

    months = sorted({date(start.year, start.month, 1) for _, start, _ in periods})
    assert ingest.resolve_agency_metrics(w.con, months, w.roster, w.registry) == len(periods)

    stored = w.con.sql("SELECT frequency, period_start FROM agency_metrics ORDER BY rowid").fetchall()
    assert stored == [("ANNUAL", date(2023, 1, 1)), ("ANNUAL", date(2023, 7, 1)), ("MONTHLY", date(2023, 1, 1)),
                      ("MONTHLY", date(2023, 12, 1)), ("ANNUAL", date(2024, 1, 1)), ("MONTHLY", date(2024, 1, 1)),
                      ("MONTHLY", date(2024, 2, 1))]
    w.close()
