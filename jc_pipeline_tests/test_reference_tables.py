"""The reference tables follow the roster: a table is replaced when its rows change, and left as it is otherwise."""

from __future__ import annotations

import duckdb

from jc_pipeline.lib.reference import write_reference_tables
from jc_pipeline.lib.registry import load_registry
from jc_pipeline.lib.roster import load_roster
from jc_pipeline.lib.warehouse import ensure_contract_schema
from jc_pipeline_tests.test_roster import _replace, _roster_dir

REGISTRY = load_registry()
TABLES = ("metric_definitions", "metric_categories", "agencies", "agency_metric_settings", "agency_breakdown_settings")


def _contents(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    return {table: sorted(con.execute(f"SELECT * FROM {table}").fetchall(), key=repr) for table in TABLES}


def test_a_table_is_replaced_only_when_its_rows_change(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_contract_schema(con)
    for folder in ("a", "b", "c"):
        (tmp_path / folder).mkdir()
    roster = load_roster(_roster_dir(tmp_path / "a"), REGISTRY)

    first = write_reference_tables(con, REGISTRY, roster)
    assert {table: (w.rows > 0, w.rewritten) for table, w in first.items()} == {
        **{table: (True, True) for table in TABLES}, "agency_breakdown_settings": (False, False)}
    stored = _contents(con)
    assert {table: len(rows) for table, rows in stored.items()} == {table: w.rows for table, w in first.items()}

    again = write_reference_tables(con, REGISTRY, roster)
    assert not any(w.rewritten for w in again.values())
    assert _contents(con) == stored

    # One agency's population changes: only the roster table is replaced, and it holds the new value.
    edited = load_roster(_roster_dir(tmp_path / "b", _replace(0, population="53000")), REGISTRY)
    third = write_reference_tables(con, REGISTRY, edited)
    assert {table for table, w in third.items() if w.rewritten} == {"agencies"}
    assert con.execute("SELECT population FROM agencies WHERE agency_id = 'harlan_so'").fetchall() == [(53000,)]
    assert {table: rows for table, rows in _contents(con).items() if table != "agencies"} == {
        table: rows for table, rows in stored.items() if table != "agencies"}

    # An agency taken off the roster: its row and its settings go.
    fewer = load_roster(_roster_dir(tmp_path / "c", _replace(0)[:-1]), REGISTRY)
    fourth = write_reference_tables(con, REGISTRY, fewer)
    assert {table for table, w in fourth.items() if w.rewritten} == {"agencies", "agency_metric_settings"}
    assert con.execute("SELECT count(*) FROM agencies WHERE agency_id = 'parole_board'").fetchall() == [(0,)]
    assert con.execute("SELECT count(*) FROM agency_metric_settings WHERE agency_id = 'parole_board'").fetchall() == [
        (0,)]
