"""The state's time zone and today's date in it.

Agencies report calendar months and years of their own clock, so a period has ended at the state's midnight, not
at UTC's: judged in UTC, a US state's month ended 4-10 hours early (an upload on its last evening counted as
final), and a territory east of UTC (Guam) waited a day for the month just ended. The nightly schedule ticks in
the same zone.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: The zone of a state that does not set ``JC_TIMEZONE``.
DEFAULT_TIMEZONE = "America/New_York"


def state_timezone() -> str:
    """The state's time zone: ``JC_TIMEZONE`` (an IANA name such as ``America/Chicago``; empty counts as not set),
    else :data:`DEFAULT_TIMEZONE`. A name that is not a zone raises ValueError naming the variable: Dagster would
    refuse it without naming it, and took an empty one for UTC (the nightly run hours early, and the schedule
    failing at every tick)."""
    chosen = os.environ.get("JC_TIMEZONE") or DEFAULT_TIMEZONE
    try:
        ZoneInfo(chosen)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"JC_TIMEZONE={chosen!r} is not a time zone; set it to an IANA name such as "
                         f"America/Chicago (or unset it for {DEFAULT_TIMEZONE})") from exc
    return chosen


def state_date(moment: datetime) -> date:
    """The state's date at ``moment``; a naive one is UTC, as the ingest keeps its times (``now`` of a batch)."""
    return state_today(moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC))


def state_today(now: datetime | None = None) -> date:
    """The date in the state's time zone at ``now`` (an aware datetime; default: this instant)."""
    return (now or datetime.now(UTC)).astimezone(ZoneInfo(state_timezone())).date()
