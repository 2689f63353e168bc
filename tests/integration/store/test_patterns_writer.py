"""PatternWriter: template counts upserted in the batch's transaction, duplicates and retries counted once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from opsresponder.config import PatternsConfig
from opsresponder.core.batch import Batch
from opsresponder.core.clock import utcnow
from opsresponder.core.event import Event
from opsresponder.pipeline.patterns import NoPatterns, PatternMetrics, Patterns, template_id
from opsresponder.store.errors import StoreError
from opsresponder.store.events import EventRepository
from opsresponder.store.patterns import PatternQuery, PatternRepository, PatternWriter
from opsresponder.store.write_order import WriteOrder
from tests.factories import make_event, prepared

WINDOW = timedelta(minutes=5)
DISK = "Disk <PATH> full"
CPU = "CPU at <NUM>%"


class FailingWriter:
    async def write(self, conn: asyncpg.Connection, batch: Batch, stored: Sequence[Event]) -> None:
        await conn.execute("SELECT 1 / 0")


async def templated(*events: Event) -> Batch:
    """The events prepared as the worker hands them over, after a real patterns stage."""
    batch = Batch(prepared(*events))
    stage = Patterns(PatternsConfig(seed_from_store=False), NoPatterns(), PatternMetrics(CollectorRegistry()))
    await stage.run(batch)
    return batch


async def counts(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch("SELECT template, count FROM events.patterns")
    return {r["template"]: r["count"] for r in rows}


async def test_every_occurrence_counts_once_duplicates_included(db_pool: asyncpg.Pool) -> None:
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[PatternWriter()])
    first = await templated(make_event(title="Disk /var full"), make_event(title="CPU at 97%"))
    await repository.store_batch(first.events, batch=first)
    # A repeat of the first event (a duplicate folded into it), another disk, and the CPU one again.
    second = await templated(
        make_event(title="Disk /var full"), make_event(title="Disk /srv full"), make_event(title="CPU at 97%")
    )
    outcomes = await repository.store_batch(second.events, batch=second)
    assert [o.duplicate for o in outcomes] == [True, False, True]
    assert await counts(db_pool) == {DISK: 3, CPU: 2}
    row = await db_pool.fetchrow("SELECT id FROM events.patterns WHERE template = $1", DISK)
    assert row is not None and row["id"] == template_id(DISK)


async def test_first_and_last_seen_are_the_earliest_and_latest_received_at(db_pool: asyncpg.Pool) -> None:
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[PatternWriter()])
    t0 = utcnow() - timedelta(hours=2)
    for minutes in (30, 0, 60):
        at = t0 + timedelta(minutes=minutes)
        batch = await templated(make_event(title=f"Disk /d{minutes} full", host=f"h{minutes}", now=at))
        await repository.store_batch(batch.events, batch=batch)
    row = await db_pool.fetchrow("SELECT count, first_seen, last_seen FROM events.patterns")
    assert row is not None
    assert (row["count"], row["first_seen"], row["last_seen"]) == (3, t0, t0 + timedelta(minutes=60))


async def test_a_batch_retried_one_event_at_a_time_is_counted_once(db_pool: asyncpg.Pool) -> None:
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[PatternWriter()])
    batch = await templated(
        make_event(title="Disk /a full", host="a"),
        make_event(title="Disk /b full", host="b"),
        make_event(title="CPU at 5%", host="c"),
    )
    for event in batch.events:  # what the worker does after the database refused the batch
        await repository.store_batch([event], batch=batch)
    assert await counts(db_pool) == {DISK: 2, CPU: 1}


async def test_the_counts_roll_back_with_the_batch(db_pool: asyncpg.Pool) -> None:
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[PatternWriter(), FailingWriter()])
    batch = await templated(make_event(title="Disk /a full"))
    with pytest.raises(StoreError):
        await repository.store_batch(batch.events, batch=batch)
    assert await counts(db_pool) == {}


async def test_events_without_a_template_write_nothing(db_pool: asyncpg.Pool) -> None:
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[PatternWriter()])
    events = prepared(make_event(), make_event(title="x", metadata={"pattern": "not the stage's shape"}))
    await repository.store_batch(events, batch=Batch(events))
    assert await counts(db_pool) == {}
    assert await db_pool.fetchval("SELECT count(*) FROM events.events") == 2


async def test_the_repository_lists_sorts_filters_and_gives_the_stage_recent_templates(
    db_pool: asyncpg.Pool,
) -> None:
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[PatternWriter()])
    t0 = utcnow() - timedelta(days=2)
    plan = [
        ("Disk /a full", 0),
        ("Disk /b full", 1),
        ("CPU at 5%", 2),
        ("Fan 3 failed", 3),
        ("Disk /c full", 4),
    ]
    for i, (title, hours) in enumerate(plan):
        batch = await templated(make_event(title=title, host=f"h{i}", now=t0 + timedelta(hours=hours * 12)))
        await repository.store_batch(batch.events, batch=batch)
    patterns = PatternRepository(db_pool)

    by_last, total = await patterns.query(PatternQuery())
    assert [p.template for p in by_last] == [DISK, "Fan <NUM> failed", CPU] and total == 3
    by_count, _ = await patterns.query(PatternQuery(sort="count"))
    assert by_count[0].template == DISK and by_count[0].count == 3
    by_first, _ = await patterns.query(PatternQuery(sort="first_seen"))
    assert [p.template for p in by_first] == ["Fan <NUM> failed", CPU, DISK]
    new, total = await patterns.query(PatternQuery(since=t0 + timedelta(hours=20)))
    assert {p.template for p in new} == {"Fan <NUM> failed", CPU} and total == 2
    page, total = await patterns.query(PatternQuery(limit=1, offset=1))
    assert [p.template for p in page] == ["Fan <NUM> failed"] and total == 3
    past, total = await patterns.query(PatternQuery(offset=10))
    assert past == [] and total == 3
    assert list(await patterns.recent_templates(2)) == [DISK, "Fan <NUM> failed"]
    got = await patterns.get(template_id(CPU))
    assert got is not None and got.count == 1


class Gate:
    """Holds the first transaction it sees after its events went in, until released."""

    def __init__(self) -> None:
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    async def write(self, conn: asyncpg.Connection, batch: Batch, stored: Sequence[Event]) -> None:
        if not self.held.is_set():
            self.held.set()
            await self.release.wait()


async def test_overlapping_batches_of_one_template_never_deadlock(db_pool: asyncpg.Pool) -> None:
    # Two batches in flight at once (pipeline.concurrent_batches), no event in common, one template: the
    # later one must not take the template's row before the earlier one, which it waits for to commit.
    gate = Gate()
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[gate, PatternWriter()])
    order = WriteOrder()
    first = await templated(make_event(title="CPU at 97%", host="a"))
    second = await templated(make_event(title="CPU at 98%", host="b"))
    one = asyncio.create_task(repository.store_batch(first.events, order.next_turn(), batch=first))
    await gate.held.wait()
    two = asyncio.create_task(repository.store_batch(second.events, order.next_turn(), batch=second))
    # Time for the second batch to reach the patterns row, had it been let in before the first was done.
    await asyncio.sleep(0.3)
    gate.release.set()
    async with asyncio.timeout(10):
        await asyncio.gather(one, two)
    assert await counts(db_pool) == {CPU: 2}
