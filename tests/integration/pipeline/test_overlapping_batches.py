"""Overlapping batch transactions against a real PostgreSQL: they overlap, yet commit in id order, fold
duplicates across batches exactly, and never deadlock on shared fingerprints."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import timedelta

import asyncpg
import pytest
import structlog

from opsresponder.core.batch import Batch
from opsresponder.core.event import Event, EventState
from opsresponder.pipeline.errors import StageError
from opsresponder.pipeline.stages import Correlate, Normalize
from opsresponder.store.events import EventRepository, WriteOutcome
from opsresponder.store.write_order import WriteTurn
from tests.factories import make_event, make_pipeline

WINDOW = timedelta(minutes=5)


class OverlapWatch(EventRepository):
    """The real repository, counting how many batch transactions are open at once."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool, dedup_window=WINDOW)
        self.open = 0
        self.most_open = 0

    async def store_batch(
        self, events: Sequence[Event], turn: WriteTurn | None = None, *, batch: Batch | None = None
    ) -> list[WriteOutcome]:
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            return await super().store_batch(events, turn, batch=batch)
        finally:
            self.open -= 1


async def test_overlapping_batches_commit_in_id_order_and_fold_every_duplicate(db_pool: asyncpg.Pool) -> None:
    repository = OverlapWatch(db_pool)
    worker, intake, registry = make_pipeline(
        db_pool, repository=repository, intake_capacity=10_000, batch_max_events=7, concurrent_batches=3
    )
    published: list[list[int]] = []
    worker.add_commit_listener(lambda events: published.append([e.id or 0 for e in events]))
    task = asyncio.create_task(worker.run(), name="pipeline-worker")
    rng = random.Random(7)
    # 30 conditions repeated across many batches, some flapping between problem and resolved.
    sent = [
        make_event(
            host=f"h{rng.randrange(30)}",
            state=rng.choice([EventState.PROBLEM, EventState.PROBLEM, EventState.RESOLVED]),
        )
        for _ in range(600)
    ]
    try:
        futures = []
        for event in sent:
            future = await intake.put(event, wait_for_commit=True)
            assert future is not None
            futures.append(future)
            if len(futures) % 25 == 0:
                await asyncio.sleep(0)  # let batches go while more arrive, as with real traffic
        outcomes = await asyncio.wait_for(asyncio.gather(*futures), 30)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    assert repository.most_open > 1, "the batches never overlapped: the test proves nothing"
    # Commit listeners hear the batches in commit order, and ids grow in that order.
    flat = [i for ids in published for i in ids]
    assert flat == sorted(flat)
    # Every event is either stored or counted on the event it repeats; nothing is lost or counted twice.
    rows = await db_pool.fetch("SELECT id, duplicate_count FROM events.events")
    assert len(rows) + sum(r["duplicate_count"] for r in rows) == len(sent)
    new_ids = {o.event_id for o in outcomes if not o.duplicate}
    assert new_ids == {r["id"] for r in rows} == set(flat)
    assert all(o.event_id in new_ids for o in outcomes)
    assert registry.get_sample_value("opsresponder_db_write_errors_total", {"reason": "refused"}) in (None, 0)


async def test_a_failing_stage_costs_its_batch_not_the_pipeline(db_pool: asyncpg.Pool) -> None:
    class ExplodeOnPoison:
        name = "explode_on_poison"

        async def run(self, batch: Batch) -> None:
            if any(e.title == "poison" for e in batch.events):
                raise RuntimeError("a stage bug")

    worker, intake, registry = make_pipeline(
        db_pool, stages=[Normalize(), ExplodeOnPoison(), Correlate()], batch_max_events=10
    )
    task = asyncio.create_task(worker.run(), name="pipeline-worker")
    try:
        poisoned = await intake.put(make_event(title="poison"), wait_for_commit=True)
        assert poisoned is not None
        with structlog.testing.capture_logs() as logs, pytest.raises(StageError) as failure:
            await asyncio.wait_for(poisoned, 10)
        # The caller's answer can name the log line that holds the traceback.
        [line] = [entry for entry in logs if entry["log_level"] == "error"]
        assert line["request_id"] == failure.value.request_id != ""
        await asyncio.wait_for(intake.wait_drained(), 10)  # counted as done: nothing hangs
        healthy = await intake.put(make_event(title="fine"), wait_for_commit=True)
        assert healthy is not None
        outcome = await asyncio.wait_for(healthy, 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not outcome.duplicate
    assert [r["title"] for r in await db_pool.fetch("SELECT title FROM events.events")] == ["fine"]
    dropped = registry.get_sample_value(
        "opsresponder_events_dropped_total", {"stage": "explode_on_poison", "reason": "stage_error"}
    )
    assert dropped == 1
