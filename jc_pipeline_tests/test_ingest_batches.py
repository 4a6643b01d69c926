"""Ingest in batches (bounded memory): writing the batches one after another gives exactly the store one batch
gives — same files, upload order, findings, staged rows and resolved datapoints — wherever the batches are cut."""

import dataclasses
import shutil
from datetime import datetime

import dagster as dg
import duckdb
import polars as pl
import pytest

from jc_pipeline.defs.ingest.assets import inbox_files
from jc_pipeline.defs.resources import WarehouseResource
from jc_pipeline.lib import ingest
from jc_pipeline.lib.ingest import batch as inbox_reading
from jc_pipeline.lib.ingest import store
from jc_pipeline.lib.demo import write_demo_state
from jc_pipeline.lib.registry import load_registry
from jc_pipeline.lib.roster import load_roster
from jc_pipeline_tests.ingest_support import deliver_xlsx, write_roster

NOW = datetime(2026, 6, 1)
# ingested_at is when a batch was parsed; file_id is a random id: neither says anything about the data.
RUN_DEPENDENT = {"source_files": ["ingested_at", "file_id"], "rejected_rows": ["file_id"],
                 ingest.STAGED_TABLE: [], "agency_metrics": ["file_id"]}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A small demo state: every layout, superagency uploads, a re-delivered file and a late correction."""
    data_dir = tmp_path_factory.mktemp("batches") / "state"
    write_demo_state(data_dir, agencies=24, years=2, seed=5)
    registry = load_registry()
    return data_dir, load_roster(data_dir, registry), registry


def _ingest(demo, database, batch_bytes) -> tuple[duckdb.DuckDBPyConnection, int]:
    data_dir, roster, registry = demo
    con = duckdb.connect(str(database))
    ingest.ensure_schema(con)
    ingest.record_agency_states(con, roster)
    batches = list(ingest.parse_inbox_batches(data_dir, {}, roster, registry, now=NOW, batch_bytes=batch_bytes))
    reports = [ingest.write_batch(con, batch) for batch in batches]
    months = sorted({m for report in reports for m in report.touched_months})
    ingest.resolve_agency_metrics(con, months, roster, registry)
    return con, len(batches)


def _table(con: duckdb.DuckDBPyConnection, name: str) -> pl.DataFrame:
    frame = con.sql(f"SELECT * FROM {name}").pl()
    if "file_id" in frame.columns and name != "source_files":  # name the file by its path instead of its id
        paths = con.sql("SELECT file_id, path FROM source_files").pl()
        frame = frame.join(paths, on="file_id", how="left")
    frame = frame.drop(RUN_DEPENDENT[name])
    return frame.sort(frame.columns, nulls_last=True)


def test_batches_write_the_same_store_as_one_batch(demo, tmp_path):
    whole, one = _ingest(demo, tmp_path / "whole.duckdb", batch_bytes=None)
    cut, many = _ingest(demo, tmp_path / "cut.duckdb", batch_bytes=64 * 1024)
    assert one == 1 and many > 5  # the small budget really cut the inbox into many batches
    for name in RUN_DEPENDENT:
        expected, actual = _table(whole, name), _table(cut, name)
        assert expected.height > 0, name
        assert actual.equals(expected), name
    # the upload order (which upload wins a datapoint) is the same: sequence numbers by path agree
    order = "SELECT path, upload_seq FROM source_files ORDER BY upload_seq"
    assert cut.sql(order).fetchall() == whole.sql(order).fetchall()


@pytest.mark.parametrize(("files", "held"), [(0, 0), (10_000, 1 << 40)], ids=["none", "whole inbox"])
def test_reading_ahead_any_distance_writes_the_same_store(demo, tmp_path, monkeypatch, files, held):
    """Workbooks handed to calamine's worker ahead of their turn (none, or every one before the first is parsed)
    give the store of the default read-ahead."""
    default, _ = _ingest(demo, tmp_path / "default.duckdb", batch_bytes=64 * 1024)
    monkeypatch.setattr(inbox_reading, "READ_AHEAD_FILES", files)
    monkeypatch.setattr(inbox_reading, "READ_AHEAD_BYTES", held)
    other, _ = _ingest(demo, tmp_path / "other.duckdb", batch_bytes=64 * 1024)
    for name in RUN_DEPENDENT:
        assert _table(other, name).equals(_table(default, name)), name


def test_every_batch_is_complete_and_all_files_are_read_once(demo):
    data_dir, roster, registry = demo
    batches = list(ingest.parse_inbox_batches(data_dir, {}, roster, registry, now=NOW, batch_bytes=64 * 1024))
    paths = [path for batch in batches for path in batch.files["path"].to_list()]
    assert len(paths) == len(set(paths)) == len(list((data_dir / "inbox").rglob("*.*")))
    for batch in batches:  # findings and datapoints only name files of their own batch
        own = set(batch.files["path"].to_list())
        assert set(batch.findings["path"].to_list()) <= own and set(batch.datapoints["path"].to_list()) <= own



class _ParseFailure(RuntimeError):
    pass


def test_the_ingest_step_writes_its_batches_in_order_and_keeps_them_when_reading_fails(demo, tmp_path, monkeypatch):
    """The step normalizes and writes each batch while it reads the next: the store gets the batches in read
    order, and when reading fails the batches read before are written (and nothing after); the next run reads
    the rest."""
    data_dir, resources = _copied_state(demo, tmp_path)
    read_batches = ingest.read_inbox_batches
    read: list[list[str]] = []

    def small_batches_failing_after_three(*args, **kwargs):
        for batch in read_batches(*args, **{**kwargs, "batch_bytes": 64 * 1024}):
            if len(read) == 3:
                raise _ParseFailure("the fourth batch could not be read")
            read.append(batch.paths)
            yield batch

    monkeypatch.setattr(ingest, "read_inbox_batches", small_batches_failing_after_three)
    with pytest.raises(_ParseFailure):
        dg.materialize([inbox_files], resources=resources)
    assert len(read) == 3 and _written_paths(data_dir) == [path for batch in read for path in batch]

    monkeypatch.setattr(ingest, "read_inbox_batches", read_batches)
    assert dg.materialize([inbox_files], resources=resources).success
    assert len(_written_paths(data_dir)) == len(list((data_dir / "inbox").rglob("*.*")))


def test_a_batch_that_fails_to_normalize_stops_the_step_after_the_batches_before_it(demo, tmp_path, monkeypatch):
    """Normalizing runs on the writer thread: its failure still fails the step, keeps every batch before the
    failing one and writes nothing of it or after it; the next run reads the rest."""
    data_dir, resources = _copied_state(demo, tmp_path)
    read_batches = ingest.read_inbox_batches
    normalize = ingest.ReadBatch.normalize
    read: list[list[str]] = []

    def small_batches(*args, **kwargs):
        for batch in read_batches(*args, **{**kwargs, "batch_bytes": 64 * 1024}):
            read.append(batch.paths)
            yield batch

    def third_fails(batch):
        if len(read) > 2 and batch.paths == read[2]:
            raise _ParseFailure("the third batch could not be normalized")
        return normalize(batch)

    monkeypatch.setattr(ingest, "read_inbox_batches", small_batches)
    monkeypatch.setattr(ingest.ReadBatch, "normalize", third_fails)
    with pytest.raises(_ParseFailure):
        dg.materialize([inbox_files], resources=resources)
    assert len(read) >= 4  # the fourth was read while the third was normalized
    assert _written_paths(data_dir) == read[0] + read[1]

    monkeypatch.setattr(ingest.ReadBatch, "normalize", normalize)
    assert dg.materialize([inbox_files], resources=resources).success
    assert len(_written_paths(data_dir)) == len(list((data_dir / "inbox").rglob("*.*")))


def _copied_state(demo, tmp_path):
    source, _, _ = demo
    data_dir = tmp_path / "state"
    shutil.copytree(source, data_dir)
    return data_dir, {"warehouse": WarehouseResource(data_dir=str(data_dir))}


def _written_paths(data_dir) -> list[str]:
    with duckdb.connect(str(data_dir / "pipeline" / "store.duckdb"), read_only=True) as con:
        return [path for (path,) in con.sql("SELECT path FROM source_files ORDER BY upload_seq").fetchall()]


def test_findings_come_in_one_total_order(tmp_path):
    """Two findings of one rule on one row (a total that two breakdowns disagree with) must not swap places from
    run to run: rejected_rows are sorted on every column of a finding, not only file, sheet, row and rule."""
    write_roster(tmp_path)
    deliver_xlsx(tmp_path, "le", "LAW_ENFORCEMENT", "p.xlsx", {
        "arrests": [["year", "month", "value"], [2023, 1, 100]],
        "arrests_by_type": [["year", "month", "offense_type", "value"], [2023, 1, "Person", 50]],
        "arrests_by_race": [["year", "month", "race/ethnicity", "value"], [2023, 1, "White", 60]],
    })
    registry = load_registry()
    roster = load_roster(tmp_path, registry)
    for _ in range(3):
        (batch,) = ingest.parse_inbox_batches(tmp_path, {}, roster, registry, now=NOW, batch_bytes=None)
        ties = batch.findings.filter(pl.col("rule") == "P2")
        assert ties.height == 2 and ties.n_unique(["sheet", "row_number"]) == 1  # the case this pins down
        assert ties["message"].to_list() == sorted(ties["message"])


def _one_row_batch(data_dir):
    """The parsed batch of one agency's workbook with a single datapoint."""
    write_roster(data_dir)
    deliver_xlsx(data_dir, "le", "LAW_ENFORCEMENT", "p.xlsx", {"arrests": [["year", "month", "value"], [2023, 1, 7]]})
    registry = load_registry()
    (batch,) = ingest.parse_inbox_batches(data_dir, {}, load_roster(data_dir, registry), registry, now=NOW,
                                          batch_bytes=None)
    return batch


