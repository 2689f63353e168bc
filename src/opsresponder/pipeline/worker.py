"""The batch worker: takes batches from the intake, runs the stages, stores, answers callers, notifies."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple

import structlog

from opsresponder.core.batch import Batch, NotStoredHook
from opsresponder.core.clock import Clock, utcnow
from opsresponder.core.event import Event
from opsresponder.pipeline.errors import EventRefusedError, StageError, StoreUnavailableError
from opsresponder.pipeline.intake import Intake, Submission
from opsresponder.pipeline.metrics import PipelineMetrics
from opsresponder.pipeline.stage import Stage
from opsresponder.store.errors import (
    CommitOutcomeUnknownError,
    DatabaseUnavailableError,
    EarlierBatchWithdrawnError,
    StoreError,
)
from opsresponder.store.events import EventRepository, WriteOutcome
from opsresponder.store.write_order import WriteOrder, WriteTurn

log = structlog.get_logger(__name__)

CommitListener = Callable[[list[Event]], None]

_FIRST_RETRY_DELAY = 0.1
_TAKE_BACK_GRACE_SECONDS = 2.0  # how long a stopping worker waits for `_not_stored` hooks still running
_TAKE_BACK_WAIT_SECONDS = 1.0  # how long after a hook began later batches wait for it (`_take_backs_done`)
_TAKE_BACK_TIMEOUT_SECONDS = 10.0  # a hook still running after this is given up


class _HeldBack(NamedTuple):
    """Events of a batch cut short by an outage, kept for when the database is back; or all of a batch an
    earlier batch's failed commit withdrew (`EarlierBatchWithdrawnError`), kept until the batches in
    flight are over.

    ``work`` is what the stages made of the batch, or None when no stage ran (the batch was gathered
    during the outage). Events whose stages ran are stored from it, never run through the stages again:
    a second run would count them twice (flapping, rate limits, rule state, pattern counts), and the
    correlations and trace of the first run are only in `work`.
    """

    number: int  # the batch's number: held-back events go back in the order their batches were taken
    submissions: list[Submission]
    work: Batch | None


class PipelineWorker:
    """Runs batches through `stages` (see `pipeline.stage.Stage`) and `repository.store_batch`, one
    transaction per batch.

    Up to `concurrent_batches` batch transactions are open at once, so one batch's round trips to
    PostgreSQL overlap with the next one's; a `WriteOrder` keeps their locks, commits and answers in batch
    order (see `store.write_order`). When no batch is being written, a new one starts at once with what is
    queued; while one is, the next lingers up to `batch_max_wait` (from its oldest event) to grow, unless
    it holds an HTTP caller (see `Intake.get_batch`).

    While the database is unreachable, HTTP callers are answered at once with `StoreUnavailableError`
    (their events are not stored), and other events wait, in order, until it is back: those whose stages
    ran are then stored from what the stages made of them, the others go back to the intake.
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
        concurrent_batches: int = 2,
        on_committed: Sequence[CommitListener] = (),
        clock: Clock = utcnow,
    ) -> None:
        if concurrent_batches < 1:
            raise ValueError("concurrent_batches must be at least 1")
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
        self._order = WriteOrder()
        self._slots = asyncio.Semaphore(concurrent_batches)
        self._writes: set[asyncio.Task[None]] = set()
        # `_not_stored`'s hooks, running, each with the loop time until which new batches wait for it.
        self._take_backs: dict[asyncio.Task[None], float] = {}
        self._batches_taken = 0
        # Events of batches cut short by an outage; sorted out once every batch in flight is over.
        self._held_back: list[_HeldBack] = []
        # Held-back events whose stages ran, oldest first: stored once the database answers, before any
        # new batch is taken.
        self._replays: list[_HeldBack] = []

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Call `listener` with the new events of every committed batch (stage 8, notify).

        Listeners run in commit order right after the commit: they must be quick and must not raise.
        """
        self._on_committed.append(listener)

    @property
    def database_available(self) -> bool:
        """False from a failed write until the database answers again; HTTP ingest answers 503 meanwhile."""
        return self._database_available

    async def run(self) -> None:
        """Process batches until cancelled; cancelling also cancels the writes in flight."""
        try:
            while True:
                if not self._database_available:
                    await self._settle_held_back()
                    await self._wait_for_database()
                elif self._held_back:  # batches an earlier batch's failed commit withdrew
                    await self._settle_held_back()
                if self._replays:
                    await self._replay()
                    continue  # the database may have failed again
                await self._slots.acquire()
                try:
                    linger = self._batch_max_wait if self._writes else 0.0
                    batch = await self._intake.get_batch(self._batch_max_events, linger)
                except BaseException:
                    self._slots.release()
                    raise
                if not batch:  # woken (`wake_taker`): the held-back events are seen to at the top
                    self._slots.release()
                    continue
                try:
                    await self._take_backs_done()  # before the checks below: things may change meanwhile
                except BaseException:  # stopping: the batch goes back, counted as not stored if it stays
                    self._slots.release()
                    self._intake.requeue_front(batch)
                    raise
                if self._held_back and self._database_available:
                    # A batch was kept while this one was taken (a withdrawal): that one is stored first.
                    self._slots.release()
                    self._intake.requeue_front(batch)
                    continue
                self._batches_taken += 1
                if not self._database_available:
                    # The outage began while this batch was being gathered: it waits with the others.
                    self._slots.release()
                    unavailable = StoreUnavailableError("PostgreSQL is unavailable")
                    self._hold(batch, self._batches_taken, unavailable, None, last=True)
                    continue
                write = self._write_batch(batch, self._batches_taken)
                task = asyncio.create_task(write, name="pipeline-write")
                self._writes.add(task)
                task.add_done_callback(self._writes.discard)
        finally:
            for task in self._writes:
                task.cancel()
            if self._writes:
                await asyncio.wait(self._writes)
            if self._take_backs:  # a state backend call each, before the backend is closed
                _, pending = await asyncio.wait(set(self._take_backs), timeout=_TAKE_BACK_GRACE_SECONDS)
                for task in pending:
                    task.cancel()
                if pending:
                    log.warning(
                        "Stopped before the stages could take back what they recorded for events that were "
                        "not stored; those counts stand until their windows end.",
                        hooks=len(pending),
                    )

    async def process(self, batch: list[Submission]) -> None:
        """Run one batch to the end (stages, store, answers) outside the `run` loop; for tests and tools."""
        if not self._database_available:
            await self._wait_for_database()
        if self._replays:
            await self._replay()
        await self._take_backs_done()
        await self._slots.acquire()
        self._batches_taken += 1
        await self._write_batch(batch, self._batches_taken)
        if not self._database_available or self._held_back:
            await self._settle_held_back()

    async def _write_batch(self, batch: list[Submission], number: int) -> None:
        """Owns one slot, released at the end. `number` orders batches (see `_hold`)."""
        # The turn is taken before the stages: a stage that awaits I/O must not let a later batch, whose
        # stages finished first, take its ids and commit before this one.
        turn = self._order.next_turn()
        try:
            work = Batch([s.event for s in batch])
            for stage in self._stages:
                try:
                    await stage.run(work)
                except Exception as e:  # a stage bug costs its batch, loudly, never the pipeline
                    request_id = uuid.uuid4().hex  # HTTP callers are answered 500 with it
                    log.exception(
                        "A pipeline stage failed; the batch is lost.",
                        stage=stage.name,
                        events=len(batch),
                        request_id=request_id,
                    )
                    self._fail_stage(batch, stage.name, e, request_id)
                    self._not_stored(work, work.events)
                    work.settled = True  # none of its events will be stored
                    return
            now = self._clock()
            for event in work.events:
                event.processed_at = now
            await self._store(batch, work, number, turn)
        finally:
            turn.end_publish_phase()  # idempotent; ends the turn when no store did (a stage failed)
            self._slots.release()

    async def _store(
        self, batch: list[Submission], work: Batch, number: int, turn: WriteTurn, *, last: bool = True
    ) -> None:
        """Store `batch`, all of `work` or (retrying one event at a time) part of it, and answer it.

        `last`: no other part of `work` is left to store after this one, so once it is, `work` is settled.
        """
        try:
            try:
                outcomes = await self._repository.store_batch([s.event for s in batch], turn, batch=work)
            except DatabaseUnavailableError as e:
                await turn.wait_to_publish()
                self._on_outage(batch, number, e, work, last=last)
                return
            except EarlierBatchWithdrawnError:
                # Not an outage: stored again, callers and all, once the batches in flight are over.
                log.warning(
                    "An earlier batch failed to commit after this one could read its ids; storing this one "
                    "again after it.",
                    events=len(batch),
                )
                await turn.wait_to_publish()
                self._keep(batch, number, work)
                self._intake.wake_taker()  # the loop may be waiting for the next event
                return
            except StoreError as e:
                await turn.wait_to_publish()
                turn.end_publish_phase()  # nothing to publish: let later batches go on meanwhile
                await self._store_one_by_one(batch, work, number, e, last=last)
                return
            await turn.wait_to_publish()
            self._complete(batch, outcomes)
            if last:
                self._settle(work)
        finally:
            turn.end_publish_phase()

    def _fail_stage(self, batch: list[Submission], stage: str, error: Exception, request_id: str) -> None:
        """Callers get an error now instead of waiting forever; the loss is counted under the stage's name."""
        self._metrics.events_dropped.labels(stage, "stage_error").inc(len(batch))
        failure = StageError(f"processing the event failed: {error.__class__.__name__}", request_id)
        for submission in batch:
            if submission.future is not None and not submission.future.done():
                submission.future.set_exception(failure)
        self._intake.task_done(len(batch))

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

    def _on_outage(
        self,
        batch: list[Submission],
        number: int,
        error: DatabaseUnavailableError,
        work: Batch,
        *,
        last: bool,
    ) -> None:
        self._metrics.db_write_errors.labels("unavailable").inc()
        if isinstance(error, CommitOutcomeUnknownError):
            log.error(
                "The connection to PostgreSQL was lost during a batch's COMMIT: its HTTP callers are "
                "answered 503 though it may be stored (a re-sent event is then a duplicate).",
                events=len(batch),
                error=str(error),
            )
        if self._database_available:
            log.error(
                "PostgreSQL is unavailable; holding events in the intake until it is back.", error=str(error)
            )
        self._database_available = False
        # At COMMIT the batch may have been stored after all: its rule cooldowns are left standing, as
        # the firings they hold may be stored too (a re-sent event firing again would be worse).
        take_back = not isinstance(error, CommitOutcomeUnknownError)
        self._hold(batch, number, StoreUnavailableError(str(error)), work, last=last, take_back=take_back)
        # The loop may be waiting for the next event: the held-back ones must not wait for it.
        self._intake.wake_taker()

    def _hold(
        self,
        batch: list[Submission],
        number: int,
        unavailable: StoreUnavailableError,
        work: Batch | None,
        *,
        last: bool,
        take_back: bool = True,
    ) -> None:
        """Answer the batch's HTTP callers (and queued ones) with `unavailable`; keep its other events, and
        `work`, what the stages made of the batch (None when they did not run). `last`: no other part of
        `work` is left to store after `batch` (see `_store`). `take_back`: run the stages' hooks for the
        events of the callers answered (`_not_stored`).

        Kept events are sorted out in `_settle_held_back`, once every batch in flight is over, in batch
        `number` order: batches in flight fail in any order. The parts of one batch (held one event at a
        time, then the rest, when the outage began during a one-by-one retry) are held as one, so that
        its replay settles it only once all of it is stored.
        """
        waiting = [s for s in batch if s.future is not None]
        for submission in waiting:
            assert submission.future is not None
            if not submission.future.done():
                submission.future.set_exception(unavailable)
        if work is not None and waiting and take_back:
            self._not_stored(work, [s.event for s in waiting])  # their clients send them again
        # Callers that are still queued would otherwise wait for the whole outage; answer them now too.
        self._intake.fail_waiting(unavailable)
        self._intake.task_done(len(waiting))
        kept = [s for s in batch if s.future is None]
        if kept:
            self._keep(kept, number, work)
        elif work is not None and last:
            self._settle(work)  # every caller was answered 503

    def _keep(self, submissions: list[Submission], number: int, work: Batch | None) -> None:
        """Hold `submissions` back, with the parts of their batch already held (they come later in it)."""
        held = None if work is None else next((p for p in self._held_back if p.work is work), None)
        if held is not None:
            held.submissions.extend(submissions)
        else:
            self._held_back.append(_HeldBack(number, list(submissions), work))

    async def _settle_held_back(self) -> None:
        """Wait until no batch is in flight, then sort out the held-back events, oldest first: those whose
        stages ran wait for `_replay`, the others go back to the intake."""
        while self._writes:
            await asyncio.wait(set(self._writes))
        # Replays not yet tried when the database failed again rejoin the held-back ones in batch order.
        held = sorted(self._held_back + self._replays, key=lambda part: part.number)
        self._held_back = []
        self._replays = [part for part in held if part.work is not None]
        # Batches taken during the outage come after every batch in flight: the intake's front is theirs.
        self._intake.requeue_front([s for part in held if part.work is None for s in part.submissions])

    async def _replay(self) -> None:
        """Store the held-back events whose stages ran, from what the stages made of them, oldest first.

        Stops when the database fails again: what is left is sorted out with the newly held-back events.
        """
        while self._replays and self._database_available:
            part = self._replays.pop(0)  # an outage meanwhile holds it back again (`_store`)
            work = part.work
            assert work is not None
            await self._slots.acquire()
            try:
                await self._store(part.submissions, work, part.number, self._order.next_turn())
            except Exception as e:  # a bug (a writer's): it costs these events, loudly, never the pipeline
                request_id = uuid.uuid4().hex
                log.exception(
                    "Storing events held back by an outage failed; they are lost.",
                    events=len(part.submissions),
                    request_id=request_id,
                )
                self._fail_stage(part.submissions, "store", e, request_id)
                # Those stored before the failure have their ids (a duplicate folded into a stored row
                # has none, and is taken for lost: a bug's path, where that is the lesser harm).
                self._not_stored(work, [s.event for s in part.submissions if s.event.id is None])
                self._settle(work)
            finally:
                self._slots.release()

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

    async def _store_one_by_one(
        self, batch: list[Submission], work: Batch, number: int, error: StoreError, *, last: bool
    ) -> None:
        if len(batch) == 1:
            submission = batch[0]
            self._metrics.db_write_errors.labels("refused").inc()
            self._metrics.events_dropped.labels("store", "db_refused").inc()
            request_id = uuid.uuid4().hex  # an HTTP caller is answered 500 with it
            log.error(
                "The database refused an event; it is lost.",
                error=str(error),
                source_type=submission.event.source_type,
                fingerprint=submission.event.fingerprint,
                request_id=request_id,
            )
            if submission.future is not None and not submission.future.done():
                submission.future.set_exception(EventRefusedError(request_id))
            self._not_stored(work, [submission.event])
            self._intake.task_done(1)
            if last:
                self._settle(work)
            return
        for position, submission in enumerate(batch):
            if not self._database_available:
                # The outage began mid-way: the rest waits (or is answered 503) like any outage batch.
                unavailable = DatabaseUnavailableError("PostgreSQL became unavailable")
                self._on_outage(batch[position:], number, unavailable, work, last=last)
                return
            # Each retry takes a new turn: new ids, committed after every batch that began before it.
            await self._store([submission], work, number, self._order.next_turn(), last=False)
        if last:
            self._settle(work)

    def _not_stored(self, work: Batch, events: Sequence[Event]) -> None:
        """`events` of `work` will never be stored: run the stages' hooks (`Batch.when_not_stored`) in
        the background, so that the caller's answer does not wait for the state backend."""
        if not work.not_stored_hooks:
            return
        lost = work.report_not_stored(events)
        if not lost:
            return
        wait_until = asyncio.get_running_loop().time() + _TAKE_BACK_WAIT_SECONDS
        for hook in work.not_stored_hooks:
            task = asyncio.create_task(self._run_not_stored(hook, lost), name="pipeline-take-back")
            self._take_backs[task] = wait_until
            task.add_done_callback(self._forget_take_back)

    def _forget_take_back(self, task: asyncio.Task[None]) -> None:
        self._take_backs.pop(task, None)

    async def _take_backs_done(self) -> None:
        """Before a new batch's stages run: wait for the hooks still running, each up to
        `_TAKE_BACK_WAIT_SECONDS` after it began. An event not stored may be back in this batch, re-sent
        by its client at its error, and what the stages recorded for its first try goes first. Waiting
        here, before the batch's write begins, keeps the stages of batches in the order they were taken."""
        if not self._take_backs:
            return
        timeout = max(self._take_backs.values()) - asyncio.get_running_loop().time()
        if timeout > 0:
            await asyncio.wait(set(self._take_backs), timeout=timeout)

    @staticmethod
    async def _run_not_stored(hook: NotStoredHook, events: list[Event]) -> None:
        try:
            async with asyncio.timeout(_TAKE_BACK_TIMEOUT_SECONDS):
                await hook(events)
        except TimeoutError:
            log.warning(
                "A stage's hook for events that were not stored did not finish in time; given up.",
                events=len(events),
                seconds=_TAKE_BACK_TIMEOUT_SECONDS,
            )
        except Exception:  # a hook's bug must not end as an unretrieved task exception, unseen
            log.exception("A stage's hook for events that were not stored failed.", events=len(events))

    def _settle(self, work: Batch) -> None:
        """Nothing more of `work` will be stored now: it is settled, unless part of it is held back for the
        database (the outage began at its last event), whose replay settles it."""
        if not any(part.work is work for part in self._held_back):
            work.settled = True
