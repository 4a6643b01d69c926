"""Files whose stat did not move since they were last hashed are not read again (the run with nothing new), and
every way a file can change without the remembered stat noticing is either caught or documented."""

from __future__ import annotations

import os
import time

import duckdb
import pytest

from jc_pipeline.lib import ingest
from jc_pipeline.lib.ingest import batch as batch_module
from jc_pipeline.lib.ingest import inbox
from jc_pipeline_tests.ingest_support import NOW, Warehouse, deliver_csv, inbox_path
from jc_pipeline_tests.test_mappings_counts import CAD, write_mapping

LE = ("le", "LAW_ENFORCEMENT")
JAN = [["year", "month", "value"], [2023, 1, 5]]
SAME_SIZE = [["year", "month", "value"], [2023, 1, 6]]


@pytest.fixture
def w(tmp_path, monkeypatch):
    """A warehouse whose files' stats are remembered at once (the 2 s settling time would make tests sleep)."""
    monkeypatch.setattr(batch_module, "STAT_SETTLE_NS", 0)
    warehouse = Warehouse(tmp_path)
    yield warehouse
    warehouse.close()


@pytest.fixture
def reads(monkeypatch):
    """The relative paths :func:`inbox.fingerprint` opened, in order."""
    opened: list[str] = []

    def counting(file):
        opened.append(file.path)
        return inbox.fingerprint(file)

    monkeypatch.setattr(batch_module, "fingerprint", counting)
    return opened


def run(w: Warehouse, *, seen: dict | None = None) -> ingest.IngestReport:
    """What the ingest asset does: parse with the remembered stats, write each batch, then remember its stats."""
    reports = []
    known = ingest.known_files(w.con)
    for batch in ingest.parse_inbox_batches(w.data_dir, known, w.roster, w.registry,
                                            now=NOW, seen=ingest.file_stats(w.con) if seen is None else seen):
        reports.append(ingest.write_batch(w.con, batch))
        ingest.record_file_stats(w.con, batch.file_stats)
    return sum(reports[1:], reports[0])


def remembered(w: Warehouse) -> dict[str, tuple]:
    return ingest.file_stats(w.con)


def rewrite_keeping_times(path, rows) -> None:
    """Replace the bytes in place and put the old modification time back (what `touch -r` or `rsync -t` do)."""
    before = path.stat()
    path.write_bytes(b"".join(",".join(map(str, row)).encode() + b"\n" for row in rows))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_second_run_reads_no_file_and_writes_nothing(w, reads):
    deliver_csv(w.data_dir, *LE, "arrests.csv", JAN)
    deliver_csv(w.data_dir, *LE, "2023/calls_for_service.csv", JAN)
    first = run(w)
    assert first.files_new == 2 and len(reads) == 2
    assert set(remembered(w)) == {"inbox/le/LAW_ENFORCEMENT/arrests.csv",
                                  "inbox/le/LAW_ENFORCEMENT/2023/calls_for_service.csv"}
    reads.clear()
    second = run(w)
    assert reads == [] and (second.files_new, second.files_changed, second.files_unchanged) == (0, 0, 2)


def test_a_touched_file_is_hashed_again_but_stays_a_no_op(w, reads):
    path = deliver_csv(w.data_dir, *LE, "arrests.csv", JAN)
    run(w)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - 5_000_000_000))  # a future time is never trusted
    reads.clear()
    report = run(w)
    assert reads == ["inbox/le/LAW_ENFORCEMENT/arrests.csv"]
    assert (report.files_changed, report.files_unchanged, report.rows_total) == (0, 1, 0)
    assert remembered(w)["inbox/le/LAW_ENFORCEMENT/arrests.csv"][1] == path.stat().st_mtime_ns  # the new stat
    reads.clear()
    run(w)
    assert reads == []


def test_same_size_and_restored_mtime_is_still_caught_by_the_ctime(w):
    path = deliver_csv(w.data_dir, *LE, "arrests.csv", JAN)
    run(w)
    time.sleep(0.02)  # the kernel's coarse clock must tick between the two writes' change times
    rewrite_keeping_times(path, SAME_SIZE)
    report = run(w)
    assert (report.files_changed, report.rows_loaded) == (1, 1)
    assert w.con.sql("SELECT value FROM ingest_datapoints ORDER BY upload_seq DESC LIMIT 1").fetchall() == [(6.0,)]


def test_a_stat_that_did_not_move_at_all_is_trusted_and_a_full_rehash_finds_the_change(w):
    """The documented trade-off: bytes replaced while size, mtime and ctime all stayed (only a clock set back or a
    file system without change times can do that) go unseen until a run with no remembered stats."""
    path = deliver_csv(w.data_dir, *LE, "arrests.csv", JAN)
    run(w)
    time.sleep(0.02)
    rewrite_keeping_times(path, SAME_SIZE)
    now = path.stat()
    w.con.execute("UPDATE inbox_file_stats SET ctime_ns = ?", [now.st_ctime_ns])  # as if the ctime had not moved
    assert run(w).files_changed == 0
    assert run(w, seen={}).files_changed == 1  # what JC_INGEST_REHASH=1 does


