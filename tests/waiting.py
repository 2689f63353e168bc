"""Deadline-bounded waits: the one way tests wait for what another task makes true.

`eventually` polls a condition that has no notification (a metric, a pid, a list a logger appends to);
`Arrivals` is a list that notifies, for sinks and listeners that collect events. Both fail the test with
what they were waiting for when the deadline passes, instead of hanging until pytest-timeout.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import pytest

WAIT_SECONDS = 20.0
_POLL_SECONDS = 0.01

T = TypeVar("T")


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], within: float = WAIT_SECONDS, what: str = ""
) -> None:
    """Poll `condition` (sync or async) until it is true; fail after `within` seconds."""
    try:
        async with asyncio.timeout(within):
            while True:
                result = condition()
                if inspect.isawaitable(result):
                    result = await result
                if result:
                    return
                await asyncio.sleep(_POLL_SECONDS)
    except TimeoutError:
        pytest.fail(f"waited {within}s for {what or getattr(condition, '__name__', 'a condition')}")


class Arrivals(Generic[T]):
    """Items appended by other tasks, and waits on them without polling."""

    def __init__(self) -> None:
        self.items: list[T] = []
        self._changed = asyncio.Event()

    def append(self, item: T) -> None:
        self.items.append(item)
        self._changed.set()

    def extend(self, items: list[T]) -> None:
        self.items.extend(items)
        self._changed.set()

    async def until(
        self, done: Callable[[list[T]], bool], within: float = WAIT_SECONDS, what: str = ""
    ) -> None:
        """Wait until `done(items)` is true; fail with what did arrive after `within` seconds."""
        try:
            async with asyncio.timeout(within):
                while not done(self.items):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            pytest.fail(f"waited {within}s for {what or 'arrivals'}; got {len(self.items)}: {self.items[:5]}")

    async def at_least(self, count: int, within: float = WAIT_SECONDS) -> list[T]:
        await self.until(lambda items: len(items) >= count, within, f"{count} items")
        return self.items

    async def first(self, predicate: Callable[[T], bool], within: float = WAIT_SECONDS) -> T:
        await self.until(lambda items: any(predicate(i) for i in items), within, "a matching item")
        return next(i for i in self.items if predicate(i))
