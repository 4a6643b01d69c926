"""Great Expectations runs in a worker process: the validating process never imports it, and a worker that dies
costs the GX rules of that validation (reported as their errors), not the caller; the next one gets a new one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jc_pipeline.lib.validation import gx_worker
from jc_pipeline.lib.validation.expectations import GX_RULES
from jc_pipeline_tests.test_validation_run import MARCH, _state


def test_a_worker_dying_mid_validation_fails_the_gx_rules_only_and_the_next_validation_gets_a_new_one(
        tmp_path, monkeypatch):
    wh = _state(tmp_path / "w.duckdb")
    assert wh.validate([MARCH])["category_is_member"].failing_groups == 1  # A's JAYWALKING arrests
    stored = wh.results("category_is_member")
    assert [r["agency_id"] for r in stored] == ["A"]

    real_send = gx_worker.send

    def send_then_die(pipe, message):
        real_send(pipe, message)
        gx_worker._worker.kill()  # as if GX crashed, or the machine ran out of memory, on this slice

    monkeypatch.setattr(gx_worker, "send", send_then_die)
    outcomes = wh.validate([MARCH])
    for rule in GX_RULES:
        assert outcomes[rule.name].error.startswith("Great Expectations failed: its worker process was lost (it exited without answering)")
        assert not outcomes[rule.name].passed
    assert outcomes["breakdowns_sum_to_total"].error is None  # the SQL rules ran as ever
    assert wh.results("category_is_member") == stored  # a rule that crashed keeps its stored results

    monkeypatch.setattr(gx_worker, "send", real_send)
    again = wh.validate([MARCH])
    assert all(again[rule.name].error is None for rule in GX_RULES)
    assert again["category_is_member"].failing_groups == 1


def test_validating_never_imports_great_expectations_here(tmp_path):
    # A process of its own: this one's module table holds what other tests imported.
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from pathlib import Path
from jc_pipeline_tests.test_validation_run import MARCH, _state
outcomes = _state(Path({str(tmp_path / "w.duckdb")!r})).validate([MARCH])
assert outcomes["category_is_member"].failing_groups == 1 and outcomes["category_is_member"].error is None
print(sorted(m for m in sys.modules if m.split(".")[0] == "great_expectations"))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_an_empty_slice_needs_no_worker():
    gx_worker._stop()
    outcomes = gx_worker.run_expectations([], 0)
    assert [(o.rule.name, o.failing_row_ids, o.checked_rows, o.error) for o in outcomes] == [
        (rule.name, (), 0, None) for rule in GX_RULES]
    assert gx_worker._worker is None


def test_the_worker_ends_with_the_process_that_started_it():
    # A run with nothing new starts the worker and exits while it still imports GX: it must not linger.
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from jc_pipeline.lib.validation import gx_worker
gx_worker.preload()
print(gx_worker._worker.pid)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    worker = int(done.stdout.strip())
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)


def test_a_great_expectations_that_cannot_be_imported_is_named_in_every_gx_rules_error(tmp_path, monkeypatch):
    broken = tmp_path / "broken" / "great_expectations"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('great_expectations is damaged in this install')\n")
    wh = _state(tmp_path / "w.duckdb")
    gx_worker._stop()
    monkeypatch.setenv("PYTHONPATH", str(broken.parent))  # the next worker finds this package first
    try:
        outcomes = wh.validate([MARCH])
    finally:
        gx_worker._stop()  # the next test's worker imports the real one
    for rule in GX_RULES:
        assert outcomes[rule.name].error == ("Great Expectations failed: ImportError: great_expectations is damaged "
                                             "in this install")
    assert outcomes["breakdowns_sum_to_total"].error is None


def test_a_validation_taking_too_long_stops_the_worker_and_fails_the_gx_rules_only(tmp_path, monkeypatch):
    wh = _state(tmp_path / "w.duckdb")
    monkeypatch.setattr(gx_worker, "VALIDATION_SECONDS", 0.001)  # no validation answers this fast
    slow = wh.validate([MARCH])
    for rule in GX_RULES:
        assert slow[rule.name].error == ("Great Expectations failed: its worker process was lost (it took longer "
                                         "than 0.001 s); the next validation starts a new one")
    assert slow["breakdowns_sum_to_total"].error is None
    assert gx_worker._worker is None  # stopped, not left working on the slice

    monkeypatch.setattr(gx_worker, "VALIDATION_SECONDS", 600.0)
    assert wh.validate([MARCH])["category_is_member"].failing_groups == 1
