"""The staged datapoints are Parquet files beside the store, listed by it and read through one view
(``ingest.store``; docs/decisions.md, "Staged datapoints in Parquet files beside the store"): a file is read only
while the store lists it, the view follows the store when its folder moves, and small files are merged."""

import shutil
from datetime import date

import duckdb
import pytest

from jc_pipeline.lib import ingest
from jc_pipeline.lib.ingest import store
from jc_pipeline_tests.ingest_support import Warehouse, stage_rows


def _rows(upload_seq: int, values: list[float]) -> list[tuple]:
    return [("arrests", 0, row, upload_seq, "le", "LAW_ENFORCEMENT", "LAW_ENFORCEMENT_ARRESTS", "MONTHLY",
             date(2023, 1, 1), date(2023, 2, 1), None, None, value) for row, value in enumerate(values, start=2)]


def _staged(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute("SELECT upload_seq, row_number, value FROM ingest_datapoints ORDER BY ALL").fetchall()


def _listed(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {name for (name,) in con.execute("SELECT file_name FROM ingest_staged_files").fetchall()}


def test_only_listed_files_are_read_and_the_others_removed_at_the_next_start(tmp_path):
    """A file the store does not list (a batch killed between writing its file and committing) is never read, and
    the next ensure_schema removes it; files of other names in the folder are not the store's to remove."""
    w = Warehouse(tmp_path)
    stage_rows(w.con, _rows(1, [1.0, 2.0]))
    folder = store.staged_folder(w.con)
    (listed,) = _listed(w.con)
    stray = folder / "2-2-0123abcd.parquet"  # what a killed batch leaves: a whole file, never listed
    shutil.copy(folder / listed, stray)
    partial = folder / "3-3-0123abcd.parquet.partial"
    partial.write_bytes(b"half a file")
    foreign = folder / "notes.txt"
    foreign.write_text("not the store's")
    assert _staged(w.con) == [(1, 2, 1.0), (1, 3, 2.0)]  # the stray copy's rows are not read twice
    ingest.ensure_schema(w.con)
    assert sorted(p.name for p in folder.iterdir()) == sorted([listed, "notes.txt"])
    assert _staged(w.con) == [(1, 2, 1.0), (1, 3, 2.0)]
    w.close()


def test_the_view_follows_the_store_when_its_folder_moves(tmp_path):
    w = Warehouse(tmp_path / "before")
    stage_rows(w.con, _rows(1, [1.0]))
    w.close()
    shutil.move(tmp_path / "before", tmp_path / "after")
    with duckdb.connect(str(tmp_path / "after" / "w.duckdb")) as con:
        with pytest.raises(duckdb.IOException):
            con.execute("SELECT count(*) FROM ingest_datapoints").fetchall()  # listed by the old paths
        ingest.ensure_schema(con)  # every step that reads staged rows starts with it
        assert _staged(con) == [(1, 2, 1.0)]


def test_a_store_whose_staged_files_are_missing_says_which_folder_to_restore(tmp_path):
    """A store restored from a backup without its staged folder: every step that reads staged rows stops with a
    message naming the folder and the fix, not with DuckDB's error about one file."""
    w = Warehouse(tmp_path)
    stage_rows(w.con, _rows(1, [1.0]))
    folder = store.staged_folder(w.con)
    shutil.rmtree(folder)
    with pytest.raises(FileNotFoundError, match=rf"1 of the 1 staged files .* missing from {folder} .*restore"):
        ingest.ensure_schema(w.con)
    w.close()


def test_small_files_are_merged_into_one_with_every_row(tmp_path, monkeypatch):
    """Each nightly batch stages one small file; once there are SMALL_FILES_MERGED of them, the batch that makes
    them so many merges them into one (the view reads each file it lists). The merged files are removed at the
    next start, as any file the store no longer lists."""
    monkeypatch.setattr(store, "SMALL_FILES_MERGED", 3)
    monkeypatch.setattr(store, "SMALL_FILE_ROWS", 3)
    w = Warehouse(tmp_path)
    stage_rows(w.con, _rows(1, [1.0, 2.0, 3.0]))  # not small: never merged
    stage_rows(w.con, _rows(2, [4.0]))
    stage_rows(w.con, _rows(3, [5.0, 6.0]))
    assert len(_listed(w.con)) == 3
    stage_rows(w.con, _rows(4, [7.0]))  # the third small file
    assert w.con.execute("SELECT rows, first_upload_seq, last_upload_seq FROM ingest_staged_files "
                         "ORDER BY first_upload_seq").fetchall() == [(3, 1, 1), (4, 2, 4)]
    expected = [(seq, row, value) for seq, values in ((1, [1.0, 2.0, 3.0]), (2, [4.0]), (3, [5.0, 6.0]), (4, [7.0]))
                for row, value in enumerate(values, start=2)]
    assert _staged(w.con) == expected
    folder = store.staged_folder(w.con)
    assert len(list(folder.iterdir())) == 5  # the three merged ones stay until the next start
    ingest.ensure_schema(w.con)
    assert {p.name for p in folder.iterdir()} == _listed(w.con)
    assert _staged(w.con) == expected
    w.close()


def test_an_in_memory_database_cannot_stage(tmp_path):
    with duckdb.connect() as con:
        ingest.ensure_schema(con)  # an empty view: reading works
        assert con.execute("SELECT count(*) FROM ingest_datapoints").fetchall() == [(0,)]
        with pytest.raises(ValueError, match="in-memory database"):
            stage_rows(con, _rows(1, [1.0]))
