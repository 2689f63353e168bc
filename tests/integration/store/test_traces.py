"""The trace writer against a real PostgreSQL: one row per new event with entries, in the batch's
transaction and one statement; duplicates leave the original's trace alone; retention takes traces along."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from opsresponder.core.batch import Batch, TraceEntry
from opsresponder.core.event import Event
from opsresponder.store.errors import StoreError
from opsresponder.store.events import EventRepository
from opsresponder.store.retention import RetentionJob, RetentionMetrics, event_rules
from opsresponder.store.traces import TraceRepository, TraceWriter
from tests.factories import make_event, prepared

WINDOW = timedelta(minutes=5)


class Failing:
    async def write(self, conn: asyncpg.Connection, batch: Batch, stored: Sequence[Event]) -> None:
        await conn.execute("SELECT 1/0")


def traced(*events: Event) -> Batch:
    batch = Batch(list(events))
    for i, event in enumerate(events):
        batch.trace.append(TraceEntry(event, "normalize", "fingerprint computed"))
        batch.trace.append(TraceEntry(event, "score", f"score {i}: severity high +30"))
    return batch


async def test_each_new_event_gets_its_entries_in_stage_order(db_pool: asyncpg.Pool) -> None:
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[TraceWriter()])
    events = prepared(make_event(host="a"), make_event(host="b"), make_event(host="c"))
    batch = traced(*events[:2])  # c has no entries: no row
    batch.trace.append(TraceEntry(events[0], "rules", "rule 7 'cpu' matched, fired"))  # any stage, later
    outcomes = await repository.store_batch(events, batch=batch)
    traces = TraceRepository(db_pool)
    assert await traces.entries(outcomes[0].event_id) == [
        ("normalize", "fingerprint computed"),
        ("score", "score 0: severity high +30"),
        ("rules", "rule 7 'cpu' matched, fired"),
    ]
    assert await traces.entries(outcomes[1].event_id) == [
        ("normalize", "fingerprint computed"),
        ("score", "score 1: severity high +30"),
    ]
    assert await traces.entries(outcomes[2].event_id) is None
    assert await db_pool.fetchval("SELECT count(*) FROM events.event_traces") == 2


class Spy:
    """The batch's connection, recording the statements a writer sends through it."""

    def __init__(self, conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy) -> None:
        self.conn = conn
        self.statements: list[int] = []

    async def execute(self, sql: str, *args: list[object]) -> str:
        self.statements.append(len(args[0]))
        return str(await self.conn.execute(sql, *args))

    async def copy_records_to_table(self, table: str, *, records: list[object], **kw: object) -> str:
        self.statements.append(len(records))
        return str(await self.conn.copy_records_to_table(table, records=records, **kw))  # type: ignore[arg-type]


async def test_the_whole_batch_is_one_copy_and_nothing_is_sent_without_entries(
    db_pool: asyncpg.Pool,
) -> None:
    events = prepared(*(make_event(host=f"h{i}") for i in range(200)))
    await EventRepository(db_pool, dedup_window=WINDOW).store_batch(events)  # the rows the traces point at
    async with db_pool.acquire() as conn, conn.transaction():
        spy = Spy(conn)
        await TraceWriter().write(spy, traced(*events), events)  # type: ignore[arg-type]
        await TraceWriter().write(spy, Batch(events), events)  # type: ignore[arg-type]
        await TraceWriter().write(spy, traced(*events), [])  # type: ignore[arg-type]
    assert spy.statements == [200]
    assert await db_pool.fetchval("SELECT count(*) FROM events.event_traces") == 200


async def test_a_duplicate_writes_nothing_and_leaves_the_originals_trace(db_pool: asyncpg.Pool) -> None:
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[TraceWriter()])
    [first] = prepared(make_event(fingerprint="fp"))
    [outcome] = await repository.store_batch([first], batch=traced(first))
    again = prepared(make_event(fingerprint="fp"), make_event(fingerprint="fp"))
    outcomes = await repository.store_batch(again, batch=traced(*again))
    assert all(o.duplicate and o.event_id == outcome.event_id for o in outcomes)
    assert await TraceRepository(db_pool).entries(outcome.event_id) == [
        ("normalize", "fingerprint computed"),
        ("score", "score 0: severity high +30"),
    ]
    assert await db_pool.fetchval("SELECT count(*) FROM events.event_traces") == 1


async def test_traces_roll_back_with_their_batch(db_pool: asyncpg.Pool) -> None:
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[TraceWriter(), Failing()])
    events = prepared(make_event())
    with pytest.raises(StoreError, match="DivisionByZero"):
        await repository.store_batch(events, batch=traced(*events))
    assert await db_pool.fetchval("SELECT count(*) FROM events.event_traces") == 0


async def test_retention_removes_traces_with_their_events(db_pool: asyncpg.Pool) -> None:
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[TraceWriter()])
    old_at = datetime(2025, 1, 1, tzinfo=UTC)
    old = prepared(*(make_event(now=old_at, host=f"old-{i}") for i in range(3)))
    new = prepared(make_event(now=old_at + timedelta(days=40), host="new"))
    await repository.store_batch(old, batch=traced(*old))
    [kept] = await repository.store_batch(new, batch=traced(*new))
    job = RetentionJob(
        db_pool,
        event_rules(events_max_age=timedelta(days=30), dedup_window=WINDOW, batch_size=2),
        RetentionMetrics(CollectorRegistry()),
        clock=lambda: old_at + timedelta(days=41),
        max_run_duration=timedelta(minutes=1),
    )
    report = await job.run()
    assert report.deleted["events.events"] == 3
    rows = await db_pool.fetch("SELECT event_id FROM events.event_traces")
    assert [r["event_id"] for r in rows] == [kept.event_id]
