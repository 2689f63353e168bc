"""Silences compiled for the noise stage: `compile_silence` checks a `SilenceSpec` and returns a
`CompiledSilence` whose ``matches(event, now)`` costs no I/O and no allocation beyond the lookups.

User regexes run on RE2 (google-re2): matching is linear in the input, so no pattern a client sends can
stall the pipeline the way a backtracking pattern can on Python's ``re``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import re2

from opsresponder.core.event import Event
from opsresponder.core.silence import WEEKDAYS, RecurringWindow, SilenceMatcher, SilenceSpec

_MINUTES_PER_DAY: Final = 24 * 60
# RE2 reports a bad pattern on stderr as well as in its exception unless told not to.
_RE2_OPTIONS: Final = re2.Options()
_RE2_OPTIONS.log_errors = False


class SilenceSpecError(ValueError):
    """A silence cannot be used as given; ``field`` names the wrong part (``matchers[1].value``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _scalar_text(value: Any) -> str | None:
    """A metadata value as the text a matcher compares (JSON's spelling of booleans); None for objects,
    lists and null, which no matcher matches."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None


def _metadata_getter(path: tuple[str, ...]) -> Callable[[Event], str | None]:
    def get(event: Event) -> str | None:
        node: Any = event.metadata
        for key in path:
            if not isinstance(node, dict):
                return None
            node = node.get(key)
        return _scalar_text(node)

    return get


class _CompiledMatcher:
    __slots__ = ("_get", "_tags", "_test")

    def __init__(self, matcher: SilenceMatcher, where: str) -> None:
        self._tags = matcher.field == "tags"
        if matcher.field.startswith("metadata."):
            self._get: Callable[[Event], Any] = _metadata_getter(tuple(matcher.field.split(".")[1:]))
        else:
            self._get = operator.attrgetter(matcher.field)
        if matcher.op == "regex":
            try:
                pattern = re2.compile(matcher.value, _RE2_OPTIONS)
            except re2.error as e:
                message = e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else str(e)
                raise SilenceSpecError(f"{where}.value", f"invalid regex: {message}") from None
            fullmatch = pattern.fullmatch

            def test(text: str) -> bool:
                try:
                    return fullmatch(text) is not None
                except UnicodeEncodeError:
                    # RE2 takes UTF-8; a lone surrogate (from undecodable input) is matched as U+FFFD.
                    return (
                        fullmatch(text.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))
                        is not None
                    )

            self._test: Callable[[str], bool] = test
        else:
            self._test = matcher.value.__eq__

    def matches(self, event: Event) -> bool:
        value = self._get(event)
        if self._tags:
            return any(self._test(tag) for tag in value)
        return value is not None and self._test(value)


class _CompiledWindow:
    __slots__ = ("_days", "_end", "_start", "_zone")

    def __init__(self, window: RecurringWindow, where: str) -> None:
        try:
            self._zone = ZoneInfo(window.time_zone)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: keys are looked up as files
            raise SilenceSpecError(
                f"{where}.time_zone", f"unknown IANA time zone {window.time_zone!r}"
            ) from None
        self._start = _minutes(window.start)
        self._end = _minutes(window.end)
        if self._start == self._end:
            raise SilenceSpecError(f"{where}.end", "must differ from start (the window would be empty)")
        self._days = frozenset(WEEKDAYS.index(day) for day in window.weekdays)

    def contains(self, now: datetime) -> bool:
        local = now.astimezone(self._zone)
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        if self._start < self._end:
            return day in self._days and self._start <= minute < self._end
        # Past midnight: the evening part belongs to today, the morning part to yesterday's window.
        return (day in self._days and minute >= self._start) or (
            (day - 1) % 7 in self._days and minute < self._end
        )


def _minutes(time_of_day: str) -> int:
    hours, minutes = time_of_day.split(":")
    return (int(hours) * 60 + int(minutes)) % _MINUTES_PER_DAY


class CompiledSilence:
    """A silence ready to test events: every matcher, the period and (if any) one of the windows."""

    __slots__ = ("_ends_at", "_matchers", "_starts_at", "_windows", "reason")

    def __init__(self, silence_id: int, spec: SilenceSpec) -> None:
        """Raises `SilenceSpecError` as `compile_silence` does."""
        if not spec.matchers:
            raise SilenceSpecError("matchers", "at least one matcher is needed (none would match everything)")
        if spec.ends_at is not None and spec.ends_at <= spec.starts_at:
            raise SilenceSpecError("ends_at", "must be after starts_at")
        self._matchers = tuple(_CompiledMatcher(m, f"matchers[{i}]") for i, m in enumerate(spec.matchers))
        self._windows = tuple(_CompiledWindow(w, f"windows[{i}]") for i, w in enumerate(spec.windows))
        self._starts_at = spec.starts_at
        self._ends_at = spec.ends_at
        self.reason = f"silenced:{silence_id}"

    def active(self, now: datetime) -> bool:
        """True at `now` (aware): within the period and, when there are windows, inside one."""
        if now < self._starts_at or (self._ends_at is not None and now >= self._ends_at):
            return False
        return not self._windows or any(w.contains(now) for w in self._windows)

    def matches(self, event: Event) -> bool:
        """True when every matcher holds for `event` (regardless of time; see `active`)."""
        return all(m.matches(event) for m in self._matchers)


def compile_silence(silence_id: int, spec: SilenceSpec) -> CompiledSilence:
    """Check `spec` and compile it; the API calls it to refuse bad input, the stage to use it.

    Raises:
        SilenceSpecError: no matchers, ``ends_at`` not after ``starts_at``, a regex RE2 refuses (with
            RE2's message), an unknown time zone, or a window whose start and end are equal.
    """
    return CompiledSilence(silence_id, spec)
