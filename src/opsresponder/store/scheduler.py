"""Periodic jobs that run exactly once per period across every process sharing the database.

Why a table and not an advisory lock: ``pg_try_advisory_lock`` only keeps two runs from overlapping. Two
replicas each holding their own timer would still run the job twice per period, one after the other.
The schedule itself has to be shared, so it lives in ``public.opsresponder_jobs``: one row per job with
its ``next_run_at``. A process claims a run with one conditional ``UPDATE ... WHERE next_run_at <= now``
that also moves ``next_run_at`` a period ahead. PostgreSQL serialises the UPDATEs on the row and the
loser re-checks the condition against the winner's row, so it finds the job no longer due. No lock or
transaction stays open while the job runs.

A lease (``lease_owner``, ``lease_until``) keeps a run that outlasts its period from overlapping the next
one. It is released when the run ends and expires by itself if the process died mid-run. Each run is
bounded by the job's timeout, so a live process never outlasts its lease.

Times come from the injected clock, not from the database's ``now()``, so tests can drive the schedule
(`Scheduler.run_due_jobs`). Skew between replicas' clocks only shifts when a run happens, never how often.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Literal

import asyncpg
import structlog

from opsresponder.core.clock import Clock, utcnow
from opsresponder.store.errors import StoreError
from opsresponder.store.pool import connection

log = structlog.get_logger(__name__)

JobResult = Literal["ok", "failed", "cancelled"]
JobFunction = Callable[[datetime], Awaitable[object]]
"""A job's body. It gets the time the run was claimed at (the injected clock) as its "now"."""

# Added to a job's timeout to get its lease: the timeout cancels the run first, so a live process never
# holds a run past its lease, and a dead one blocks the job for only this much longer than the timeout.
LEASE_MARGIN: Final = timedelta(seconds=60)
# The longest a job loop sleeps before looking at the table again. Another process may have changed the
# schedule (a new interval at its start), and a clock jump should not make us sleep for hours.
MAX_POLL_SECONDS: Final = 60.0
# After the database failed to answer, look again this soon; the pipeline reports the outage itself.
RETRY_AFTER_ERROR_SECONDS: Final = 5.0
# Tells how long to wait for the lease release when the run was cancelled at shutdown: the pool closes
# right after, and an unreleased lease only delays the next run until it expires.
RELEASE_TIMEOUT_SECONDS: Final = 2.0
_MAX_ERROR_CHARS: Final = 2000

_REGISTER: Final = """
INSERT INTO public.opsresponder_jobs AS j (name, next_run_at) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET next_run_at = LEAST(j.next_run_at, $3)
"""

_CLAIM: Final = """
UPDATE public.opsresponder_jobs
SET next_run_at = $2, lease_owner = $3, lease_until = $4, last_started_at = $5
WHERE name = $1 AND next_run_at <= $5 AND (lease_until IS NULL OR lease_until <= $5)
RETURNING name
"""

_RELEASE: Final = """
UPDATE public.opsresponder_jobs
SET lease_owner = NULL, lease_until = NULL, last_finished_at = $3, last_result = $4, last_error = $5,
    runs = runs + 1, failures = failures + CASE WHEN $4 = 'failed' THEN 1 ELSE 0 END
WHERE name = $1 AND lease_owner = $2
"""

_NEXT_DUE: Final = """
SELECT GREATEST(next_run_at, COALESCE(lease_until, next_run_at)) FROM public.opsresponder_jobs
WHERE name = $1
"""


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    """A job run every `interval` plus a random share of `jitter`, once per period across processes.

    Attributes:
        name: the job's row in ``public.opsresponder_jobs``; the same name in every process.
        interval: the period, counted from the start of the previous run (a process down for a day
            runs the job once when it is back, not once per missed period).
        run: the body; an exception fails this run only, and the job runs again next period.
        jitter: up to this much is added to each period at random, so that jobs of equal interval (and
            their load on the database) drift apart instead of firing together forever.
        timeout: a run still going after this long is cancelled and counted as failed.
    """

    name: str
    interval: timedelta
    run: JobFunction
    jitter: timedelta = timedelta(0)
    timeout: timedelta = timedelta(minutes=30)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a scheduled job needs a name")
        if self.interval <= timedelta(0):
            raise ValueError(f"job {self.name}: interval must be positive")
        if self.jitter < timedelta(0):
            raise ValueError(f"job {self.name}: jitter must not be negative")
        if self.timeout <= timedelta(0):
            raise ValueError(f"job {self.name}: timeout must be positive")


