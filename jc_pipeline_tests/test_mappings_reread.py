"""A changed mapping re-reads the exports it claims, end to end through the Dagster pipeline (`run_pipeline`)."""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl
import pytest

from jc_pipeline.lib import ingest, mappings
from jc_pipeline.lib.paths import DataLayout
from jc_pipeline.runner import run_pipeline
from jc_pipeline_tests.ingest_support import (AGENCIES, NOW, Warehouse, correct_later, deliver_csv, touch_later,
                                              uploaded_ago, write_roster)
from jc_pipeline_tests.test_mappings_counts import CAD, write_mapping

JAN = date(2024, 1, 1)
EXPORT = [
    ["Incident No", "Call Received", "Priority"],
    ["C1", "2024-01-03 10:00:00", "1"],
    ["C2", "2024-01-04 11:00:00", "3"],
    ["C3", "2024-01-05 12:00:00", "4"],  # not in the first mapping: N3, the call is not counted
]


def _query(layout: DataLayout, sql: str) -> list[tuple]:
    with duckdb.connect(str(layout.warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


def _calls_of(w: Warehouse) -> float:
    """le's January calls for service, total."""
    calls = pl.col("category").is_null() & (pl.col("metric_key") == "LAW_ENFORCEMENT_CALLS_FOR_SERVICE")
    return w.metrics().filter(calls)["value"].item()


def _calls(layout: DataLayout) -> dict:
    return dict(_query(layout, """
        SELECT coalesce(category, 'TOTAL'), value FROM agency_metrics
        WHERE agency_id = 'le' AND metric_key = 'LAW_ENFORCEMENT_CALLS_FOR_SERVICE' AND period_start = '2024-01-01'"""))


@pytest.fixture
def layout(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    write_roster(tmp_path / "data")
    return DataLayout.from_env(tmp_path / "data")


def test_only_the_exports_a_changed_mapping_claims_are_read_again(tmp_path):
    w = Warehouse(tmp_path)
    write_mapping(w.data_dir, "le", CAD)
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "cad_calls_2024.csv", EXPORT)
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", [["year", "month", "value"], [2024, 1, 7]])
    w.ingest()
    assert w.parse().files.height == 0  # nothing changed
    write_mapping(w.data_dir, "le", CAD + "# a comment is a change too\n")
    again = w.parse()
    assert again.files.select("path", "change").rows() == [("inbox/le/LAW_ENFORCEMENT/cad_calls_2024.csv", "reread")]
    assert again.files_unchanged == 1  # the bulk upload is not the mapping's
    (tmp_path / "data" / "mappings" / "le.yaml").unlink()  # without a mapping the export is a bulk upload again
    assert w.parse().files["path"].to_list() == ["inbox/le/LAW_ENFORCEMENT/cad_calls_2024.csv"]
    w.close()


@pytest.mark.slow
def test_a_changed_mapping_re_reads_the_export_in_place(layout):
    write_mapping(layout.root, "le", CAD)
    deliver_csv(layout.root, "le", "LAW_ENFORCEMENT", "cad_calls_2024.csv", EXPORT)
    deliver_csv(layout.root, "le", "LAW_ENFORCEMENT", "arrests.csv", [["year", "month", "value"], [2024, 1, 7]])
    first = run_pipeline(layout, echo=lambda line: None)
    assert first.months == [JAN]
    assert _calls(layout) == {"TOTAL": 2, "EMERGENCY": 1, "NON_EMERGENCY": 1, "UNKNOWN": 0}
    assert _query(layout, "SELECT rule, raw_value FROM rejected_rows") == [("N3", "4")]
    (first_version,) = _query(layout, "SELECT file_id, upload_seq, sha256 FROM source_files WHERE path LIKE '%cad%'")

    unchanged = run_pipeline(layout, echo=lambda line: None)
    assert unchanged.months == []  # mapping and export unchanged: nothing is read again

    write_mapping(layout.root, "le", CAD.replace('"3": NON_EMERGENCY,', '"3": NON_EMERGENCY, "4": NON_EMERGENCY,'))
    fixed = run_pipeline(layout, echo=lambda line: None)
    assert fixed.months == [JAN]
    assert _calls(layout) == {"TOTAL": 3, "EMERGENCY": 1, "NON_EMERGENCY": 2, "UNKNOWN": 0}
    # The same delivery read again: its one source_files row keeps file_id and upload_seq, the new mapping's version.
    (version,) = _query(layout, """
        SELECT file_id, upload_seq, status, rows_loaded, rows_rejected, sha256 FROM source_files
        WHERE path LIKE '%cad_calls_2024.csv'""")
    assert version[:5] == (first_version[0], first_version[1], "INGESTED", 3, 0)
    assert version[5].split("+mapping:")[0] == first_version[2].split("+mapping:")[0] != version[5]
    assert _query(layout, "SELECT count(*) FROM rejected_rows") == [(0,)]  # the earlier reading's N3 is gone
    # One row per datapoint; the bulk upload of the same agency is untouched.
    assert _query(layout, """
        SELECT count(*) FROM (SELECT agency_id, metric_key, period_start, period_end, dimension, category, count(*) n
                              FROM agency_metrics GROUP BY ALL HAVING n > 1)""") == [(0,)]
    assert _query(layout, """
        SELECT value FROM agency_metrics WHERE metric_key = 'LAW_ENFORCEMENT_ARRESTS' AND dimension IS NULL""") == [
        (7.0,)]

    again = run_pipeline(layout, echo=lambda line: None)
    assert again.months == []  # the new mapping is now the known version


@pytest.mark.slow
def test_a_changed_mapping_keeps_the_export_s_place_among_the_uploads(layout):
    """The export is the same delivery read again, not a new upload: a correction delivered after it still wins,
    and what only the earlier reading produced (a wrong metric) is gone, letting the value it hid come back."""
    wrong = CAD.replace("LAW_ENFORCEMENT_CALLS_FOR_SERVICE", "LAW_ENFORCEMENT_ARRESTS").split("        breakdowns:")[0]
    write_mapping(layout.root, "le", wrong)
    deliver_csv(layout.root, "le", "LAW_ENFORCEMENT", "arrests.csv", [["year", "month", "value"], [2024, 1, 7]])
    run_pipeline(layout, echo=lambda line: None)
    deliver_csv(layout.root, "le", "LAW_ENFORCEMENT", "cad_calls_2024.csv", EXPORT)
    run_pipeline(layout, echo=lambda line: None)
    arrests = "SELECT value FROM agency_metrics WHERE metric_key = 'LAW_ENFORCEMENT_ARRESTS' AND dimension IS NULL"
    assert _query(layout, arrests) == [(3.0,)]  # the later export's reading wins over the bulk upload
    deliver_csv(layout.root, "le", "LAW_ENFORCEMENT", "calls_for_service.csv",
                [["year", "month", "value"], [2024, 1, 5]])  # the agency's own correction, after the export
    run_pipeline(layout, echo=lambda line: None)

    # A night with a typo in the mapping changes nothing (helper-43: its reading, a new version, won over the
    # correction, and so did the fixed mapping's reading in its place).
    lines: list[str] = []
    write_mapping(layout.root, "le", CAD.replace("kind: records", "kind: recordz"))
    run_pipeline(layout, echo=lines.append)
    assert _query(layout, arrests) == [(3.0,)]
    assert any("1 export(s) keep what they loaded, not read again: e.g. inbox/le/LAW_ENFORCEMENT/cad_calls_2024.csv: "
               "its mapping does not validate: mappings/le.yaml" in line for line in lines), lines
    backfill = run_pipeline(layout, first=JAN, last=JAN, echo=lines.append)  # helper-52: failed while kept
    assert backfill.months == [JAN] and _query(layout, arrests) == [(3.0,)]
    lines.clear()
    write_mapping(layout.root, "le", CAD)
    fixed = run_pipeline(layout, echo=lines.append)
    assert fixed.months == [JAN]
    assert any("1 file(s) read again" in line and "mapping changed" in line for line in lines)
    assert _query(layout, arrests) == [(7.0,)]  # the wrong metric's datapoint went with the earlier reading
    assert _calls(layout) == {"TOTAL": 5, "EMERGENCY": 1, "NON_EMERGENCY": 1, "UNKNOWN": 0}  # the correction wins
    assert _query(layout, "SELECT path, upload_seq FROM source_files ORDER BY upload_seq") == [
        ("inbox/le/LAW_ENFORCEMENT/arrests.csv", 1), ("inbox/le/LAW_ENFORCEMENT/cad_calls_2024.csv", 2),
        ("inbox/le/LAW_ENFORCEMENT/calls_for_service.csv", 3)]


@pytest.mark.parametrize(("typo", "why"), [
    (("kind: records", "kind: recordz"), "its mapping does not validate: mappings/le.yaml"),
    (("sources:", "x: !!python/object/apply:os.system [ls]\nsources:"),
     "its mapping does not validate: mappings/le.yaml"),
], ids=["invalid", "yaml"])
def test_a_mapping_that_no_longer_reads_the_export_leaves_what_it_loaded(tmp_path, typo, why):
    """A mapping file that does not validate (a wrong key, YAML that does not parse) does not read an export it read
    again (helper-41: the export, read as N1 or as a bulk upload, lost its datapoints), nor adds a version beside it
    (helper-43: it then won over the agency's later corrections): the export keeps its reading and place, and the
    run names it until the mapping validates."""
    w = Warehouse(tmp_path)
    write_mapping(w.data_dir, "le", CAD)
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "cad_calls_2024.csv", EXPORT)
    w.ingest()
    loaded = w.metrics()
    files, findings = w.table("source_files"), w.table("rejected_rows")
    assert loaded.height
    write_mapping(w.data_dir, "le", CAD.replace(*typo))
    batch = w.parse()
    assert batch.files.height == 0
    assert [(path, reason.startswith(why)) for path, reason in batch.kept] == [
        ("inbox/le/LAW_ENFORCEMENT/cad_calls_2024.csv", True)]
    report = w.ingest()
    assert report.kept == batch.kept and report.touched_months == []
    assert w.table("source_files").equals(files) and w.table("rejected_rows").equals(findings)
    assert w.metrics().equals(loaded)
    write_mapping(w.data_dir, "le", CAD)
    assert w.parse().files.height == 0 and w.parse().kept == ()  # the mapping as it was: nothing to read
    w.close()


def test_a_mapping_file_made_a_symbolic_link_is_not_followed_and_says_so(tmp_path):
    """helper-46: a mapping file replaced by a link (to a copy kept elsewhere) was taken for no mapping, without a word:
    the exports it had read were read again as bulk uploads, F3 on every row. A link is never followed; the
    exports keep what they loaded and are named with the reason."""
    w = Warehouse(tmp_path)
    write_mapping(w.data_dir, "le", CAD)
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "cad_calls_2024.csv", EXPORT)
    w.ingest()
    loaded = w.metrics()
    mapping = w.data_dir / "mappings" / "le.yaml"
    elsewhere = tmp_path / "le.yaml"
    mapping.rename(elsewhere)
    mapping.symlink_to(elsewhere)
    report = w.ingest()
    assert [path for path, _ in report.kept] == ["inbox/le/LAW_ENFORCEMENT/cad_calls_2024.csv"]
    assert report.kept[0][1] == ("its mapping does not validate: mappings/le.yaml: a symbolic link or not a regular "
                                 "file, which is never read; put the mapping file itself in mappings/")
    assert w.metrics().equals(loaded)
    w.close()


