"""Batch writers: their rows go in the batch's own transaction, and roll back with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import asyncpg
import pytest

from opsresponder.config import SubscriptionsConfig
from opsresponder.core.batch import Batch, TraceEntry
from opsresponder.core.correlation import CORRELATIONS, CorrelationLink
from opsresponder.core.event import Event
from opsresponder.store.correlations import CorrelationWriter
from opsresponder.store.errors import (
    CommitOutcomeUnknownError,
    DatabaseUnavailableError,
    EarlierBatchWithdrawnError,
    StoreError,
)
from opsresponder.store.events import EventRepository
from opsresponder.store.subscriptions import SubscriptionRepository, SubscriptionSpec
from opsresponder.store.write_order import WriteOrder, WriteTurn
from tests.commit_failures import (  # noqa: F401 - fixtures, used by name
    FailsAtCommit,
    LosesConnectionAtCommit,
    deferred_check,
    lost_at_commit,
)
from tests.factories import make_event, prepared

WINDOW = timedelta(minutes=5)


@pytest.fixture
async def notes_table(db_pool: asyncpg.Pool) -> AsyncIterator[str]:
    """A table of the test's own, standing in for the correlations, traces and firings to come."""
    await db_pool.execute(
        "CREATE TABLE public.writer_test_notes (event_id bigint NOT NULL, note text NOT NULL)"
    )
    yield "public.writer_test_notes"
    await db_pool.execute("DROP TABLE public.writer_test_notes")


