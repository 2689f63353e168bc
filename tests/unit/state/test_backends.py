"""One contract suite for every state backend, plus a few backend-specific checks at the end.

The Redis run uses the machine's Redis (OPSRESPONDER_TEST_REDIS_URL) under a random key prefix per test, and
deletes that prefix's keys afterwards, so parallel runs never collide. Expiry on Redis is real time: the
`advance` fixture sleeps there (TTLs of a few tenths of a second) and moves the injected clock in memory.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from opsresponder.state import (
    MemoryStateBackend,
    RedisStateBackend,
    StateBackend,
    StateError,
    Subscription,
    build_state_backend,
)
from opsresponder.state.memory import SWEEP_INTERVAL_SECONDS
from tests.conftest import service_url
from tests.waiting import eventually

Advance = Callable[[float], Awaitable[None]]
Message = tuple[str, bytes]

T0 = 1_700_000_000.0  # an arbitrary wall-clock instant for explicit window timestamps


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def redis_url() -> str:
    return service_url("OPSRESPONDER_TEST_REDIS_URL", "Redis")


def random_prefix() -> str:
    return f"test:{uuid.uuid4().hex}:"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[StateBackend]:
    prefix = random_prefix()
    if request.param == "memory":
        async with MemoryStateBackend(prefix, clock=clock) as memory:
            yield memory
        return
    url = redis_url()
    try:
        async with RedisStateBackend(url, prefix) as shared:
            yield shared
    finally:
        cleaner = aioredis.from_url(url)
        keys = [key async for key in cleaner.scan_iter(match=f"{prefix}*")]
        if keys:
            await cleaner.delete(*keys)
        await cleaner.aclose()


@pytest.fixture
async def peer(backend: StateBackend) -> AsyncIterator[StateBackend]:
    """Another replica: the same backend in memory (one process), a second client on Redis."""
    if isinstance(backend, MemoryStateBackend):
        yield backend
        return
    async with RedisStateBackend(redis_url(), backend.key_prefix) as other:
        yield other


@pytest.fixture
def advance(backend: StateBackend, clock: FakeClock) -> Advance:
    async def advance(seconds: float) -> None:
        if isinstance(backend, MemoryStateBackend):
            clock.now += seconds
        else:
            # Redis expires keys on its own clock: the only sleeps in this suite, all for expiry.
            await asyncio.sleep(seconds)

    return advance


async def take(subscription: Subscription, count: int) -> list[Message]:
    async with asyncio.timeout(5):
        return [await anext(subscription) for _ in range(count)]


async def drain(subscription: Subscription) -> list[Message]:
    async with asyncio.timeout(5):
        return [message async for message in subscription]


async def subscriber_count(backend: StateBackend, channel: str) -> int:
    if isinstance(backend, MemoryStateBackend):
        return len(backend._channels.get(channel, {}))
    assert isinstance(backend, RedisStateBackend)
    [(_, count)] = await backend._client().pubsub_numsub(backend.key_prefix + channel)
    return int(count)


# Counters


async def test_incr_adds_and_get_counter_reads(backend: StateBackend) -> None:
    assert await backend.get_counter("c") == 0
    assert await backend.incr("c") == 1
    assert await backend.incr("c", 4) == 5
    assert await backend.incr("c", -2) == 3
    assert await backend.get_counter("c") == 3
    assert await backend.get("c") == "3"
    assert await backend.delete("c") is True
    assert await backend.get_counter("c") == 0


async def test_incr_ttl_opens_a_fixed_window_that_later_calls_do_not_prolong(
    backend: StateBackend, advance: Advance
) -> None:
    assert await backend.incr("c", ttl=0.4) == 1
    await advance(0.25)
    assert await backend.incr("c", ttl=0.4) == 2
    await advance(0.25)
    assert await backend.get_counter("c") == 0
    assert await backend.incr("c", ttl=0.4) == 1


async def test_concurrent_incr_loses_no_update(backend: StateBackend) -> None:
    results = await asyncio.gather(*(backend.incr("c", ttl=60) for _ in range(100)))
    assert sorted(results) == list(range(1, 101))
    assert await backend.get_counter("c") == 100


async def test_incr_on_a_non_counter_raises_state_error(backend: StateBackend) -> None:
    assert await backend.set_if_absent("k", "text", ttl=60)
    with pytest.raises(StateError):
        await backend.incr("k")
    with pytest.raises(StateError):
        await backend.get_counter("k")
    assert await backend.get("k") == "text"


# Sliding windows


async def test_window_drops_hits_outside_the_window(backend: StateBackend) -> None:
    assert [await backend.window_add("w", 10, now=T0 + dt) for dt in (0, 1, 2)] == [1, 2, 3]
    assert await backend.window_count("w", 10, now=T0 + 2) == 3
    assert await backend.window_count("w", 10, now=T0 + 10.5) == 2
    # A hit exactly one window old is out.
    assert await backend.window_count("w", 10, now=T0 + 12) == 0
    assert await backend.window_add("w", 10, now=T0 + 11.5) == 2
    assert await backend.window_count("w", 5, now=T0 + 11.5) == 1
    assert await backend.window_count("other", 10, now=T0) == 0


async def test_window_counts_every_hit_at_the_same_timestamp(backend: StateBackend) -> None:
    counts = await asyncio.gather(*(backend.window_add("w", 10, now=T0) for _ in range(20)))
    assert sorted(counts) == list(range(1, 21))
    assert await backend.window_count("w", 10, now=T0) == 20


async def test_window_defaults_to_the_backend_clock_and_expires(
    backend: StateBackend, advance: Advance
) -> None:
    assert await backend.window_add("w", 0.3) == 1
    assert await backend.window_add("w", 0.3) == 2
    assert await backend.window_count("w", 0.3) == 2
    await advance(0.4)
    assert await backend.window_count("w", 0.3) == 0
    assert await backend.window_add("w", 0.3) == 1


# Keys with TTL


async def test_set_if_absent_keeps_the_first_value_until_it_expires(
    backend: StateBackend, advance: Advance
) -> None:
    assert await backend.set_if_absent("k", "first", ttl=0.2) is True
    assert await backend.set_if_absent("k", "second", ttl=0.2) is False
    assert await backend.get("k") == "first"
    await advance(0.3)
    assert await backend.get("k") is None
    assert await backend.set_if_absent("k", "third", ttl=60) is True
    assert await backend.get("k") == "third"


async def test_set_if_absent_race_has_exactly_one_winner(backend: StateBackend) -> None:
    results = await asyncio.gather(*(backend.set_if_absent("k", f"v{i}", ttl=60) for i in range(20)))
    assert results.count(True) == 1
    assert await backend.get("k") == f"v{results.index(True)}"


async def test_delete_removes_any_kind_of_key(backend: StateBackend) -> None:
    assert await backend.delete("k") is False
    assert await backend.set_if_absent("k", "v", ttl=60)
    assert await backend.window_add("w", 60) == 1
    assert await backend.delete("k") is True
    assert await backend.delete("w") is True
    assert await backend.get("k") is None
    assert await backend.window_count("w", 60) == 0
    assert await backend.delete("k") is False


async def test_non_positive_durations_are_rejected(backend: StateBackend) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await backend.set_if_absent("k", "v", ttl=0)
    with pytest.raises(ValueError, match="ttl"):
        await backend.incr("c", ttl=-1)
    with pytest.raises(ValueError, match="ttl"):
        await backend.acquire_lock("l", "a", ttl=0)
    with pytest.raises(ValueError, match="ttl"):
        await backend.extend_lock("l", "a", ttl=0)
    with pytest.raises(ValueError, match="window_seconds"):
        await backend.window_add("w", 0)
    assert await backend.get("k") is None
    assert await backend.get_counter("c") == 0


# Locks


async def test_lock_is_released_and_extended_only_by_its_owner(backend: StateBackend) -> None:
    assert await backend.acquire_lock("l", "a", ttl=60) is True
    assert await backend.acquire_lock("l", "b", ttl=60) is False
    assert await backend.acquire_lock("l", "a", ttl=60) is False
    assert await backend.lock_owner("l") == "a"
    assert await backend.release_lock("l", "b") is False
    assert await backend.extend_lock("l", "b", ttl=60) is False
    assert await backend.lock_owner("l") == "a"
    assert await backend.release_lock("l", "a") is True
    assert await backend.lock_owner("l") is None
    assert await backend.release_lock("l", "a") is False
    assert await backend.extend_lock("l", "a", ttl=60) is False
    assert await backend.acquire_lock("l", "b", ttl=60) is True
    assert await backend.lock_owner("l") == "b"


async def test_expired_lock_lets_another_owner_in(backend: StateBackend, advance: Advance) -> None:
    assert await backend.acquire_lock("l", "a", ttl=0.2)
    await advance(0.3)
    assert await backend.lock_owner("l") is None
    assert await backend.acquire_lock("l", "b", ttl=60)
    assert await backend.release_lock("l", "a") is False
    assert await backend.extend_lock("l", "a", ttl=60) is False
    assert await backend.lock_owner("l") == "b"


async def test_extend_lock_resets_its_expiry(backend: StateBackend, advance: Advance) -> None:
    assert await backend.acquire_lock("l", "a", ttl=0.4)
    await advance(0.25)
    assert await backend.extend_lock("l", "a", ttl=0.4)
    await advance(0.25)
    assert await backend.lock_owner("l") == "a"
    await advance(0.25)
    assert await backend.lock_owner("l") is None


async def test_lock_race_has_exactly_one_owner(backend: StateBackend) -> None:
    results = await asyncio.gather(*(backend.acquire_lock("l", f"o{i}", ttl=60) for i in range(20)))
    assert results.count(True) == 1
    assert await backend.lock_owner("l") == f"o{results.index(True)}"


# Pub/sub


async def test_every_subscriber_gets_every_message_in_order(backend: StateBackend) -> None:
    messages = [f"m{i}".encode() for i in range(50)]
    async with (
        backend.subscribe(["events"]) as first,
        backend.subscribe(["events", "other"]) as second,
    ):
        for message in messages:
            await backend.publish("events", message)
        await backend.publish("other", b"o")
        await backend.publish("unrelated", b"u")
        await backend.publish("events", b"end")
        expected = [("events", message) for message in messages]
        assert await take(first, 51) == [*expected, ("events", b"end")]
        assert await take(second, 52) == [*expected, ("other", b"o"), ("events", b"end")]
        assert not first.overflowed
        assert not second.closed


async def test_slow_subscriber_overflows_while_the_others_get_everything(backend: StateBackend) -> None:
    messages = [f"m{i}".encode() for i in range(20)]
    async with (
        backend.subscribe(["events"], max_buffer=5) as slow,
        backend.subscribe(["events"]) as fast,
    ):
        for message in messages:
            await backend.publish("events", message)
        assert await take(fast, 20) == [("events", message) for message in messages]
        async with asyncio.timeout(5):
            await slow.wait_closed()
        assert slow.overflowed
        assert not fast.overflowed
        assert not fast.closed
        # What was buffered before the overflow is still delivered, then the iteration ends.
        assert await drain(slow) == [("events", message) for message in messages[:5]]


async def test_closing_a_subscription_releases_it(backend: StateBackend) -> None:
    subscription = backend.subscribe(["events"])
    async with subscription:
        assert await subscriber_count(backend, "events") == 1
        await backend.publish("events", b"before")
        assert await take(subscription, 1) == [("events", b"before")]
    assert subscription.closed
    assert not subscription.overflowed

    # Redis drops a closed connection's subscriptions asynchronously and signals nobody, so poll its count.
    async def unsubscribed() -> bool:
        return await subscriber_count(backend, "events") == 0

    await eventually(unsubscribed, 5)
    await backend.publish("events", b"after")
    assert await drain(subscription) == []


async def test_closing_wakes_a_waiting_consumer(backend: StateBackend) -> None:
    async with backend.subscribe(["events"]) as subscription:
        consumer = asyncio.create_task(drain(subscription))
        await asyncio.sleep(0)  # let the consumer block on the empty subscription
        assert not consumer.done()
        await subscription.aclose()
        assert await consumer == []


async def test_stop_closes_open_subscriptions(backend: StateBackend) -> None:
    async with backend.subscribe(["events"]) as subscription:
        await backend.stop()
        assert subscription.closed
        assert await drain(subscription) == []


async def test_subscription_must_be_entered_once_and_given_a_list(backend: StateBackend) -> None:
    subscription = backend.subscribe(["events"])
    with pytest.raises(StateError):
        await anext(subscription)
    async with subscription:
        with pytest.raises(StateError):
            await subscription.__aenter__()
    with pytest.raises(TypeError):
        backend.subscribe("events")
    with pytest.raises(ValueError, match="max_buffer"):
        backend.subscribe(["events"], max_buffer=0)


async def test_replicas_share_counters_locks_and_events(backend: StateBackend, peer: StateBackend) -> None:
    assert await backend.incr("c") == 1
    assert await peer.incr("c") == 2
    assert await backend.acquire_lock("l", "a", ttl=60)
    assert await peer.acquire_lock("l", "b", ttl=60) is False
    assert await peer.lock_owner("l") == "a"
    async with peer.subscribe(["events"]) as subscription:
        await backend.publish("events", b"x")
        assert await take(subscription, 1) == [("events", b"x")]


# Backend-specific


def test_build_state_backend_picks_redis_only_when_a_url_is_set() -> None:
    memory = build_state_backend(None, "p:")
    assert isinstance(memory, MemoryStateBackend)
    assert memory.key_prefix == "p:"
    shared = build_state_backend("redis://127.0.0.1:6379/0", "q:")
    assert isinstance(shared, RedisStateBackend)
    assert shared.key_prefix == "q:"


async def test_memory_sweep_purges_expired_entries_nobody_reads(clock: FakeClock) -> None:
    backend = MemoryStateBackend(clock=clock)
    for i in range(100):
        assert await backend.set_if_absent(f"k{i}", "v", ttl=1)
        assert await backend.window_add(f"w{i}", 1) == 1
    assert await backend.incr("kept") == 1
    clock.now += SWEEP_INTERVAL_SECONDS
    assert await backend.set_if_absent("new", "v", ttl=60)
    assert set(backend._values) == {"kept", "new"}
    assert backend._windows == {}


async def test_redis_errors_are_wrapped_in_state_error() -> None:
    url = redis_url()
    async with RedisStateBackend(url, random_prefix()) as backend:
        try:
            assert await backend.window_add("w", 60) == 1
            with pytest.raises(StateError) as caught:
                await backend.get("w")  # WRONGTYPE: a sorted set is not a string
            assert isinstance(caught.value.__cause__, RedisError)
        finally:
            await backend.delete("w")


async def test_redis_unreachable_or_not_started_raises_state_error() -> None:
    with pytest.raises(StateError) as caught:
        await RedisStateBackend("redis://127.0.0.1:1/0").start()
    assert isinstance(caught.value.__cause__, RedisError)
    with pytest.raises(StateError, match="not started"):
        await RedisStateBackend("redis://127.0.0.1:1/0").get("k")


# Deadlines (absence rules)


async def test_deadlines_are_listed_once_due_earliest_first(backend: StateBackend) -> None:
    assert await backend.deadline_set("dl", "b", 200.0)
    assert await backend.deadline_set("dl", "a", 100.0)
    assert await backend.deadline_set("dl", "c", 300.0)
    assert await backend.deadlines_due("dl", 99.0) == []
    assert await backend.deadlines_due("dl", 200.0) == [("a", 100.0), ("b", 200.0)]
    assert await backend.deadlines_due("dl", 1000.0, limit=1) == [("a", 100.0)]


async def test_deadline_set_only_if_absent_keeps_the_first(backend: StateBackend) -> None:
    assert await backend.deadline_set("dl", "a", 100.0, only_if_absent=True)
    assert not await backend.deadline_set("dl", "a", 500.0, only_if_absent=True)
    assert await backend.deadlines_due("dl", 100.0) == [("a", 100.0)]
    assert await backend.deadline_set("dl", "a", 500.0)  # moved
    assert await backend.deadlines_due("dl", 100.0) == []


async def test_deadline_remove_with_a_moved_deadline_keeps_it(
    backend: StateBackend, peer: StateBackend
) -> None:
    await backend.deadline_set("dl", "a", 100.5)
    await backend.deadline_set("dl", "a", 160.25)  # a heartbeat moved it after the checker read 100.5
    assert not await peer.deadline_remove("dl", "a", 100.5)
    assert await peer.deadline_remove("dl", "a", 160.25)
    assert not await backend.deadline_remove("dl", "a", 160.25)  # claimed once only
    assert not await backend.deadline_remove("dl", "missing")
    await backend.deadline_set("dl", "b", 1.0)
    assert await backend.deadline_remove("dl", "b")
    assert await backend.deadlines_due("dl", 1e12) == []


async def test_window_add_many_and_count_many_match_the_one_by_one_calls(backend: StateBackend) -> None:
    counts = await backend.window_add_many(
        [("wa", 10, T0), ("wb", 10, T0), ("wa", 10, T0 + 1), ("wa", 10, T0 + 12)]
    )
    assert counts == [1, 1, 2, 1]  # the last one dropped both earlier hits of wa
    assert await backend.window_count_many([("wa", 10, T0 + 12), ("wb", 10, T0 + 5), ("none", 10, T0)]) == [
        1,
        1,
        0,
    ]
    assert await backend.window_add_many([]) == [] and await backend.window_count_many([]) == []


async def test_window_take_back_removes_one_hit_at_that_time(
    backend: StateBackend, peer: StateBackend
) -> None:
    await backend.window_add_many([("wa", 60, T0), ("wa", 60, T0), ("wa", 60, T0 + 1.25), ("wb", 60, T0)])
    # One of the two hits at T0 and the one at T0 + 1.25; nothing at T0 + 2, no key "none": skipped.
    removed = await peer.window_take_back_many([("wa", T0), ("wa", T0 + 1.25), ("wa", T0 + 2), ("none", T0)])
    assert removed == 2
    assert await backend.window_count_many([("wa", 60, T0 + 3), ("wb", 60, T0 + 3)]) == [1, 1]
    assert await backend.window_take_back_many([("wa", T0), ("wb", T0)]) == 2
    assert await backend.window_count_many([("wa", 60, T0 + 3), ("wb", 60, T0 + 3)]) == [0, 0]
    assert await backend.window_take_back_many([]) == 0
    # A hit taken back leaves room under a threshold: the next add counts from what is left.
    assert await backend.window_add("wa", 60, T0 + 4) == 1


async def test_deadline_set_many_sets_and_moves(backend: StateBackend) -> None:
    await backend.deadline_set("dl", "a", 100.0)
    await backend.deadline_set_many([("dl", "a", 300.0), ("dl", "b", 200.0), ("other", "c", 50.0)])
    assert await backend.deadlines_due("dl", 1000.0) == [("b", 200.0), ("a", 300.0)]
    assert await backend.deadlines_due("other", 50.0) == [("c", 50.0)]
    await backend.deadline_set_many([])
