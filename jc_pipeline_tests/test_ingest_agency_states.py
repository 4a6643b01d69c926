"""A staged datapoint keeps no state of its own: agency_metrics takes the current roster's, or, for an agency the
roster no longer lists, the one recorded when an ingest last read a roster listing it (ingest_agency_states). A
store from before keeps its staged rows' states that way."""

from datetime import date

import dagster as dg
import duckdb

from jc_pipeline.defs.normalize.assets import agency_metrics
from jc_pipeline.defs.reference.assets import reference_tables
from jc_pipeline.defs.resources import WarehouseResource
from jc_pipeline.lib import ingest
from jc_pipeline.lib.roster import load_roster
from jc_pipeline_tests.ingest_support import AGENCIES, Warehouse, deliver_csv, write_roster

JANUARY = [date(2023, 1, 1)]


def _moved(state: str) -> list[tuple]:
    return [(agency[0], agency[1], state, *agency[3:]) if agency[0] == "le" else agency for agency in AGENCIES]


def _without_le() -> list[tuple]:
    return [agency for agency in AGENCIES if agency[0] != "le"]


def _states(w: Warehouse) -> set[tuple[str, str]]:
    return set(w.con.execute("SELECT DISTINCT agency_id, state_code FROM agency_metrics").fetchall())


def _resolve_with(w: Warehouse, agencies: list[tuple]) -> None:
    write_roster(w.data_dir, agencies)
    ingest.resolve_agency_metrics(w.con, JANUARY, load_roster(w.data_dir, w.registry), w.registry)


def test_the_current_roster_says_the_state_and_a_dropped_agency_keeps_the_last_recorded(tmp_path):
    w = Warehouse(tmp_path)
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", [["year", "month", "value"], [2023, 1, 5]])
    w.ingest()
    assert _states(w) == {("le", "US_XX")}
    _resolve_with(w, _moved("US_YY"))
    assert _states(w) == {("le", "US_YY")}  # the current roster wins over the recorded state
    _resolve_with(w, _without_le())
    assert _states(w) == {("le", "US_XX")}  # recorded by the ingest, which read the first roster
    write_roster(w.data_dir, _moved("US_YY"))
    assert ingest.record_agency_states(w.con, load_roster(w.data_dir, w.registry)) == 1  # le alone changed
    assert ingest.record_agency_states(w.con, load_roster(w.data_dir, w.registry)) == 0  # nothing new: no write
    _resolve_with(w, _without_le())
    assert _states(w) == {("le", "US_YY")}
    w.close()


def _old_store(database) -> None:
    with duckdb.connect(str(database)) as con:
        # ingest_datapoints as stores before 2026-12-06 have it: every row with its file's id and agency's state.
        con.execute("""
            CREATE TABLE ingest_datapoints (
                file_id VARCHAR NOT NULL, sheet VARCHAR NOT NULL, sheet_order INTEGER NOT NULL,
                row_number BIGINT NOT NULL, upload_seq BIGINT NOT NULL, agency_id VARCHAR NOT NULL,
                state_code VARCHAR NOT NULL, sector VARCHAR NOT NULL, metric_key VARCHAR NOT NULL,
                frequency VARCHAR NOT NULL, period_start DATE NOT NULL, period_end DATE NOT NULL, dimension VARCHAR,
                category VARCHAR, value DOUBLE NOT NULL)""")
        rows = [("f1", "gone", "US_AA", 1.0), ("f2", "gone", "US_BB", 2.0), ("f2", "le", "US_XX", 3.0)]
        con.executemany(
            "INSERT INTO ingest_datapoints VALUES (?, 'arrests', 0, 2, ?, ?, ?, 'LAW_ENFORCEMENT', "
            "'LAW_ENFORCEMENT_ARRESTS', 'MONTHLY', DATE '2023-01-01', DATE '2023-02-01', NULL, NULL, ?)",
            [(file_id, int(file_id[1]), agency, state, value) for file_id, agency, state, value in rows])


def test_a_store_whose_staged_rows_carried_states_keeps_them(tmp_path):
    database = tmp_path / "old.duckdb"
    _old_store(database)
    w = Warehouse(tmp_path, database=str(database))  # opens the store: ensure_schema
    ingest.ensure_schema(w.con)  # and again: nothing more to move
    columns = [name for (name, *_) in w.con.execute("DESCRIBE ingest_datapoints").fetchall()]
    assert "file_id" not in columns and "state_code" not in columns and len(columns) == 13
    assert w.con.execute("SELECT count(*) FROM ingest_datapoints").fetchall() == [(3,)]
    # The staged table became one staged file, listed, and is gone.
    assert w.con.execute("SELECT rows, first_upload_seq, last_upload_seq FROM ingest_staged_files").fetchall() == [
        (3, 1, 2)]
    assert not w.con.execute("SELECT * FROM duckdb_tables() WHERE table_name = 'ingest_datapoints'").fetchall()
    assert len(list((tmp_path / "old_staged").glob("*.parquet"))) == 1
    assert set(w.con.execute("SELECT * FROM ingest_agency_states").fetchall()) == {("gone", "US_BB"),
                                                                                   ("le", "US_XX")}
    ingest.resolve_agency_metrics(w.con, JANUARY, w.roster, w.registry)
    # "gone" is in no roster: the state of its latest upload; le: the roster's
    assert _states(w) == {("gone", "US_BB"), ("le", "US_XX")}
    w.close()


def test_a_store_from_before_is_rolled_up_before_any_ingest(tmp_path):
    """After an upgrade a roll-up may come first (from the UI, say): its step moves the store on itself."""
    resource = WarehouseResource(data_dir=str(tmp_path / "data"))
    write_roster(resource.layout.root)
    resource.layout.store.parent.mkdir(parents=True, exist_ok=True)
    _old_store(resource.layout.store)
    assert dg.materialize([reference_tables], resources={"warehouse": resource}).success  # the roster's tables
    assert dg.materialize([agency_metrics], partition_key="2023-01-01", resources={"warehouse": resource}).success
    with duckdb.connect(str(resource.layout.store), read_only=True) as con:
        assert set(con.execute("SELECT agency_id, state_code, value FROM agency_metrics").fetchall()) == {
            ("gone", "US_BB", 2.0), ("le", "US_XX", 3.0)}
