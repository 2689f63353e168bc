"""The stage contract in the worker: async stages over whole batches, what they hand to the store's writers,
and a failing stage counted under its own name."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from opsresponder.core.batch import Batch, BatchKey, TraceEntry
from opsresponder.core.event import Event
from opsresponder.pipeline.errors import EventRefusedError, StageError
from opsresponder.pipeline.intake import Intake, Submission
from opsresponder.pipeline.stage import Stage
from opsresponder.pipeline.stages import Correlate, Normalize
from opsresponder.pipeline.worker import PipelineWorker
from opsresponder.store.events import EventRepository, WriteOutcome
from opsresponder.store.writers import BatchWriter
from tests.factories import make_event, make_pipeline

WINDOW = timedelta(minutes=5)
SILENCED: BatchKey[list[Event]] = BatchKey("silenced")


class Silences:
    """Stands in for the state backend: one round trip per call, each a real suspension."""

    def __init__(self, silenced_hosts: set[str]) -> None:
        self._hosts = silenced_hosts
        self.round_trips = 0

    async def silenced(self, hosts: set[str]) -> set[str]:
        self.round_trips += 1
        await asyncio.sleep(0)
        return hosts & self._hosts


class Silence:
    """A stage with I/O, as the contract wants it: one lookup for the whole batch, never one per event."""

    name = "silence"

    def __init__(self, silences: Silences) -> None:
        self._silences = silences

    async def run(self, batch: Batch) -> None:
        silenced = await self._silences.silenced({e.host for e in batch.events if e.host is not None})
        if not silenced:
            return
        hit = [e for e in batch.events if e.host in silenced]
        for event in hit:
            event.suppressed_reason = "silenced"
            batch.trace.append(TraceEntry(event, self.name, f"host {event.host} is silenced"))
        batch.add(SILENCED, hit)


class Recorder:
    """A batch writer that keeps what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[Batch, list[Event]]] = []

    async def write(self, conn: asyncpg.Connection, batch: Batch, stored: Sequence[Event]) -> None:
        self.calls.append((batch, list(stored)))


def pipeline(
    pool: asyncpg.Pool, stages: Sequence[Stage], writers: Sequence[BatchWriter] = (), **options: Any
) -> tuple[PipelineWorker, Intake, CollectorRegistry]:
    repository = EventRepository(pool, dedup_window=WINDOW, writers=writers)
    return make_pipeline(pool, repository=repository, stages=stages, **options)


def callers(events: Sequence[Event]) -> list[Submission]:
    loop = asyncio.get_running_loop()
    return [Submission(e, loop.create_future()) for e in events]


async def test_an_async_stage_awaits_once_per_batch_and_hands_its_findings_to_the_writers(
    db_pool: asyncpg.Pool,
) -> None:
    silences = Silences({"h3", "h7"})
    recorder = Recorder()
    worker, _, _ = pipeline(db_pool, [Normalize(), Silence(silences), Correlate()], [recorder])
    batch = callers([make_event(host=f"h{i}") for i in range(50)])

    await worker.process(batch)

    assert silences.round_trips == 1  # for 50 events
    outcomes: list[WriteOutcome] = [s.future.result() for s in batch if s.future is not None]
    assert len(outcomes) == 50 and not any(o.duplicate for o in outcomes)
    [(passed, stored)] = recorder.calls
    assert len(stored) == 50
    silenced = passed.get(SILENCED)
    assert silenced is not None and {e.host for e in silenced} == {"h3", "h7"}
    silence_trace = [(t.event.id, t.stage) for t in passed.trace if t.stage == "silence"]
    assert silence_trace == [(e.id, "silence") for e in silenced]  # other stages trace every event too
    assert [t.event for t in passed.trace if t.stage == "normalize"] == [s.event for s in batch]
    rows = await db_pool.fetch("SELECT host FROM events.events WHERE suppressed_reason = 'silenced'")
    assert {r["host"] for r in rows} == {"h3", "h7"}


class Explode:
    name = "explode"

    async def run(self, batch: Batch) -> None:
        if any(e.title == "poison" for e in batch.events):
            raise RuntimeError("a stage bug")