def test_a_large_batch_is_staged_whole_in_the_order_of_its_periods(tmp_path):
    """A batch's staged datapoints are one Parquet file of several row groups, in the order of their periods, the
    rows of one period in the batch's order: none may be lost or reordered. 300,000 rows of three months, sent
    newest first."""
    batch = _one_row_batch(tmp_path)
    rows = 300_000
    month = pl.int_range(0, rows, dtype=pl.Int64) % 3  # 0: March, 1: February, 2: January
    many = batch.datapoints.select(pl.all().gather([0] * rows)).with_columns(
        row_number=pl.int_range(2, rows + 2, dtype=pl.Int64), value=pl.int_range(rows, 0, -1).cast(pl.Float64),
        period_start=pl.date(2026, 3 - month, 1), period_end=pl.date(2026, 4 - month, 1))
    with duckdb.connect(str(tmp_path / "store.duckdb")) as con:
        ingest.ensure_schema(con)
        ingest.write_batch(con, dataclasses.replace(batch, datapoints=many))
        stored = con.sql("SELECT period_start, row_number, value FROM ingest_datapoints").pl()
        assert con.execute("SELECT count(*), sum(rows) FROM ingest_staged_files").fetchall() == [(1, rows)]
    assert stored.equals(many.select("period_start", "row_number", "value").sort("period_start", maintain_order=True))
    assert stored["period_start"].is_sorted() and stored["row_number"][:3].to_list() == [4, 7, 10]  # January
    assert [p.name.endswith(".parquet") for p in (tmp_path / "store_staged").iterdir()] == [True]


