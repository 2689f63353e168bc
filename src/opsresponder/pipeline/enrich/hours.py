"""Business hours of an asset: weekdays and a time of day range in an IANA time zone (zoneinfo)."""

from __future__ import annotations

from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MINUTES_PER_DAY: Final = 24 * 60


class BusinessHoursError(ValueError):
    """A calendar cannot be used as written; ``field`` names the wrong part (``timezone``, ``start``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class BusinessHours:
    """When an asset's people are at work: `contains` answers for one instant.

    An ``end`` before ``start`` runs past midnight: the morning part belongs to the day the window began
    (Friday 22:00-06:00 covers Saturday 03:00). ``end`` "24:00" is midnight at the end of the day.
    """

    __slots__ = ("_days", "_end", "_start", "_zone", "as_metadata")

    def __init__(self, days: list[str], start: str | int, end: str | int, timezone: str) -> None:
        """Raises `BusinessHoursError` for an unknown day or time zone, a bad time, or start == end."""
        for day in days:
            if day not in DAYS:
                raise BusinessHoursError("days", f"unknown day {day!r} (one of {', '.join(DAYS)})")
        if not days:
            raise BusinessHoursError("days", "at least one day is needed")
        self._start = _minutes(start, "start")
        self._end = _minutes(end, "end")
        if self._start == _MINUTES_PER_DAY:
            raise BusinessHoursError("start", "24:00 is the end of a day, not a start (write 00:00)")
        if self._start == self._end % _MINUTES_PER_DAY:
            raise BusinessHoursError("end", "must differ from start (the window would be empty or whole)")
        try:
            self._zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: keys are looked up as files
            raise BusinessHoursError("timezone", f"unknown IANA time zone {timezone!r}") from None
        self._days = frozenset(DAYS.index(day) for day in days)
        ordered = [d for d in DAYS if d in days]
        self.as_metadata: Final = {
            "days": ordered,
            "start": _text(self._start),
            "end": _text(self._end),
            "timezone": timezone,
        }

    def contains(self, instant: datetime) -> bool:
        """True when `instant` (aware) falls inside the calendar, read in its time zone."""
        local = instant.astimezone(self._zone)
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        if self._start < self._end:
            return day in self._days and self._start <= minute < self._end
        return (day in self._days and minute >= self._start) or (
            (day - 1) % 7 in self._days and minute < self._end
        )


def _minutes(value: str | int, field: str) -> int:
    # YAML 1.1 reads an unquoted 9:30 as the base-60 integer 570, i.e. minutes since midnight already.
    if isinstance(value, int) and not isinstance(value, bool):
        minutes = value
    elif isinstance(value, str) and len(value) == 5 and value[2] == ":" and value.replace(":", "").isdigit():
        hours, mins = int(value[:2]), int(value[3:])
        if mins >= 60:
            raise BusinessHoursError(field, f"{value!r} is not a time of day (HH:MM)")
        minutes = hours * 60 + mins
    else:
        raise BusinessHoursError(field, f"{value!r} is not a time of day (HH:MM, quoted)")
    if not 0 <= minutes <= _MINUTES_PER_DAY:
        raise BusinessHoursError(field, f"{value!r} is not a time of day between 00:00 and 24:00")
    return minutes


def _text(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