async def test_a_failing_stage_is_counted_and_logged_under_its_name_and_the_pipeline_goes_on(
    db_pool: asyncpg.Pool,
) -> None:
    worker, _, registry = pipeline(db_pool, [Normalize(), Explode(), Correlate()])
    poisoned = callers([make_event(title="poison"), make_event(title="bystander")])

    with capture_logs() as logs:
        await worker.process(poisoned)

    for submission in poisoned:
        assert submission.future is not None
        assert isinstance(submission.future.exception(), StageError)  # answered at once, not left waiting
    dropped = registry.get_sample_value(
        "opsresponder_events_dropped_total", {"stage": "explode", "reason": "stage_error"}
    )
    assert dropped == 2
    assert registry.get_sample_value(
        "opsresponder_events_dropped_total", {"stage": "pipeline", "reason": "stage_error"}
    ) in (None, 0)
    [entry] = [e for e in logs if e["log_level"] == "error"]
    assert entry["stage"] == "explode"
    assert entry["events"] == 2
    assert entry["exc_info"] is True

    healthy = callers([make_event(title="fine")])
    await worker.process(healthy)
    assert healthy[0].future is not None and not healthy[0].future.result().duplicate


class Gate:
    """Holds the batch holding the event titled "slow" until opened: a stage waiting on slow I/O."""

    name = "gate"

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()

    async def run(self, batch: Batch) -> None:
        if any(e.title == "slow" for e in batch.events):
            self.entered.set()
            await self.opened.wait()


async def test_a_stage_that_awaits_does_not_let_a_later_batch_commit_first(db_pool: asyncpg.Pool) -> None:
    gate = Gate()
    worker, intake, _ = pipeline(db_pool, [Normalize(), gate, Correlate()], concurrent_batches=2)
    committed: list[list[str]] = []
    worker.add_commit_listener(lambda events: committed.append([e.title for e in events]))
    task = asyncio.create_task(worker.run())
    try:
        slow = await intake.put(make_event(title="slow", host="a"), wait_for_commit=True)
        await asyncio.wait_for(gate.entered.wait(), 10)
        fast = await intake.put(make_event(title="fast", host="b"), wait_for_commit=True)
        assert slow is not None and fast is not None
        # The fast batch has run its stages and waits for its turn behind the slow one.
        done, _ = await asyncio.wait([fast], timeout=0.5)
        assert not done
        gate.opened.set()
        slow_outcome, fast_outcome = await asyncio.wait_for(asyncio.gather(slow, fast), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert slow_outcome.event_id < fast_outcome.event_id
    assert committed == [["slow"], ["fast"]]


class RefuseTitle:
    """A writer the database refuses for one event of the batch."""

    def __init__(self, title: str) -> None:
        self._title = title
        self.calls: list[tuple[Batch, list[str]]] = []

    async def write(self, conn: asyncpg.Connection, batch: Batch, stored: Sequence[Event]) -> None:
        self.calls.append((batch, [e.title for e in stored]))
        if any(e.title == self._title for e in stored):
            await conn.execute("SELECT 1 / 0")


async def test_a_refused_batch_is_retried_one_event_at_a_time_with_the_same_batch_for_the_writers(
    db_pool: asyncpg.Pool,
) -> None:
    writer = RefuseTitle("bad")
    worker, _, registry = pipeline(db_pool, [Normalize(), Correlate()], [writer])
    batch = callers([make_event(title=t, host=t) for t in ("one", "bad", "two")])

    await worker.process(batch)

    first, *retries = writer.calls
    assert first[1] == ["one", "bad", "two"]
    assert [titles for _, titles in retries] == [["one"], ["bad"], ["two"]]
    assert all(passed is first[0] for passed, _ in retries)
    assert len(first[0].events) == 3
    assert [r["title"] for r in await db_pool.fetch("SELECT title FROM events.events ORDER BY id")] == [
        "one",
        "two",
    ]
    bad = batch[1].future
    assert bad is not None
    # The caller's answer names the log line; the database's own words stay in the log.
    with pytest.raises(EventRefusedError) as refused:
        bad.result()
    assert refused.value.request_id
    assert (
        registry.get_sample_value(
            "opsresponder_events_dropped_total", {"stage": "store", "reason": "db_refused"}
        )
        == 1
    )
