"""The state's time zone (JC_TIMEZONE) and its date, which decides whether a period has ended."""

from datetime import UTC, date, datetime

import pytest

from jc_pipeline.lib.state_clock import DEFAULT_TIMEZONE, state_timezone, state_today


def test_an_empty_time_zone_is_the_default_and_a_wrong_one_is_named(monkeypatch):
    """An empty JC_TIMEZONE (a systemd unit's `Environment=JC_TIMEZONE=`) is the default zone, not UTC as Dagster
    reads an empty one; a name that is no zone is refused naming the variable and the fix."""
    monkeypatch.setenv("JC_TIMEZONE", "")
    assert state_timezone() == DEFAULT_TIMEZONE == "America/New_York"
    monkeypatch.setenv("JC_TIMEZONE", "America/Chicago")
    assert state_timezone() == "America/Chicago"
    for wrong in ("Mars/Olympus_Mons", "CST6", "../../etc/passwd", "America/Chicago "):
        monkeypatch.setenv("JC_TIMEZONE", wrong)
        with pytest.raises(ValueError, match=r"JC_TIMEZONE=.* is not a time zone; set it to an IANA name") as refused:
            state_timezone()
        assert repr(wrong) in str(refused.value)


@pytest.mark.parametrize(
    ("zone", "instant", "today"),
    [
        # 20:00 on January 31 in New York is already February 1 in UTC: January has not ended there.
        ("America/New_York", datetime(2026, 2, 1, 1, 0, tzinfo=UTC), date(2026, 1, 31)),
        ("America/New_York", datetime(2026, 2, 1, 5, 0, tzinfo=UTC), date(2026, 2, 1)),  # local midnight
        # Guam's nightly run (02:00 on February 1) is still January 31 in UTC: January has ended there.
        ("Pacific/Guam", datetime(2026, 1, 31, 16, 0, tzinfo=UTC), date(2026, 2, 1)),
        ("Pacific/Honolulu", datetime(2026, 12, 31, 23, 30, tzinfo=UTC), date(2026, 12, 31)),  # 13:30 there
    ],
)
def test_today_is_the_date_in_the_state_time_zone(monkeypatch, zone, instant, today):
    monkeypatch.setenv("JC_TIMEZONE", zone)
    assert state_today(instant) == today

