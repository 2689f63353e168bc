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
    """A fingerprint that changed state at least once: its state, its recent changes, whether it flaps."""

    __slots__ = ("changes", "flapping", "state")

    def __init__(self, state: EventState, max_changes: int) -> None:
        self.state = state
        # Only whether more than max_changes fall in the window matters, and the newest one.
        self.changes: deque[datetime] = deque(maxlen=max_changes + 1)
        self.flapping = False


class FlapDetector:
    """Counts state changes per fingerprint; `observe` says whether the fingerprint is flapping now."""

    def __init__(self, max_changes: int, window: timedelta, max_fingerprints: int) -> None:
        self._max_changes = max_changes
        self._window = window
        self._max_fingerprints = max_fingerprints
        # A fingerprint that never changed state is its state alone: most never do, and an object per new
        # fingerprint was most of the cost of tracking one.
        self._tracks: OrderedDict[str, EventState | _Track] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tracks)

    def observe(self, fingerprint: str, state: EventState, now: datetime) -> tuple[bool, int]:
        """Record one event of `fingerprint` in `state` at `now`.

        Returns whether the fingerprint is flapping and how many changes fall in the window.
        """
        tracks = self._tracks
        track = tracks.get(fingerprint)
        if track is None:
            tracks[fingerprint] = state
            if len(tracks) > self._max_fingerprints:
                tracks.popitem(last=False)
            return False, 0
        tracks.move_to_end(fingerprint)
        if not isinstance(track, _Track):
            if state == track:
                return False, 0
            track = tracks[fingerprint] = _Track(state, self._max_changes)  # its first change
            track.changes.append(now)
        elif state != track.state:
            track.state = state
            track.changes.append(now)
        changes = track.changes
        horizon = now - self._window
        while changes and changes[0] <= horizon:
            changes.popleft()
        if len(changes) > self._max_changes:
            track.flapping = True
        elif track.flapping and not changes:
            # Stable for a whole window: no change left in it.
            track.flapping = False
        return track.flapping, len(changes)
