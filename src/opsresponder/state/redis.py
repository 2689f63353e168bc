"""The Redis state backend: state shared by every replica, on redis-py's asyncio client.

Compound operations are one round trip and atomic on the server: Lua scripts for compare-and-set (lock
release and extend, counter expiry) and MULTI for the sliding window. Every Redis error is wrapped in
`StateError` here, so callers never see a redis-py type.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from opsresponder.state.base import (
    DEFAULT_KEY_PREFIX,
    DEFAULT_MAX_BUFFER,
    StateBackend,
    Subscription,
    require_positive,
)
from opsresponder.state.errors import StateError

# How long entering a subscription waits for Redis to confirm it before giving up.
SUBSCRIBE_TIMEOUT_SECONDS = 5.0

# Sets the expiry only on a counter without one, so a ttl given on every call opens a fixed window that
# later calls do not prolong (PEXPIRE NX would do it too, but needs Redis 7).
_INCR = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if ARGV[2] ~= '' and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
"""
# Compare-and-delete: GET then DEL from the client would release a lock that expired and was taken by
# another owner in between.
_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_EXTEND_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# Compare-and-remove: only the replica that removes a due deadline fires it, and a deadline a heartbeat
# moved in between is kept.
_REMOVE_DEADLINE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and (ARGV[2] == '' or tonumber(score) == tonumber(ARGV[2])) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
"""

# Many window hits in one call: KEYS[i] gets a hit at time ARGV[2i+1] in a window of ARGV[2i] seconds;
# members are ARGV[1] (unique per call) .. i, so two hits at one time count twice. Returns each count.
_WINDOW_ADD_MANY = """
local counts = {}
for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[2 * i])
  local at = tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', at - window)
  redis.call('ZADD', key, at, ARGV[1] .. i)
  redis.call('PEXPIRE', key, math.ceil(window * 1000))
  counts[i] = redis.call('ZCARD', key)
end
return counts
"""
_WINDOW_COUNT_MANY = """
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('ZCOUNT', key, '(' .. (tonumber(ARGV[2 * i]) - tonumber(ARGV[2 * i - 1])), '+inf')
end
return counts
"""

# Take back one hit per KEYS[i], the one recorded at ARGV[i] exactly (any member at that score: hits at
# one time are alike). Returns how many were found.
_WINDOW_TAKE_BACK_MANY = """
local removed = 0
for i, key in ipairs(KEYS) do
  local found = redis.call('ZRANGEBYSCORE', key, ARGV[i], ARGV[i], 'LIMIT', 0, 1)
  if found[1] then
    removed = removed + redis.call('ZREM', key, found[1])
  end
