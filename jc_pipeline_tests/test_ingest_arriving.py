"""Files still arriving: an unattended run (the nightly schedule, the inbox sensor, `jc-pipeline run --settle`)
leaves a file modified in the last SETTLE_SECONDS for the next run, so that an upload writing its final name
directly is not read half-written; nothing is lost, the next run reads it."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import duckdb
import pytest

from jc_pipeline.defs.automation.jobs import ingest_run_config
from jc_pipeline.defs.ingest.sensors import remembered
from jc_pipeline.defs.resources import WarehouseResource
from jc_pipeline.lib.ingest.inbox import SETTLE_SECONDS, scan_inbox, still_arriving
from jc_pipeline.lib.paths import DataLayout
from jc_pipeline.runner import run_pipeline
from jc_pipeline_tests.ingest_support import deliver_csv, uploaded_ago, write_roster

ARRESTS = [["year", "month", "value"], [2024, 1, 7]]


def test_a_file_is_arriving_only_while_recently_modified(tmp_path):
    path = deliver_csv(tmp_path, "le", "LAW_ENFORCEMENT", "arrests.csv", ARRESTS)
    now = datetime.now(UTC)

    def arriving(settle: float = SETTLE_SECONDS) -> bool:
        (file,) = scan_inbox(tmp_path)
        return still_arriving(now, settle)(file)

    assert arriving()
    assert not arriving(settle=0)  # a run started by hand reads everything
    uploaded_ago(path, SETTLE_SECONDS + 5)
    assert not arriving()
    uploaded_ago(path, -3600)  # times restored from a sender's clock an hour ahead: no write in progress
    assert not arriving()
    naive = now.replace(tzinfo=None)  # a naive instant is UTC, as the ingest takes it
    assert still_arriving(naive, SETTLE_SECONDS)(scan_inbox(tmp_path)[0]) == still_arriving(now, SETTLE_SECONDS)(
        scan_inbox(tmp_path)[0])


@pytest.mark.slow
def test_a_run_with_settle_leaves_an_arriving_file_for_the_next_run(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    data = tmp_path / "data"
    write_roster(data)
    layout = DataLayout.from_env(data)
    uploaded_ago(deliver_csv(data, "le", "LAW_ENFORCEMENT", "arrests.csv", ARRESTS), 600)
    arriving = deliver_csv(data, "le", "LAW_ENFORCEMENT", "april/arrests.csv",
                           [["year", "month", "value"], [2024, 4, 5]])

    said: list[str] = []
    run_pipeline(layout, settle_seconds=SETTLE_SECONDS, echo=said.append)
    assert any(f"1 file(s) modified in the last {SETTLE_SECONDS} s may still be arriving" in line for line in said)

    def loaded() -> dict[str, float]:
        with duckdb.connect(str(layout.warehouse), read_only=True) as con:
            return dict(con.execute(
                "SELECT strftime(period_start, '%Y-%m'), value FROM agency_metrics WHERE agency_id = 'le' "
                "AND metric_key = 'LAW_ENFORCEMENT_ARRESTS' AND dimension IS NULL").fetchall())

    assert loaded() == {"2024-01": 7.0}  # the arriving file is not recorded at all: no row of it, no finding

    uploaded_ago(arriving, SETTLE_SECONDS + 1)  # its upload ended
    said.clear()
    run_pipeline(layout, settle_seconds=SETTLE_SECONDS, echo=said.append)
    assert any("1 new, 0 changed, 1 unchanged" in line for line in said)
    assert not any("may still be arriving" in line for line in said)
    assert loaded() == {"2024-01": 7.0, "2024-04": 5.0}, said


def test_the_schedule_and_the_inbox_sensor_wait_for_arriving_files(tmp_path):
    from jc_pipeline.definitions import defs as load

    definitions = load()
    tick = datetime(2026, 3, 9, 2, 0, tzinfo=UTC)
    with dg.instance_for_test() as instance, dg.build_schedule_context(
            instance=instance, scheduled_execution_time=tick) as context:
        (nightly,) = definitions.resolve_schedule_def("nightly_ingest_schedule").evaluate_tick(context).run_requests
    assert nightly.run_config == ingest_run_config() == {
        "ops": {"inbox_files": {"config": {"settle_seconds": SETTLE_SECONDS}}}}

    sensor = definitions.resolve_sensor_def("inbox_sensor")
    path = deliver_csv(tmp_path, "le", "LAW_ENFORCEMENT", "arrests.csv", ARRESTS)
    resources = {"warehouse": WarehouseResource(data_dir=str(tmp_path))}
    with dg.instance_for_test() as instance:
        def evaluate(cursor: str | None) -> dg.SensorResult:
            with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources,
                                         repository_def=definitions.get_repository_def()) as context:
                return sensor.evaluate_tick(context)

        waiting = evaluate(None)
        assert not waiting.run_requests  # not remembered: seen anew next tick
        assert remembered(tmp_path / "pipeline" / "inbox_sensor", waiting.cursor) == {}
        uploaded_ago(path, SETTLE_SECONDS + 1)
        (request,) = evaluate(waiting.cursor).run_requests
    assert request.run_config == ingest_run_config()
