"""Business hours read in the asset's time zone, at the event's time (injected instants, DST included)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from opsresponder.pipeline.enrich.hours import BusinessHours

PARIS_OFFICE = BusinessHours(["mon", "tue", "wed", "thu", "fri"], "09:00", "18:00", "Europe/Paris")


@pytest.mark.parametrize(
    ("instant", "inside"),
    [
        # Monday 6 January 2025, Paris is UTC+1 in winter.
        (datetime(2025, 1, 6, 7, 59, tzinfo=UTC), False),  # 08:59 in Paris
        (datetime(2025, 1, 6, 8, 0, tzinfo=UTC), True),  # 09:00 in Paris
        (datetime(2025, 1, 6, 16, 59, tzinfo=UTC), True),  # 17:59
        (datetime(2025, 1, 6, 17, 0, tzinfo=UTC), False),  # 18:00: the end is not inside
        # Monday 7 July 2025, UTC+2 in summer: 07:30 UTC is 09:30 in Paris, 16:30 UTC is 18:30.
        (datetime(2025, 7, 7, 7, 30, tzinfo=UTC), True),
        (datetime(2025, 7, 7, 16, 30, tzinfo=UTC), False),
        # Saturday, and Friday 23:30 UTC that is already Saturday 00:30 in Paris.
        (datetime(2025, 1, 11, 10, 0, tzinfo=UTC), False),
        (datetime(2025, 1, 10, 23, 30, tzinfo=UTC), False),
        # An instant given in another offset is the same instant.
        (datetime(2025, 1, 6, 3, 0, tzinfo=timezone(timedelta(hours=-6))), True),  # 10:00 in Paris
    ],
)
def test_hours_are_read_in_the_calendars_zone(instant: datetime, inside: bool) -> None:
    assert PARIS_OFFICE.contains(instant) is inside


def test_the_same_instant_is_inside_one_calendar_and_outside_another() -> None:
    new_york = BusinessHours(["mon", "tue", "wed", "thu", "fri"], "09:00", "18:00", "America/New_York")
    tokyo = BusinessHours(["mon", "tue", "wed", "thu", "fri"], "09:00", "18:00", "Asia/Tokyo")
    instant = datetime(2025, 3, 4, 15, 0, tzinfo=UTC)  # Tuesday: 10:00 in New York, 00:00 Wednesday in Tokyo
    assert new_york.contains(instant) and not tokyo.contains(instant)


def test_a_night_shift_runs_past_midnight_and_belongs_to_the_day_it_began() -> None:
    nights = BusinessHours(["fri"], "22:00", "06:00", "UTC")
    assert nights.contains(datetime(2025, 1, 10, 23, 0, tzinfo=UTC))  # Friday 23:00
    assert nights.contains(datetime(2025, 1, 11, 5, 59, tzinfo=UTC))  # Saturday 05:59: Friday's night
    assert not nights.contains(datetime(2025, 1, 11, 6, 0, tzinfo=UTC))
    assert not nights.contains(datetime(2025, 1, 10, 5, 0, tzinfo=UTC))  # Friday morning: Thursday's night
    assert not nights.contains(datetime(2025, 1, 11, 23, 0, tzinfo=UTC))  # Saturday evening


def test_end_of_day_is_written_24_00() -> None:
    late = BusinessHours(["mon"], "12:00", "24:00", "UTC")
    assert late.contains(datetime(2025, 1, 6, 23, 59, tzinfo=UTC))
    assert not late.contains(datetime(2025, 1, 7, 0, 0, tzinfo=UTC))
    assert late.as_metadata == {"days": ["mon"], "start": "12:00", "end": "24:00", "timezone": "UTC"}


def test_days_come_out_in_week_order() -> None:
    assert BusinessHours(["sun", "mon"], "00:00", "01:00", "UTC").as_metadata["days"] == ["mon", "sun"]
