"""Datapoints whose checks did not run never count as checked, and checked ones are rolled up: a roll-up whose
checks crashed, followed by a state_metrics run alone (one click in the UI), leaves their months pending (helper-36:
an ERROR-level datapoint stayed published), and a run killed after its checks leaves the months it rebuilt to the
next roll-up (helper-37). The next `jc-pipeline run` ends where an uninterrupted run ends."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from jc_pipeline.cli import main
from jc_pipeline.defs.partitions import PENDING_AGENCIES_TAG, pending_range_tags
from jc_pipeline.defs.resources import WarehouseResource
from jc_pipeline.defs.state.assets import state_metrics
from jc_pipeline.lib import pending, validation
from jc_pipeline.lib.state_clock import state_today
from jc_pipeline_tests.test_operations_support import (add_late_correction, baseline, copy_state,
                                                       first_law_enforcement_agency)

RESULTS_SQL = """
SELECT agency_id, check_name, severity, metric_key, period_start FROM validation_results
WHERE NOT passed AND period_start = $month ORDER BY ALL
"""
STATE_SQL = """
SELECT metric_key, dimension, category, value, agencies_reporting, agencies_expected FROM state_metrics
WHERE period_start = $month AND frequency = 'MONTHLY' ORDER BY ALL
"""


def _run(data: Path, home: Path) -> int:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        return main(["run", "--data-dir", str(data)])


def _with_unended_month(source: Path, target: Path) -> tuple[Path, str]:
    """A copy of ``source`` with arrests sent for the month still running (an ERROR: period_not_in_future)."""
    data = copy_state(source, target)
    agency = first_law_enforcement_agency(data / "warehouse.duckdb")
    today = state_today()
    path = data / "inbox" / agency / "LAW_ENFORCEMENT" / f"{today:%Y-%m}" / "arrests.csv"
    path.parent.mkdir()
    path.write_text(f"year,month,value\n{today.year},{today.month},999\n")
    return data, today.replace(day=1).isoformat()


def _published(data: Path, month: str) -> tuple[list, list]:
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        return (con.execute(RESULTS_SQL, {"month": month}).fetchall(),
                con.execute(STATE_SQL, {"month": month}).fetchall())


@pytest.mark.parametrize("nightly", [False, True], ids=["from the UI", "a nightly step re-executed alone"])
def test_months_whose_checks_crashed_stay_pending_through_a_state_roll_up_alone(tmp_path_factory, tmp_path,
                                                                                monkeypatch, nightly):
    reference, month = _with_unended_month(baseline(tmp_path_factory), tmp_path / "reference")
    assert _run(reference, tmp_path / "reference_home") == 0
    expected = _published(reference, month)
    assert ("period_not_in_future", "ERROR", "LAW_ENFORCEMENT_ARRESTS") in {r[1:4] for r in expected[0]}

    data, _ = _with_unended_month(baseline(tmp_path_factory), tmp_path / "data")
    with monkeypatch.context() as patch:
        def crash(*args, **kwargs):
            raise RuntimeError("the checks' worker died")

        patch.setattr(validation, "validate_scopes", crash)
        assert _run(data, tmp_path / "home") == 1
    tags = {PENDING_AGENCIES_TAG: pending_range_tags(date.fromisoformat(month), date.fromisoformat(month))[
        PENDING_AGENCIES_TAG]} if nightly else None
    materialized = dg.materialize([state_metrics], partition_key=month, tags=tags,
                                  resources={"warehouse": WarehouseResource(data_dir=str(data))})
    assert materialized.success
    if nightly:  # it reads the checked rebuilds only: nothing of the month (helper-39)
        with duckdb.connect(str(data / "pipeline" / "store.duckdb"), read_only=True) as con:
            assert 999.0 not in {row[3] for row in con.execute(STATE_SQL, {"month": month}).fetchall()}
    assert _run(data, tmp_path / "home") == 0
    assert _published(data, month) == expected


def test_a_run_killed_after_its_checks_leaves_the_months_it_rebuilt_to_the_next_roll_up(tmp_path_factory, tmp_path,
                                                                                       monkeypatch):
    """A run that rebuilds and checks a late correction's month and dies before it records the checks (and before
    its roll-up) must leave the month to the next run, which rolls the correction up as an uninterrupted run does."""
    reference = copy_state(baseline(tmp_path_factory), tmp_path / "reference")
    data = copy_state(baseline(tmp_path_factory), tmp_path / "data")
    month = "2025-03-01"
    for target in (reference, data):
        add_late_correction(target, first_law_enforcement_agency(target / "warehouse.duckdb"))
    assert _run(reference, tmp_path / "reference_home") == 0
    expected = _published(reference, month)
    assert any(row[:2] == ("LAW_ENFORCEMENT_ARRESTS", None) and row[3] >= 99999 for row in expected[1])
    with monkeypatch.context() as patch:
        def killed(*args, **kwargs):
            raise RuntimeError("killed after the checks")

        patch.setattr(pending, "mark_resolved", killed)
        assert _run(data, tmp_path / "data_home") == 1
    assert _run(data, tmp_path / "data_home") == 0
    assert _published(data, month) == expected


def test_a_publish_while_a_roll_up_is_half_done_keeps_the_warehouse_as_it_was(tmp_path_factory, tmp_path,
                                                                             monkeypatch):
    """helper-61: a publish (the sensors', the UI's) that took the warehouse's slot between a roll-up's agency step
    and its state step published the new agency rows beside the old state sums. Here the roll-up stops after its
    agency step (its checks crash): a publish then writes nothing, neither the warehouse nor a report, and counts
    nothing as published; the next `jc-pipeline run` finishes the roll-up and publishes."""
    from jc_pipeline.defs.publish import assets as publish, reports

    data = copy_state(baseline(tmp_path_factory), tmp_path / "data")
    month = "2025-03-01"
    add_late_correction(data, first_law_enforcement_agency(data / "warehouse.duckdb"))
    before = _published(data, month)
    with monkeypatch.context() as patch:
        def crash(*args, **kwargs):
            raise RuntimeError("the checks' worker died")

        patch.setattr(validation, "validate_scopes", crash)
        assert _run(data, tmp_path / "home") == 1
    with duckdb.connect(str(data / "pipeline" / "store.duckdb")) as con:
        assert date.fromisoformat(month) in pending.rolled_up_halfway(con)
    warehouse_file = (data / "warehouse.duckdb").stat()
    assets = [publish.analyst_warehouse, publish.publish_generations, reports.agency_feedback,
              reports.data_quality_report, reports.state_report]
    with monkeypatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
        result = dg.materialize(assets, resources={"warehouse": WarehouseResource(data_dir=str(data))},
                                selection=[a.key for a in assets])
    assert result.success and not result.get_asset_materialization_events()
    assert (data / "warehouse.duckdb").stat().st_ino == warehouse_file.st_ino and _published(data, month) == before
    assert _run(data, tmp_path / "home") == 0
    after = _published(data, month)
    assert after != before and any(row[:2] == ("LAW_ENFORCEMENT_ARRESTS", None) and row[3] >= 99999
                                   for row in after[1])
