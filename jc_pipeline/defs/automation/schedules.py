"""The nightly schedule of a state data team."""

from datetime import timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from jc_pipeline.defs.automation.jobs import ingest_job, ingest_run_config
from jc_pipeline.lib.state_clock import state_timezone

#: The state's time zone; nightly runs start at 02:00 local time.
STATE_TIMEZONE = state_timezone()
#: The nightly ingest runs every night, quiet or not: by 07:00 state time the inbox has been read since 02:00, or
#: the night was missed (the daemon down, the run failed). On the ingest's `source_files`, not on the roll-up's
#: assets, which a night with nothing new leaves as they are.
NIGHTLY_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="0 7 * * *", lower_bound_delta=timedelta(hours=5), timezone=STATE_TIMEZONE
)


@dg.schedule(
    job=ingest_job,
    cron_schedule="0 2 * * *",  # every day at 02:00
    execution_timezone=STATE_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night at 02:00 state time (JC_TIMEZONE, America/New_York unless set): ingest whatever the "
                "agencies delivered. The touched-periods sensor then rolls up the months those files touched and "
                "publishes the warehouse and the reports before the morning. One run per night, however often a tick "
                "is replayed.",
)
def nightly_ingest_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Every night at 02:00 (state time): ingest whatever arrived; the touched-periods sensor then rolls up the
    months those files touched and the warehouse is republished before the morning. The run key is the local date
    of the tick (on the spring-forward night the tick comes at 03:00, still once per local day), so a replayed or
    doubled tick never launches a second run for the same night. Files modified in the last two minutes may still
    be arriving and wait for the next run (`ingest_run_config`)."""
    night = context.scheduled_execution_time.astimezone(ZoneInfo(STATE_TIMEZONE)).strftime("%Y-%m-%d")
    return dg.RunRequest(run_key=f"nightly-{night}", tags={"jc/nightly": night}, run_config=ingest_run_config())
