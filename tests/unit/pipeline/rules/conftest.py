"""Rule evaluation runs on both state backends: memory, and the machine's Redis under a random prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from opsresponder.state import MemoryStateBackend, RedisStateBackend, StateBackend
from tests.unit.state.test_backends import random_prefix, redis_url

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    """The engine's injected clock; every test moves it by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def redis_backend(prefix: str) -> AsyncIterator[RedisStateBackend]:
    url = redis_url()
    try:
        async with RedisStateBackend(url, prefix) as shared:
            yield shared
    finally:
        cleaner = aioredis.from_url(url)
        keys = [k async for k in cleaner.scan_iter(match=prefix + "*")]
        if keys:
            await cleaner.delete(*keys)
        await cleaner.aclose()


@pytest.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[StateBackend]:
    prefix = random_prefix()
    if request.param == "memory":
        async with MemoryStateBackend(prefix) as memory:
            yield memory
        return
    async for shared in redis_backend(prefix):
        yield shared


@pytest.fixture
async def peer(state: StateBackend) -> AsyncIterator[StateBackend]:
    """Another replica's view of the same state."""
    if isinstance(state, MemoryStateBackend):
        yield state
        return
    async with RedisStateBackend(redis_url(), state.key_prefix) as other:
        yield other
