"""Replaying a trigger rule's firing semantics over past matches: the ``estimated_trigger_rate``.

Pure computation: the store selects the matching events' times and group keys (store/rule_history.py),
`firings` plays the rule's window, threshold, group_by, cooldown and max-per-hour semantics (or its
absence semantics) over them, and `describe_rate` turns the firings into the text the API answers. The
semantics, as docs/rules.md states them, per group (the values of ``group_by``; one group without it):

- a threshold rule fires on the event that makes at least ``threshold`` matching events within the last
  ``time_window_minutes`` (every match when the threshold is 1); the events that fired are used up, so
  the next firing needs ``threshold`` new ones;
- a firing is held back when the group fired less than ``cooldown_minutes`` ago, or fired
  ``max_triggers_per_hour`` times within the last 60 minutes; a held-back firing uses up nothing;
- an absence rule without ``after`` fires once per silence of ``within_minutes`` after a group's last
  match (and, for ``expected_groups``, from the start of the replay); with ``after``, a match of ``after``
  opens a deadline for its group that a match of the conditions closes, and fires when it passes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from opsresponder.rules.triggers import TriggerRuleBody

DAY: Final = 86_400.0
HOUR: Final = 3_600.0
# What each replayed row is, for absence rules with ``after`` (a row may be both).
MATCH: Final = 1
AFTER: Final = 2


@dataclass(frozen=True, slots=True)
class Semantics:
    """The parts of a rule that decide when it fires, in seconds."""

    window: float | None
    threshold: int
    cooldown: float
    max_per_hour: int | None
    absence_within: float | None = None
    absence_after: bool = False
    expected_groups: tuple[Hashable, ...] = ()

    @classmethod
    def of(cls, body: TriggerRuleBody) -> Semantics:
        absence = body.absence
        return cls(
            window=None if body.time_window_minutes is None else body.time_window_minutes * 60.0,
            threshold=body.threshold,
            cooldown=body.cooldown_minutes * 60.0,
            max_per_hour=body.max_triggers_per_hour,
            absence_within=None if absence is None else absence.within_minutes * 60.0,
            absence_after=absence is not None and absence.after is not None,
            # Expected groups need exactly one group_by field, whose value is then the group key.
            expected_groups=() if absence is None else tuple(absence.expected_groups),
        )


@dataclass(slots=True)
class _Limits:
    """Cooldown and max-per-hour, per group."""

    cooldown: float
    max_per_hour: int | None
    last: dict[Hashable, float] = field(default_factory=dict)
    recent: dict[Hashable, deque[float]] = field(default_factory=dict)

    def allow(self, group: Hashable, t: float) -> bool:
        """True (and the firing recorded) when `group` may fire at `t`; times per group never go back."""
        last = self.last.get(group)
        if last is not None and t - last < self.cooldown:
            return False
        if self.max_per_hour is not None:
            recent = self.recent.get(group)
            if recent is None:
                recent = self.recent[group] = deque()
            while recent and t - recent[0] >= HOUR:
                recent.popleft()
            if len(recent) >= self.max_per_hour:
                return False
            recent.append(t)
        self.last[group] = t
        return True


Row = tuple[float, Hashable, int]
"""One replayed match: (epoch seconds, group key, `MATCH` | `AFTER` bits); asyncpg records unpack alike."""


class Replay:
    """Plays a rule's semantics over its matches, fed in time order in chunks (so a week of matches never
    needs to be held at once); `finish` returns the firing times."""

    def __init__(self, semantics: Semantics, start: float, end: float) -> None:
        self._s = semantics
        self._start = start
        self._end = end
        self._limits = _Limits(semantics.cooldown, semantics.max_per_hour)
        self._fired: list[float] = []
        # Per group: the counted times (threshold), the last match (heartbeat) or the open deadline.
        self._counted: dict[Hashable, deque[float]] = {}
        self._last: dict[Hashable, float] = dict.fromkeys(semantics.expected_groups, start)
        self._open_until: dict[Hashable, float] = {}
        s = semantics
        self.feed: Callable[[Iterable[Row]], None]
        """Replay the next matches, in time order."""
        if s.absence_within is not None:
            self.feed = self._deadlines if s.absence_after else self._heartbeats
        elif s.threshold == 1 and s.cooldown == 0 and s.max_per_hour is None:
            self.feed = self._every_match
        elif s.threshold == 1:
            self.feed = self._limited
        else:
            self.feed = self._threshold

    def finish(self) -> list[float]:
        s = self._s
        if s.absence_within is not None and not s.absence_after:
            for group, previous in self._last.items():
                self._fire_at_deadline(group, previous + s.absence_within)
        for group, deadline in list(self._open_until.items()):
            self._fire_at_deadline(group, deadline)
        self._open_until.clear()
        return sorted(self._fired)

    def _fire_at_deadline(self, group: Hashable, deadline: float) -> None:
        if deadline <= self._end and self._limits.allow(group, deadline):
            self._fired.append(deadline)

    def _every_match(self, rows: Iterable[Row]) -> None:
        self._fired.extend([row[0] for row in rows])

    def _limited(self, rows: Iterable[Row]) -> None:
        allow, fired = self._limits.allow, self._fired
        for t, group, _ in rows:
            if allow(group, t):
                fired.append(t)

    def _threshold(self, rows: Iterable[Row]) -> None:
        s, allow, counted = self._s, self._limits.allow, self._counted
        window = s.window if s.window is not None else float("inf")
        for t, group, _ in rows:
            recent = counted.get(group)
            if recent is None:
                recent = counted[group] = deque()
            recent.append(t)
            while t - recent[0] >= window:
                recent.popleft()
            if len(recent) >= s.threshold and allow(group, t):
                self._fired.append(t)
                recent.clear()

    def _heartbeats(self, rows: Iterable[Row]) -> None:
        assert self._s.absence_within is not None
        within, last, allow = self._s.absence_within, self._last, self._limits.allow
        for t, group, _ in rows:
            previous = last.get(group)
            if previous is not None and t > previous + within and allow(group, previous + within):
                self._fired.append(previous + within)
            last[group] = t

    def _deadlines(self, rows: Iterable[Row]) -> None:
        assert self._s.absence_within is not None
        within, open_until = self._s.absence_within, self._open_until
        for t, group, kind in rows:
            deadline = open_until.get(group)
            if deadline is not None and t > deadline:
                del open_until[group]
                self._fire_at_deadline(group, deadline)
                deadline = None
            if kind & MATCH and deadline is not None:
                del open_until[group]  # the expected event came in time
            if kind & AFTER and group not in open_until:
                # A later `after` while one is open does not push the deadline back.
                open_until[group] = t + within


def firings(semantics: Semantics, rows: Iterable[Row], start: float, end: float) -> list[float]:
    """The times the rule would have fired, given all its matches in time order, replayed over
    [`start`, `end`]."""
    replay = Replay(semantics, start, end)
    replay.feed(rows)
    return replay.finish()


def per_day(fired: Sequence[float], first_event: float, start: float, end: float) -> list[int]:
    """Firings per day, days counted back from `end`, from the day of the first stored event on."""
    days = max(1, int((end - start) // DAY))
    counts = [0] * days
    for t in fired:
        # Day 0 is the oldest; a time before `start` (an absence deadline cannot be) counts in day 0.
        counts[min(days - 1, max(0, int((t - (end - days * DAY)) // DAY)))] += 1
    first_day = min(days - 1, max(0, int((first_event - (end - days * DAY)) // DAY)))
    return counts[first_day:]


def describe_rate(counts: Sequence[int], sample: int) -> str:
    """``"2-3 per day, from 41,200 events over 7 days"``: the fewest and most firings of one day."""
    low, high = min(counts), max(counts)
    rate = f"{low} per day" if low == high else f"{low}-{high} per day"
    days = len(counts)
    return f"{rate}, from {sample:,} events over {days} day{'s' if days != 1 else ''}"


def no_history(days: int) -> str:
    return f"no history: no events stored in the last {days} day{'s' if days != 1 else ''}"
