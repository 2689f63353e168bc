"""Retention against a real PostgreSQL, with an injected clock: old rows go, recent ones stay, in short
batches that never hold the table, while the pipeline keeps storing events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from opsresponder.config import RetentionConfig
from opsresponder.core.event import Event
from opsresponder.store.events import EventRepository
from opsresponder.store.pool import connection, create_pool
from opsresponder.store.retention import (
    DEDUP_KEEP_MARGIN,
    BatchListener,
    RetentionError,
    RetentionJob,
    RetentionMetrics,
    RetentionRule,
    event_rules,
)
from opsresponder.store.scheduler import ScheduledJob, Scheduler
from tests.factories import make_event, make_pipeline, prepared

WINDOW = timedelta(minutes=5)
DAYS_30 = timedelta(days=30)
T0 = datetime(2025, 1, 1, tzinfo=UTC)
RUN_AT = T0 + timedelta(days=31)  # the injected "now" of the retention run: T0 is past 30 days
CONFIG = RetentionConfig()
MAX_RUN = timedelta(seconds=CONFIG.max_run_seconds)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def repo(db_pool: asyncpg.Pool) -> EventRepository:
    return EventRepository(db_pool, dedup_window=WINDOW)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def build_job(
    pool: asyncpg.Pool,
    registry: CollectorRegistry,
    *,
    batch_size: int = 1000,
    on_batch: BatchListener | None = None,
    max_run_duration: timedelta = MAX_RUN,
) -> RetentionJob:
    rules = event_rules(events_max_age=DAYS_30, dedup_window=WINDOW, batch_size=batch_size)
    return RetentionJob(
        pool,
        rules,
        RetentionMetrics(registry),
        clock=FakeClock(RUN_AT),
        on_batch=on_batch,
        max_run_duration=max_run_duration,
    )


async def store(repo: EventRepository, count: int, at: datetime, prefix: str) -> list[int]:
    """`count` distinct events received at `at`; their ids."""
    events = prepared(*(make_event(now=at, host=f"{prefix}-{i}") for i in range(count)))
    return [o.event_id for o in await repo.store_batch(events)]


async def ids(pool: asyncpg.Pool) -> set[int]:
    return {r["id"] for r in await pool.fetch("SELECT id FROM events.events")}


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    value: float | None = registry.get_sample_value(name, labels)
    return value


def samples(registries: list[CollectorRegistry], name: str, **labels: str) -> list[float]:
    """One value per registry ("process"), 0 where absent, sorted."""
    return sorted(sample(r, name, **labels) or 0.0 for r in registries)


async def test_old_events_and_dedup_rows_go_recent_ones_stay(
    db_pool: asyncpg.Pool, repo: EventRepository, registry: CollectorRegistry
) -> None:
    old = await store(repo, 30, T0, "old")
    recent = await store(repo, 10, T0 + timedelta(days=20), "recent")
    # Received just inside the age limit, though it claims to have happened long before.
    edge = await repo.store_batch(
        prepared(
            make_event(now=RUN_AT - DAYS_30 + timedelta(seconds=1), occurred_at=T0 - timedelta(days=400))
        )
    )
    live = await store(repo, 2, RUN_AT - timedelta(minutes=1), "live")

    with capture_logs() as logs:
        report = await build_job(db_pool, registry).run()

    assert report.result == "ok"
    assert await ids(db_pool) == {*recent, edge[0].event_id, *live}
    assert set(old).isdisjoint(await ids(db_pool))
    # Dedup rows outside the window (plus margin) are gone; those that can still catch a duplicate stay.
    remaining = {r["event_id"] for r in await db_pool.fetch("SELECT event_id FROM events.dedup")}
    assert remaining == set(live)
    assert report.deleted == {"events.events": 30, "events.dedup": 41}

    assert sample(registry, "opsresponder_retention_rows_deleted_total", table="events.events") == 30
    assert sample(registry, "opsresponder_retention_rows_deleted_total", table="events.dedup") == 41
    assert sample(registry, "opsresponder_retention_runs_total", result="ok") == 1
    assert sample(registry, "opsresponder_retention_runs_total", result="failed") == 0
    assert sample(registry, "opsresponder_retention_last_run_timestamp_seconds") == RUN_AT.timestamp()
    assert sample(registry, "opsresponder_retention_last_success_timestamp_seconds") == RUN_AT.timestamp()
    [line] = [e for e in logs if e["event"] == "Retention removed expired rows."]
    assert line["log_level"] == "info"
    assert line["deleted"] == {"events.events": 30, "events.dedup": 41}


async def test_rows_locked_by_a_writer_are_skipped_not_waited_for(
    db_pool: asyncpg.Pool, repo: EventRepository, registry: CollectorRegistry
) -> None:
    old = await store(repo, 3, T0, "old")
    job = build_job(db_pool, registry)
    async with db_pool.acquire() as writer, writer.transaction():
        # A pipeline transaction holding an old event's row (a duplicate arriving for it, say).
        await writer.execute("SELECT 1 FROM events.events WHERE id = $1 FOR UPDATE", old[0])
        report = await asyncio.wait_for(job.run(), 10)
        assert report.result == "ok"
        assert await ids(db_pool) == {old[0]}
    # The next run, with the row free again, takes it.
    await job.run()
    assert await ids(db_pool) == set()


async def test_deletes_run_in_small_batches_that_never_hold_the_table(
    db_pool: asyncpg.Pool, repo: EventRepository, registry: CollectorRegistry
) -> None:
    await store(repo, 95, T0, "old")
    kept = await store(repo, 5, RUN_AT - timedelta(days=1), "recent")

    async def table_is_free(conn: asyncpg.Connection) -> bool:
        """Whether SHARE mode can be had at once: it conflicts with the lock any open DELETE holds."""
        try:
            async with conn.transaction():
                await conn.execute("LOCK TABLE events.events IN SHARE MODE NOWAIT")
        except asyncpg.exceptions.LockNotAvailableError:
            return False
        return True

    async with connection(db_pool) as probe, connection(db_pool) as other:
        # The probe does see an open deleting transaction.
        async with other.transaction():
            await other.execute("DELETE FROM events.events WHERE id = -1")
            assert not await table_is_free(probe)
        assert await table_is_free(probe)

        free_between_batches: list[bool] = []

        async def after_batch(rule: RetentionRule, deleted: int) -> None:
            if rule.table == "events.events":
                free_between_batches.append(await table_is_free(probe))

        report = await build_job(db_pool, registry, batch_size=10, on_batch=after_batch).run()

    assert report.tables["events.events"].batches == 10  # nine of 10 rows, one of 5
    assert free_between_batches == [True] * 10
    assert await ids(db_pool) == set(kept)


async def test_the_pipeline_keeps_storing_while_retention_runs(
    db_pool: asyncpg.Pool, repo: EventRepository, registry: CollectorRegistry
) -> None:
    await store(repo, 200, T0, "old")
    worker, intake, _ = make_pipeline(
        db_pool, repository=repo, registry=registry, batch_max_events=50, batch_max_wait=0.001
    )
    worker_task = asyncio.create_task(worker.run(), name="pipeline-worker")
    committed: list[int] = []
    stream_stop = asyncio.Event()

    async def ingest(prefix: str, n: int) -> list[int]:
        """Events as a webhook would hand them over: answered only after their commit."""
        futures = []
        for i in range(n):
            event: Event = make_event(now=RUN_AT - timedelta(minutes=1), host=f"{prefix}-{i}")
            future = await intake.put(event, wait_for_commit=True)
            assert future is not None
            futures.append(future)
        outcomes = await asyncio.wait_for(asyncio.gather(*futures), 10)
        return [o.event_id for o in outcomes]

    async def after_batch(rule: RetentionRule, deleted: int) -> None:
        # Between any two batches, new events are committed: retention never stalls ingest.
        committed.extend(await ingest(f"between-{rule.table}-{len(committed)}", 3))

    async def steady_stream() -> None:
        n = 0
        while not stream_stop.is_set():
            committed.extend(await ingest(f"stream-{n}", 5))
            n += 1

    stream = asyncio.create_task(steady_stream())
    try:
        report = await build_job(db_pool, registry, batch_size=20, on_batch=after_batch).run()
        stream_stop.set()
        await asyncio.wait_for(stream, 10)
        await asyncio.wait_for(intake.wait_drained(), 10)
    finally:
        stream.cancel()
        worker_task.cancel()
        await asyncio.gather(stream, worker_task, return_exceptions=True)

    assert report.tables["events.events"].deleted == 200
    assert report.tables["events.events"].batches == 11
    assert len(committed) >= 3 * 11
    # Everything the pipeline committed meanwhile is there; nothing old is.
    assert await ids(db_pool) == set(committed)
    assert sample(registry, "opsresponder_events_dropped_total", stage="store", reason="db_refused") is None


async def test_an_old_event_still_repeating_is_kept_until_it_stops(
    db_pool: asyncpg.Pool, repo: EventRepository, registry: CollectorRegistry
) -> None:
    [first] = await repo.store_batch(prepared(make_event(now=T0)))
    # The same condition has repeated every few minutes for a month, each repeat a duplicate of it (the
    # shortcut stands for the ~11,000 batches that would take); one more repeat, through the store:
    await db_pool.execute("UPDATE events.dedup SET last_seen_at = $1", RUN_AT - timedelta(minutes=4))
    [repeat] = await repo.store_batch(prepared(make_event(now=RUN_AT - timedelta(minutes=2))))
    assert repeat.duplicate and repeat.event_id == first.event_id

    job = build_job(db_pool, registry)
    await job.run(RUN_AT)
    assert await ids(db_pool) == {first.event_id}
    # A duplicate now still has its event to count towards, and the id a webhook answers exists.
    [again] = await repo.store_batch(prepared(make_event(now=RUN_AT)))
    assert again.duplicate and again.event_id == first.event_id
    stored = await repo.get(first.event_id)
    assert stored is not None and stored.duplicate_count == 2

    # Once it has stopped repeating for longer than the window (plus margin), both rows go.
    await job.run(RUN_AT + WINDOW + DEDUP_KEEP_MARGIN + timedelta(seconds=1))
    assert await ids(db_pool) == set()
    assert await db_pool.fetchval("SELECT count(*) FROM events.dedup") == 0
    [reborn] = await repo.store_batch(prepared(make_event(now=RUN_AT + timedelta(days=1))))
    assert not reborn.duplicate


async def test_a_failing_rule_fails_the_run_but_not_the_other_rules(
    db_pool: asyncpg.Pool, repo: EventRepository, registry: CollectorRegistry
) -> None:
    await store(repo, 4, T0, "old")
    rules = [
        # A feature's table that is not there: its rule fails, the events rules still run.
        RetentionRule("autonomous.no_such_table", "finished_at", timedelta(days=365), CONFIG.batch_size),
        *event_rules(events_max_age=DAYS_30, dedup_window=WINDOW, batch_size=CONFIG.batch_size),
    ]
    job = RetentionJob(
        db_pool, rules, RetentionMetrics(registry), clock=FakeClock(RUN_AT), max_run_duration=MAX_RUN
    )
    with capture_logs() as logs, pytest.raises(RetentionError, match=r"autonomous\.no_such_table"):
        await job.run()
    assert await ids(db_pool) == set()
    assert sample(registry, "opsresponder_retention_runs_total", result="failed") == 1
    assert sample(registry, "opsresponder_retention_rows_deleted_total", table="events.events") == 4
    assert sample(registry, "opsresponder_retention_last_run_timestamp_seconds") == RUN_AT.timestamp()
    assert sample(registry, "opsresponder_retention_last_success_timestamp_seconds") == 0
    [line] = [e for e in logs if e["event"].startswith("Retention failed")]
    assert "UndefinedTableError" in line["errors"]["autonomous.no_such_table"]


async def test_a_run_stops_at_its_time_budget_and_the_next_one_continues(
    db_pool: asyncpg.Pool, repo: EventRepository, registry: CollectorRegistry
) -> None:
    await store(repo, 25, T0, "old")
    hurried = build_job(db_pool, registry, batch_size=10, max_run_duration=timedelta(0))
    report = await hurried.run()
    # One batch per table, then the budget is spent.
    assert report.result == "incomplete"
    assert report.tables["events.events"].deleted == 10
    assert len(await ids(db_pool)) == 15
    assert sample(registry, "opsresponder_retention_runs_total", result="incomplete") == 1

    report = await build_job(db_pool, CollectorRegistry(), batch_size=10).run()
    assert report.result == "ok"
    assert await ids(db_pool) == set()


@pytest.fixture
async def other_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=4, connect_timeout=5, command_timeout=30)
    yield pool
    await pool.close()


async def test_scheduled_retention_runs_once_across_processes(
    db_pool: asyncpg.Pool, other_pool: asyncpg.Pool, repo: EventRepository
) -> None:
    await store(repo, 20, T0, "old")
    kept = await store(repo, 3, RUN_AT - timedelta(days=2), "recent")
    name = f"retention-{uuid.uuid4().hex[:12]}"
    registries = [CollectorRegistry(), CollectorRegistry()]
    clock = FakeClock(RUN_AT)
    schedulers = []
    for pool, registry in zip((db_pool, other_pool), registries, strict=True):
        job = build_job(pool, registry, batch_size=5)
        schedulers.append(Scheduler(pool, [ScheduledJob(name, timedelta(hours=1), job.run)], clock=clock))
    try:
        runs = await asyncio.gather(*(s.run_due_jobs() for s in schedulers for _ in range(2)))
        clock.now = RUN_AT + timedelta(minutes=30)
        runs += await asyncio.gather(*(s.run_due_jobs() for s in schedulers))
    finally:
        await db_pool.execute("DELETE FROM public.opsresponder_jobs WHERE name = $1", name)

    assert sum(len(r) for r in runs) == 1
    assert await ids(db_pool) == set(kept)
    assert samples(registries, "opsresponder_retention_runs_total", result="ok") == [0, 1]
    deleted = samples(registries, "opsresponder_retention_rows_deleted_total", table="events.events")
    assert deleted == [0, 20]
