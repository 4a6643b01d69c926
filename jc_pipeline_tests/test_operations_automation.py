"""The nightly schedule at real cron ticks (DST included) and the sensor chain inbox -> ingest -> roll-up of exactly
the touched months -> publish, evaluated against a real instance, as the daemon would."""

import csv
import importlib
import json
import os
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import pytest
from dagster._record import copy as record_copy
from dagster._utils.schedules import cron_string_iterator

from jc_pipeline.defs.automation import schedules
from jc_pipeline.defs.automation.jobs import LAUNCHED_BY_CLI, LAUNCHED_BY_TAG
from jc_pipeline.defs.partitions import pending_range_tags
from jc_pipeline.defs.resources import WarehouseResource
from jc_pipeline.lib import pending
from jc_pipeline.lib.ingest.inbox import SETTLE_SECONDS
from jc_pipeline.lib.paths import DataLayout
from jc_pipeline.lib.periods import contiguous_ranges
from jc_pipeline_tests.ingest_support import uploaded_ago
from jc_pipeline_tests.test_operations_support import add_late_correction, copy_state, demo_template

NEW_YORK = ZoneInfo("America/New_York")


def _ticks(first_local: datetime, count: int) -> list[datetime]:
    """The schedule's real execution times, as the scheduler computes them."""
    schedule = schedules.nightly_ingest_schedule
    iterator = cron_string_iterator(first_local.timestamp(), schedule.cron_schedule, schedule.execution_timezone)
    return [next(iterator) for _ in range(count)]


def _evaluate(schedule: dg.ScheduleDefinition, ticks: list[datetime]) -> list[dg.RunRequest]:
    requests = []
    with dg.instance_for_test() as instance:
        for tick in ticks:
            # `with`: the context opens its own handle on the instance; closing it here (LIFO) keeps Dagster's
            # process-wide "current instance" from pointing at a disposed one in later tests.
            with dg.build_schedule_context(instance=instance, scheduled_execution_time=tick) as context:
                (request,) = schedule.evaluate_tick(context).run_requests
            requests.append(request)
    return requests


@pytest.mark.parametrize(
    ("first", "utc_hours"),
    [
        # spring forward (Sun 2026-03-08): 02:00 does not exist that night; the tick comes at 03:00 EDT
        (datetime(2026, 3, 6, 0, 0, tzinfo=NEW_YORK), [7, 7, 7, 6, 6]),
        # fall back (Sun 2026-11-01): 01:00-02:00 happens twice, 02:00 once
        (datetime(2026, 10, 30, 0, 0, tzinfo=NEW_YORK), [6, 6, 7, 7, 7]),
    ],
    ids=["spring-forward", "fall-back"],
)
def test_nightly_schedule_ticks_once_per_local_night_across_dst(first, utc_hours):
    ticks = _ticks(first, 5)
    assert [tick.astimezone(timezone.utc).hour for tick in ticks] == utc_hours
    local_days = [tick.astimezone(NEW_YORK).date() for tick in ticks]
    assert local_days == [date.fromordinal(first.date().toordinal() + n) for n in range(5)]
    keys = [request.run_key for request in _evaluate(schedules.nightly_ingest_schedule, ticks)]
    assert keys == [f"nightly-{day:%Y-%m-%d}" for day in local_days]


def test_schedule_keys_come_from_the_tick_in_the_state_time_zone(monkeypatch):
    """The run key is the state's local date even when the tick is handed over in UTC, and even where that
    differs from the UTC date (Guam, UTC+10: 02:00 local is 16:00 UTC the day before)."""
    utc_tick = datetime(2026, 7, 1, 6, 0, tzinfo=timezone.utc)  # 02:00 EDT
    assert _evaluate(schedules.nightly_ingest_schedule, [utc_tick])[0].run_key == "nightly-2026-07-01"
    monkeypatch.setenv("JC_TIMEZONE", "Pacific/Guam")
    try:
        guam = importlib.reload(schedules)
        assert guam.nightly_ingest_schedule.execution_timezone == "Pacific/Guam"
        (tick,) = _ticks(datetime(2026, 7, 1, 0, 0, tzinfo=ZoneInfo("Pacific/Guam")), 1)
        assert tick.astimezone(timezone.utc) == datetime(2026, 6, 30, 16, 0, tzinfo=timezone.utc)
        (request,) = _evaluate(guam.nightly_ingest_schedule, [tick.astimezone(timezone.utc)])
        assert request.run_key == "nightly-2026-07-01" and request.tags["jc/nightly"] == "2026-07-01"
        assert guam.NIGHTLY_FRESHNESS.timezone == "Pacific/Guam"  # 07:00 in Guam, not in New York
    finally:
        monkeypatch.delenv("JC_TIMEZONE")
        importlib.reload(schedules)


