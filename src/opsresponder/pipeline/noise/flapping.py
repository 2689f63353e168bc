"""Flapping: a fingerprint that keeps changing between problem and resolved is suppressed until it calms.

More than ``max_changes`` state changes within ``window`` mark a fingerprint flapping; it stays flapping
until no change has been seen for a whole ``window``. The state lives in this process only: with several
replicas each one counts the changes it sees (a sender spread over replicas flaps later, or not at all).
Memory is bounded: per fingerprint at most ``max_changes + 1`` change times, and at most
``max_fingerprints`` fingerprints, the least recently seen forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from datetime import datetime, timedelta

from opsresponder.core.event import EventState


class _Track:
    __slots__ = ("changes", "flapping", "state")

    def __init__(self, state: EventState) -> None:
        self.state = state
        # Created at the first change: most fingerprints never change state, and the deque is most of
        # the cost of tracking a new one.
        self.changes: deque[datetime] | None = None
        self.flapping = False


class FlapDetector:
    """Counts state changes per fingerprint; `observe` says whether the fingerprint is flapping now."""

    def __init__(self, max_changes: int, window: timedelta, max_fingerprints: int) -> None:
        self._max_changes = max_changes
        self._window = window
        self._max_fingerprints = max_fingerprints
        self._tracks: OrderedDict[str, _Track] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tracks)

    def observe(self, fingerprint: str, state: EventState, now: datetime) -> tuple[bool, int]:
        """Record one event of `fingerprint` in `state` at `now`.

        Returns whether the fingerprint is flapping and how many changes fall in the window.
        """
        track = self._tracks.get(fingerprint)
        if track is None:
            track = self._tracks[fingerprint] = _Track(state)
            if len(self._tracks) > self._max_fingerprints:
                self._tracks.popitem(last=False)
            return False, 0
        self._tracks.move_to_end(fingerprint)
        changes = track.changes
        if state != track.state:
            track.state = state
            if changes is None:
                # Only whether more than max_changes fall in the window matters, and the newest one.
                changes = track.changes = deque(maxlen=self._max_changes + 1)
            changes.append(now)
        elif changes is None:
            return False, 0
        horizon = now - self._window
        while changes and changes[0] <= horizon:
            changes.popleft()
        if len(changes) > self._max_changes:
            track.flapping = True
        elif track.flapping and not changes:
            # Stable for a whole window: no change left in it.
            track.flapping = False
        return track.flapping, len(changes)
