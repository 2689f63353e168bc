"""The in-memory state backend: the default for a single process.

Every operation runs without awaiting, so it is atomic on the event loop. Expired entries are dropped when
touched, and a sweep over everything runs at most once per `SWEEP_INTERVAL_SECONDS`, piggybacked on writes:
no background task, and memory stays bounded by what was written within one interval plus what is live.
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from opsresponder.state.base import (
    DEFAULT_KEY_PREFIX,
    DEFAULT_MAX_BUFFER,
    StateBackend,
    Subscription,
    require_positive,
)
from opsresponder.state.errors import StateError

# A full sweep is O(keys); once a minute keeps its cost negligible and dead keys short-lived.
SWEEP_INTERVAL_SECONDS = 60.0


@dataclass(slots=True)
class _Value:
    """A string, counter or lock owner; counters are kept as decimal strings, as Redis does."""

    value: str
    expires_at: float | None


@dataclass(slots=True)
class _Window:
    hits: list[float]  # sorted timestamps
    expires_at: float


class _MemorySubscription(Subscription):
    def __init__(self, backend: MemoryStateBackend, channels: Sequence[str], max_buffer: int) -> None:
        super().__init__(channels, max_buffer)
        self._backend = backend

    async def _open(self) -> None:
        self._backend._attach(self)

    async def _release(self) -> None:
        self._backend._detach(self)


class MemoryStateBackend(StateBackend):
    """State in this process's memory; pub/sub reaches only this process's subscriptions.

    Args:
        key_prefix: accepted for symmetry with shared backends; one instance is its own namespace.
        clock: wall-clock seconds (injectable so tests can expire entries without sleeping). Windows use
            it for their default ``now``, as Redis does, so the same timestamps work on both backends.
    """

    def __init__(self, key_prefix: str = DEFAULT_KEY_PREFIX, clock: Callable[[], float] = time.time) -> None:
        super().__init__(key_prefix)
        self._clock = clock
        self._values: dict[str, _Value] = {}
        self._windows: dict[str, _Window] = {}
        self._deadlines: dict[str, dict[str, float]] = {}
        self._channels: dict[str, dict[_MemorySubscription, None]] = {}
        self._subscriptions: dict[_MemorySubscription, None] = {}
        self._next_sweep_at = clock() + SWEEP_INTERVAL_SECONDS

    @property
    def shared(self) -> bool:
        return False

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        for subscription in list(self._subscriptions):
            await subscription.aclose()

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        if ttl is not None:
            require_positive("ttl", ttl)
        now = self._clock()
        self._maybe_sweep(now)
        entry = self._live_value(key, now)
        if entry is None:
            entry = self._values[key] = _Value("0", None)
        try:
            count = int(entry.value) + amount
        except ValueError as e:
            raise StateError(f"key {key!r} does not hold a counter") from e
        entry.value = str(count)
        if ttl is not None and entry.expires_at is None:
            entry.expires_at = now + ttl
        return count

    async def get_counter(self, key: str) -> int:
        entry = self._live_value(key, self._clock())
        if entry is None:
            return 0
        try:
            return int(entry.value)
        except ValueError as e:
            raise StateError(f"key {key!r} does not hold a counter") from e

    async def window_add(self, key: str, window_seconds: float, now: float | None = None) -> int:
        require_positive("window_seconds", window_seconds)
        clock_now = self._clock()
        self._maybe_sweep(clock_now)
        at = clock_now if now is None else now
        window = self._live_window(key, clock_now)
        if window is None:
            window = self._windows[key] = _Window([], 0.0)
        del window.hits[: bisect_right(window.hits, at - window_seconds)]
        insort(window.hits, at)
        # Expiry follows the real clock, not `now`, like PEXPIRE on Redis.
        window.expires_at = clock_now + window_seconds
        return len(window.hits)

    async def window_count(self, key: str, window_seconds: float, now: float | None = None) -> int:
        require_positive("window_seconds", window_seconds)
        clock_now = self._clock()
        at = clock_now if now is None else now
        window = self._live_window(key, clock_now)
        if window is None:
            return 0
        return len(window.hits) - bisect_right(window.hits, at - window_seconds)

    async def window_take_back_many(self, hits: Sequence[tuple[str, float]]) -> int:
        clock_now = self._clock()
        removed = 0
        for key, at in hits:
            window = self._live_window(key, clock_now)
            if window is None:
                continue
            i = bisect_left(window.hits, at)
            if i < len(window.hits) and window.hits[i] == at:
                del window.hits[i]
                removed += 1
        return removed

    async def set_if_absent(self, key: str, value: str, ttl: float) -> bool:
        require_positive("ttl", ttl)
        now = self._clock()
        self._maybe_sweep(now)
        if self._live_value(key, now) is not None:
            return False
        self._values[key] = _Value(value, now + ttl)
        return True

    async def get(self, key: str) -> str | None:
        entry = self._live_value(key, self._clock())
        return None if entry is None else entry.value

    async def delete(self, key: str) -> bool:
        now = self._clock()
        existed = self._live_value(key, now) is not None or self._live_window(key, now) is not None
        existed = self._deadlines.pop(key, None) is not None or existed
        self._values.pop(key, None)
        self._windows.pop(key, None)
        return existed

    async def deadline_set(self, key: str, member: str, at: float, *, only_if_absent: bool = False) -> bool:
        members = self._deadlines.setdefault(key, {})
        if only_if_absent and member in members:
            return False
        members[member] = at
        return True

    async def deadline_remove(self, key: str, member: str, at: float | None = None) -> bool:
        members = self._deadlines.get(key)
        if members is None or member not in members or (at is not None and members[member] != at):
            return False
        del members[member]
        if not members:
            del self._deadlines[key]
        return True

    async def deadlines_due(self, key: str, now: float, limit: int = 1000) -> list[tuple[str, float]]:
        members = self._deadlines.get(key, {})
        due = sorted(((at, m) for m, at in members.items() if at <= now))[:limit]
        return [(m, at) for at, m in due]

    async def acquire_lock(self, key: str, owner: str, ttl: float) -> bool:
        return await self.set_if_absent(key, owner, ttl)

    async def release_lock(self, key: str, owner: str) -> bool:
        entry = self._live_value(key, self._clock())
        if entry is None or entry.value != owner:
            return False
        del self._values[key]
        return True

    async def extend_lock(self, key: str, owner: str, ttl: float) -> bool:
        require_positive("ttl", ttl)
        now = self._clock()
        entry = self._live_value(key, now)
        if entry is None or entry.value != owner:
            return False
        entry.expires_at = now + ttl
        return True

    async def lock_owner(self, key: str) -> str | None:
        return await self.get(key)

    async def publish(self, channel: str, message: bytes) -> None:
        # A copy: delivery can close an overflowing subscription, which detaches it from this dict.
        for subscription in list(self._channels.get(channel, ())):
            subscription._deliver(channel, message)
            if subscription.closed:
                self._detach(subscription)

    def subscribe(self, channels: Sequence[str], max_buffer: int = DEFAULT_MAX_BUFFER) -> Subscription:
        return _MemorySubscription(self, channels, max_buffer)

    def _attach(self, subscription: _MemorySubscription) -> None:
        self._subscriptions[subscription] = None
        for channel in subscription.channels:
            self._channels.setdefault(channel, {})[subscription] = None

    def _detach(self, subscription: _MemorySubscription) -> None:
        self._subscriptions.pop(subscription, None)
        for channel in subscription.channels:
            subscribers = self._channels.get(channel)
            if subscribers is not None:
                subscribers.pop(subscription, None)
                if not subscribers:
                    del self._channels[channel]

    def _live_value(self, key: str, now: float) -> _Value | None:
        entry = self._values.get(key)
        if entry is not None and entry.expires_at is not None and entry.expires_at <= now:
            del self._values[key]
            return None
        return entry

    def _live_window(self, key: str, now: float) -> _Window | None:
        window = self._windows.get(key)
        if window is not None and window.expires_at <= now:
            del self._windows[key]
            return None
        return window

    def _maybe_sweep(self, now: float) -> None:
        if now < self._next_sweep_at:
            return
        self._next_sweep_at = now + SWEEP_INTERVAL_SECONDS
        for key in [k for k, v in self._values.items() if v.expires_at is not None and v.expires_at <= now]:
            del self._values[key]
        for key in [k for k, w in self._windows.items() if w.expires_at <= now]:
            del self._windows[key]