def test_a_new_file_and_a_file_of_a_new_size_are_read(w, reads):
    path = deliver_csv(w.data_dir, *LE, "arrests.csv", JAN)
    run(w)
    path.write_bytes(path.read_bytes() + b"2023,2,7\n")
    deliver_csv(w.data_dir, *LE, "calls_for_service.csv", JAN)
    reads.clear()
    report = run(w)
    assert sorted(reads) == ["inbox/le/LAW_ENFORCEMENT/arrests.csv", "inbox/le/LAW_ENFORCEMENT/calls_for_service.csv"]
    assert (report.files_new, report.files_changed) == (1, 1)


def test_files_written_moments_before_the_scan_are_not_remembered(tmp_path, reads):
    w = Warehouse(tmp_path)  # the real settling time: these files were written just now
    deliver_csv(w.data_dir, *LE, "arrests.csv", JAN)
    run(w)
    assert remembered(w) == {}
    reads.clear()
    assert run(w).files_unchanged == 1 and reads == ["inbox/le/LAW_ENFORCEMENT/arrests.csv"]
    w.close()


def test_symlinks_are_never_remembered_and_a_new_target_is_seen(w, tmp_path):
    link = inbox_path(w.data_dir, *LE, "arrests.csv")
    link.symlink_to(tmp_path / "one.csv")
    assert run(w).files_unreadable == 1
    assert remembered(w) == {}
    assert run(w).files_unchanged == 1
    link.unlink()
    link.symlink_to(tmp_path / "two.csv")
    assert run(w).files_changed == 1


def test_a_file_gone_between_scan_and_hash_is_skipped_not_reported(w, monkeypatch):
    deliver_csv(w.data_dir, *LE, "arrests.csv", JAN)
    gone = deliver_csv(w.data_dir, *LE, "calls_for_service.csv", JAN)
    scanned = inbox.scan_inbox(w.data_dir)
    gone.unlink()
    monkeypatch.setattr(batch_module, "scan_inbox", lambda data_dir: scanned)
    report = run(w)
    assert (report.files_new, report.files_unreadable) == (1, 0)
    assert w.con.sql("SELECT path FROM source_files").fetchall() == [("inbox/le/LAW_ENFORCEMENT/arrests.csv",)]
    assert set(remembered(w)) == {"inbox/le/LAW_ENFORCEMENT/arrests.csv"}


def test_a_file_that_cannot_be_read_is_never_remembered_and_read_once_fixed(w):
    path = inbox_path(w.data_dir, *LE, "arrests.csv")
    os.mkfifo(path)  # refused when opened (not a regular file), like a file without read permission
    assert run(w).files_unreadable == 1 and remembered(w) == {}
    path.unlink()
    deliver_csv(w.data_dir, *LE, "arrests.csv", JAN)
    assert run(w).files_changed == 1


def test_a_changed_mapping_rereads_an_export_whose_stat_did_not_move(w, reads):
    write_mapping(w.data_dir, "le", CAD)
    deliver_csv(w.data_dir, *LE, "cad_calls_2024.csv",
                [["Incident No", "Call Received", "Priority"], ["C1", "2024-01-03 10:00:00", "1"]])
    run(w)
    reads.clear()
    assert run(w).files_unchanged == 1 and reads == []
    write_mapping(w.data_dir, "le", CAD + "# a comment is a change too\n")
    report = run(w)
    assert report.files_reread == 1 and reads == ["inbox/le/LAW_ENFORCEMENT/cad_calls_2024.csv"]


def test_a_stat_remembered_without_its_write_still_reads_the_file(w, reads):
    """Crash safety: a remembered hash spares a read only while source_files holds it as the path's latest."""
    path = deliver_csv(w.data_dir, *LE, "arrests.csv", JAN)
    (batch,) = ingest.parse_inbox_batches(w.data_dir, {}, w.roster, w.registry, now=NOW, seen={})
    ingest.record_file_stats(w.con, batch.file_stats)  # killed before write_batch committed
    reads.clear()
    report = run(w)
    assert reads == ["inbox/le/LAW_ENFORCEMENT/arrests.csv"] and report.files_new == 1
    assert path.exists()


def test_a_store_from_before_the_stats_table_hashes_every_file_once(tmp_path, monkeypatch, reads):
    monkeypatch.setattr(batch_module, "STAT_SETTLE_NS", 0)
    w = Warehouse(tmp_path, database=str(tmp_path / "old.duckdb"))
    deliver_csv(w.data_dir, *LE, "arrests.csv", JAN)
    run(w)
    w.con.execute("DROP TABLE inbox_file_stats")  # as an older version left the store
    w.con.close()
    w.con = duckdb.connect(str(tmp_path / "old.duckdb"))
    ingest.ensure_schema(w.con)
    reads.clear()
    assert run(w).files_unchanged == 1 and reads == ["inbox/le/LAW_ENFORCEMENT/arrests.csv"]
    reads.clear()
    assert run(w).files_unchanged == 1 and reads == []
    w.close()


def test_the_inbox_sensor_sees_what_ingest_reads_sub_folders_included(w, tmp_path):
    from jc_pipeline.defs.ingest.sensors import inbox_signatures

    deliver_csv(w.data_dir, *LE, "2023/arrests.csv", JAN)
    inbox_path(w.data_dir, *LE, "linked.csv").symlink_to(w.data_dir / "agencies.csv")  # ingest reports it
    assert list(inbox_signatures(w.data_dir / "inbox")) == ["le/LAW_ENFORCEMENT/2023/arrests.csv"]
    assert inbox_signatures(tmp_path / "no_state" / "inbox") == {}
