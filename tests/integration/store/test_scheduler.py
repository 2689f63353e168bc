"""The scheduler against a real PostgreSQL: once per period across processes, leases, failures, the loop.

Two pools on one database stand for two processes: each has its own connections and its own Scheduler.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from structlog.testing import capture_logs

from opsresponder.store.errors import StoreError
from opsresponder.store.pool import create_pool
from opsresponder.store.scheduler import LEASE_MARGIN, JobRun, ScheduledJob, Scheduler
from tests.tcp_proxy import CuttableProxy
from tests.waiting import eventually

T0 = datetime(2025, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Counting:
    """A job body that records the times it ran at, optionally failing or blocking."""

    def __init__(self) -> None:
        self.ran_at: list[datetime] = []
        self.fail_next = 0
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def __call__(self, now: datetime) -> None:
        self.ran_at.append(now)
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("the job broke")


@pytest.fixture
async def job_name(db_pool: asyncpg.Pool) -> AsyncIterator[str]:
    # The jobs table is not truncated by db_pool; a name of its own keeps each test's schedule apart.
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    await db_pool.execute("DELETE FROM public.opsresponder_jobs WHERE name = $1", name)


@pytest.fixture
async def other_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=4, connect_timeout=5, command_timeout=30)
    yield pool
    await pool.close()


async def _row(pool: asyncpg.Pool, name: str) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM public.opsresponder_jobs WHERE name = $1", name)
    assert row is not None
    return row


async def test_a_new_job_runs_at_once_then_once_per_interval(db_pool: asyncpg.Pool, job_name: str) -> None:
    body = Counting()
    scheduler = Scheduler(db_pool, [ScheduledJob(job_name, HOUR, body)], clock=FakeClock())
    assert [r.result for r in await scheduler.run_due_jobs(T0)] == ["ok"]
    assert await scheduler.run_due_jobs(T0 + HOUR - timedelta(seconds=1)) == []
    assert await scheduler.run_due_jobs(T0 + HOUR) == [JobRun(job_name, T0 + HOUR, "ok")]
    assert body.ran_at == [T0, T0 + HOUR]
    row = await _row(db_pool, job_name)
    assert (row["runs"], row["failures"], row["last_result"]) == (2, 0, "ok")
    assert row["next_run_at"] == T0 + 2 * HOUR
    assert row["lease_owner"] is None


async def test_two_processes_run_each_period_exactly_once(
    db_pool: asyncpg.Pool, other_pool: asyncpg.Pool, job_name: str
) -> None:
    body = Counting()
    clock = FakeClock()
    # Several schedulers per "process" too, and several racing calls each, to give the race every chance.
    schedulers = [
        Scheduler(pool, [ScheduledJob(job_name, HOUR, body)], clock=clock)
        for pool in (db_pool, other_pool, db_pool, other_pool)
    ]
    periods = 6
    runs: list[JobRun] = []
    for period in range(periods):
        # Several calls within one period, at slightly different times, as replicas' loops would.
        for offset in (timedelta(0), timedelta(seconds=1), timedelta(minutes=59)):
            clock.now = T0 + period * HOUR + offset
            results = await asyncio.gather(*(s.run_due_jobs() for s in schedulers for _ in range(3)))
            runs.extend(r for rs in results for r in rs)
    assert len(body.ran_at) == periods
    assert [r.started_at for r in runs] == [T0 + p * HOUR for p in range(periods)]
    assert (await _row(db_pool, job_name))["runs"] == periods


async def test_a_run_longer_than_its_period_does_not_overlap_the_next(
    db_pool: asyncpg.Pool, other_pool: asyncpg.Pool, job_name: str
) -> None:
    body = Counting()
    body.gate = asyncio.Event()
    # The lease lasts the timeout (plus a margin): longer than the period here.
    job = ScheduledJob(job_name, HOUR, body, timeout=2 * HOUR)
    first, second = Scheduler(db_pool, [job]), Scheduler(other_pool, [job])
    slow = asyncio.create_task(first.run_due_jobs(T0))
    await body.entered.wait()
    # Due again, but the first run still holds the lease.
    assert await second.run_due_jobs(T0 + HOUR) == []
    body.gate.set()
    assert [r.result for r in await slow] == ["ok"]
    # Lease released: the next period's run is due and goes ahead, once.
    body.gate = None
    assert [r.started_at for r in await second.run_due_jobs(T0 + HOUR + timedelta(seconds=1))] == [
        T0 + HOUR + timedelta(seconds=1)
    ]
    assert await first.run_due_jobs(T0 + HOUR + timedelta(seconds=2)) == []
    assert len(body.ran_at) == 2


async def test_the_lease_of_a_process_that_died_expires(
    db_pool: asyncpg.Pool, other_pool: asyncpg.Pool, job_name: str
) -> None:
    body = Counting()
    timeout = 3 * HOUR  # longer than the period, so the lease, not the schedule, is what holds it back
    survivor = Scheduler(other_pool, [ScheduledJob(job_name, HOUR, body, timeout=timeout)])
    assert len(await survivor.run_due_jobs(T0)) == 1
    # Another process claimed the next period and died mid-run: its lease stays behind.
    lease_until = T0 + HOUR + timeout + LEASE_MARGIN
    await db_pool.execute(
        "UPDATE public.opsresponder_jobs SET next_run_at = $2, lease_owner = $3, lease_until = $4 "
        "WHERE name = $1",
        job_name,
        T0 + 2 * HOUR,
        uuid.uuid4(),
        lease_until,
    )
    assert await survivor.run_due_jobs(T0 + 2 * HOUR) == []
    assert await survivor.run_due_jobs(lease_until - timedelta(seconds=1)) == []
    assert len(await survivor.run_due_jobs(lease_until)) == 1
    assert body.ran_at == [T0, lease_until]


async def test_a_failed_run_is_recorded_and_retried_next_period(db_pool: asyncpg.Pool, job_name: str) -> None:
    body = Counting()
    body.fail_next = 1
    scheduler = Scheduler(db_pool, [ScheduledJob(job_name, HOUR, body)])
    [failed] = await scheduler.run_due_jobs(T0)
    assert failed.result == "failed"
    assert failed.error == "RuntimeError: the job broke"
    row = await _row(db_pool, job_name)
    assert (row["last_result"], row["last_error"], row["failures"]) == ("failed", failed.error, 1)
    # Not retried within the period (a failing job must not hammer the database)...
    assert await scheduler.run_due_jobs(T0 + timedelta(minutes=1)) == []
    # ...but next period, where it succeeds.
    assert [r.result for r in await scheduler.run_due_jobs(T0 + HOUR)] == ["ok"]
    row = await _row(db_pool, job_name)
    assert (row["last_result"], row["last_error"], row["runs"], row["failures"]) == ("ok", None, 2, 1)


async def test_a_run_past_its_timeout_is_cancelled_and_failed(db_pool: asyncpg.Pool, job_name: str) -> None:
    body = Counting()
    body.gate = asyncio.Event()  # never set
    job = ScheduledJob(job_name, HOUR, body, timeout=timedelta(milliseconds=50))
    [run] = await Scheduler(db_pool, [job]).run_due_jobs(T0)
    assert run.result == "failed"
    assert run.error is not None and "timed out" in run.error
    assert (await _row(db_pool, job_name))["lease_owner"] is None


async def test_jitter_spreads_the_next_run_within_its_bound(db_pool: asyncpg.Pool, job_name: str) -> None:
    jitter = timedelta(minutes=10)
    body = Counting()
    scheduler = Scheduler(db_pool, [ScheduledJob(job_name, HOUR, body, jitter=jitter)], rng=random.Random(7))
    # A new job is due within the jitter of its registration (replicas started together spread out)...
    await scheduler.run_due_jobs(T0)
    first_due = (await _row(db_pool, job_name))["next_run_at"]
    assert T0 < first_due <= T0 + jitter  # rng(7) draws a non-zero share
    assert body.ran_at == []
    # ...and each period is the interval plus a share of the jitter.
    assert len(await scheduler.run_due_jobs(T0 + jitter)) == 1
    next_run = (await _row(db_pool, job_name))["next_run_at"]
    assert T0 + jitter + HOUR < next_run <= T0 + jitter + HOUR + jitter


async def test_an_existing_schedule_takes_a_shorter_interval_at_once(
    db_pool: asyncpg.Pool, other_pool: asyncpg.Pool, job_name: str
) -> None:
    body = Counting()
    day = timedelta(days=1)
    assert len(await Scheduler(db_pool, [ScheduledJob(job_name, day, body)]).run_due_jobs(T0)) == 1
    # A restart with an hourly interval need not wait out the old daily period.
    restarted = Scheduler(other_pool, [ScheduledJob(job_name, HOUR, body)])
    assert await restarted.run_due_jobs(T0 + timedelta(minutes=30)) == []
    assert (await _row(db_pool, job_name))["next_run_at"] == T0 + timedelta(minutes=30) + HOUR
    assert len(await restarted.run_due_jobs(T0 + timedelta(minutes=30) + HOUR)) == 1


async def test_the_background_loop_runs_due_jobs_and_stops_cleanly(
    db_pool: asyncpg.Pool, job_name: str
) -> None:
    body = Counting()
    ticking = Counting()
    ticking.gate = asyncio.Event()  # still running when stopped: it is cancelled, its lease released
    scheduler = Scheduler(
        db_pool,
        [ScheduledJob(job_name, HOUR, body), ScheduledJob(job_name + "-slow", HOUR, ticking)],
    )
    scheduler.start()
    try:
        await asyncio.wait_for(body.entered.wait(), 10)
        await asyncio.wait_for(ticking.entered.wait(), 10)
        with pytest.raises(RuntimeError, match="already running"):
            scheduler.start()
    finally:
        await scheduler.stop()
    fast, slow = await _row(db_pool, job_name), await _row(db_pool, job_name + "-slow")
    await db_pool.execute("DELETE FROM public.opsresponder_jobs WHERE name = $1", job_name + "-slow")
    assert fast["last_result"] == "ok"
    assert (slow["last_result"], slow["lease_owner"]) == ("cancelled", None)
    assert len(body.ran_at) == 1  # the next run is an hour away


async def test_the_loop_waits_out_a_database_outage_and_then_runs(database_url: str, job_name: str) -> None:
    proxy = CuttableProxy.for_database(database_url)
    await proxy.start()
    pool = await create_pool(
        proxy.url_for(database_url), min_size=1, max_size=2, connect_timeout=2, command_timeout=5
    )
    body = Counting()
    scheduler = Scheduler(pool, [ScheduledJob(job_name, HOUR, body)], retry_after_error_seconds=0.05)
    try:
        proxy.cut()
        with capture_logs() as logs:
            scheduler.start()

            # Polls a list the logger appends to; there is nothing to wait on instead.
            await eventually(lambda: any("cannot reach the database" in e["event"] for e in logs))
        assert body.ran_at == []
        with pytest.raises(StoreError):
            await scheduler.run_due_jobs()
        proxy.restore()
        await asyncio.wait_for(body.entered.wait(), 10)
    finally:
        await scheduler.stop()
        await pool.close()
        await proxy.stop()
    assert len(body.ran_at) == 1
