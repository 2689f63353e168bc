"""Shared ephemeral state (cooldowns, windows, locks, pub/sub) behind one interface, in memory or in Redis."""

from __future__ import annotations

from opsresponder.state.base import DEFAULT_KEY_PREFIX, DEFAULT_MAX_BUFFER, StateBackend, Subscription
from opsresponder.state.errors import StateError
from opsresponder.state.memory import MemoryStateBackend
from opsresponder.state.redis import RedisStateBackend

__all__ = [
    "DEFAULT_KEY_PREFIX",
    "DEFAULT_MAX_BUFFER",
    "MemoryStateBackend",
    "RedisStateBackend",
    "StateBackend",
    "StateError",
    "Subscription",
    "build_state_backend",
]


def build_state_backend(url: str | None, key_prefix: str = DEFAULT_KEY_PREFIX) -> StateBackend:
    """The Redis backend when `url` is set (``redis.url``), else the in-memory one. Does no I/O."""
    if url is None:
        return MemoryStateBackend(key_prefix)
    return RedisStateBackend(url, key_prefix)
