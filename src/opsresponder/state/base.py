"""The one interface over shared ephemeral state, and the subscription every backend hands out.

Later features build on these primitives: rule cooldowns and max-triggers-per-hour (sliding windows),
correlation windows, execution locks and live-event pub/sub across replicas. A key holds one kind of value
(a string or counter, a lock, or a window); mixing kinds on one key is an error on Redis.
"""

from __future__ import annotations

import abc
import asyncio
from collections import deque
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from opsresponder.state.errors import StateError

DEFAULT_KEY_PREFIX = "opsresponder:"
# Enough for a burst of live events to an SSE client on a slow link; beyond it the client is better off
# reconnecting than receiving events minutes late.
DEFAULT_MAX_BUFFER = 1000


def require_positive(name: str, value: float) -> None:
    """Reject a non-positive TTL or window: it is a programming error, not a state failure."""
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")


class Subscription(abc.ABC):
    """Messages published on some channels, as an async context manager and async iterator.

    Use it as ``async with backend.subscribe(["events"]) as sub: async for channel, data in sub: ...``.
    Entering returns once the subscription is active: every message published afterwards is delivered,
    in publish order, with the channel name as given (without the key prefix).

    Invariants: the buffer never holds more than ``max_buffer`` messages; delivery never waits on the
    consumer. When a message arrives while the buffer is full, the subscription closes with ``overflowed``
    set: iteration yields what was buffered, then stops. The consumer should resubscribe and resynchronise.

    Raises:
        StateError: on entering, when the backend cannot subscribe; while iterating, when the backend lost
            the subscription (after the buffered messages).
    """

    def __init__(self, channels: Sequence[str], max_buffer: int) -> None:
        if isinstance(channels, str):
            # A str is a Sequence[str]: "events" would otherwise subscribe to "e", "v", ...
            raise TypeError("channels must be a list of channel names, not one str")
        if not channels:
            raise ValueError("a subscription needs at least one channel")
        if max_buffer < 1:
            raise ValueError(f"max_buffer must be at least 1, got {max_buffer}")
        self._channels = tuple(dict.fromkeys(channels))
        self._max_buffer = max_buffer
        self._buffer: deque[tuple[str, bytes]] = deque()
        self._readable = asyncio.Event()
        self._closed = asyncio.Event()
        self._entered = False
        self._released = False
        self._overflowed = False
        self._error: StateError | None = None

    @property
    def channels(self) -> tuple[str, ...]:
        return self._channels

    @property
    def overflowed(self) -> bool:
        """True when messages were lost because the consumer fell ``max_buffer`` messages behind."""
        return self._overflowed

    @property
    def closed(self) -> bool:
        """True once no further message will be buffered (closed, overflowed, lost or backend stopped)."""
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        """Wait until the subscription is closed, for whatever reason."""
        await self._closed.wait()

    async def __aenter__(self) -> Self:
        if self._entered:
            raise StateError("a subscription can be entered only once")
        self._entered = True
        try:
            await self._open()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> tuple[str, bytes]:
        if not self._entered:
            raise StateError("enter the subscription (async with) before iterating it")
        while True:
            if self._buffer:
                return self._buffer.popleft()
            if self.closed:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._readable.clear()
            await self._readable.wait()

    async def aclose(self) -> None:
        """Stop receiving and release the backend's resources. Idempotent; buffered messages stay readable."""
        self._finish()
        if not self._released:
            self._released = True
            await self._release()

    def _deliver(self, channel: str, data: bytes) -> None:
        """Buffer one message without waiting; on a full buffer close with ``overflowed`` instead."""
        if self.closed:
            return
        if len(self._buffer) >= self._max_buffer:
            self._overflowed = True
            self._finish()
            return
        self._buffer.append((channel, data))
        self._readable.set()

    def _finish(self, error: StateError | None = None) -> None:
        """Accept no more messages and wake the consumer; the first error recorded is the one raised."""
        if self.closed:
            return
        self._error = error
        self._closed.set()
        self._readable.set()

    @abc.abstractmethod
    async def _open(self) -> None:
        """Start receiving; return only once messages published from now on will be delivered."""

    @abc.abstractmethod
    async def _release(self) -> None:
        """Stop receiving and free what `_open` took; called once, also after a failed `_open`."""