def test_an_export_kept_by_its_remembered_stat_is_not_read(tmp_path):
    """helper-46: while the mapping does not validate, an export whose stat is the one remembered with its version's
    bytes is kept without being read (hashed, and a workbook opened) night after night."""
    w = Warehouse(tmp_path)
    write_mapping(w.data_dir, "le", CAD)
    export = deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "cad_calls_2024.csv", EXPORT)
    w.ingest()
    (version,) = w.con.execute("SELECT sha256 FROM source_files").fetchall()[0]
    write_mapping(w.data_dir, "le", CAD.replace("kind: records", "kind: recordz"))
    export.write_bytes(b"not the export any more")  # what reading it would find
    stat = export.stat()
    path = "inbox/le/LAW_ENFORCEMENT/cad_calls_2024.csv"
    seen = {path: (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, mappings.NativeExtracts.content(version))}
    batch = ingest.parse_inbox(w.data_dir, ingest.known_files(w.con), w.roster, w.registry, now=NOW, seen=seen)
    assert (batch.files.height, [p for p, _ in batch.kept]) == (0, [path])
    assert batch.kept[0][1].startswith("its mapping does not validate: mappings/le.yaml")
    assert w.parse().files.select("path", "change").rows() == [(path, "changed")]  # hashed: other bytes
    w.close()


