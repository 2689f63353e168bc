"""Events an outage held back: stored as the stages left them, their batch settled (`Batch.settled`) only
once all of it is stored; and a store failure outside the database costs only the events at fault."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import asyncpg
import pytest

from opsresponder.core.batch import Batch
from opsresponder.core.event import Event
from opsresponder.pipeline.errors import EventRefusedError, StoreUnavailableError
from opsresponder.pipeline.intake import Submission
from opsresponder.pipeline.stages import Correlate, Normalize
from opsresponder.store.errors import DatabaseUnavailableError, EarlierBatchWithdrawnError, StoreError
from opsresponder.store.events import EventRepository, WriteOutcome
from opsresponder.store.write_order import WriteTurn
from opsresponder.store.writers import BatchWriter
from tests.commit_failures import FailsAtCommit, deferred_check  # noqa: F401 - a fixture, used by name
from tests.factories import make_event, make_pipeline

WINDOW = timedelta(minutes=5)


class Capture:
    """The last stage: keeps each batch, to see when the worker settles it."""

    name = "capture"

    def __init__(self) -> None:
        self.batches: list[Batch] = []

    async def run(self, batch: Batch) -> None:
        self.batches.append(batch)


class Faults(EventRepository):
    """The real store, with a refusal or an outage in place of chosen calls (`plan`, one entry per call)."""

    def __init__(self, pool: asyncpg.Pool, writers: Sequence[BatchWriter] = ()) -> None:
        super().__init__(pool, dedup_window=WINDOW, writers=writers)
        self.plan: list[type[StoreError] | None] = []

    async def store_batch(
        self, events: Sequence[Event], turn: WriteTurn | None = None, *, batch: Batch | None = None
    ) -> list[WriteOutcome]:
        fault = self.plan.pop(0) if self.plan else None
        if fault is None:
            return await super().store_batch(events, turn, batch=batch)
        if turn is not None:
            turn.end_commit_phase()  # as the store does on every path
        raise fault("injected")


def submissions(*events: Event, callers: Sequence[Event] = ()) -> list[Submission]:
    loop = asyncio.get_running_loop()
    return [Submission(e, loop.create_future() if e in callers else None) for e in events]


async def titles(pool: asyncpg.Pool) -> list[str]:
    return [r["title"] for r in await pool.fetch("SELECT title FROM events.events ORDER BY id")]


@pytest.mark.parametrize(
    ("stored_before_the_outage", "where"),
    [
        (["a"], "at s, an event nobody waits on: s, then the rest, held as one part"),
        (["a", "s"], "at h, an HTTP caller's event: h answered 503, the batch not settled by it"),
        (["a", "s", "h"], "at c, the last event: held, so the retry's end does not settle the batch"),
    ],
)
async def test_a_batch_cut_short_in_its_retry_one_event_at_a_time_is_settled_once_all_of_it_is_stored(
    db_pool: asyncpg.Pool, stored_before_the_outage: list[str], where: str
) -> None:
    repository = Faults(db_pool)
    capture = Capture()
    worker, _, _ = make_pipeline(db_pool, repository=repository, stages=[Normalize(), Correlate(), capture])
    a, s, h, c = (make_event(title=t, host=t) for t in ("a", "s", "h", "c"))
    # The batch is refused, so it is stored one event at a time, until the outage begins.
    repository.plan = [StoreError, *[None] * len(stored_before_the_outage), DatabaseUnavailableError]
    batch = submissions(a, s, h, c, callers=[h])

    await worker.process(batch)

    [work] = capture.batches
    assert not work.settled, where  # c (and s) wait for the database: their ids are still to come
    if "h" not in stored_before_the_outage:
        with pytest.raises(StoreUnavailableError):
            await batch[2].future  # type: ignore[misc]  # the caller of `h` was answered 503
    assert await titles(db_pool) == stored_before_the_outage

    await worker.process(submissions(make_event(title="x", host="x")))  # the database is back

    assert work.settled and s.id is not None and c.id is not None
    after = [t for t in ("a", "s", "h", "c") if t in stored_before_the_outage or t != "h"]
    assert await titles(db_pool) == [*after, "x"]  # the held-back events, then the new one
    assert [len(b.events) for b in capture.batches] == [4, 1]  # no event went through the stages twice


class Poison:
    """A batch writer with a bug that one event's data triggers (as a value COPY cannot encode would)."""

    async def write(self, conn: asyncpg.Connection, batch: Batch, stored: Sequence[Event]) -> None:
        if any(e.title == "poison" for e in stored):
            raise TypeError("cannot encode the poison")


