"""The intake's two doors: offer drops and counts when full, put waits for room; drained means done."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from opsresponder.pipeline.errors import IntakeClosedError
from opsresponder.pipeline.intake import Intake, Submission
from opsresponder.pipeline.metrics import PipelineMetrics
from tests.factories import make_event


def _intake(capacity: int) -> tuple[Intake, CollectorRegistry]:
    registry = CollectorRegistry()
    return Intake(capacity, PipelineMetrics(registry)), registry


def _dropped(registry: CollectorRegistry, reason: str) -> float:
    value = registry.get_sample_value(
        "opsresponder_events_dropped_total", {"stage": "intake", "reason": reason}
    )
    return value or 0.0


async def test_offer_refuses_and_counts_when_full() -> None:
    intake, registry = _intake(2)
    assert intake.offer(make_event())
    assert intake.offer(make_event())
    assert not intake.offer(make_event())
    assert intake.depth == 2
    assert _dropped(registry, "intake_full") == 1


async def test_put_waits_for_room_and_keeps_order() -> None:
    intake, _ = _intake(1)
    await intake.put(make_event(title="a"))
    blocked = asyncio.create_task(intake.put(make_event(title="b")))
    await asyncio.sleep(0)
    assert not blocked.done()
    batch = await intake.get_batch(10, 0)
    assert [s.event.title for s in batch] == ["a"]
    await blocked
    batch = await intake.get_batch(10, 0)
    assert [s.event.title for s in batch] == ["b"]


# About a millisecond, and exact in binary: sums of these compare exactly, as deadlines must in a test.
MS = 2**-10


class FakeClock:
    """Monotonic time that moves only when the test moves it: lingering waits on it, never on real time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits = 0  # how many times the intake began to wait
        self._timers: list[tuple[float, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self.now

    async def wait(self, event: asyncio.Event, deadline: float) -> bool:
        self.waits += 1
        timer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (deadline, timer)
        self._timers.append(entry)
        woken = asyncio.ensure_future(event.wait())
        either: set[asyncio.Future[Any]] = {woken, timer}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._timers.remove(entry)
            woken.cancel()
            await asyncio.gather(woken, return_exceptions=True)
        return event.is_set()

    @property
    def waiting(self) -> bool:
        return bool(self._timers)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for deadline, timer in self._timers:
            if deadline <= self.now and not timer.done():
                timer.set_result(None)


async def settle() -> None:
    """Let every task run until it waits again (on the fake clock, or on nothing at all)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def lingering(intake: Intake, max_events: int, max_wait: float) -> asyncio.Task[list[Submission]]:
    """`get_batch` started in a task, run until it waits."""
    gathering = asyncio.create_task(intake.get_batch(max_events, max_wait))
    await settle()
    return gathering


async def advance(clock: FakeClock, seconds: float) -> None:
    """Move the clock, and let whatever it woke run."""
    clock.advance(seconds)
    await settle()


def _lingering_intake(capacity: int = 100) -> tuple[Intake, FakeClock]:
    clock = FakeClock()
    return Intake(capacity, PipelineMetrics(CollectorRegistry()), clock=clock), clock


async def test_get_batch_gathers_up_to_max_and_waits_at_most_max_wait() -> None:
    intake, clock = _lingering_intake()
    for i in range(5):
        intake.offer(make_event(title=str(i)))
    assert len(await intake.get_batch(3, 10)) == 3  # full batch: no waiting
    assert clock.waits == 0
    gathering = await lingering(intake, 10, 50 * MS)
    assert clock.waiting and not gathering.done()
    await advance(clock, 49 * MS)
    assert not gathering.done()
    await advance(clock, MS)
    assert len(gathering.result()) == 2


async def test_the_linger_counts_from_the_oldest_event() -> None:
    intake, clock = _lingering_intake()
    intake.offer(make_event(title="queued while the previous batch was written"))
    clock.advance(4 * MS)
    gathering = await lingering(intake, 10, 5 * MS)
    await advance(clock, MS)  # 5 ms after the event arrived, though only 1 ms after the batch began
    assert len(gathering.result()) == 1
    # An event that waited the whole linger already goes at once.
    intake.offer(make_event(title="old"))
    clock.advance(5 * MS)
    waits = clock.waits
    assert len(await intake.get_batch(10, 5 * MS)) == 1
    assert clock.waits == waits


async def test_events_arriving_during_the_linger_join_the_batch_and_a_full_one_goes_at_once() -> None:
    intake, clock = _lingering_intake()
    intake.offer(make_event(title="a"))
    gathering = await lingering(intake, 3, 5)
    intake.offer(make_event(title="b"))
    await settle()
    assert clock.waiting and not gathering.done()  # lingers on, for the rest of the same deadline
    intake.offer(make_event(title="c"))
    await settle()
    assert [s.event.title for s in gathering.result()] == ["a", "b", "c"]  # no time passed


async def test_only_events_nobody_waits_on_linger() -> None:
    intake, clock = _lingering_intake()
    intake.offer(make_event(title="trap"))
    gathering = await lingering(intake, 10, 200 * MS)
    await advance(clock, 150 * MS)
    assert not gathering.done()  # lingering for more
    await advance(clock, 50 * MS)
    assert len(gathering.result()) == 1  # none came
    # A caller queued: no linger at all, its answer waits for the commit.
    intake.offer(make_event(title="trap"))
    await intake.put(make_event(title="webhook"), wait_for_commit=True)
    waits = clock.waits
    assert len(await intake.get_batch(10, 5)) == 2
    assert clock.waits == waits


async def test_a_caller_arriving_ends_the_linger_at_once() -> None:
    intake, clock = _lingering_intake()
    intake.offer(make_event(title="trap"))
    gathering = await lingering(intake, 10, 5)
    assert clock.waiting and not gathering.done()
    await intake.put(make_event(title="webhook"), wait_for_commit=True)
    await settle()
    assert [s.event.title for s in gathering.result()] == ["trap", "webhook"]  # no time passed
    # Taken callers no longer count: the next callerless batch lingers again.
    intake.offer(make_event(title="later"))
    gathering = await lingering(intake, 10, 100 * MS)
    assert clock.waiting and not gathering.done()
    await advance(clock, 100 * MS)
    assert len(gathering.result()) == 1


async def test_the_system_clock_lingers_in_real_time() -> None:
    """The one linger test on real time: the default clock's timeout does end the wait."""
    intake, _ = _intake(10)
    intake.offer(make_event())
    assert len(await asyncio.wait_for(intake.get_batch(10, 0.01), 5)) == 1


async def test_drained_after_every_batch_is_done() -> None:
    intake, _ = _intake(10)
    await intake.wait_drained()  # empty: returns at once
    intake.offer(make_event())
    drained = asyncio.create_task(intake.wait_drained())
    batch = await intake.get_batch(10, 0)
    await asyncio.sleep(0)
    assert not drained.done()  # taken but not yet processed
    intake.task_done(len(batch))
    await asyncio.wait_for(drained, 1)


async def test_requeue_puts_a_batch_back_in_front_in_order() -> None:
    intake, _ = _intake(10)
    for title in "abc":
        intake.offer(make_event(title=title))
    batch = await intake.get_batch(2, 0)
    intake.offer(make_event(title="d"))
    intake.requeue_front(batch)
    assert [s.event.title for s in await intake.get_batch(10, 0)] == ["a", "b", "c", "d"]


async def test_fail_waiting_answers_queued_callers_and_keeps_the_rest() -> None:
    intake, _ = _intake(10)
    future = await intake.put(make_event(title="http"), wait_for_commit=True)
    intake.offer(make_event(title="udp"))
    assert intake.fail_waiting(RuntimeError("db down")) == 1
    assert future is not None
    with pytest.raises(RuntimeError, match="db down"):
        await future
    assert [s.event.title for s in await intake.get_batch(10, 0)] == ["udp"]


async def test_closed_intake_refuses_and_wakes_waiting_putters() -> None:
    intake, registry = _intake(1)
    intake.offer(make_event())
    blocked = asyncio.create_task(intake.put(make_event()))
    await asyncio.sleep(0)
    intake.close()
    with pytest.raises(IntakeClosedError):
        await blocked
    assert not intake.offer(make_event())
    assert _dropped(registry, "closed") == 1
    assert len(await intake.get_batch(10, 0)) == 1  # what was queued can still be drained