@pytest.mark.slow
def test_an_export_kept_under_an_invalid_mapping_is_counted_and_named_until_withdrawn(layout):
    """helper-45/46: the run's first line counts the exports kept, every run names them, and one the state withdraws
    (it counts for nothing, whichever mapping reads it) is no longer named."""
    write_mapping(layout.root, "le", CAD)
    uploaded_ago(deliver_csv(layout.root, "le", "LAW_ENFORCEMENT", "cad_calls_2024.csv", EXPORT), 3600)
    run_pipeline(layout, echo=lambda line: None)
    write_mapping(layout.root, "le", CAD.replace("kind: records", "kind: recordz"))
    for _night in range(2):
        lines: list[str] = []
        run_pipeline(layout, echo=lines.append)
        assert any("0 new, 0 changed, 0 unchanged, 1 kept, 0 unreadable file(s)" in line for line in lines), lines
        assert any("1 export(s) keep what they loaded" in line for line in lines), lines
    (version,) = _query(layout, "SELECT sha256 FROM source_files")[0]
    (layout.root / "withdrawals.csv").write_text(
        f"path,sha256,reason\ninbox/le/LAW_ENFORCEMENT/cad_calls_2024.csv,{version},a test export\n")
    lines.clear()
    run_pipeline(layout, echo=lines.append)
    assert any("1 file version(s) withdrawn" in line for line in lines), lines
    assert not any("kept" in line or "keep what they loaded" in line for line in lines), lines
    assert _query(layout, "SELECT status FROM source_files") == [("WITHDRAWN",)]
    assert _query(layout, "SELECT count(*) FROM agency_metrics") == [(0,)]