async def test_a_store_failure_outside_the_database_costs_only_the_events_at_fault(
    db_pool: asyncpg.Pool,
) -> None:
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[Poison()])
    capture = Capture()
    worker, _, _ = make_pipeline(db_pool, repository=repository, stages=[Normalize(), Correlate(), capture])
    events = [make_event(title=t, host=t) for t in ("before", "poison", "after")]
    batch = submissions(*events, callers=events)

    await worker.process(batch)

    assert await titles(db_pool) == ["before", "after"]
    assert isinstance(batch[0].future and batch[0].future.result(), WriteOutcome)
    with pytest.raises(EventRefusedError):
        await batch[1].future  # type: ignore[misc]
    assert capture.batches[0].settled


@pytest.mark.usefixtures("deferred_check")
async def test_a_batch_refused_at_commit_costs_only_its_bad_event_and_every_later_batch_is_stored(
    db_pool: asyncpg.Pool,
) -> None:
    # Its commit fails after later batches could read its ids: they are told, but only while they write
    # beside it, so the retry one event at a time and the batches after it are stored.
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[FailsAtCommit("bad")])
    worker, _, _ = make_pipeline(db_pool, repository=repository, stages=[Normalize(), Correlate()])
    first = [make_event(title=t, host=t) for t in ("one", "bad", "two")]
    batch = submissions(*first, callers=first)

    await worker.process(batch)
    for n in range(3):
        await worker.process(submissions(make_event(title=f"next {n}", host=f"n{n}")))

    assert await titles(db_pool) == ["one", "two", "next 0", "next 1", "next 2"]
    with pytest.raises(EventRefusedError):
        await batch[1].future  # type: ignore[misc]
    assert worker.database_available


async def test_a_batch_an_earlier_one_withdrew_is_stored_again_with_its_callers_waiting(
    db_pool: asyncpg.Pool,
) -> None:
    repository = Faults(db_pool)
    capture = Capture()
    worker, _, _ = make_pipeline(db_pool, repository=repository, stages=[Normalize(), Correlate(), capture])
    caller, datagram = make_event(title="caller", host="a"), make_event(title="datagram", host="b")
    repository.plan = [EarlierBatchWithdrawnError]
    batch = submissions(caller, datagram, callers=[caller])

    await worker.process(batch)

    assert worker.database_available  # not an outage: nobody is answered 503
    assert batch[0].future is not None and not batch[0].future.done()  # the caller still waits...
    assert not capture.batches[0].settled
    await worker.process(submissions(make_event(title="later", host="c")))
    outcome = await batch[0].future  # ...and gets its answer once the batch is stored again
    assert isinstance(outcome, WriteOutcome) and outcome.event_id == caller.id
    assert await titles(db_pool) == ["caller", "datagram", "later"]
    assert capture.batches[0].settled and len(capture.batches) == 2  # the stages ran once


class Slow:
    """A batch writer that takes a while, so batches overlap as on a busy database."""

    async def write(self, conn: asyncpg.Connection, batch: Batch, stored: Sequence[Event]) -> None:
        await conn.execute("SELECT pg_sleep(0.02)")


@pytest.mark.parametrize("in_flight", [2, 3])
@pytest.mark.usefixtures("deferred_check")
async def test_the_running_worker_stores_everything_around_a_batch_refused_at_commit(
    db_pool: asyncpg.Pool, in_flight: int
) -> None:
    # Overlapping batches read the refused batch's ids, are withdrawn and stored again; nothing stalls,
    # every caller is answered, and only the bad event is lost.
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[Slow(), FailsAtCommit("bad")])
    worker, intake, _ = make_pipeline(
        db_pool, repository=repository, batch_max_events=5, concurrent_batches=in_flight
    )
    titles_sent = [f"e{n}" for n in range(30)]
    titles_sent[7] = "bad"
    running = asyncio.create_task(worker.run())
    try:
        futures = await intake.put_many(
            [make_event(title=t, host=f"h{n}") for n, t in enumerate(titles_sent)]
        )
        outcomes = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 30)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    refused = [t for t, o in zip(titles_sent, outcomes, strict=True) if isinstance(o, EventRefusedError)]
    assert refused == ["bad"]
    assert all(isinstance(o, WriteOutcome) for t, o in zip(titles_sent, outcomes, strict=True) if t != "bad")
    assert sorted(await titles(db_pool)) == sorted(t for t in titles_sent if t != "bad")
    assert worker.database_available
