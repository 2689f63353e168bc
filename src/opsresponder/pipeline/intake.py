"""The bounded queue between listeners and the pipeline worker.

Two doors: `offer` never blocks and counts a drop when full (UDP and SNMP cannot push back); `put` waits for
room (TCP and TLS pause reading, HTTP waits), so connection-oriented senders feel backpressure.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from opsresponder.core.event import Event
from opsresponder.pipeline.errors import IntakeClosedError
from opsresponder.pipeline.metrics import PipelineMetrics
from opsresponder.store.events import WriteOutcome


class LingerClock(Protocol):
    """The time a batch lingers by: monotonic seconds and a wait bounded by them.

    Injected so that tests of the linger move time themselves instead of sleeping. The worker measures
    pipeline latency from ``Submission.enqueued_at`` with ``time.monotonic``: another clock is for tests
    of the intake alone.
    """

    def monotonic(self) -> float: ...

    async def wait(self, event: asyncio.Event, deadline: float) -> bool:
        """Wait until `event` is set (True) or `monotonic()` reaches `deadline` (False)."""
        ...


class SystemClock:
    """The real `LingerClock`: ``time.monotonic`` and the event loop's timeout."""

    __slots__ = ()
    monotonic = staticmethod(time.monotonic)

    async def wait(self, event: asyncio.Event, deadline: float) -> bool:
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                await event.wait()
        except TimeoutError:
            return False
        return True


@dataclass(slots=True)
class Submission:
    """One event in flight, with the future of a caller that waits for its commit (HTTP) or None.

    ``enqueued_at`` is on the intake's clock (`LingerClock.monotonic`).
    """

    event: Event
    future: asyncio.Future[WriteOutcome] | None
    enqueued_at: float = field(default_factory=time.monotonic)