def test_a_copy_of_an_export_stays_a_copy_when_the_mapping_changes(tmp_path):
    """helper-50: copies were found by version, which for an export holds the mapping's hash: after a mapping edit a
    copy the pattern reads was read again and won over the correction sent since; a copy moved where no pattern
    reaches was read as a bulk upload (F3). Copies are found by their bytes (and name)."""
    w = Warehouse(tmp_path)
    write_mapping(w.data_dir, "le", CAD)
    export = deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "cad_calls_2024.csv", EXPORT)
    w.ingest()
    correct_later(w, "calls_for_service.csv", [["year", "month", "value"], [2024, 1, 5]])
    copy = w.data_dir / "inbox" / "le" / "LAW_ENFORCEMENT" / "archive" / "cad_calls_2024.csv"
    copy.parent.mkdir()
    copy.write_bytes(export.read_bytes())
    touch_later(copy, 120)
    assert w.ingest().files_duplicate == 1
    write_mapping(w.data_dir, "le", CAD + "# edited\n")
    w.ingest()
    statuses = dict(w.table("source_files").select("path", "status").iter_rows())
    assert statuses["inbox/le/LAW_ENFORCEMENT/archive/cad_calls_2024.csv"] == "DUPLICATE"
    assert w.metrics().filter(pl.col("category").is_null()).select("metric_key", "value").rows() == [
        ("LAW_ENFORCEMENT_CALLS_FOR_SERVICE", 5.0)]
    w.close()


def test_an_export_moved_to_where_its_mapping_reads_it_is_not_a_copy(tmp_path):
    """helper-51: an export delivered in a subfolder its pattern does not reach was read as a bulk upload (F3, nothing
    loaded); moved where the pattern reads it, it was a DUPLICATE of that reading and never loaded. Only a version
    that loaded something has copies."""
    w = Warehouse(tmp_path)
    write_mapping(w.data_dir, "le", CAD)
    misplaced = deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "incoming/cad_calls_2024.csv", EXPORT)
    w.ingest()
    assert w.metrics().height == 0
    placed = w.data_dir / "inbox" / "le" / "LAW_ENFORCEMENT" / "cad_calls_2024.csv"
    misplaced.rename(placed)
    touch_later(placed, 60)
    report = w.ingest()
    assert (report.files_new, report.files_duplicate) == (1, 0)
    assert _calls_of(w) == 2
    w.close()


