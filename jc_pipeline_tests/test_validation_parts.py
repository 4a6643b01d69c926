"""A slice is validated in parts, grouped by DuckDB: per-value expectations on one row per distinct combination of
the values they read, compound columns unique on the rows whose key may repeat. The parts must find exactly what
one validation of the whole slice finds."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, timedelta

import duckdb
import pyarrow as pa
import pytest

from jc_pipeline.lib.validation import expectations, gx_worker
from jc_pipeline.lib.validation.expectations import GX_RULES, ROW_ID
from jc_pipeline_tests.test_validation_support import REGISTRY

PAIRS = ["LAW_ENFORCEMENT_ARRESTS|metric/offense/type", "PRISONS_RELEASES|metric/prisons/release/type"]
MEMBERS = ["metric/offense/type|PERSON", "metric/offense/type|PROPERTY", "metric/prisons/release/type|DEATH"]


def _slice(rows: int) -> pa.Table:
    """A slice of the suite's columns where every gx rule fails on some rows, most of them sharing their values
    with other rows (several failing combinations stand for many rows), and some datapoints sent twice: with
    another value, or exactly the same (then only their row ids differ)."""
    rng = random.Random(11)
    slice_rows: list[dict] = []
    for i in range(rows):
        start = date(2024, 1 + i // 40 % 12, 1)
        breakdown = rng.random() < 0.3
        row = {
            "agency_id": f"A{i % 40}", "metric_key": "LAW_ENFORCEMENT_ARRESTS", "period_start": start,
            "period_end": start + timedelta(days=31),
            "dimension_key": "metric/offense/type" if breakdown else "",
            "category_key": rng.choice(["PERSON", "BOGUS"]) if breakdown else "",
            "breakdown_of_metric": rng.choice([*PAIRS, "LAW_ENFORCEMENT_ARRESTS|x"]) if breakdown else None,
            "category_of_dimension": rng.choice([*MEMBERS, "metric/offense/type|BOGUS"]) if breakdown else None,
            "finite_value": rng.choice([None, -2.0, 0.0, 3.0, 7.0, 12.5]),
            "count_fraction": rng.choice([0.0, 0.0, 0.5]),
            "days_after_sent": rng.choice([-30, -1, 0, 5]),
            **{p: rng.choice(["ok"] * 9 + [f"{p} here"])
               for p in ("period_problem", "roster_problem", "setting_problem", "category_setting_problem")},
        }
        if i % 97 == 5:  # the datapoint before, sent again with another value
            row.update({k: slice_rows[-1][k] for k in ("agency_id", "period_start", "period_end", "dimension_key",
                                                        "category_key")})
        elif i % 97 == 50:  # the datapoint before, sent again exactly
            row = dict(slice_rows[-1])
        slice_rows.append({**row, ROW_ID: 1000 + 3 * i})  # row ids are the datapoints' rowids, not positions
    return pa.Table.from_pylist(slice_rows)


#: The slice as the caller's query gives it: every row, or the rows of $row_ids.
SLICE_SQL = "SELECT * FROM test_slice WHERE $row_ids::BIGINT[] IS NULL OR list_contains($row_ids, row_id)"
SPECS = expectations.expectation_specs(REGISTRY)
#: The datapoint key compound columns unique compares.
KEYS = ["agency_id", "metric_key", "period_start", "period_end", "dimension_key", "category_key"]


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return _slice(3000)


def _parts(table: pa.Table) -> tuple[list[expectations.Part], int]:
    con = duckdb.connect()
    con.register("test_slice", table)
    return expectations.parts(con, SPECS, SLICE_SQL, {})


def _validated_in_parts(table: pa.Table) -> dict[str, tuple]:
    return {o.rule.name: (o.failing_row_ids, o.checked_rows, o.error)
            for o in gx_worker.run_expectations(*_parts(table))}


def test_the_parts_find_what_the_whole_slice_validated_at_once_finds(table):
    whole = {name: (ids, checked, error) for name, ids, checked, error in expectations.validate(SPECS, table)}
    parts = _validated_in_parts(table)
    assert parts == whole
    assert all(len(whole[rule.name][0]) > 1 for rule in GX_RULES)  # every rule failed several rows
    assert all(checked == table.num_rows and error is None for _, checked, error in parts.values())


def test_slices_are_validated_without_fingerprinting_them(table, monkeypatch):
    """GX would hash every row of each slice only to label the batch; the package turns that off (its cost grows
    with the slice: ~1.1 s of a full build's checks at 3,000 agencies)."""
    from great_expectations.execution_engine import pandas_execution_engine

    def fingerprint(frame):
        raise AssertionError(f"a batch of {len(frame)} rows was fingerprinted")

    monkeypatch.setattr(pandas_execution_engine, "hash_pandas_dataframe", fingerprint)
    found = expectations.validate(SPECS, table)
    assert [error for _, _, _, error in found] == [None] * len(found)
    assert any(ids for _, ids, _, _ in found)  # it validated: rules failed rows


def test_per_value_expectations_see_each_combination_once_and_the_unique_one_the_repeated_keys(table):
    (per_value, counted), rows = _parts(table)
    assert rows == table.num_rows
    columns = [c for c in per_value.table.column_names if c != ROW_ID]
    assert per_value.table.num_rows == table.group_by(columns).aggregate([]).num_rows < table.num_rows / 3
    # Each combination stands for exactly the slice's rows that have its values; together they are every row.
    members = per_value.members.to_pylist()
    assert sorted(row_id for ids in members for row_id in ids) == sorted(table[ROW_ID].to_pylist())
    by_id = {row[ROW_ID]: row for row in table.to_pylist()}
    for combination, ids in zip(per_value.table.to_pylist(), members, strict=True):
        assert all({c: by_id[i][c] for c in columns} == {c: combination[c] for c in columns} for i in ids)
    # Compound columns unique sees the rows of the keys sent twice (with the same or another value) and no other.
    assert [name for _, name, _ in counted.specs] == ["ExpectCompoundColumnsToBeUnique"] and counted.members is None
    assert counted.table.column_names == [ROW_ID, *KEYS]
    times_sent = Counter(tuple(row[k] for k in KEYS) for row in table.to_pylist())
    repeated = sorted(r[ROW_ID] for r in table.to_pylist() if times_sent[tuple(r[k] for k in KEYS)] > 1)
    assert sorted(counted.table[ROW_ID].to_pylist()) == repeated and 0 < len(repeated) < table.num_rows


def test_keys_sent_once_each_leave_compound_columns_unique_nothing_to_compare(table):
    first: dict[tuple, int] = {}
    for i, row in enumerate(table.select(KEYS).to_pylist()):
        first.setdefault(tuple(row.values()), i)
    once = table.take(sorted(first.values()))
    (_, counted), rows = _parts(once)
    assert rows == once.num_rows and counted.table.num_rows == 0
    assert _validated_in_parts(once)["no_duplicate_datapoints"] == ((), once.num_rows, None)


def test_an_expectation_neither_per_value_nor_counted_is_refused(table):
    specs = (*SPECS, ("rule", "ExpectColumnPairValuesToBeEqual", {"column_A": "a", "column_B": "b"}))
    con = duckdb.connect()
    con.register("test_slice", table)
    with pytest.raises(ValueError, match="ExpectColumnPairValuesToBeEqual"):
        expectations.parts(con, specs, SLICE_SQL, {})


def test_a_column_the_slice_lacks_is_each_expectation_s_error_not_a_crash(table):
    outcomes = _validated_in_parts(table.drop_columns(["finite_value", "category_key"]))
    for name, column in (("value_is_numeric", "finite_value"), ("value_not_negative", "finite_value"),
                         ("no_duplicate_datapoints", "category_key")):
        assert outcomes[name][2] and column in outcomes[name][2]
        assert outcomes[name][:2] == ((), 0)
    assert outcomes["category_is_member"][2] is None and outcomes["category_is_member"][0]
    without_keys = _validated_in_parts(table.drop_columns(KEYS))["no_duplicate_datapoints"]
    assert without_keys[:2] == ((), 0) and "agency_id" in without_keys[2]
