"""Flapping: more than max_changes state changes within the window, until stable for a window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opsresponder.core.event import EventState
from opsresponder.pipeline.noise.flapping import FlapDetector

T0 = datetime(2030, 1, 1, tzinfo=UTC)
P, R = EventState.PROBLEM, EventState.RESOLVED


def flip(detector: FlapDetector, times: int, start: datetime, step: timedelta) -> tuple[bool, int]:
    result = (False, 0)
    for i in range(times):
        result = detector.observe("fp", R if i % 2 else P, start + i * step)
    return result


def test_more_than_max_changes_within_the_window_is_flapping() -> None:
    detector = FlapDetector(max_changes=3, window=timedelta(minutes=30), max_fingerprints=10)
    # The first event sets the state; each of the next ones is a change.
    assert flip(detector, 4, T0, timedelta(minutes=1)) == (False, 3)
    assert detector.observe("fp", P, T0 + timedelta(minutes=4)) == (True, 4)


def test_repeats_of_one_state_are_no_changes() -> None:
    detector = FlapDetector(max_changes=1, window=timedelta(minutes=30), max_fingerprints=10)
    for i in range(10):
        assert detector.observe("fp", P, T0 + timedelta(seconds=i)) == (False, 0)


def test_changes_spread_wider_than_the_window_are_not_flapping() -> None:
    detector = FlapDetector(max_changes=3, window=timedelta(minutes=30), max_fingerprints=10)
    flapping, changes = flip(detector, 20, T0, timedelta(minutes=11))
    assert not flapping and changes == 3  # at most three 11-minute steps fit in 30 minutes


def test_flapping_ends_after_a_whole_window_without_change() -> None:
    detector = FlapDetector(max_changes=2, window=timedelta(minutes=30), max_fingerprints=10)
    assert flip(detector, 4, T0, timedelta(minutes=1))[0]
    last_change = T0 + timedelta(minutes=3)
    # Fewer changes left in the window than the limit, but not yet stable for a window: still flapping.
    assert detector.observe("fp", R, T0 + timedelta(minutes=32))[0]
    assert detector.observe("fp", R, last_change + timedelta(minutes=29))[0]
    assert detector.observe("fp", R, last_change + timedelta(minutes=30)) == (False, 0)


def test_the_oldest_fingerprint_is_forgotten_beyond_the_bound() -> None:
    detector = FlapDetector(max_changes=1, window=timedelta(minutes=30), max_fingerprints=2)
    detector.observe("a", P, T0)
    detector.observe("b", P, T0)
    detector.observe("a", P, T0)  # a is now the most recently seen
    detector.observe("c", P, T0)
    assert len(detector) == 2
    # a remembers its state; b was forgotten, so its next event starts over (no change counted).
    assert detector.observe("a", R, T0) == (False, 1)
    assert detector.observe("b", R, T0) == (False, 0)