end
return removed
"""


def _ms(seconds: float) -> int:
    """Milliseconds for PX/PEXPIRE, rounded up: a TTL must never be shorter than asked, nor zero."""
    return max(1, math.ceil(seconds * 1000))


@contextmanager
def _wrapped(operation: str) -> Iterator[None]:
    try:
        yield
    except RedisError as e:
        raise StateError(f"Redis {operation} failed: {e}") from e


class _Connected(NamedTuple):
    client: aioredis.Redis
    incr: AsyncScript
    release_lock: AsyncScript
    extend_lock: AsyncScript
    remove_deadline: AsyncScript
    window_add_many: AsyncScript
    window_count_many: AsyncScript
    window_take_back_many: AsyncScript


class _RedisSubscription(Subscription):
    """One pub/sub connection and one reader task per subscription.

    A connection per subscription keeps ordering and confirmation simple (no shared channel refcounts);
    subscribers are SSE clients of a small team, so the count stays small.
    """

    def __init__(
        self, backend: RedisStateBackend, channels: Sequence[str], max_buffer: int, prefix: str
    ) -> None:
        super().__init__(channels, max_buffer)
        self._backend = backend
        self._prefix = prefix
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None

    async def _open(self) -> None:
        self._pubsub = self._backend._connected().client.pubsub()
        self._backend._subscriptions[self] = None
        with _wrapped("SUBSCRIBE"):
            await self._pubsub.subscribe(*(self._prefix + channel for channel in self.channels))
            await self._await_confirmations(self._pubsub)
        self._reader = asyncio.create_task(
            self._read(self._pubsub), name=f"state-subscription-{self.channels[0]}"
        )

    async def _await_confirmations(self, pubsub: PubSub) -> None:
        # SUBSCRIBE is only written by redis-py; until the server confirms, a PUBLISH from another connection
        # may be missed, so entering waits for one confirmation per channel.
        pending = len(self.channels)
        deadline = asyncio.get_running_loop().time() + SUBSCRIBE_TIMEOUT_SECONDS
        while pending:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise StateError(f"Redis did not confirm the subscription to {self.channels}")
            message = await pubsub.get_message(timeout=remaining)
            if message is None:
                continue
            if message["type"] == "subscribe":
                pending -= 1
            else:
                # Once the first channel is confirmed, its messages can precede the other confirmations.
                self._on_message(message)

    async def _read(self, pubsub: PubSub) -> None:
        try:
            while not self.closed:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                if message is not None:
                    self._on_message(message)
        except RedisError as e:
            self._finish(StateError(f"Redis subscription to {self.channels} was lost: {e}"))
        finally:
            # Whatever ended the reader (even a bug), the consumer must not wait forever.
            self._finish(StateError(f"Redis subscription to {self.channels} stopped"))

    def _on_message(self, message: dict[str, Any]) -> None:
        if message["type"] == "message":
            channel: bytes = message["channel"]
            self._deliver(channel.decode()[len(self._prefix) :], message["data"])

    async def _release(self) -> None:
        self._backend._subscriptions.pop(self, None)
        reader, pubsub = self._reader, self._pubsub
        self._reader = self._pubsub = None
        try:
            if reader is not None:
                reader.cancel()
                # wait() rather than awaiting the task: its CancelledError is expected, ours must propagate.
                await asyncio.wait({reader})
                if not reader.cancelled() and (error := reader.exception()) is not None:
                    raise error
        finally:
            if pubsub is not None:
                # Closing the connection ends the server-side subscription; no UNSUBSCRIBE round trip needed.
                with _wrapped("pub/sub close"):
                    await pubsub.aclose()


class RedisStateBackend(StateBackend):
    """State in Redis, shared by every replica pointing at the same server and `key_prefix`.

    TTLs are Redis's own (``SET PX``, ``PEXPIRE``). Sliding windows are sorted sets scored by wall-clock
    timestamps, so replicas need roughly synchronised clocks (NTP).

    Args:
        url: a redis-py URL, e.g. ``redis://host:6379/0``.
        key_prefix: prepended to every key and channel, so deployments and test runs can share a server.
        clock: wall-clock seconds, the default ``now`` of the window operations.
    """

    def __init__(
        self, url: str, key_prefix: str = DEFAULT_KEY_PREFIX, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(key_prefix)
        self._url = url
        self._clock = clock
        self._connection: _Connected | None = None
        self._subscriptions: dict[_RedisSubscription, None] = {}

    @property
    def shared(self) -> bool:
        return True

    async def start(self) -> None:
        client = aioredis.from_url(self._url)
        try:
            with _wrapped("PING"):
                await client.ping()
        except StateError:
            await client.aclose()
            raise
        self._connection = _Connected(
            client,
            client.register_script(_INCR),
            client.register_script(_RELEASE_LOCK),
            client.register_script(_EXTEND_LOCK),
            client.register_script(_REMOVE_DEADLINE),
            client.register_script(_WINDOW_ADD_MANY),
            client.register_script(_WINDOW_COUNT_MANY),
            client.register_script(_WINDOW_TAKE_BACK_MANY),
        )

    async def stop(self) -> None:
        # Subscriptions first: their connections come from the client's pool, which closes last.
        for subscription in list(self._subscriptions):
            await subscription.aclose()
        connection, self._connection = self._connection, None
        if connection is not None:
            with _wrapped("close"):
                await connection.client.aclose()

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        if ttl is not None:
            require_positive("ttl", ttl)
        with _wrapped("INCRBY"):
            value = await self._connected().incr(
                keys=[self._key(key)], args=[amount, "" if ttl is None else _ms(ttl)]
            )
        return int(value)

    async def get_counter(self, key: str) -> int:
        with _wrapped("GET"):
            value = await self._client().get(self._key(key))
        if value is None:
            return 0
        try:
            return int(value)
        except ValueError as e:
            raise StateError(f"key {key!r} does not hold a counter") from e

    async def window_add(self, key: str, window_seconds: float, now: float | None = None) -> int:
        require_positive("window_seconds", window_seconds)
        at = self._clock() if now is None else now
        name = self._key(key)
        with _wrapped("window add"):
            async with self._client().pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(name, "-inf", at - window_seconds)
                # A unique member per hit: two hits at the same timestamp must count twice.
                pipe.zadd(name, {uuid.uuid4().hex: at})
                pipe.pexpire(name, _ms(window_seconds))
                pipe.zcard(name)
                results = await pipe.execute()
        return int(results[-1])

    async def window_count(self, key: str, window_seconds: float, now: float | None = None) -> int:
        require_positive("window_seconds", window_seconds)
        at = self._clock() if now is None else now
        with _wrapped("ZCOUNT"):
            count = await self._client().zcount(self._key(key), f"({at - window_seconds!r}", "+inf")
        return int(count)

    async def window_add_many(self, hits: Sequence[tuple[str, float, float]]) -> list[int]:
        if not hits:
            return []
        args: list[str] = [uuid.uuid4().hex + ":"]
        for _, window, at in hits:
            require_positive("window_seconds", window)
            args += [repr(float(window)), repr(float(at))]
        with _wrapped("window add"):
            # One script for all: one round trip, atomic, and each key's hits count up in order.
            counts = await self._connected().window_add_many(
                keys=[self._key(k) for k, _, _ in hits], args=args
            )
        return [int(n) for n in counts]

    async def window_count_many(self, queries: Sequence[tuple[str, float, float]]) -> list[int]:
        if not queries:
            return []
        args: list[str] = []
        for _, window, at in queries:
            require_positive("window_seconds", window)
            args += [repr(float(window)), repr(float(at))]
        with _wrapped("window count"):
            counts = await self._connected().window_count_many(
                keys=[self._key(k) for k, _, _ in queries], args=args
            )
        return [int(n) for n in counts]

    async def window_take_back_many(self, hits: Sequence[tuple[str, float]]) -> int:
        if not hits:
            return 0
        with _wrapped("window take back"):
            removed = await self._connected().window_take_back_many(
                keys=[self._key(k) for k, _ in hits], args=[repr(float(at)) for _, at in hits]
            )
        return int(removed)

    async def set_if_absent(self, key: str, value: str, ttl: float) -> bool:
        require_positive("ttl", ttl)
        with _wrapped("SET NX"):
            result = await self._client().set(self._key(key), value, nx=True, px=_ms(ttl))
        return bool(result)

    async def get(self, key: str) -> str | None:
        with _wrapped("GET"):
            value = await self._client().get(self._key(key))
        if isinstance(value, bytes):
            return value.decode()
        return value

    async def delete(self, key: str) -> bool:
        with _wrapped("DEL"):
            deleted = await self._client().delete(self._key(key))
        return int(deleted) > 0

    async def deadline_set(self, key: str, member: str, at: float, *, only_if_absent: bool = False) -> bool:
        with _wrapped("ZADD"):
            added: Any = await self._client().zadd(self._key(key), {member: at}, nx=only_if_absent, ch=True)
        return int(added) > 0 or not only_if_absent

    async def deadline_set_many(self, deadlines: Sequence[tuple[str, str, float]]) -> None:
        if not deadlines:
            return
        with _wrapped("ZADD"):
            async with self._client().pipeline(transaction=False) as pipe:
                for key, member, at in deadlines:
                    pipe.zadd(self._key(key), {member: at})
                await pipe.execute()

    async def deadline_remove(self, key: str, member: str, at: float | None = None) -> bool:
        with _wrapped("deadline remove"):
            removed = await self._connected().remove_deadline(
                keys=[self._key(key)], args=[member, "" if at is None else repr(at)]
            )
        return int(removed) == 1

    async def deadlines_due(self, key: str, now: float, limit: int = 1000) -> list[tuple[str, float]]:
        with _wrapped("ZRANGEBYSCORE"):
            rows: Any = await self._client().zrangebyscore(
                self._key(key), "-inf", repr(now), start=0, num=limit, withscores=True
            )
        return [(m.decode() if isinstance(m, bytes) else str(m), float(at)) for m, at in rows]

    async def acquire_lock(self, key: str, owner: str, ttl: float) -> bool:
        return await self.set_if_absent(key, owner, ttl)

    async def release_lock(self, key: str, owner: str) -> bool:
        with _wrapped("lock release"):
            released = await self._connected().release_lock(keys=[self._key(key)], args=[owner])
        return int(released) == 1

    async def extend_lock(self, key: str, owner: str, ttl: float) -> bool:
        require_positive("ttl", ttl)
        with _wrapped("lock extend"):
            extended = await self._connected().extend_lock(keys=[self._key(key)], args=[owner, _ms(ttl)])
        return int(extended) == 1

    async def lock_owner(self, key: str) -> str | None:
        return await self.get(key)

    async def publish(self, channel: str, message: bytes) -> None:
        with _wrapped("PUBLISH"):
            await self._client().publish(self.key_prefix + channel, message)

    def subscribe(self, channels: Sequence[str], max_buffer: int = DEFAULT_MAX_BUFFER) -> Subscription:
        return _RedisSubscription(self, channels, max_buffer, self.key_prefix)

    def _connected(self) -> _Connected:
        if self._connection is None:
            raise StateError("the Redis state backend is not started")
        return self._connection

    def _client(self) -> aioredis.Redis:
        return self._connected().client

    def _key(self, key: str) -> str:
        return self.key_prefix + key