@dataclass(frozen=True, slots=True)
class JobRun:
    """One run this process performed: the job, when it was claimed, how it ended."""

    job: str
    started_at: datetime
    result: JobResult
    error: str | None = None


@dataclass(slots=True)
class _JobState:
    registered: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Scheduler:
    """Runs `jobs` on their schedule, each period exactly once across every process on the database.

    Use `run` inside the service's task group, or `start`/`stop`. Tests drive it with `run_due_jobs`.
    A database outage delays runs, never doubles them: a process that cannot claim does not run.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        jobs: Sequence[ScheduledJob],
        *,
        clock: Clock = utcnow,
        rng: random.Random | None = None,
        max_poll_seconds: float = MAX_POLL_SECONDS,
        retry_after_error_seconds: float = RETRY_AFTER_ERROR_SECONDS,
    ) -> None:
        names = [j.name for j in jobs]
        if len(names) != len(set(names)):
            raise ValueError(f"scheduled job names must be unique: {names}")
        self._pool = pool
        self._jobs = list(jobs)
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - spreads load, nothing secret
        self._max_poll = max_poll_seconds
        self._retry_after_error = retry_after_error_seconds
        self._owner = uuid.uuid4()
        self._state = {j.name: _JobState() for j in jobs}
        self._task: asyncio.Task[None] | None = None

    @property
    def jobs(self) -> list[ScheduledJob]:
        return list(self._jobs)

    async def run_due_jobs(self, now: datetime | None = None) -> list[JobRun]:
        """Claim and run every job due at `now` (default: the clock), concurrently; return what ran here.

        A job another process claimed for this period, or whose previous run still holds the lease, is
        skipped. A job's failure is recorded and logged, never raised.

        Raises:
            StoreError: the database could not be asked (nothing ran; the jobs stay due).
        """
        at = self._clock() if now is None else now
        runs = await asyncio.gather(*(self._run_if_due(job, at) for job in self._jobs))
        return [r for r in runs if r is not None]

    async def run(self) -> None:
        """Run every job on its schedule until cancelled; one loop task per job, so that a long job
        never delays a short one."""
        async with asyncio.TaskGroup() as tasks:
            for job in self._jobs:
                tasks.create_task(self._loop(job), name=f"scheduler:{job.name}")

    def start(self) -> None:
        """Start `run` in a task of its own; `stop` ends it."""
        if self._task is not None and not self._task.done():
            raise RuntimeError("the scheduler is already running")
        self._task = asyncio.create_task(self.run(), name="scheduler")

    async def stop(self) -> None:
        """Cancel the loops (a running job is cancelled and its lease released) and wait for them."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            # Our own cancellation of `task` ends here; if *we* are being cancelled, let it through.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise

    async def _loop(self, job: ScheduledJob) -> None:
        while True:
            try:
                await self._run_if_due(job, self._clock())
                delay = await self._seconds_until_due(job)
            except StoreError as e:
                log.warning(
                    "The scheduler cannot reach the database; jobs wait until it is back.",
                    job=job.name,
                    error=str(e),
                )
                delay = self._retry_after_error
            await asyncio.sleep(delay)

    async def _seconds_until_due(self, job: ScheduledJob) -> float:
        async with connection(self._pool) as conn:
            try:
                due: datetime | None = await conn.fetchval(_NEXT_DUE, job.name)
            except asyncpg.PostgresError as e:
                raise StoreError(f"cannot read the schedule of job {job.name}: {e}") from e
        if due is None:  # the row was deleted under us; registering again recreates it
            self._state[job.name].registered = False
            return 0.0
        return min(max((due - self._clock()).total_seconds(), 0.0), self._max_poll)

    async def _run_if_due(self, job: ScheduledJob, now: datetime) -> JobRun | None:
        state = self._state[job.name]
        # Within one process, the loop and a caller of run_due_jobs must not both run the job; the lease
        # already prevents it, but the lock also keeps one process from claiming against itself.
        async with state.lock:
            if not state.registered:
                await self._register(job, now)
                state.registered = True
            if not await self._claim(job, now):
                return None
            return await self._execute(job, now)

    async def _register(self, job: ScheduledJob, now: datetime) -> None:
        # A new job is due at once (plus jitter, so that replicas started together spread out). An
        # existing row keeps its schedule, but a shorter interval than before takes effect now, not
        # after the old, longer period.
        first = now + self._jitter(job)
        soonest = now + job.interval + self._jitter(job)
        await self._execute_sql(_REGISTER, job.name, first, soonest, what="register")

    async def _claim(self, job: ScheduledJob, now: datetime) -> bool:
        next_run = now + job.interval + self._jitter(job)
        lease_until = now + job.timeout + LEASE_MARGIN
        async with connection(self._pool) as conn:
            try:
                row = await conn.fetchrow(_CLAIM, job.name, next_run, self._owner, lease_until, now)
            except asyncpg.PostgresError as e:
                raise StoreError(f"cannot claim job {job.name}: {e}") from e
        return row is not None

    async def _execute(self, job: ScheduledJob, now: datetime) -> JobRun:
        started = time.monotonic()
        log.debug("Running a scheduled job.", job=job.name)
        try:
            async with asyncio.timeout(job.timeout.total_seconds()):
                await job.run(now)
        except asyncio.CancelledError:
            # Shutdown: free the lease so the job is not blocked until it expires, then keep cancelling.
            await self._release_quietly(job, "cancelled", "cancelled at shutdown")
            raise
        except TimeoutError:
            error = f"timed out after {job.timeout.total_seconds():g} s"
            return await self._finish(job, now, started, "failed", error)
        except Exception as e:  # noqa: BLE001 - any failure of a job is recorded and retried next period
            error = f"{e.__class__.__name__}: {e}"
            return await self._finish(job, now, started, "failed", error)
        return await self._finish(job, now, started, "ok", None)

    async def _finish(
        self, job: ScheduledJob, now: datetime, started: float, result: JobResult, error: str | None
    ) -> JobRun:
        duration = round(time.monotonic() - started, 3)
        if error is None:
            log.debug("A scheduled job finished.", job=job.name, duration_seconds=duration)
        else:
            log.warning(
                "A scheduled job failed; it runs again next period.",
                job=job.name,
                error=error,
                duration_seconds=duration,
            )
        await self._release_quietly(job, result, error)
        return JobRun(job.name, now, result, error)

    async def _release_quietly(self, job: ScheduledJob, result: JobResult, error: str | None) -> None:
        """Release the lease; if the database cannot be reached, the lease expires by itself."""
        try:
            async with asyncio.timeout(RELEASE_TIMEOUT_SECONDS):
                await self._execute_sql(
                    _RELEASE,
                    job.name,
                    self._owner,
                    self._clock(),
                    result,
                    None if error is None else error[:_MAX_ERROR_CHARS],
                    what="release",
                )
        except (StoreError, TimeoutError) as e:
            log.warning(
                "Could not release a scheduled job's lease; it expires by itself.",
                job=job.name,
                error=str(e) or e.__class__.__name__,
            )

    async def _execute_sql(self, sql: str, *args: object, what: str) -> None:
        async with connection(self._pool) as conn:
            try:
                await conn.execute(sql, *args)
            except asyncpg.PostgresError as e:
                raise StoreError(f"cannot {what} scheduled job {args[0]}: {e}") from e

    def _jitter(self, job: ScheduledJob) -> timedelta:
        if not job.jitter:
            return timedelta(0)
        return job.jitter * self._rng.random()