def test_a_pattern_narrowed_on_purpose_lets_a_file_it_caught_load_as_a_bulk_upload(tmp_path):
    """helper-46: a valid mapping that no longer claims a file means it: the bulk upload a too broad pattern read as
    an export (N2, nothing loaded) is read again, in place, as the bulk upload it is."""
    w = Warehouse(tmp_path)
    write_mapping(w.data_dir, "le", CAD.replace("cad_calls_*.csv", "*.csv"))
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "arrests.csv", [["year", "month", "value"], [2024, 1, 7]])
    w.ingest()
    assert w.metrics().height == 0
    write_mapping(w.data_dir, "le", CAD)
    report = w.ingest()
    assert (report.files_reread, report.kept) == (1, ())
    assert w.metrics().select("metric_key", "value").rows() == [("LAW_ENFORCEMENT_ARRESTS", 7.0)]
    w.close()


def test_a_roster_change_and_a_mapping_typo_on_one_night_leave_what_the_export_loaded(tmp_path):
    """helper-43: a path the roster change marked was read again in place whatever its reading, so a mapping typo
    of the same night replaced the export's datapoints by an N1."""
    w = Warehouse(tmp_path)
    write_mapping(w.data_dir, "le", CAD)
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "cad_calls_2024.csv", EXPORT)
    w.change_roster()
    w.ingest()
    loaded = w.metrics()
    w.change_roster(agencies=[(a[0], "Harlan City Police", *a[2:]) if a[0] == "le" else a for a in AGENCIES])
    write_mapping(w.data_dir, "le", CAD.replace("metric: LAW", "metrc: LAW"))
    report = w.ingest()
    assert [path for path, _ in report.kept] == ["inbox/le/LAW_ENFORCEMENT/cad_calls_2024.csv"]
    assert "missing key 'metric'" in report.kept[0][1]
    assert ingest.files_to_reread(w.con)  # still to be read again under the new roster, once the mapping reads it
    ingest.resolve_agency_metrics(w.con, [JAN], w.roster, w.registry)
    assert w.metrics().equals(loaded)
    write_mapping(w.data_dir, "le", CAD)
    assert w.ingest().files_reread == 1 and not ingest.files_to_reread(w.con)
    w.close()


def test_new_mapping_rules_read_every_export_again_once(tmp_path, monkeypatch):
    """An upgrade that may make a valid mapping invalid (mappings.spec.RULES) reads the exports again, in place,
    so a mapping the new rules refuse says so (its exports keep what they loaded, named by every run, like those of
    any mapping that does not validate)."""
    w = Warehouse(tmp_path)
    write_mapping(w.data_dir, "le", CAD)
    deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", "cad_calls_2024.csv", EXPORT)
    with monkeypatch.context() as before:
        before.setattr(mappings, "RULES", mappings.RULES - 1)
        w.ingest()
        assert w.parse().files.height == 0
    assert w.parse().files.select("change").rows() == [("reread",)]
    w.close()


def test_a_mapping_is_read_once_per_run_whatever_the_batches(tmp_path, monkeypatch):
    """Files are routed ahead of the batch that reads them: every batch shares the run's loaded mappings, so a
    mapping read once decides both, and each batch still adds only its own exports' datapoints."""
    w = Warehouse(tmp_path)
    write_mapping(w.data_dir, "le", CAD)
    for year in (2023, 2024):
        deliver_csv(w.data_dir, "le", "LAW_ENFORCEMENT", f"cad_calls_{year}.csv",
                    [EXPORT[0], *([f"{year}-{row[0]}", f"{year}{row[1][4:]}", row[2]] for row in EXPORT[1:3])])
    loads = []
    original = mappings.load_mapping
    monkeypatch.setattr(mappings, "load_mapping", lambda *args: loads.append(args[1]) or original(*args))
    batches = list(ingest.parse_inbox_batches(w.data_dir, {}, w.roster, w.registry, now=NOW, batch_bytes=1))
    assert loads == ["le"]
    assert [b.files["path"].to_list() for b in batches] == [["inbox/le/LAW_ENFORCEMENT/cad_calls_2023.csv"],
                                                            ["inbox/le/LAW_ENFORCEMENT/cad_calls_2024.csv"]]
    totals = [b.datapoints.filter(pl.col("dimension").is_null()).select("period_start", "value").rows()
              for b in batches]
    assert totals == [[(date(2023, 1, 1), 2.0)], [(date(2024, 1, 1), 2.0)]]
    w.close()
