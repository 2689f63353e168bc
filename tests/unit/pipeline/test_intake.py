"""The intake's two doors: offer drops and counts when full, put waits for room; drained means done."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from opsresponder.pipeline.errors import IntakeClosedError
from opsresponder.pipeline.intake import Intake
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


async def test_get_batch_gathers_up_to_max_and_waits_at_most_max_wait() -> None:
    intake, _ = _intake(100)
    for i in range(5):
        intake.offer(make_event(title=str(i)))
    assert len(await intake.get_batch(3, 10)) == 3  # full batch: no waiting
    started = asyncio.get_running_loop().time()
    assert len(await intake.get_batch(10, 0.05)) == 2
    assert asyncio.get_running_loop().time() - started < 1


async def test_only_events_nobody_waits_on_linger() -> None:
    intake, _ = _intake(100)
    loop = asyncio.get_running_loop()
    intake.offer(make_event(title="trap"))
    started = loop.time()
    assert len(await intake.get_batch(10, 0.2)) == 1
    assert loop.time() - started >= 0.15  # lingered for more, none came
    # A caller queued: no linger at all, its answer waits for the commit.
    intake.offer(make_event(title="trap"))
    await intake.put(make_event(title="webhook"), wait_for_commit=True)
    started = loop.time()
    assert len(await intake.get_batch(10, 5)) == 2
    assert loop.time() - started < 1


async def test_a_caller_arriving_ends_the_linger_at_once() -> None:
    intake, _ = _intake(100)
    intake.offer(make_event(title="trap"))
    gathering = asyncio.create_task(intake.get_batch(10, 5))
    await asyncio.sleep(0.05)
    assert not gathering.done()
    await intake.put(make_event(title="webhook"), wait_for_commit=True)
    batch = await asyncio.wait_for(gathering, 1)
    assert [s.event.title for s in batch] == ["trap", "webhook"]
    # Taken callers no longer count: the next callerless batch lingers again.
    intake.offer(make_event(title="later"))
    started = asyncio.get_running_loop().time()
    await intake.get_batch(10, 0.1)
    assert asyncio.get_running_loop().time() - started >= 0.05


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