class Intake:
    """Bounded FIFO of submissions; the worker takes them in batches.

    Invariants: ``depth <= capacity``; every event refused by `offer` is counted in
    ``events_dropped_total{stage="intake",reason="intake_full"}``.
    """

    def __init__(self, capacity: int, metrics: PipelineMetrics, *, clock: LingerClock | None = None) -> None:
        self._capacity = capacity
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self._monotonic = self._clock.monotonic  # bound once: every event is stamped with it
        self._items: deque[Submission] = deque()
        # Queued submissions with a waiting caller (HTTP): a batch holding one never lingers.
        self._callers = 0
        self._not_empty = asyncio.Event()
        self._space_waiters: deque[asyncio.Future[None]] = deque()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self._woken = False

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def depth(self) -> int:
        return len(self._items)

    @property
    def unfinished(self) -> int:
        """Events queued, or taken and not done with yet (being stored, or held back by an outage)."""
        return len(self._items) + self._in_flight

    @property
    def closed(self) -> bool:
        return self._closed

    def offer(self, event: Event) -> bool:
        """Enqueue without waiting. Returns False, and counts the drop, when the intake is full or closed."""
        if self._closed or len(self._items) >= self._capacity:
            self._metrics.events_dropped.labels("intake", "closed" if self._closed else "intake_full").inc()
            return False
        self._append(Submission(event, None, self._monotonic()))
        return True

    async def put(
        self, event: Event, *, wait_for_commit: bool = False
    ) -> asyncio.Future[WriteOutcome] | None:
        """Enqueue, waiting for room. With `wait_for_commit`, returns a future completed after commit.

        Raises:
            IntakeClosedError: the process is shutting down.
        """
        await self._wait_for_room(1)
        future: asyncio.Future[WriteOutcome] | None = None
        if wait_for_commit:
            future = asyncio.get_running_loop().create_future()
        self._append(Submission(event, future, self._monotonic()))
        return future

    async def put_many(self, events: list[Event]) -> list[asyncio.Future[WriteOutcome]]:
        """Enqueue `events` in order, each with a future completed after its commit (an HTTP array).

        Waits until all of them fit at once, so one request's events stay together in the queue.

        Raises:
            IntakeClosedError: the process is shutting down.
            ValueError: more events than the intake can ever hold.
        """
        if len(events) > self._capacity:
            raise ValueError(f"{len(events)} events exceed the intake capacity of {self._capacity}")
        await self._wait_for_room(len(events))
        loop = asyncio.get_running_loop()
        now = self._monotonic()
        futures = [loop.create_future() for _ in events]
        self._items.extend(Submission(e, f, now) for e, f in zip(events, futures, strict=True))
        self._callers += len(events)
        self._idle.clear()
        self._not_empty.set()
        for event in events:
            self._metrics.received_by_source(event.source_type).inc()
        return futures

    async def _wait_for_room(self, count: int) -> None:
        """Wait until `count` more submissions fit.

        Raises:
            IntakeClosedError: the intake closed (shutdown) before or while waiting.
        """
        while len(self._items) + count > self._capacity and not self._closed:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._space_waiters.append(waiter)
            try:
                await waiter
            finally:
                if not waiter.done():
                    waiter.cancel()
        if self._closed:
            raise IntakeClosedError("the intake is closed: the process is shutting down")

    def _append(self, submission: Submission) -> None:
        self._items.append(submission)
        if submission.future is not None:
            self._callers += 1
        self._idle.clear()
        self._not_empty.set()
        self._metrics.received_by_source(submission.event.source_type).inc()

    async def get_batch(self, max_events: int, max_wait: float) -> list[Submission]:
        """Wait for a submission, then gather up to `max_events`, lingering at most `max_wait` seconds.

        The linger is measured from when the oldest queued event arrived (like Kafka's ``linger.ms``):
        events that queued while the previous batch was being written have waited already, so a busy
        pipeline never adds the linger on top of its write time. Only events nobody waits on linger
        (syslog, SNMP): as soon as a caller's submission (HTTP) is queued, the batch goes, since that
        caller's answer waits for the commit.
        The batch counts as in flight until `task_done` is called for it, so `wait_drained` sees it.
        Returns an empty batch when nothing is queued and `wake_taker` was called since the last batch
        was taken (also when the call was not for this wait: the caller just asks again).
        """
        while not self._items:
            if self._woken:
                self._woken = False
                return []
            self._not_empty.clear()
            await self._not_empty.wait()
        self._woken = False
        if len(self._items) < max_events and max_wait > 0 and not self._closed and not self._callers:
            deadline = self._items[0].enqueued_at + max_wait
            while len(self._items) < max_events and not self._callers:
                if deadline <= self._monotonic():
                    break
                self._not_empty.clear()
                if not await self._clock.wait(self._not_empty, deadline):
                    break
        count = min(max_events, len(self._items))
        batch = [self._items.popleft() for _ in range(count)]
        if self._callers:
            self._callers -= sum(1 for s in batch if s.future is not None)
        self._in_flight += count
        self._wake_putters()
        return batch

    def wake_taker(self) -> None:
        """Make `get_batch` return now, empty if nothing is queued: the worker has something else to see
        to (the events an outage held back), which must not wait for the next event to arrive."""
        self._woken = True
        self._not_empty.set()

    def requeue_front(self, batch: list[Submission]) -> None:
        """Give back a batch that could not be stored, ahead of newer events, keeping order."""
        self._items.extendleft(reversed(batch))
        self._callers += sum(1 for s in batch if s.future is not None)
        self._in_flight -= len(batch)
        self._not_empty.set()

    def fail_waiting(self, error: BaseException) -> int:
        """Answer every queued submission that has a waiting caller with `error`, and remove it.

        Used during a database outage: an HTTP caller gets its 503 now instead of after the outage.
        Returns how many were failed.
        """
        kept: deque[Submission] = deque()
        failed = 0
        for submission in self._items:
            if submission.future is None:
                kept.append(submission)
            else:
                if not submission.future.done():
                    submission.future.set_exception(error)
                failed += 1
        self._items = kept
        self._callers = 0
        if self._in_flight == 0 and not self._items:
            self._idle.set()
        self._wake_putters()
        return failed

    def task_done(self, count: int) -> None:
        self._in_flight -= count
        if self._in_flight == 0 and not self._items:
            self._idle.set()

    async def wait_drained(self) -> None:
        """Return once every event put so far has been processed (stored, or failed back to its caller)."""
        await self._idle.wait()

    def close(self) -> None:
        """Refuse new events; queued ones are still handed out so the worker can drain them."""
        self._closed = True
        self._wake_putters(all_of_them=True)

    def _wake_putters(self, all_of_them: bool = False) -> None:
        room = self._capacity - len(self._items)
        while self._space_waiters and (room > 0 or all_of_them):
            waiter = self._space_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                room -= 1
        self._metrics.intake_depth.set(len(self._items))
