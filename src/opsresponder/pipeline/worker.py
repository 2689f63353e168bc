"""The batch worker: takes batches from the intake, runs the stages, stores, answers callers, notifies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import structlog

from opsresponder.core.clock import Clock, utcnow
from opsresponder.core.event import Event
from opsresponder.pipeline.errors import StoreUnavailableError
from opsresponder.pipeline.intake import Intake, Submission
from opsresponder.pipeline.metrics import PipelineMetrics
from opsresponder.store.errors import DatabaseUnavailableError, StoreError
from opsresponder.store.events import EventRepository, WriteOutcome

log = structlog.get_logger(__name__)

Stage = Callable[[list[Event]], None]
CommitListener = Callable[[list[Event]], None]

_FIRST_RETRY_DELAY = 0.1


class PipelineWorker:
    """Runs batches through `stages` and `repository.store_batch`, one transaction per batch.

    While the database is unreachable, HTTP callers are answered at once with `StoreUnavailableError`
    (their events are not stored), and other events wait in the intake, in order, until it is back.
    A batch the database refuses (bad data, not an outage) is retried one event at a time so that only the
    offending event is lost, counted and logged.
    """

    def __init__(
        self,
        intake: Intake,
        repository: EventRepository,
        metrics: PipelineMetrics,
        *,
        stages: Sequence[Stage],
        probe: Callable[[], Awaitable[None]],
        batch_max_events: int,
        batch_max_wait: float,
        retry_max_delay: float,
        on_committed: Sequence[CommitListener] = (),
        clock: Clock = utcnow,
    ) -> None:
        self._intake = intake
        self._repository = repository
        self._metrics = metrics
        self._stages = list(stages)
        self._probe = probe
        self._batch_max_events = batch_max_events
        self._batch_max_wait = batch_max_wait
        self._retry_max_delay = retry_max_delay
        self._on_committed = list(on_committed)
        self._clock = clock
        self._database_available = True

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Call `listener` with the new events of every committed batch (stage 8, notify).

        Listeners run on the worker's task right after the commit: they must be quick and must not raise.
        """
        self._on_committed.append(listener)

    @property
    def database_available(self) -> bool:
        """False from a failed write until the database answers again; HTTP ingest answers 503 meanwhile."""
        return self._database_available

    async def run(self) -> None:
        """Process batches until cancelled."""
        while True:
            if not self._database_available:
                await self._wait_for_database()
            batch = await self._intake.get_batch(self._batch_max_events, self._batch_max_wait)
            await self.process(batch)

    async def process(self, batch: list[Submission]) -> None:
        events = [s.event for s in batch]
        for stage in self._stages:
            stage(events)
        now = self._clock()
        for event in events:
            event.processed_at = now
        try:
            outcomes = await self._repository.store_batch(events)
        except DatabaseUnavailableError as e:
            self._on_outage(batch, e)
            return
        except StoreError as e:
            await self._store_one_by_one(batch, e)
            return
        self._complete(batch, outcomes)

    def _complete(self, batch: list[Submission], outcomes: list[WriteOutcome]) -> None:
        done = time.monotonic()
        metrics = self._metrics
        metrics.batch_size.observe(len(batch))
        stored: list[Event] = []
        for submission, outcome in zip(batch, outcomes, strict=True):
            source = submission.event.source_type
            if outcome.duplicate:
                metrics.deduplicated_by_source(source).inc()
            else:
                metrics.accepted_by_source(source).inc()
                stored.append(submission.event)
            metrics.pipeline_latency.observe(done - submission.enqueued_at)
            if submission.future is not None and not submission.future.done():
                submission.future.set_result(outcome)
        self._intake.task_done(len(batch))
        for listener in self._on_committed:
            listener(stored)

    def _on_outage(self, batch: list[Submission], error: DatabaseUnavailableError) -> None:
        self._metrics.db_write_errors.labels("unavailable").inc()
        if self._database_available:
            log.error(
                "PostgreSQL is unavailable; holding events in the intake until it is back.", error=str(error)
            )
        self._database_available = False
        waiting = [s for s in batch if s.future is not None]
        held = [s for s in batch if s.future is None]
        unavailable = StoreUnavailableError(str(error))
        for submission in waiting:
            assert submission.future is not None
            if not submission.future.done():
                submission.future.set_exception(unavailable)
        # Callers that are still queued would otherwise wait for the whole outage; answer them now too.
        self._intake.fail_waiting(unavailable)
        self._intake.requeue_front(held)
        self._intake.task_done(len(waiting))

    async def _wait_for_database(self) -> None:
        delay = _FIRST_RETRY_DELAY
        while True:
            try:
                await self._probe()
            except DatabaseUnavailableError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max_delay)
                continue
            self._database_available = True
            log.warning("PostgreSQL is reachable again; resuming the pipeline.")
            return

    async def _store_one_by_one(self, batch: list[Submission], error: StoreError) -> None:
        if len(batch) == 1:
            submission = batch[0]
            self._metrics.db_write_errors.labels("refused").inc()
            self._metrics.events_dropped.labels("store", "db_refused").inc()
            log.error(
                "The database refused an event; it is lost.",
                error=str(error),
                source_type=submission.event.source_type,
                fingerprint=submission.event.fingerprint,
            )
            if submission.future is not None and not submission.future.done():
                submission.future.set_exception(error)
            self._intake.task_done(1)
            return
        for position, submission in enumerate(batch):
            if not self._database_available:
                # The outage began mid-way: the rest waits (or is answered 503) like any outage batch.
                self._on_outage(batch[position:], DatabaseUnavailableError("PostgreSQL became unavailable"))
                return
            await self.process([submission])