class StateBackend(abc.ABC):
    """Shared ephemeral state: counters, sliding windows, keys with TTL, locks and pub/sub.

    One process uses the memory backend; replicas share the Redis backend. Both pass the same contract
    suite (``tests/unit/state/test_backends.py``). Every operation is atomic with respect to concurrent
    callers of the same backend (and, on Redis, of every replica). Keys and channels are namespaced by
    ``key_prefix``. TTLs and windows are in seconds and must be positive (else ``ValueError``).

    Lifecycle: ``await start()`` on startup, ``await stop()`` on shutdown (or ``async with backend``);
    `stop` closes every open subscription and is idempotent.

    Raises:
        StateError: from any operation when the backend fails (Redis unreachable, not started, a key holding
            another kind of value).
    """

    def __init__(self, key_prefix: str = DEFAULT_KEY_PREFIX) -> None:
        self.key_prefix = key_prefix

    @property
    @abc.abstractmethod
    def shared(self) -> bool:
        """Whether other processes see this state (and receive what is published here)."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect (on_startup). Raises StateError when the backend is unreachable."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Close open subscriptions, then connections (on_shutdown)."""

    # Counters (fixed windows)

    @abc.abstractmethod
    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add `amount` and return the new value; a missing key counts from 0.

        `ttl` is applied only when the key has no expiry yet (normally: when this call created it), so a
        counter incremented with a ttl is a fixed-window counter that later calls do not prolong.
        """

    @abc.abstractmethod
    async def get_counter(self, key: str) -> int:
        """The counter's value, 0 when missing or expired."""

    # Sliding windows (log of hits)

    @abc.abstractmethod
    async def window_add(self, key: str, window_seconds: float, now: float | None = None) -> int:
        """Record one hit at `now` (default: the wall clock) and return the hits in the window.

        Hits at or before ``now - window_seconds`` are dropped. Two hits at the same timestamp count
        twice. The key expires `window_seconds` after its last hit. Use one window size per key.
        """

    @abc.abstractmethod
    async def window_count(self, key: str, window_seconds: float, now: float | None = None) -> int:
        """The hits after ``now - window_seconds`` (default now: the wall clock), without recording one."""

    async def window_add_many(self, hits: Sequence[tuple[str, float, float]]) -> list[int]:
        """`window_add` for each ``(key, window_seconds, now)`` in order, in one round trip where the
        backend can; returns each call's count (several hits on one key count up in order)."""
        return [await self.window_add(key, window, now) for key, window, now in hits]

    async def window_count_many(self, queries: Sequence[tuple[str, float, float]]) -> list[int]:
        """`window_count` for each ``(key, window_seconds, now)``, in one round trip where the backend can."""
        return [await self.window_count(key, window, now) for key, window, now in queries]

    @abc.abstractmethod
    async def window_take_back_many(self, hits: Sequence[tuple[str, float]]) -> int:
        """Remove one hit recorded at exactly ``at`` from each ``(key, at)``'s window, in one round trip
        where the backend can: what `window_add` counted for something that then did not happen (an event
        the database never stored). A hit already gone (expired, or never there) is skipped. Returns the
        hits removed."""

    # Keys with TTL (dedup, cooldowns)

    @abc.abstractmethod
    async def set_if_absent(self, key: str, value: str, ttl: float) -> bool:
        """Set `key` to `value` for `ttl` seconds unless it exists; True when this call set it."""

    @abc.abstractmethod
    async def get(self, key: str) -> str | None:
        """The value of `key`, None when missing or expired."""

    @abc.abstractmethod
    async def delete(self, key: str) -> bool:
        """Delete `key` of whatever kind; True when it existed."""

    # Deadlines (absence rules): members of a set, each with a time, listed once due; no expiry

    @abc.abstractmethod
    async def deadline_set(self, key: str, member: str, at: float, *, only_if_absent: bool = False) -> bool:
        """Give `member` of `key` the deadline `at` (epoch seconds); True when it was set.

        With `only_if_absent`, an existing deadline is kept (and False returned). Deadlines never expire:
        they stay until removed, however far `at` is in the past.
        """

    async def deadline_set_many(self, deadlines: Sequence[tuple[str, str, float]]) -> None:
        """`deadline_set` (moving any existing deadline) for each ``(key, member, at)``, in one round trip
        where the backend can."""
        for key, member, at in deadlines:
            await self.deadline_set(key, member, at)

    @abc.abstractmethod
    async def deadline_remove(self, key: str, member: str, at: float | None = None) -> bool:
        """Remove `member`'s deadline; with `at`, only if it is still exactly `at`. True when removed.

        Removing with `at` is how one of several replicas claims a due deadline: only one removal succeeds,
        and a deadline moved meanwhile (a heartbeat arrived) is left alone.
        """

    @abc.abstractmethod
    async def deadlines_due(self, key: str, now: float, limit: int = 1000) -> list[tuple[str, float]]:
        """Up to `limit` members of `key` whose deadline is at or before `now`, earliest first."""

    # Locks with owner and TTL

    @abc.abstractmethod
    async def acquire_lock(self, key: str, owner: str, ttl: float) -> bool:
        """Take the lock for `ttl` seconds; False when anyone holds it (the same owner included)."""

    @abc.abstractmethod
    async def release_lock(self, key: str, owner: str) -> bool:
        """Release the lock if `owner` holds it; False otherwise (expired, or held by another owner)."""

    @abc.abstractmethod
    async def extend_lock(self, key: str, owner: str, ttl: float) -> bool:
        """Reset the lock's expiry to `ttl` seconds from now if `owner` holds it; False otherwise."""

    @abc.abstractmethod
    async def lock_owner(self, key: str) -> str | None:
        """Who holds the lock, None when free."""

    # Pub/sub

    @abc.abstractmethod
    async def publish(self, channel: str, message: bytes) -> None:
        """Send `message` to every subscription on `channel` (on Redis, of every replica) without waiting."""

    @abc.abstractmethod
    def subscribe(self, channels: Sequence[str], max_buffer: int = DEFAULT_MAX_BUFFER) -> Subscription:
        """A subscription to `channels`, active once entered (``async with``)."""
