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


def test_metric_definitions_say_which_metrics_are_levels(tmp_path):
    """`is_level` is the one statement of how a year builds from months (the roll-up averages levels) and how a
    jump is judged: money is never a level, whether the registry calls it INSTANT or DELTA (spec §9.3)."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_contract_schema(con)
    write_reference_tables(con, REGISTRY, load_roster(_roster_dir(tmp_path), REGISTRY))
    rows = dict(con.execute("SELECT metric_key, (measurement_type, unit, is_level) FROM metric_definitions").fetchall())
    assert rows["JAILS_TOTAL_POPULATION"] == ("INSTANT", "count", True)
    assert rows["PROSECUTION_CASELOADS_STAFF"] == ("INSTANT", "FTE", True)
    assert rows["PROSECUTION_FUNDING"] == ("INSTANT", "USD", False)
    assert rows["LAW_ENFORCEMENT_FUNDING"] == ("DELTA", "USD", False)
    assert rows["LAW_ENFORCEMENT_ARRESTS"] == ("DELTA", "count", False)
    assert all(level is not None for _, _, level in rows.values())


def test_a_store_from_before_is_level_gets_it_and_rebuilds(tmp_path):
    """A store written before the column existed: the schema adds it and the next reference write fills it, as a
    changed table (which marks every month with data for a rebuild, as any change of the registry does)."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_contract_schema(con)
    roster = load_roster(_roster_dir(tmp_path), REGISTRY)
    write_reference_tables(con, REGISTRY, roster)
    con.execute("ALTER TABLE metric_definitions DROP COLUMN is_level")  # as an older release left it

    ensure_contract_schema(con)
    assert con.execute("SELECT count(*) FROM metric_definitions WHERE is_level IS NULL").fetchall()[0][0] == len(
        REGISTRY.metrics)
    written = write_reference_tables(con, REGISTRY, roster)
    assert {table for table, w in written.items() if w.rewritten} == {"metric_definitions"}
    assert con.execute("SELECT count(*) FROM metric_definitions WHERE is_level IS NULL").fetchall() == [(0,)]
