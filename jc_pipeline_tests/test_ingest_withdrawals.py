"""withdrawals.csv: a file version the state withdraws counts for nothing (its datapoints give way to the uploads
before it, or go), says WITHDRAWN with the state's reason, and comes back when its row is taken out; through
`jc-pipeline run` in process, as a state data team uses it."""

from __future__ import annotations

import csv
import shutil
from datetime import date

import duckdb
import pytest

from jc_pipeline.lib import ingest, pending
from jc_pipeline.lib.paths import DataLayout
from jc_pipeline.lib.roster import RosterError, load_roster
from jc_pipeline.lib.validation.report import REJECTS_SQL
from jc_pipeline.runner import run_pipeline
from jc_pipeline_tests.ingest_support import Warehouse, deliver_csv, deliver_xlsx, uploaded_ago, write_roster
from jc_pipeline_tests.test_mappings_counts import CAD, write_mapping

ARRESTS = "LAW_ENFORCEMENT_ARRESTS"
MISTAKE = "inbox/le/LAW_ENFORCEMENT/other_county.xlsx"


def write_withdrawals(layout: DataLayout, rows: list[tuple[str, str, str]]) -> None:
    with (layout.root / "withdrawals.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("path", "sha256", "reason"), *rows])


def run(layout: DataLayout) -> list[str]:
    said: list[str] = []
    run_pipeline(layout, echo=said.append)
    return said


def published(layout: DataLayout, sql: str, params: dict | None = None) -> list[tuple]:
    with duckdb.connect(str(layout.warehouse), read_only=True) as con:
        return con.execute(sql, params or {}).fetchall()


def arrests(layout: DataLayout) -> dict[str, list[tuple]]:
    """The agency's and the state's monthly arrests totals, by month."""
    query = ("SELECT period_start, value FROM {} WHERE metric_key = $key AND dimension IS NULL "
             "AND frequency = 'MONTHLY' ORDER BY period_start")
    return {table: published(layout, query.format(table), {"key": ARRESTS})
            for table in ("agency_metrics", "state_metrics")}


@pytest.fixture
def layout(tmp_path) -> DataLayout:
    """le delivers January and February, then a file of another county's numbers that overrides January and adds
    March; that file also has a row the ingest rejects."""
    layout = DataLayout.from_env(tmp_path / "data")
    write_roster(layout.root)
    uploaded_ago(deliver_csv(layout.root, "le", "LAW_ENFORCEMENT", "arrests.csv",
                             [["year", "month", "value"], [2023, 1, 3], [2023, 2, 4]]), 7200)
    mistake = [["year", "month", "value"], [2023, 1, 100], [2023, 3, 50], [2023, 4, "n/a"]]
    uploaded_ago(deliver_xlsx(layout.root, "le", "LAW_ENFORCEMENT", "other_county.xlsx", {"arrests": mistake}), 3600)
    run(layout)
    return layout


def mistake_version(layout: DataLayout) -> tuple[str, str, str, str]:
    return published(layout, "SELECT sha256, status, reason, file_id FROM source_files WHERE path = $p",
                     {"p": MISTAKE})[0]


def test_a_withdrawn_version_counts_for_nothing_and_comes_back_when_its_row_goes(layout):
    before = arrests(layout)
    assert before["agency_metrics"] == [(date(2023, 1, 1), 100.0), (date(2023, 2, 1), 4.0), (date(2023, 3, 1), 50.0)]
    assert before["state_metrics"] == before["agency_metrics"]
    sha, status, reason, file_id = mistake_version(layout)
    assert status == "ERRORED"
    files = published(layout, "SELECT file_id, status, rows_total, rows_loaded, rows_rejected FROM source_files "
                              "ORDER BY file_id")
    findings = published(layout, "SELECT * FROM rejected_rows ORDER BY ALL")

    write_withdrawals(layout, [(MISTAKE, sha.upper(), "another county's numbers, sent by mistake")])
    said = run(layout)
    assert any("withdrawals.csv: 1 file version(s) withdrawn, 0 given back; 2 month(s) to rebuild" in line
               for line in said), said
    # January goes back to the upload before it; March, which only the mistake carried, is gone from both tables.
    assert arrests(layout) == {table: [(date(2023, 1, 1), 3.0), (date(2023, 2, 1), 4.0)]
                               for table in ("agency_metrics", "state_metrics")}
    assert mistake_version(layout) == (sha, "WITHDRAWN", "Withdrawn by the state: another county's numbers, sent by "
                                                         "mistake", file_id)
    # Nothing vanishes: the version, its counts and its findings stay; only the status says it is withdrawn.
    assert published(layout, "SELECT file_id, CASE WHEN file_id = $f THEN 'ERRORED' ELSE status END, rows_total, "
                             "rows_loaded, rows_rejected FROM source_files ORDER BY file_id", {"f": file_id}) == files
    assert published(layout, "SELECT * FROM rejected_rows ORDER BY ALL") == findings
    # ... but the agency is no longer asked to fix the rows of a file the state withdrew.
    assert [row for row in published(layout, REJECTS_SQL) if row[3] == MISTAKE] == []
    assert any("nothing new" in line for line in run(layout))  # the list unchanged: nothing to do

    write_withdrawals(layout, [])
    said = run(layout)
    assert any("0 file version(s) withdrawn, 1 given back; 2 month(s) to rebuild" in line for line in said), said
    assert arrests(layout) == before
    assert mistake_version(layout) == (sha, status, reason, file_id)


def test_a_withdrawn_file_moved_to_another_folder_still_counts_for_nothing(layout):
    """helper-48: moved out of the way ("do not use/"), a withdrawn file was read as a new upload and counted again."""
    sha = mistake_version(layout)[0]
    write_withdrawals(layout, [(MISTAKE, sha, "a test file")])
    run(layout)
    withdrawn = arrests(layout)
    moved = layout.root / "inbox" / "le" / "LAW_ENFORCEMENT" / "do not use" / "other_county.xlsx"
    moved.parent.mkdir()
    (layout.root / MISTAKE).rename(moved)
    said = run(layout)
    assert any("0 new, 0 changed, 1 unchanged, 1 duplicate, 0 unreadable file(s)" in line for line in said), said
    assert arrests(layout) == withdrawn
    assert published(layout, "SELECT status FROM source_files WHERE path LIKE '%do not use%'") == [("DUPLICATE",)]


def test_withdrawals_survive_a_store_rebuilt_from_the_inbox(layout):
    sha = mistake_version(layout)[0]
    write_withdrawals(layout, [(MISTAKE, sha, "sent by mistake")])
    run(layout)
    withdrawn = arrests(layout)
    shutil.rmtree(layout.root / "pipeline")  # the documented recovery: delete the store and run
    run(layout)
    assert arrests(layout) == withdrawn
    assert mistake_version(layout)[1] == "WITHDRAWN"


def test_a_row_naming_no_version_read_is_named_and_the_others_applied(layout):
    """A typo in a hash, or a version no longer in the inbox (the path sent again, then a store rebuilt from the
    inbox: helper-43, every run failed), withdraws nothing and is named on every run; the other rows apply."""
    sha = mistake_version(layout)[0]
    write_withdrawals(layout, [(MISTAKE, sha, "sent by mistake"),
                               ("inbox/le/LAW_ENFORCEMENT/arrests.csv", "0" * 64, "typo in the hash")])
    said = run(layout)
    assert any("withdrawals.csv, line 3: no version of inbox/le/LAW_ENFORCEMENT/arrests.csv with this sha256 has "
               "been read (a typo, or a version no longer in the inbox): nothing withdrawn for it" in line
               for line in said), said
    assert mistake_version(layout)[1] == "WITHDRAWN"
    assert arrests(layout)["agency_metrics"] == [(date(2023, 1, 1), 3.0), (date(2023, 2, 1), 4.0)]


def test_a_withdrawn_path_sent_again_survives_a_store_rebuilt_from_the_inbox(layout):
    """docs/rules.md has the agency send the workbook again without the bad sheet once the state withdrew it: after
    a store rebuilt from the inbox, only the new version is there to read, and the row names nothing."""
    sha = mistake_version(layout)[0]
    write_withdrawals(layout, [(MISTAKE, sha, "sent by mistake")])
    run(layout)
    uploaded_ago(deliver_xlsx(layout.root, "le", "LAW_ENFORCEMENT", "other_county.xlsx",
                              {"arrests": [["year", "month", "value"], [2023, 3, 5]]}), 60)
    run(layout)
    resent = arrests(layout)
    assert resent["agency_metrics"] == [(date(2023, 1, 1), 3.0), (date(2023, 2, 1), 4.0), (date(2023, 3, 1), 5.0)]
    shutil.rmtree(layout.root / "pipeline")
    said = run(layout)
    assert any("withdrawals.csv, line 2: no version of " + MISTAKE in line for line in said), said
    assert arrests(layout) == resent


def test_every_problem_of_the_list_is_named_with_its_line_and_column(tmp_path):
    write_roster(tmp_path)
    (tmp_path / "withdrawals.csv").write_text(
        "path,sha256,reason\n"
        "/etc/passwd," + "a" * 64 + ",no\n"
        "inbox/le/LAW_ENFORCEMENT/a.csv,abc,wrong\n"
        "inbox/le/LAW_ENFORCEMENT/b.csv," + "b" * 64 + ",\n"
        "inbox/le/LAW_ENFORCEMENT/b.csv," + "B" * 64 + ",twice\n", encoding="utf-8")
    with pytest.raises(RosterError) as error:
        load_roster(tmp_path)
    assert [(p.path, p.line, p.column) for p in error.value.problems] == [
        ("withdrawals.csv", 2, "path"), ("withdrawals.csv", 3, "sha256"), ("withdrawals.csv", 4, "reason"),
        ("withdrawals.csv", 5, "sha256")]
    assert "already withdrawn on line 4" in str(error.value)


def test_a_native_export_is_withdrawn_by_its_bytes_whichever_mapping_reads_it(tmp_path):
    """source_files.sha256 of a native export carries its mapping's hash ('<sha256>+mapping:...'): the row may give it
    whole or the bytes' part; the withdrawal holds when a changed mapping reads the export again."""
    w = Warehouse(tmp_path)
    write_mapping(w.data_dir, "le", CAD)
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "cad_calls_2024.csv", [
        ["Incident No", "Call Received", "Priority"], ["C1", "2024-01-03 10:00:00", "1"]])
    w.ingest()
    (version,) = w.con.execute("SELECT sha256 FROM source_files").fetchall()[0]
    assert "+mapping:" in version
    (w.data_dir / "withdrawals.csv").write_text(
        f"path,sha256,reason\ninbox/le/LAW_ENFORCEMENT/cad_calls_2024.csv,{version},a test export\n")

    def withdraw_and_rebuild() -> ingest.WithdrawalChange:
        change = ingest.apply_withdrawals(w.con, load_roster(w.data_dir).withdrawals)
        ingest.resolve_agency_metrics(w.con, pending.pending_months(w.con), w.roster, w.registry)
        return change

    assert withdraw_and_rebuild() == (1, 0, 1, ())
    assert w.metrics().height == 0
    write_mapping(w.data_dir, "le", CAD + "# edited\n")  # read again in place, its sha256 now another mapping's
    w.ingest()
    assert withdraw_and_rebuild() == (0, 0, 0, ())
    assert w.table("source_files")["status"].to_list() == ["WITHDRAWN"] and w.metrics().height == 0
    w.close()
