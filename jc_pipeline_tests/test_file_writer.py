"""Report files written on a background thread: all of them, whole, before the block ends; a failed write is
raised in the caller's thread and stops the writes after it; a failing block drops what was not written yet."""

import time
from pathlib import Path

import pytest

from jc_pipeline.lib.paths import FileWriter


def test_every_file_is_written_whole_before_the_block_ends(tmp_path):
    contents = {tmp_path / f"page{i}.html": f"<p>{i}</p>" * (i + 1) for i in range(300)}
    with FileWriter(pending=4) as writer:  # fewer slots than files: the caller waits for the writer
        for path, text in contents.items():
            writer.write(path, text)
        writer.write(tmp_path / "book.xlsx", memoryview(b"PK\x03\x04 bytes"))
    assert {p: p.read_text() for p in contents} == contents
    assert (tmp_path / "book.xlsx").read_bytes() == b"PK\x03\x04 bytes"
    assert not list(tmp_path.glob("*.partial"))


def test_a_failed_write_is_raised_and_stops_the_later_ones(tmp_path):
    missing = tmp_path / "no such folder" / "page.html"
    with pytest.raises(FileNotFoundError) as raised, FileWriter() as writer:
        writer.write(tmp_path / "before.html", "kept")
        writer.write(missing, "lost")
        writer.write(tmp_path / "after.html", "not written")
    assert raised.value.filename == f"{missing}.partial"
    assert (tmp_path / "before.html").read_text() == "kept"
    assert not (tmp_path / "after.html").exists()


def test_writing_after_a_failure_raises_in_the_callers_thread(tmp_path):
    with pytest.raises(FileNotFoundError), FileWriter(pending=1) as writer:
        writer.write(tmp_path / "missing" / "a.html", "x")
        for i in range(2_000):  # the writer fails within milliseconds; the next write says so
            writer.write(tmp_path / f"later{i}.html", "y")
            time.sleep(0.001)
        pytest.fail("a write after the failure did not raise")
    assert not list(tmp_path.glob("later*"))


def test_a_failing_block_keeps_its_own_error_and_drops_what_is_left(tmp_path):
    class Stop(Exception):
        pass

    paths = [tmp_path / f"p{i}.html" for i in range(200)]
    with pytest.raises(Stop), FileWriter(pending=200) as writer:
        for path in paths:
            writer.write(path, "x" * 10_000)
        raise Stop
    written = [path for path in paths if path.exists()]
    assert written == paths[: len(written)]  # in order, never one after a gap
    assert all(path.read_text() == "x" * 10_000 for path in written)
    assert not list(Path(tmp_path).glob("*.partial"))