def test_a_small_batch_is_written_on_one_thread_and_the_setting_restored(tmp_path, monkeypatch):
    """A batch within one row group is inserted with DuckDB on one thread (the setting is the database's): the
    connection's own thread count comes back afterwards, also when the write fails and rolls back. The staged file
    of a batch rolled back is never read, and the next run's start removes it."""
    batch = _one_row_batch(tmp_path)
    threads_seen = []
    real_insert = store._insert

    def insert(con, table, frame):
        threads_seen.append(con.execute("SELECT current_setting('threads')").fetchall()[0][0])
        real_insert(con, table, frame)

    def list_on_a_full_disk(con, files):  # the file is written, listing it fails
        raise OSError("disk full")

    monkeypatch.setattr(store, "_insert", insert)
    with duckdb.connect(str(tmp_path / "store.duckdb")) as con:
        ingest.ensure_schema(con)
        con.execute("SET threads = 3")
        ingest.write_batch(con, batch)
        assert threads_seen == [1, 1]  # source_files and rejected_rows
        assert con.execute("SELECT current_setting('threads')").fetchall() == [(3,)]
        monkeypatch.setattr(store, "_list", list_on_a_full_disk)
        with pytest.raises(OSError, match="disk full"):
            ingest.write_batch(con, batch)
        assert con.execute("SELECT current_setting('threads')").fetchall() == [(3,)]
        assert con.execute("SELECT count(*) FROM source_files").fetchall() == [(1,)]  # the second write rolled back
        assert con.execute("SELECT count(*) FROM ingest_staged_files").fetchall() == [(1,)]
        assert len(list((tmp_path / "store_staged").iterdir())) == 2  # the first batch's file, and the unlisted one
        ingest.ensure_schema(con)  # the next run's start: the file no batch committed goes
        assert [name for (name,) in con.execute("SELECT file_name FROM ingest_staged_files").fetchall()] == [
            p.name for p in (tmp_path / "store_staged").iterdir()]
        assert con.execute("SELECT count(*) FROM ingest_datapoints").fetchall() == [(batch.datapoints.height,)]


@pytest.mark.parametrize("rows", ["findings", "datapoints"])
def test_a_row_of_a_file_missing_from_its_batch_rolls_the_batch_back(tmp_path, rows):
    """Each finding gets its file's id, and each datapoint its file's upload_seq, by its path. One whose path is
    not among the batch's files gets none, which the table refuses: the whole batch is rolled back rather than
    that row dropped, and the refusal is what the caller sees."""
    batch = _one_row_batch(tmp_path)
    elsewhere = "inbox/le/LAW_ENFORCEMENT/elsewhere.xlsx"
    if rows == "findings":
        finding = {"sheet": "arrests", "row_number": 2, "column_name": "value", "raw_value": "7", "rule": "a_rule",
                   "severity": "WARNING", "message": "a warning", "path": elsewhere}
        orphan = pl.DataFrame([finding], schema=batch.findings.schema)
    else:
        orphan = batch.datapoints.with_columns(path=pl.lit(elsewhere))
    with duckdb.connect(str(tmp_path / "store.duckdb")) as con:
        ingest.ensure_schema(con)
        con.execute("SET threads = 3")
        column = {"findings": "rejected_rows.file_id", "datapoints": f"{store.STAGED_TABLE}.upload_seq"}[rows]
        with pytest.raises(duckdb.ConstraintException, match=column):
            ingest.write_batch(con, dataclasses.replace(batch, **{rows: pl.concat([getattr(batch, rows), orphan])}))
        assert [con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
                for table in ("source_files", "rejected_rows", store.STAGED_TABLE)] == [0, 0, 0]
        # The small batch was written on one thread: the connection's setting is back after the rollback.
        assert con.execute("SELECT current_setting('threads')").fetchall() == [(3,)]
