"""The correlation writer and reads against a real PostgreSQL: one row per correlated event, its
correlations as parallel arrays in the order the stage found them; reads in both directions through the
event's id and its group; links to duplicates left out; retention takes an event's row along."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from prometheus_client import CollectorRegistry

from opsresponder.core.batch import Batch
from opsresponder.core.correlation import CORRELATIONS, CorrelationLink
from opsresponder.core.event import Event
from opsresponder.store.correlations import _ROWS_OF, CorrelationRepository, CorrelationWriter
from opsresponder.store.events import EventRepository
from opsresponder.store.retention import RetentionJob, RetentionMetrics, event_rules
from tests.factories import make_event, prepared

WINDOW = timedelta(minutes=5)


def grouped(*events: Event) -> list[Event]:
    """`events` prepared for the store, all in one new group (as the stage leaves a storm)."""
    ready = prepared(*events)
    group = uuid.uuid4()
    for event in ready:
        event.correlation_id = group
    return ready


def link(event: Event, related: Event | int, kind: str, score: float, reason: str) -> CorrelationLink:
    return CorrelationLink(event, related, kind, score, reason)  # type: ignore[arg-type]


async def store(repository: EventRepository, events: list[Event], links: list[CorrelationLink]) -> None:
    batch = Batch(events)
    batch.add(CORRELATIONS, links)
    await repository.store_batch(events, batch=batch)


async def test_one_row_per_correlated_event_with_its_links_in_order(db_pool: asyncpg.Pool) -> None:
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[CorrelationWriter()])
    root, a, b = grouped(make_event(host="sw-1"), make_event(host="app-1"), make_event(host="app-2"))
    await store(repository, [root], [])
    assert root.id is not None
    await store(
        repository,
        [a, b],
        [
            link(a, root.id, "causal", 0.95, "Depends on sw-1"),
            link(a, root.id, "time_based", 0.4, "Within 15 minutes"),
            link(b, root.id, "causal", 0.9, "Depends on sw-1"),
            link(b, a, "pattern_based", 0.97, "The same template"),  # a of the same batch: by object
        ],
    )
    rows = await db_pool.fetch(
        "SELECT event_id, correlation_id, related, links FROM events.event_correlations ORDER BY event_id"
    )
    # The root opened the group: no row of its own.
    assert [(r["event_id"], r["related"], r["links"]) for r in rows] == [
        (
            a.id,
            [root.id, root.id],
            [["causal", 0.95, "Depends on sw-1"], ["time_based", 0.4, "Within 15 minutes"]],
        ),
        (
            b.id,
            [root.id, a.id],
            [["causal", 0.9, "Depends on sw-1"], ["pattern_based", 0.97, "The same template"]],
        ),
    ]
    assert all(r["correlation_id"] == root.correlation_id for r in rows)


async def test_reads_answer_both_directions_best_first(db_pool: asyncpg.Pool) -> None:
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[CorrelationWriter()])
    root, a, b = grouped(make_event(host="sw-1"), make_event(host="app-1"), make_event(host="app-2"))
    (other,) = grouped(make_event(host="elsewhere"))  # another group naming nobody asked
    await store(repository, [root, other], [])
    assert root.id is not None and other.id is not None
    await store(
        repository,
        [a, b],
        [
            link(a, root.id, "causal", 0.6, "a on sw-1"),
            link(b, root.id, "causal", 0.9, "b on sw-1"),
            link(b, a, "host_based", 0.3, "b with a"),
        ],
    )
    reads = CorrelationRepository(db_pool)

    seen_from_root = await reads.rows_of([root.id])
    assert [(r.event_id, r.other_event_id, r.reason) for r in seen_from_root] == [
        (root.id, b.id, "b on sw-1"),
        (root.id, a.id, "a on sw-1"),
    ]
    assert a.id is not None and b.id is not None
    seen_from_a = await reads.rows_of([a.id])
    assert [(r.other_event_id, r.correlation_type) for r in seen_from_a] == [
        (root.id, "causal"),
        (b.id, "host_based"),
    ]
    # Several at once (include_correlations): each row once per event asked that it involves.
    both = await reads.rows_of([a.id, b.id])
    assert sorted((r.event_id, r.other_event_id) for r in both) == sorted(
        [(a.id, root.id), (a.id, b.id), (b.id, root.id), (b.id, a.id)]
    )
    assert await reads.rows_of([other.id]) == []
    assert await reads.rows_of([]) == []


async def test_links_to_events_stored_as_duplicates_are_left_out(db_pool: asyncpg.Pool) -> None:
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[CorrelationWriter()])
    (first,) = grouped(make_event(host="db-1", title="disk almost full"))
    await store(repository, [first], [])
    repeat, fresh = grouped(make_event(host="db-1", title="disk almost full"), make_event(host="db-2"))
    await store(
        repository,
        [repeat, fresh],
        [
            link(repeat, first.id or 0, "host_based", 0.8, "same host"),  # folded into first: no row
            link(fresh, repeat, "time_based", 0.5, "to the duplicate"),  # never stored as a row: left out
        ],
    )
    assert await db_pool.fetchval("SELECT count(*) FROM events.event_correlations") == 0


async def test_retention_removes_an_events_correlations_with_it(db_pool: asyncpg.Pool) -> None:
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[CorrelationWriter()])
    old_at = datetime(2025, 1, 1, tzinfo=UTC)
    root, old = grouped(make_event(now=old_at, host="sw-1"), make_event(now=old_at, host="app-1"))
    await store(repository, [root], [])
    assert root.id is not None
    await store(repository, [old], [link(old, root.id, "causal", 0.9, "old")])
    (new,) = grouped(make_event(now=old_at + timedelta(days=40), host="app-2"))
    new.correlation_id = root.correlation_id
    await store(repository, [new], [link(new, root.id, "causal", 0.5, "new, to a root gone by then")])
    job = RetentionJob(
        db_pool,
        event_rules(events_max_age=timedelta(days=30), dedup_window=WINDOW, batch_size=10),
        RetentionMetrics(CollectorRegistry()),
        clock=lambda: old_at + timedelta(days=41),
        max_run_duration=timedelta(minutes=1),
    )
    report = await job.run()
    assert report.deleted["events.events"] == 2
    rows = await db_pool.fetch("SELECT event_id FROM events.event_correlations")
    assert [r["event_id"] for r in rows] == [new.id]


async def test_reads_walk_the_indexes_not_the_table(db_pool: asyncpg.Pool) -> None:
    """Both directions through an index (the event's id; the related ids): never a scan of every
    correlation, nor of the event's group (a storm's can hold hundreds of thousands)."""
    async with db_pool.acquire() as conn, conn.transaction():
        # With no index to use, PostgreSQL still scans the table, whatever this says: that is what fails.
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in await conn.fetch("EXPLAIN " + _ROWS_OF.replace("$1::bigint[]", "'{1,2,3}'::bigint[]"))
        )
    assert "event_correlations_pkey" in plan and "event_correlations_related_idx" in plan, plan
    assert "Seq Scan on event_correlations" not in plan, plan