def test_the_current_month_of_the_partitions_is_the_states(monkeypatch):
    """The last partition, which bounds `jc-pipeline run --from/--to` and the roll-up's months, is the state's
    current month: at 02:00 on January 1 in Guam (16:00 UTC on December 31) January has begun there, and not in Los
    Angeles (helper-47: in UTC's month, Guam's run refused the month begun)."""
    from dagster._core.definitions.partitions.context import partition_loading_context

    from jc_pipeline.defs import partitions

    instant = datetime(2026, 12, 31, 16, 0, tzinfo=timezone.utc)
    try:
        for zone, current in (("Pacific/Guam", "2027-01-01"), ("America/Los_Angeles", "2026-12-01")):
            monkeypatch.setenv("JC_TIMEZONE", zone)
            months = importlib.reload(partitions).period_months
            with partition_loading_context(effective_dt=instant):
                assert months.get_last_partition_key() == current, zone
    finally:
        monkeypatch.delenv("JC_TIMEZONE")
        importlib.reload(partitions)


def test_the_nightly_freshness_is_the_ingests_which_runs_every_night(tmp_path, monkeypatch):
    """A missed night shows as a stale `source_files` at 07:00 state time: the nightly ingest materializes it every
    night, quiet or not. The roll-up's and the publish's assets, which a quiet night leaves as they are, carry no
    freshness policy (they would fail every quiet morning)."""
    monkeypatch.setenv("JC_DATA_DIR", str(tmp_path))
    from jc_pipeline.definitions import defs as load

    graph = load().resolve_asset_graph()
    policies = {key.to_user_string(): graph.get(key).freshness_policy for key in graph.get_all_asset_keys()}
    assert {name for name, policy in policies.items() if policy is not None} == {"source_files"}
    policy = policies["source_files"]
    assert (policy.deadline_cron, policy.timezone) == ("0 7 * * *", schedules.STATE_TIMEZONE)


def test_every_change_of_a_files_content_asks_for_its_own_ingest_run(tmp_path, monkeypatch):
    """The daemon launches a run key once: a file changed between two contents again (v1, v2, v1, v2) asks for a
    new run each time, while the same tick evaluated twice over one cursor asks for the same run."""
    monkeypatch.setenv("JC_DATA_DIR", str(tmp_path))
    from jc_pipeline.definitions import defs as load

    definitions = load()
    inbox_sensor = definitions.resolve_sensor_def("inbox_sensor")
    resources = {"warehouse": WarehouseResource(data_dir=str(tmp_path))}
    path = tmp_path / "inbox" / "le" / "LAW_ENFORCEMENT" / "arrests.csv"
    path.parent.mkdir(parents=True)
    with dg.instance_for_test() as instance:

        def tick(cursor):
            with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources,
                                         repository_def=definitions.get_repository_def()) as context:
                return inbox_sensor.evaluate_tick(context)

        keys, cursor = [], None
        for version, mtime in (("v1", 1), ("v2", 2), ("v1", 3), ("v2", 4)):
            path.write_text(f"year,month,value\n2024,1,{len(version)}{version[-1]}\n")
            os.utime(path, ns=(mtime * 10**9, mtime * 10**9))
            result = tick(cursor)
            assert tick(cursor).run_requests[0].run_key == result.run_requests[0].run_key  # evaluated again
            keys.append(result.run_requests[0].run_key)
            cursor = result.cursor
    assert len(set(keys)) == 4


@pytest.mark.slow
def test_months_an_earlier_ingest_left_pending_are_rolled_up_after_the_next_ingest(tmp_path_factory, tmp_path,
                                                                                    monkeypatch):
    """An ingest whose roll-up never came (here: started by `jc-pipeline run`, which the sensor leaves alone, and
    stopped before its roll-up; or an ingest killed after some batches) leaves months pending: the next ingest,
    with nothing new, names them, and the roll-up sensor rolls them up."""
    data = copy_state(demo_template(tmp_path_factory), tmp_path / "data")
    monkeypatch.setenv("JC_DATA_DIR", str(data))
    from jc_pipeline.definitions import defs as load
    from jc_pipeline.lib.warehouse import Store

    definitions = load()
    touched_sensor = definitions.resolve_sensor_def("touched_periods_sensor")
    resources = {"warehouse": WarehouseResource(data_dir=str(data))}
    ingest = definitions.resolve_job_def("ingest_job")
    with dg.instance_for_test() as instance:

        def tick(cursor):
            with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources,
                                         repository_def=definitions.get_repository_def()) as context:
                return touched_sensor.evaluate_tick(context)

        assert ingest.execute_in_process(instance=instance, tags={LAUNCHED_BY_TAG: LAUNCHED_BY_CLI}).success
        with Store(DataLayout.from_env(data).store).connect() as con:
            waiting = pending.pending_months(con)
        assert waiting
        skipped = tick(None)
        assert not skipped.run_requests
        assert ingest.execute_in_process(instance=instance, tags={"jc/nightly": "2026-01-01"}).success
        (request,) = tick(skipped.cursor).run_requests
        assert (request.tags["dagster/asset_partition_range_start"], request.tags["dagster/asset_partition_range_end"]
                ) == (min(waiting).isoformat(), max(waiting).isoformat())