class TraceWriter:
    """Writes the batch's trace entries of the events stored in this transaction, in one statement."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.calls: list[tuple[Batch, list[int]]] = []
        self.seen_from_outside: list[int] = []

    async def write(self, conn: asyncpg.Connection, batch: Batch, stored: Sequence[Event]) -> None:
        ids = [e.id for e in stored if e.id is not None]
        self.calls.append((batch, ids))
        assert conn.is_in_transaction()
        # The new events are there for this transaction, and not yet for anyone else.
        assert await conn.fetchval(
            "SELECT count(*) FROM events.events WHERE id = ANY($1::bigint[])", ids
        ) == len(ids)
        self.seen_from_outside.append(
            await self._pool.fetchval("SELECT count(*) FROM events.events WHERE id = ANY($1::bigint[])", ids)
        )
        mine = {id(e) for e in stored}
        entries = [t for t in batch.trace if id(t.event) in mine]
        if entries:
            await conn.executemany(
                "INSERT INTO public.writer_test_notes (event_id, note) VALUES ($1, $2)",
                [(t.event.id, f"{t.stage}: {t.detail}") for t in entries],
            )


class FailingWriter:
    async def write(self, conn: asyncpg.Connection, batch: Batch, stored: Sequence[Event]) -> None:
        await conn.execute("SELECT 1 / 0")  # refused by PostgreSQL, as a broken insert would be


class DyingWriter:
    async def write(self, conn: asyncpg.Connection, batch: Batch, stored: Sequence[Event]) -> None:
        # What asyncpg raises for a connection the server closed under a statement (a PostgresError):
        # raised here, as a real server's death surfaces differently from inside a transaction block.
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")


async def notes(pool: asyncpg.Pool) -> set[tuple[int, str]]:
    return {(r["event_id"], r["note"]) for r in await pool.fetch("SELECT * FROM public.writer_test_notes")}


async def test_a_writer_gets_the_batch_and_its_new_events_inside_the_transaction(
    db_pool: asyncpg.Pool, notes_table: str
) -> None:
    writer = TraceWriter(db_pool)
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[writer])
    first = await repository.store_batch(prepared(make_event(host="seen-before")))
    events = prepared(make_event(host="a"), make_event(host="seen-before"), make_event(host="b"))
    batch = Batch(events)
    batch.trace.append(TraceEntry(events[0], "silence", "no silence matched"))
    batch.trace.append(TraceEntry(events[1], "silence", "a duplicate: its trace is not this writer's"))

    outcomes = await repository.store_batch(events, batch=batch)

    assert [o.duplicate for o in outcomes] == [False, True, False]
    assert outcomes[1].event_id == first[0].event_id
    passed, ids = writer.calls[-1]
    assert passed is batch
    assert ids == [outcomes[0].event_id, outcomes[2].event_id]  # new events only, in batch order
    assert writer.seen_from_outside == [0, 0]
    # Committed with the events.
    assert await notes(db_pool) == {(outcomes[0].event_id, "silence: no silence matched")}


async def test_a_failing_writer_rolls_back_the_events_and_the_rows_written_before_it(
    db_pool: asyncpg.Pool, notes_table: str
) -> None:
    repo = SubscriptionRepository(db_pool, SubscriptionsConfig())
    await repo.create(SubscriptionSpec(name="all", url="http://127.0.0.1:9/hook"), None)
    writer = TraceWriter(db_pool)
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[repo.outbox, writer, FailingWriter()])
    events = prepared(make_event(host="a"), make_event(host="b"))
    batch = Batch(events)
    batch.trace.append(TraceEntry(events[0], "silence", "no silence matched"))

    with pytest.raises(StoreError, match="DivisionByZero"):
        await repository.store_batch(events, batch=batch)

    assert len(writer.calls) == 1  # the trace rows and the outbox rows were written, then rolled back
    given = writer.calls[0][1]
    assert len(given) == 2  # the transaction gave them ids...
    assert [e.id for e in events] == [None, None]  # ...and took them back
    assert await notes(db_pool) == set()
    assert await db_pool.fetchval("SELECT count(*) FROM events.subscription_outbox") == 0
    assert await db_pool.fetchval("SELECT count(*) FROM events.events") == 0
    assert await db_pool.fetchval("SELECT count(*) FROM events.dedup") == 0

    # Stored again (after an outage), they get new ids: the ones taken back were never stored.
    await EventRepository(db_pool, dedup_window=WINDOW, writers=[writer]).store_batch(events, batch=batch)
    assert all(e.id is not None and e.id not in given for e in events)
    assert await notes(db_pool) == {(events[0].id, "silence: no silence matched")}


async def test_a_connection_lost_mid_transaction_is_an_outage_not_a_refusal(db_pool: asyncpg.Pool) -> None:
    # A refusal costs the batch's events one by one; an outage holds them until the database is back.
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[DyingWriter()])
    events = prepared(make_event())
    with pytest.raises(DatabaseUnavailableError):
        await repository.store_batch(events, batch=Batch(events))
    assert events[0].id is None


async def test_without_a_batch_the_writers_get_one_of_the_events(
    db_pool: asyncpg.Pool, notes_table: str
) -> None:
    writer = TraceWriter(db_pool)
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[writer])
    events = prepared(make_event())
    await repository.store_batch(events)
    passed, _ = writer.calls[0]
    assert passed.events == events
    assert passed.trace == []


@pytest.mark.usefixtures("deferred_check")
async def test_a_batch_that_read_the_ids_of_one_that_then_failed_to_commit_does_not_commit(
    db_pool: asyncpg.Pool,
) -> None:
    # The second batch's correlation names the first batch's event, by the id the first batch's
    # transaction gave it; that transaction then fails at COMMIT, so the id is never stored.
    order = WriteOrder()
    first_turn, second_turn = order.next_turn(), order.next_turn()
    [cause] = prepared(make_event(host="sw-1"))
    [effect] = prepared(make_event(host="app-1"))
    second = Batch([effect])
    second.add(CORRELATIONS, [CorrelationLink(effect, cause, "causal", 0.9, "depends on sw-1")])
    failing = EventRepository(db_pool, dedup_window=WINDOW, writers=[FailsAtCommit()])
    correlating = EventRepository(db_pool, dedup_window=WINDOW, writers=[CorrelationWriter()])

    results = await asyncio.gather(
        failing.store_batch([cause], first_turn),
        correlating.store_batch([effect], second_turn, batch=second),
        return_exceptions=True,
    )

    assert isinstance(results[0], StoreError) and "ForeignKeyViolation" in str(results[0])
    assert isinstance(results[1], EarlierBatchWithdrawnError)  # the worker stores it again, after
    assert cause.id is None and effect.id is None
    assert await db_pool.fetchval("SELECT count(*) FROM events.event_correlations") == 0
    assert await db_pool.fetchval("SELECT count(*) FROM events.events") == 0
    # Stored again once the first is over: nothing withdrawn while it wrote, so it commits.
    await correlating.store_batch([effect], order.next_turn(), batch=second)
    assert effect.id is not None


@pytest.mark.usefixtures("lost_at_commit")
async def test_a_connection_lost_at_commit_is_an_outage_whose_outcome_is_unknown(
    db_pool: asyncpg.Pool,
) -> None:
    [event] = prepared(make_event(host="h"))
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[LosesConnectionAtCommit()])

    with pytest.raises(CommitOutcomeUnknownError):
        await repository.store_batch([event])

    assert event.id is None  # taken as not stored, like any outage
    # Lost before it committed, here; the client could not know that.
    assert await db_pool.fetchval("SELECT count(*) FROM events.events") == 0


class LosesConnectionWhileWaiting(WriteTurn):
    """A turn whose wait for the previous batch's commit outlasts the connection: an outage before COMMIT
    was ever sent, so the batch is certainly not stored."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(None)
        self.pool = pool

    async def wait_to_commit(self) -> bool:
        await self.pool.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        await asyncio.sleep(0.3)  # until the driver has seen its connection closed
        return False


async def test_a_connection_lost_before_commit_is_a_plain_outage(db_pool: asyncpg.Pool) -> None:
    [event] = prepared(make_event(host="h"))

    with pytest.raises(DatabaseUnavailableError) as raised:
        await EventRepository(db_pool, dedup_window=WINDOW).store_batch(
            [event], LosesConnectionWhileWaiting(db_pool)
        )

    assert not isinstance(raised.value, CommitOutcomeUnknownError)  # nothing can have been stored
    assert event.id is None
