"""A change of the roster that changes how an agency's files are read (fiscal year, child agencies, sectors) has the
next ingest read them again in place: the same versions (file_id, upload_seq), their earlier reading replaced, and
the store then holds what a first ingest under the new roster gives."""

from __future__ import annotations

import shutil
from datetime import date

import polars as pl
import pytest

from jc_pipeline.lib import ingest, pending
from jc_pipeline.lib.paths import DataLayout
from jc_pipeline.lib.roster import Withdrawal
from jc_pipeline.runner import run_pipeline
from jc_pipeline_tests.ingest_support import AGENCIES, Warehouse, deliver_csv, deliver_xlsx, touch_later, write_roster
from jc_pipeline_tests.test_mappings_counts import CAD, write_mapping

#: fy_jail's fiscal year moves from July to January; aoc's second court is renamed (its uploads name it).
MOVED = [(*a[:6], "1", *a[7:]) if a[0] == "fy_jail" else a for a in AGENCIES]
RENAMED = [(a[0], "Second District Court", *a[2:]) if a[0] == "court_2" else a for a in AGENCIES]


def deliver(data_dir) -> None:
    deliver_csv(data_dir, "fy_jail", "JAILS", "funding.csv", [["year", "value"], [2022, 10], [2023, 11]])
    deliver_csv(data_dir, "fy_jail", "JAILS", "total_admissions.csv", [["year", "month", "value"], [2023, 1, 5]])
    deliver_csv(data_dir, "aoc", "COURTS_AND_PRETRIAL", "cases_filed.csv", [
        ["year", "month", "agency", "value"], [2023, 1, "1st District Court", 7], [2023, 1, "2nd District Court", 8],
        [2023, 1, "Second District Court", 9]])
    deliver_csv(data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", [["year", "month", "value"], [2023, 1, 3]])


def rebuild(w: Warehouse) -> None:
    """agency_metrics of every pending month, as the roll-up's first step rebuilds it."""
    ingest.resolve_agency_metrics(w.con, pending.pending_months(w.con), w.roster, w.registry)


def contents(w: Warehouse) -> dict[str, pl.DataFrame]:
    return {"agency_metrics": w.metrics(),
            "source_files": w.table("source_files", "path").drop("ingested_at", "received_at"),
            "rejected_rows": w.table("rejected_rows", "ALL"),
            "staged": w.table("staged", "ALL")}


@pytest.mark.parametrize(("roster", "reread"), [(MOVED, 2), (RENAMED, 1)], ids=["fiscal_year", "child_renamed"])
def test_the_next_ingest_reads_an_agencys_files_again_as_a_first_ingest_would(tmp_path, roster, reread):
    w = Warehouse(tmp_path / "changed")
    deliver(w.data_dir)
    w.ingest()
    w.change_roster(agencies=roster)
    report = w.ingest()
    # Only the folders whose reading changed: fy_jail's two files, or aoc's one (court_2 is its child).
    assert (report.files_new, report.files_changed, report.files_unchanged) == (0, 0, 4 - reread)
    assert report.files_reread == reread
    rebuild(w)

    fresh = Warehouse(tmp_path / "fresh", agencies=roster)
    deliver(fresh.data_dir)
    fresh.ingest()
    rebuild(fresh)
    for name, frame in contents(fresh).items():
        assert contents(w)[name].equals(frame), name
    assert w.ingest().files_reread == 0  # read once: the marks are gone
    w.close()
    fresh.close()


def test_the_years_move_and_the_months_they_left_are_rebuilt_for_every_agency(tmp_path):
    w = Warehouse(tmp_path)
    deliver(w.data_dir)
    w.ingest()
    annual = pl.col("frequency") == "ANNUAL"
    assert w.metrics().filter(annual)["period_start"].to_list() == [date(2021, 7, 1), date(2022, 7, 1)]
    w.change_roster(agencies=MOVED)
    w.ingest()
    # The months the earlier reading held are rebuilt for every agency (a superagency's upload names its rows'
    # agencies only when read); the new months pend as the file's own.
    assert {date(2021, 7, 1), date(2022, 7, 1)} <= set(pending.whole_months(w.con))
    rebuild(w)
    assert w.metrics().filter(annual).select("period_start", "period_end", "value").rows() == [
        (date(2022, 1, 1), date(2023, 1, 1), 10.0), (date(2023, 1, 1), date(2024, 1, 1), 11.0)]
    staged = w.table("staged").filter(pl.col("frequency") == "ANNUAL")
    assert staged["period_start"].to_list() == [date(2022, 1, 1), date(2023, 1, 1)]  # the old reading is gone
    w.close()


def test_a_file_read_again_keeps_its_place_among_the_uploads(tmp_path):
    """Two files give fy_jail's FY2023 funding; the later one wins before and after both are read again."""
    w = Warehouse(tmp_path)
    deliver_xlsx(w.data_dir, "fy_jail", "JAILS", "budget.xlsx", {"funding": [["year", "value"], [2023, 1]]})
    w.ingest()
    deliver_xlsx(w.data_dir, "fy_jail", "JAILS", "budget_corrected.xlsx", {"funding": [["year", "value"], [2023, 2]]})
    w.ingest()
    w.change_roster(agencies=MOVED)
    assert w.ingest().files_reread == 2
    rebuild(w)
    assert w.metrics().select("period_start", "value").rows() == [(date(2023, 1, 1), 2.0)]
    w.close()


def test_a_file_changed_since_is_a_new_version_and_the_mark_goes(tmp_path):
    w = Warehouse(tmp_path)
    deliver_csv(w.data_dir, "fy_jail", "JAILS", "funding.csv", [["year", "value"], [2023, 1]])
    w.ingest()
    w.change_roster(agencies=MOVED)
    assert ingest.files_to_reread(w.con).keys() == {"inbox/fy_jail/JAILS/funding.csv"}
    deliver_csv(w.data_dir, "fy_jail", "JAILS", "funding.csv", [["year", "value"], [2023, 5]])
    report = w.ingest()
    assert (report.files_changed, report.files_reread) == (1, 0)
    assert w.table("source_files").height == 2
    assert ingest.files_to_reread(w.con) == {}
    w.close()


def test_a_roster_change_and_a_file_read_again_are_published_also_when_no_month_holds_data(tmp_path):
    """A state whose only file is refused (F8: its agency not on the roster yet), then takes the agency, whose rows
    are now rejected for their values: no month holds data, nothing is rolled up, yet the next run must publish the
    new roster and the new findings (review: the re-read kept the file's upload_seq, and the run said "warehouse
    unchanged")."""
    w = Warehouse(tmp_path)
    deliver_csv(w.data_dir, "newpd", "LAW_ENFORCEMENT", "arrests.csv", [["year", "month", "value"], [2023, 1, "x"]])
    w.ingest()
    seen = pending.generations(w.con)
    pending.mark_published(w.con, rolled_up=seen.rolled_up, uploaded=seen.uploaded)
    assert not pending.generations(w.con).unpublished
    w.change_roster(agencies=[*AGENCIES, ("newpd", "New Police Department", "US_XX", "LAW_ENFORCEMENT", "", "1000",
                                          "1", "")])
    assert pending.generations(w.con).unpublished  # the roster itself
    seen = pending.generations(w.con)
    pending.mark_published(w.con, rolled_up=seen.rolled_up, uploaded=seen.uploaded)
    assert w.ingest().files_reread == 1
    assert pending.pending_months(w.con) == []  # no month to roll up
    assert set(w.table("rejected_rows")["rule"]) == {"R7"}
    assert pending.generations(w.con).unpublished  # the file's new findings
    w.close()


def test_an_agency_with_a_mapping_taken_off_the_roster_and_back_is_read_in_place_both_times(tmp_path):
    """Off the roster, an agency's native export is no mapping's (its version lacks the mapping's hash); back on,
    it is again: the content is what decides the re-read in place, so neither change adds a version, and the store
    equals a fresh ingest under each roster (helper-26 found a new ERRORED version, kept for good)."""
    export = [["Incident No", "Call Received", "Priority"], ["C1", "2024-01-03 10:00:00", "1"]]

    def deliver_native(data_dir) -> None:
        write_mapping(data_dir, "le", CAD)
        deliver_csv(data_dir, "le", "LAW_ENFORCEMENT", "cad_calls_2024.csv", export)
        deliver(data_dir)

    w = Warehouse(tmp_path / "changed")
    deliver_native(w.data_dir)
    w.ingest()
    without_le = [a for a in AGENCIES if a[0] != "le"]
    for step, roster in enumerate((without_le, AGENCIES)):
        w.change_roster(agencies=roster)
        report = w.ingest()
        assert (report.files_new, report.files_changed, report.files_reread) == (0, 0, 2), step
        rebuild(w)
        fresh = Warehouse(tmp_path / f"fresh{step}", agencies=roster)
        deliver_native(fresh.data_dir)
        fresh.ingest()
        rebuild(fresh)
        # The version read in place keeps its file_id (made from its first version string); the rest is equal.
        def without_ids(frame: pl.DataFrame) -> pl.DataFrame:
            frame = frame.drop("file_id", strict=False)
            return frame.sort(frame.columns, nulls_last=True)

        for name, frame in contents(fresh).items():
            assert without_ids(contents(w)[name]).equals(without_ids(frame)), (step, name)
        fresh.close()
    w.close()


def test_a_folder_moved_before_its_reread_is_named_and_read_again_when_it_comes_back(tmp_path):
    """fy_jail renamed county_jail with its folder moved at once (helper-26): the old folder's files can no longer be
    read again, so their rows stay under fy_jail (failing agency_in_roster) and rereads_gone names them; put back,
    they are read again in place and then no agency's."""
    w = Warehouse(tmp_path)
    deliver(w.data_dir)
    w.ingest()
    w.change_roster(agencies=[("county_jail", *a[1:]) if a[0] == "fy_jail" else a for a in AGENCIES])
    old, new = w.data_dir / "inbox" / "fy_jail", w.data_dir / "inbox" / "county_jail"
    old.rename(new)
    report = w.ingest()
    assert (report.files_new, report.files_reread) == (2, 0)  # the copies are county_jail's uploads
    gone = ["inbox/fy_jail/JAILS/funding.csv", "inbox/fy_jail/JAILS/total_admissions.csv"]
    assert ingest.rereads_gone(w.con, w.data_dir) == gone
    assert set(w.metrics()["agency_id"]) >= {"fy_jail", "county_jail"}  # what the moved files loaded stays

    new.rename(old)  # the old folder back (and the copies gone with it: deleted files keep what they delivered)
    report = w.ingest()
    assert (report.files_new, report.files_reread) == (0, 2)
    assert ingest.rereads_gone(w.con, w.data_dir) == []
    # A file deleted from a folder still there is no moved folder (helper-31: named on every run after a roster
    # change marked every path the folder ever held).
    (old / "JAILS" / "funding.csv").unlink()
    w.change_roster(agencies=[(*a[:6], "1", *a[7:]) if a[0] == "fy_jail" else a
                              for a in AGENCIES if a[0] != "county_jail"])
    assert ingest.files_to_reread(w.con).keys() >= {"inbox/fy_jail/JAILS/funding.csv"}
    # county_jail, off the roster now, had its folder moved away: its paths are named, fy_jail's deleted file not.
    assert ingest.rereads_gone(w.con, w.data_dir) == ["inbox/county_jail/JAILS/funding.csv",
                                                      "inbox/county_jail/JAILS/total_admissions.csv"]
    w.change_roster()  # back to fy_jail's July year; the rebuild below reads the roster of AGENCIES
    rebuild(w)
    assert "fy_jail" not in set(w.metrics()["agency_id"])
    assert w.table("source_files").filter(pl.col("path").is_in(gone))["rows_loaded"].to_list() == [0, 0]
    w.close()


@pytest.mark.slow
def test_a_run_says_which_folders_it_could_not_read_again(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    layout = DataLayout.from_env(tmp_path / "data")
    write_roster(layout.root)
    deliver(layout.root)
    run_pipeline(layout, echo=lambda line: None)
    write_roster(layout.root, [a for a in AGENCIES if a[0] != "fy_jail"])
    shutil.rmtree(layout.root / "inbox" / "fy_jail")
    said: list[str] = []
    run_pipeline(layout, echo=said.append)
    assert any("2 file(s) to read again after the roster change are no longer in the inbox (folder(s) fy_jail)"
               in line for line in said), said


def test_an_upgrade_reads_every_path_the_inbox_holds_again_once_in_place(tmp_path, monkeypatch):
    """helper-42: fixes of the ingest never reached files already read (a '1.250' the new rules reject stayed
    loaded; rejected rows kept their old words). A store whose files other code read reads every path's latest
    version again in place: the same ids and order, this version's reading, then nothing more. A path gone from the
    inbox keeps its reading and is not marked (helper-43: it was named as missing on every later run)."""
    w = Warehouse(tmp_path)
    deliver(w.data_dir)
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "calls_for_service.csv",
                [["year", "month", "value"], [2023, 1, "n/a"], [2023, 2, 9]])
    gone = deliver_csv(w.data_dir, "doc", "PRISONS", "funding.csv", [["year", "value"], [2023, 100]])
    monkeypatch.setattr(ingest.store, "code_digest", lambda: "an older version")
    assert ingest.mark_read_by_this_version(w.con, w.data_dir) == 0  # an empty store: nothing to read again
    w.ingest()
    current = contents(w)
    # As an older version would have left them: other words, another reading of a row.
    w.con.execute("UPDATE rejected_rows SET message = 'old words'")
    w.con.execute("DELETE FROM rejected_rows WHERE rule = 'R7'")
    shutil.rmtree(gone.parent.parent)
    monkeypatch.undo()
    assert ingest.mark_read_by_this_version(w.con, w.data_dir) == 5
    report = w.ingest()
    assert (report.files_reread, report.files_new, report.files_changed) == (5, 0, 0)
    rebuild(w)
    after = contents(w)
    for name, table in current.items():
        assert after[name].equals(table), name
    assert ingest.mark_read_by_this_version(w.con, w.data_dir) == 0
    assert w.parse().files.height == 0 and ingest.rereads_gone(w.con, w.data_dir) == []
    w.close()


def test_an_upgrade_retires_what_systems_wrote_that_an_older_version_recorded(tmp_path, monkeypatch):
    """helper-50: a Thumbs.db or desktop.ini an older version recorded stayed UNREADABLE on the agency's feedback for
    good, and inbox/desktop.ini, marked after the upgrade, was named on every run as a folder gone. The upgrade
    retires such a path's versions that loaded nothing, findings included; one that loaded rows (a CSV read from a
    share's recycle bin) keeps them, as a deleted file does."""
    w = Warehouse(tmp_path)
    deliver(w.data_dir)
    thumbs = deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "Thumbs.db", [["x"], [1]])
    thumbs.write_bytes(b"\xd0\xcf\x11\xe0 not a delivery")
    recycled = deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "#recycle/arrests.csv",
                           [["year", "month", "value"], [2023, 2, 4]])
    (w.data_dir / "inbox" / "desktop.ini").write_bytes(b"[.ShellClassInfo]")
    touch_later(thumbs, 600)  # the latest upload: its number must not come back (helper-54)
    # As a version from before the rule recorded them.
    monkeypatch.setattr(ingest.inbox, "_SKIPPED_NAMES", frozenset())
    monkeypatch.setattr(ingest.store, "code_digest", lambda: "an older version")
    ingest.mark_read_by_this_version(w.con, w.data_dir)
    w.ingest()
    rebuild(w)  # the new uploads indexed and rolled up
    recorded = dict(w.table("source_files").select("path", "rows_loaded").iter_rows())
    junk = ["inbox/desktop.ini", str(thumbs.relative_to(w.data_dir))]
    assert [recorded[path] for path in junk] == [0, 0] and recorded[str(recycled.relative_to(w.data_dir))] == 1
    assert w.table("rejected_rows").join(w.table("source_files").filter(pl.col("path").is_in(junk)),
                                         on="file_id").height == 2
    # One the state withdrew stays, withdrawn (helper-54: retired, it was "given back", then named on every run).
    (ini_sha,) = w.table("source_files").filter(pl.col("path") == "inbox/desktop.ini")["sha256"]
    withdrawn = [Withdrawal("inbox/desktop.ini", ini_sha, "not a delivery", 2)]
    assert ingest.apply_withdrawals(w.con, withdrawn).withdrawn == 1
    monkeypatch.undo()
    assert ingest.mark_read_by_this_version(w.con, w.data_dir) == 4  # deliver()'s, not the junk nor the recycled
    assert set(junk) & set(w.table("source_files")["path"]) == {"inbox/desktop.ini"}
    change = ingest.apply_withdrawals(w.con, withdrawn)
    assert (change.withdrawn, change.restored, change.unmatched) == (0, 0, ())
    assert not set(w.table("rejected_rows")["file_id"]) - set(w.table("source_files")["file_id"])
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "2023/arrests.csv", [["year", "month", "value"], [2023, 3, 6]])
    w.ingest()
    assert ingest.rereads_gone(w.con, w.data_dir) == []
    assert date(2023, 3, 1) in pending.pending_months(w.con)  # not taken for indexed under a retired number
    rebuild(w)
    loaded = w.metrics().filter(pl.col("agency_id") == "le", pl.col("metric_key").str.contains("ARRESTS"),
                                pl.col("period_start") == date(2023, 2, 1))
    assert loaded["value"].to_list() == [4]
    w.close()