def test_sensor_chain_runs_exactly_the_touched_periods(tmp_path_factory, tmp_path, monkeypatch):
    data = copy_state(demo_template(tmp_path_factory), tmp_path / "data")
    for path in (data / "inbox").rglob("*"):  # uploads that ended before the first tick, in their order
        if path.is_file():
            os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns - (SETTLE_SECONDS + 60) * 10**9))
    monkeypatch.setenv("JC_DATA_DIR", str(data))
    from jc_pipeline.definitions import defs as load

    definitions = load()
    inbox_sensor = definitions.resolve_sensor_def("inbox_sensor")
    touched_sensor = definitions.resolve_sensor_def("touched_periods_sensor")
    publish_sensor = definitions.resolve_sensor_def("publish_after_rollup_sensor")
    resources = {"warehouse": WarehouseResource(data_dir=str(data))}
    store = DataLayout.from_env(data).store

    with dg.instance_for_test() as instance:

        def tick(sensor, cursor):
            with dg.build_sensor_context(
                instance=instance, cursor=cursor, resources=resources, repository_def=definitions.get_repository_def()
            ) as context:
                return sensor.evaluate_tick(context)

        def run(job_name, request=None, extra_tags=None):
            tags = {**(request.tags if request else {}), **(extra_tags or {})}
            result = definitions.resolve_job_def(job_name).execute_in_process(
                instance=instance, tags=tags, run_config=request.run_config if request else None)
            assert result.success
            return result

        def requested_ranges(result):
            return [
                (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
                for r in result.run_requests
            ]

        # 1. Deliveries present: one ingest run; the roll-ups cover exactly the months the files touched.
        publish_cursor = tick(publish_sensor, None).cursor  # a run-status sensor's first tick starts from now
        first = tick(inbox_sensor, None)
        (ingest_request,) = first.run_requests
        run("ingest_job", ingest_request)
        from jc_pipeline.lib.warehouse import Store

        with Store(store).connect() as con:
            touched = pending.pending_months(con)
        rollups = tick(touched_sensor, None)
        # One nightly roll-up from the first touched month to the last, though they are not one range (the demo
        # has fiscal-year (July) and calendar-year starts): it rebuilds only the months with pending uploads.
        assert len(contiguous_ranges(touched)) >= 2
        assert requested_ranges(rollups) == [(min(touched).isoformat(), max(touched).isoformat())]
        (rollup_request,) = rollups.run_requests
        assert rollup_request.job_name in (None, "rollup_job")
        # Nightly roll-ups: only the agencies with pending uploads are rebuilt (test_rollup_scoped.py).
        assert rollup_request.tags.items() >= pending_range_tags(min(touched), max(touched)).items()

        # 2. The roll-up's success publishes, except after roll-ups `jc-pipeline run` started (it publishes itself).
        rollup = run("rollup_job", rollup_request)
        success = next(e for e in rollup.all_events if e.event_type == dg.DagsterEventType.RUN_SUCCESS)
        dagster_run = instance.get_run_by_id(rollup.run_id)
        publish = publish_sensor(
            dg.build_run_status_sensor_context(
                sensor_name="publish_after_rollup_sensor",
                dagster_event=success,
                dagster_instance=instance,
                dagster_run=dagster_run,
            )
        )
        assert isinstance(publish, dg.RunRequest) and publish.run_key == rollup.run_id
        skipped = publish_sensor(
            dg.build_run_status_sensor_context(
                sensor_name="publish_after_rollup_sensor",
                dagster_event=success,
                dagster_instance=instance,
                dagster_run=dagster_run.with_tags({**dagster_run.tags, LAUNCHED_BY_TAG: LAUNCHED_BY_CLI}),
            )
        )
        assert skipped is None
        ui_backfill = record_copy(
            dagster_run, job_name="__ASSET_JOB", asset_selection=frozenset({dg.AssetKey("state_metrics")})
        )
        publish_after_ui = publish_sensor(
            dg.build_run_status_sensor_context(
                sensor_name="publish_after_rollup_sensor",
                dagster_event=success,
                dagster_instance=instance,
                dagster_run=ui_backfill,
            )
        )
        assert isinstance(publish_after_ui, dg.RunRequest)
        ingest_only = record_copy(dagster_run, job_name="ingest_job")
        assert isinstance(
            publish_sensor(
                dg.build_run_status_sensor_context(
                    sensor_name="publish_after_rollup_sensor",
                    dagster_event=success,
                    dagster_instance=instance,
                    dagster_run=ingest_only,
                )
            ),
            type(None),
        )
        # One tick publishes after the ingest and the roll-up since the last: a run left alone does not end it
        # (helper-53: a SkipReason did, one run per 30-second tick).
        (tick_publish,) = tick(publish_sensor, publish_cursor).run_requests
        assert tick_publish.run_key == rollup.run_id

        # 3. Nothing new: no ingest requested, nothing to roll up.
        cursor = first.cursor
        assert not tick(inbox_sensor, cursor).run_requests
        assert not tick(touched_sensor, rollups.cursor).run_requests

        # 4. A file touched but unchanged launches nothing; a nightly ingest over unchanged inputs rolls up nothing.
        # Touched now, it may be arriving: its entry stays as it was; settled, its hash is the one it had.
        some_file = next(p for p in sorted((data / "inbox").rglob("*")) if p.is_file())
        os.utime(some_file)
        waiting = tick(inbox_sensor, cursor)
        assert not waiting.run_requests and waiting.cursor == cursor
        uploaded_ago(some_file, SETTLE_SECONDS + 1)
        touched_only = tick(inbox_sensor, waiting.cursor)
        assert not touched_only.run_requests and touched_only.cursor != cursor
        cursor = touched_only.cursor
        run("ingest_job", extra_tags={"jc/nightly": "2026-01-01"})
        idle = tick(touched_sensor, rollups.cursor)
        assert not idle.run_requests
        assert idle.cursor != rollups.cursor  # the empty ingest is consumed, not re-read forever

        # 5. Two late corrections to old months, ingested before the roll-up sensor ticks: both months, nothing else.
        agency = next(row["agency_id"] for row in csv.DictReader((data / "agencies.csv").open())
                      if "LAW_ENFORCEMENT" in row["sectors"].split(";") and not row["superagency_id"])
        uploaded_ago(add_late_correction(data, agency, 2025, 3, 11111), SETTLE_SECONDS + 1)
        corrected = tick(inbox_sensor, cursor)
        (correction_request,) = corrected.run_requests
        assert correction_request.tags["jc/changed_files"] == "1"
        run("ingest_job", correction_request)
        uploaded_ago(add_late_correction(data, agency, 2025, 5, 22222), SETTLE_SECONDS + 1)
        second = tick(inbox_sensor, corrected.cursor)
        run("ingest_job", second.run_requests[0])
        late = tick(touched_sensor, idle.cursor)
        assert requested_ranges(late) == [("2025-03-01", "2025-05-01")]
        # The one run rebuilds the two months, each for the one agency, and not April between them.
        state = run("rollup_job", late.run_requests[0]).asset_materializations_for_node("state_metrics")
        assert {json.dumps(m.metadata["rebuilds"].value) for m in state} == {json.dumps([
            {"first": "2025-03-01", "last": "2025-03-01", "agencies": 1},
            {"first": "2025-05-01", "last": "2025-05-01", "agencies": 1}])}

        # 6. An ingest `jc-pipeline run` started is left to that command.
        add_late_correction(data, agency, 2025, 7, 33333)
        run("ingest_job", extra_tags={LAUNCHED_BY_TAG: LAUNCHED_BY_CLI})
        left = tick(touched_sensor, late.cursor)
        assert not left.run_requests
        # ... which rolls it up itself (a month it left pending would go with the next ingest's, test above).
        july = date(2025, 7, 1)
        run("rollup_job", extra_tags={**pending_range_tags(july, july), LAUNCHED_BY_TAG: LAUNCHED_BY_CLI})

        # 7. A delivery touching no period (unreadable) rolls nothing up, but is published for the reports that night.
        broken = data / "inbox" / agency / "LAW_ENFORCEMENT" / "broken.xlsx"
        broken.write_bytes(b"not a workbook")
        uploaded_ago(broken, SETTLE_SECONDS + 1)
        run("ingest_job", tick(inbox_sensor, second.cursor).run_requests[0])
        (publish_request,) = tick(touched_sensor, left.cursor).run_requests
        assert publish_request.job_name == "publish_job"
        with Store(store).connect() as con:
            assert pending.generations(con).unpublished
        run("publish_job", publish_request)
        # The publish records itself, so the next `jc-pipeline run` finds nothing to publish again.
        with Store(store).connect() as con:
            assert not pending.generations(con).unpublished
        with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
            assert con.execute("SELECT status FROM source_files WHERE path LIKE '%/broken.xlsx'").fetchall() == [
                ("UNREADABLE",)]
