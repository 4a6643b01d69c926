"""The nightly schedule of a state data team."""

import os
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg

from jc_pipeline.defs.automation.jobs import ingest_job

#: The zone of a state that does not set ``JC_TIMEZONE``.
DEFAULT_TIMEZONE = "America/New_York"


def state_timezone() -> str:
    """The state's time zone: ``JC_TIMEZONE`` (an IANA name such as ``America/Chicago``; empty counts as not set),
    else :data:`DEFAULT_TIMEZONE`. A name that is not a zone stops the code location from loading with a message
    naming the variable: Dagster would otherwise refuse it without naming it, and took an empty one for UTC (the
    nightly run hours early, and the schedule failing at every tick)."""
    chosen = os.environ.get("JC_TIMEZONE") or DEFAULT_TIMEZONE
    try:
        ZoneInfo(chosen)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"JC_TIMEZONE={chosen!r} is not a time zone; set it to an IANA name such as "
                         f"America/Chicago (or unset it for {DEFAULT_TIMEZONE})") from exc
    return chosen


#: The state's time zone; nightly runs start at 02:00 local time.
STATE_TIMEZONE = state_timezone()


@dg.schedule(
    job=ingest_job,
    cron_schedule="0 2 * * *",  # every day at 02:00
    execution_timezone=STATE_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def nightly_ingest_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Every night at 02:00 (state time): ingest whatever arrived; the touched-periods sensor then rolls up the
    months those files touched and the warehouse is republished before the morning. The run key is the local date
    of the tick (on the spring-forward night the tick comes at 03:00, still once per local day), so a replayed or
    doubled tick never launches a second run for the same night."""
    zone = ZoneInfo(STATE_TIMEZONE)
    scheduled = context.scheduled_execution_time
    tick = scheduled.astimezone(zone) if scheduled is not None else datetime.now(zone)  # None only in ad-hoc previews
    night = tick.strftime("%Y-%m-%d")
    return dg.RunRequest(run_key=f"nightly-{night}", tags={"jc/nightly": night})
