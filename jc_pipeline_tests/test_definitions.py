"""The code location loads cleanly, exposes the expected graph, and its automation evaluates at fixed times."""

import json
import os
import warnings
from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from jc_pipeline.defs.ingest.sensors import file_sha256, inbox_signatures, remember, remembered
from jc_pipeline.defs.normalize.checks import STRUCTURE_CHECK
from jc_pipeline.lib import validation
from jc_pipeline.lib.ingest.inbox import SETTLE_SECONDS
from jc_pipeline_tests.ingest_support import uploaded_ago

EXPECTED_ASSETS = {
    "metric_definitions",
    "metric_categories",
    "agencies",
    "agency_metric_settings",
    "agency_breakdown_settings",
    "source_files",
    "rejected_rows",
    "agency_metrics",
    "validation_results",
    "state_metrics",
    "analyst_warehouse",
    "data_quality_report",
    "agency_feedback",
    "state_report",
    "publish_generations",
}


@pytest.fixture(scope="module")
def defs(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JC_DATA_DIR", str(data_dir))
        from jc_pipeline.definitions import defs as load

        yield load()


def test_definitions_load_without_deprecation_warnings(monkeypatch, tmp_path):
    monkeypatch.setenv("JC_DATA_DIR", str(tmp_path))
    from jc_pipeline.definitions import defs as load

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        definitions = load()
        dg.Definitions.validate_loadable(definitions)


def test_asset_graph_and_jobs(defs):
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == EXPECTED_ASSETS
    for job in ("ingest_job", "rollup_job", "publish_job"):
        assert defs.resolve_job_def(job) is not None


def test_everything_in_the_catalog_says_what_it_is(defs):
    """The UI shows these descriptions beside each asset, check, job, schedule and sensor. Dagster reads an asset's
    docstring but not a schedule's or a sensor's, which must be given their description."""
    graph = defs.resolve_asset_graph()
    described = {key.to_user_string(): graph.get(key).description for key in graph.get_all_asset_keys()}
    described |= {f"check {key.name}": graph.get_check_spec(key).description for key in graph.asset_check_keys}
    repository = defs.get_repository_def()
    described |= {f"job {job.name}": job.description for job in repository.get_all_jobs()
                  if not job.name.startswith("__")}  # Dagster's own implicit asset job
    described |= {f"schedule {s.name}": s.description for s in repository.schedule_defs}
    described |= {f"sensor {s.name}": s.description for s in repository.sensor_defs}
    assert {"job publish_job", "schedule nightly_ingest_schedule", "sensor inbox_sensor",
            "sensor touched_periods_sensor", "sensor publish_after_rollup_sensor"} <= set(described)
    assert [name for name, text in described.items() if not text or len(text.split()) < 5] == []


def test_every_rule_is_an_asset_check_plus_the_blocking_structure_gate(defs):
    graph = defs.resolve_asset_graph()
    checks = {key.name: key for key in graph.asset_check_keys}
    assert {rule.name for rule in validation.RULES} | {STRUCTURE_CHECK} == set(checks)
    assert all(key.asset_key == dg.AssetKey("agency_metrics") for key in checks.values())


def test_nightly_schedule_runs_at_two_in_the_state_time_zone(defs):
    schedule = defs.resolve_schedule_def("nightly_ingest_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "America/New_York"
    tick = datetime(2026, 3, 9, 2, 0, tzinfo=ZoneInfo("America/New_York"))  # not 03-08: 02:00 did not exist
    with dg.instance_for_test() as instance, dg.build_schedule_context(
        instance=instance, scheduled_execution_time=tick
    ) as context:
        request = schedule.evaluate_tick(context).run_requests[0]
    assert request.run_key == "nightly-2026-03-09"


def test_inbox_signatures_move_with_the_file_and_keep_its_real_name(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "A1" / "JAILS").mkdir(parents=True)
    first = inbox / "A1" / "JAILS" / "2024.csv"
    first.write_text("year,month,value\n2024,1,5\n")
    before = inbox_signatures(inbox)
    assert list(before) == ["A1/JAILS/2024.csv"] and before == inbox_signatures(inbox)
    first.write_text("year,month,value\n2024,1,6\n2024,2,7\n")
    assert inbox_signatures(inbox)["A1/JAILS/2024.csv"].signature != before["A1/JAILS/2024.csv"].signature
    odd = inbox / "A1" / "JAILS" / os.fsdecode(b"caf\xe9.csv")  # not UTF-8: shown escaped, opened as it is
    odd.write_text("year,month,value\n2024,1,5\n")
    seen = inbox_signatures(inbox)["A1/JAILS/caf\\xe9.csv"]
    assert seen.location == str(odd) and len(file_sha256(seen.location)) == 64


def test_inbox_sensor_requests_one_ingest_run_per_change(defs, tmp_path):
    sensor = defs.resolve_sensor_def("inbox_sensor")
    inbox = tmp_path / "inbox" / "A1" / "JAILS"
    inbox.mkdir(parents=True)
    (inbox / "2024.csv").write_text("year,month,value\n2024,1,5\n")
    uploaded_ago(inbox / "2024.csv", SETTLE_SECONDS + 1)  # an upload that has ended (test_ingest_arriving.py)
    from jc_pipeline.defs.resources import WarehouseResource

    with dg.instance_for_test() as instance:
        resources = {"warehouse": WarehouseResource(data_dir=str(tmp_path))}
        first = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert len(first.run_requests) == 1
        state = tmp_path / "pipeline" / "inbox_sensor"
        for leftover in ("0" * 32 + ".json", f"{first.cursor}.json.partial", "1" * 32 + ".json.partial"):
            (state / leftover).write_text("{}")  # an older map, a write cut short, one being written
        for old in ("0" * 32 + ".json", f"{first.cursor}.json.partial"):
            long_ago = (state / old).stat().st_mtime - 601
            os.utime(state / old, (long_ago, long_ago))
        again = sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=first.cursor))
        assert not again.run_requests and again.cursor == first.cursor
        assert {path.name for path in state.iterdir()} == {f"{first.cursor}.json", "1" * 32 + ".json.partial"}
    # A map seen before, its file old, returned again: recent now, kept by an overlapping evaluation (helper-58).
    long_ago = (state / f"{first.cursor}.json").stat().st_mtime - 3600
    os.utime(state / f"{first.cursor}.json", (long_ago, long_ago))
    assert remember(state, remembered(state, first.cursor), "0" * 32) == first.cursor
    assert remember(state, {}, "0" * 32) != first.cursor and (state / f"{first.cursor}.json").is_file()
    # helper-53: the map of what the tick saw, kept in the cursor, grew the instance by its size every minute.
    seen = remembered(tmp_path / "pipeline" / "inbox_sensor", first.cursor)
    assert len(first.cursor) == 32 and set(seen) == {"A1/JAILS/2024.csv"}
    with dg.instance_for_test() as instance:  # a cursor of the version before, which held the map itself
        upgraded = sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=json.dumps(seen)))
    assert not upgraded.run_requests and upgraded.cursor == first.cursor


def test_inbox_sensor_skips_a_fifo_instead_of_hanging_on_it(defs, tmp_path):
    """A named pipe in the inbox blocked the tick in open() forever: it is opened non-blocking and not hashed."""
    sensor = defs.resolve_sensor_def("inbox_sensor")
    inbox = tmp_path / "inbox" / "A1" / "JAILS"
    inbox.mkdir(parents=True)
    os.mkfifo(inbox / "pipe.csv")
    uploaded_ago(inbox / "pipe.csv", SETTLE_SECONDS + 1)
    from jc_pipeline.defs.resources import WarehouseResource

    with dg.instance_for_test() as instance:
        resources = {"warehouse": WarehouseResource(data_dir=str(tmp_path))}
        result = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert not result.run_requests
        assert remembered(tmp_path / "pipeline" / "inbox_sensor", result.cursor) == {}
