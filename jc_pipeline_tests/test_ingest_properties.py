"""Property-based tests on generated sheets: row accounting, idempotence, independence from row order."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jc_pipeline_tests.ingest_support import Warehouse, assert_accounting, deliver_csv, deliver_xlsx

# Cell pools mixing good and bad values, so generated sheets exercise most row rules at once.
YEARS = ["2023", "2022", "2021.0", "", "abc", "1599", "2022-2023", "2031", "1999"]
MONTHS = ["1", "02", "March", "febuary", "", "13", "Marchuary", "JUNE ", "2021-05-01"]
CATEGORIES = ["Person", "Drug Offenses", "other", "All", "", "Violent", "[All, Person, Drug]", "PUBLIC_ORDER",
              "unknown offenses"]
VALUES = ["1", "1,000", "2.5", "", "-1", "N/A", "$3", "0", "17"]

row = st.tuples(st.sampled_from(YEARS), st.sampled_from(MONTHS), st.sampled_from(CATEGORIES),
                st.sampled_from(VALUES))
sheet = st.lists(row, min_size=1, max_size=25)
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _deliver(warehouse: Warehouse, breakdown: list[tuple], totals: list[tuple], as_workbook: bool) -> None:
    by_type = [["year", "month", "offense_type", "value"], *map(list, breakdown)]
    aggregate = [["year", "month", "value"], *([y, m, v] for y, m, _, v in totals)]
    if as_workbook:
        deliver_xlsx(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "upload.xlsx",
                     {"arrests_by_type": by_type, "arrests": aggregate})
    else:
        deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests_by_type.csv", by_type)
        deliver_csv(warehouse.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", aggregate)


def _data_rows(rows: list[tuple], width: int) -> int:
    return sum(any(cell.strip() for cell in row[:width]) for row in rows)


@SETTINGS
@given(breakdown=sheet, totals=sheet, as_workbook=st.booleans())
def test_every_row_is_loaded_or_rejected_and_reingest_is_a_no_op(breakdown, totals, as_workbook):
    with tempfile.TemporaryDirectory() as tmp:
        warehouse = Warehouse(Path(tmp))
        _deliver(warehouse, breakdown, totals, as_workbook)
        report = warehouse.ingest()
        expected_rows = _data_rows(breakdown, 4) + sum(any(c.strip() for c in (y, m, v)) for y, m, _, v in totals)
        assert report.rows_total == expected_rows
        assert report.rows_total == report.rows_loaded + report.rows_rejected
        assert_accounting(warehouse)
        tables = [warehouse.table(t) for t in ("source_files", "rejected_rows", "staged", "agency_metrics")]
        again = warehouse.ingest()
        assert (again.files_new, again.files_changed, again.rows_total, again.touched_months) == (0, 0, 0, [])
        assert all(a.equals(b) for a, b in zip(tables, [warehouse.table(t) for t in (
            "source_files", "rejected_rows", "staged", "agency_metrics")], strict=True))
        warehouse.close()


@SETTINGS
@given(breakdown=sheet, order=st.randoms(use_true_random=False))
def test_row_order_does_not_change_agency_metrics(breakdown, order):
    shuffled = list(breakdown)
    order.shuffle(shuffled)
    results = []
    for rows in (breakdown, shuffled):
        with tempfile.TemporaryDirectory() as tmp:
            warehouse = Warehouse(Path(tmp))
            _deliver(warehouse, rows, rows, as_workbook=False)
            warehouse.ingest()
            metrics = warehouse.metrics().drop("file_id", "sheet", "row_number")
            rules = warehouse.table("rejected_rows").group_by("rule").agg(n=pl.len()).sort("rule")
            results.append((metrics, rules))
            warehouse.close()
    (first, first_rules), (second, second_rules) = results
    assert first.equals(second)
    assert first_rules.equals(second_rules)
