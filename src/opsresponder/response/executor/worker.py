"""The local worker: claims queued executions (and queued rollbacks) and runs them, renews their leases,
and carries cancels asked in other processes to the runs here.

Life (docs/response.md "Durability and recovery"):
- `start` first recovers what a dead process left running (the store marks it interrupted; a rollback is
  queued for each that asked for ``rollback_on_failure``), then claims in a loop: woken by a local submit,
  else every ``poll_interval_ms``, up to ``concurrency`` runs at once, at most ``claim_batch`` per claim
  and ``claim_gap_ms`` between claims in a row (a wave of 200 submits starts over a second, not in one
  burst of 200 spawns and writes that ingest's commits would queue behind). The loop recovers again every
  ``lease_seconds``, so a replica that died is cleaned up by the live ones without a restart.
- One heartbeat renews every local run's lease in one statement (every lease/3, at most 1 s); the answer
  says which rows have a cancel asked (from any process) and which are no longer ours.
- `stop` stops claiming, tells every run to stop (running actions are cancelled, their process groups
  killed; a rollback stops between steps), waits up to `STOP_GRACE_SECONDS` for them to record it, then
  cancels what is left. Each run ends ``interrupted``, never left ``running``; those that asked for
  ``rollback_on_failure`` get their rollback queued for the next process to claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from datetime import timedelta
from typing import Final

import msgspec
import structlog

from opsresponder.response.executor.options import ExecutionOptions
from opsresponder.response.executor.run import Deps, ExecutionRun
from opsresponder.store.errors import StoreError
from opsresponder.store.executions import ExecutionRow

log = structlog.get_logger(__name__)

STOP_GRACE_SECONDS: Final = 10.0
"""How long `stop` waits for the runs to record their interruption before cancelling them outright."""
MAX_HEARTBEAT_SECONDS: Final = 1.0
"""Also how long a cancel asked in another process takes at most to reach a run here."""


class Worker:
    """Runs this process's share of the executions; see the module docstring."""

    def __init__(self, deps: Deps) -> None:
        self.owner = deps.owner
        self._repository = deps.repository
        self._config = deps.config
        self._clock = deps.clock
        self._deps = deps
        self._runs: dict[int, ExecutionRun] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def running(self) -> list[int]:
        """The row ids running here now."""
        return list(self._tasks)

    def wake(self) -> None:
        self._wake.set()

    def cancel_local(self, execution_id: int, reason: str) -> None:
        """Stop a run here at once (a cancel answered by this process); others learn it from the row."""
        run = self._runs.get(execution_id)
        if run is not None:
            run.stop("cancelled", reason)

    async def start(self) -> None:
        await self.recover()
        self._stopping = False
        self._loop_task = asyncio.create_task(self._claim_loop())
        self._heartbeat_task = asyncio.create_task(self._heartbeat_loop())

    async def stop(self) -> None:
        # Order: stop claiming (no new run), tell the runs to stop, wait a grace for them to record it,
        # cancel what is left, then stop renewing (a run cancelled outright is left to lease expiry).
        self._stopping = True
        if self._loop_task is not None:
            # Let the loop end between claims rather than cancel it mid-claim: rows claimed by a statement
            # whose answer never arrived would be left to recovery, interrupted without having started.
            self._wake.set()
            _, late_loop = await asyncio.wait([self._loop_task], timeout=STOP_GRACE_SECONDS)
            for task in late_loop:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        for run in list(self._runs.values()):
            run.stop("interrupted", "the service stopped")
        tasks = list(self._tasks.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            log.info("The executor stopped.", interrupted=len(tasks), cancelled_outright=len(late))
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
            self._heartbeat_task = None

    async def recover(self, *, own: bool = True) -> list[ExecutionRow]:
        """Mark interrupted what a dead process left running (its lease expired; with `own`, also what
        this owner id held: this process's earlier life); queue the rollback of those that asked for
        ``rollback_on_failure``. Run at start, then every ``lease_seconds`` by the claim loop."""
        rows = await self._repository.recover_interrupted(self._clock(), owner=self.owner if own else None)
        for row in rows:
            log.warning(
                f"An execution left running by a stopped process is marked {row.status}.",
                execution_id=row.execution_id,
                previous_owner=row.error,
            )
            if row.status == "cancelled":
                continue  # a cancel was asked: never rolled back by itself, like a cancel that ended here
            await self._queue_rollback(row.id, row.options, row.rollback_status)
        return rows

    async def run_until_idle(self) -> None:
        """Claim and run until nothing is claimable and nothing runs here ("burst" mode, for tests)."""
        heartbeat = asyncio.create_task(self._heartbeat_loop())
        try:
            while True:
                self._wake.clear()
                claimed = await self._claim_once()
                if not claimed and not self._tasks:
                    return
                if not claimed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._config.poll_interval_ms / 1000)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def heartbeat(self) -> None:
        """Renew the local runs' leases; stop those with a cancel asked, or no longer ours."""
        ids = list(self._runs)
        if not ids:
            return
        lease = timedelta(seconds=self._config.lease_seconds)
        try:
            flags = await self._repository.renew(ids, self.owner, lease, self._clock())
        except StoreError as e:
            log.warning("Renewing the executions' leases failed; retrying.", error=str(e))
            return
        for execution_id in ids:
            run = self._runs.get(execution_id)
            if run is None:
                continue
            if execution_id not in flags:
                run.stop("interrupted", "this process lost its claim on the execution")
            elif flags[execution_id]:
                run.stop("cancelled", "cancelled on request")

    async def _claim_loop(self) -> None:
        poll = self._config.poll_interval_ms / 1000
        loop = asyncio.get_running_loop()
        next_recovery = loop.time() + self._config.lease_seconds
        while not self._stopping:
            self._wake.clear()
            try:
                if loop.time() >= next_recovery:
                    # Another replica may have died while this one lives: its executions must not wait for
                    # a restart to be marked interrupted (and rolled back).
                    next_recovery = loop.time() + self._config.lease_seconds
                    await self.recover(own=False)
                claimed = await self._claim_once()
            except StoreError as e:
                log.warning("Claiming executions failed; retrying.", error=str(e))
                claimed = 0
            except Exception:
                # A bug here must not silently end all execution in this process: say it, keep claiming.
                log.exception("The claim loop failed; retrying.")
                claimed = 0
            if claimed >= self._config.claim_batch and len(self._tasks) < self._config.concurrency:
                # A full claim: more may be queued. The next claim waits the gap (a storm starts paced);
                # a smaller one emptied the queue, and the next submit's wake claims at once.
                if self._config.claim_gap_ms:
                    await asyncio.sleep(self._config.claim_gap_ms / 1000)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll)

    async def _heartbeat_loop(self) -> None:
        interval = min(self._config.lease_seconds / 3, MAX_HEARTBEAT_SECONDS)
        while True:
            await asyncio.sleep(interval)
            await self.heartbeat()

    async def _claim_once(self) -> int:
        free = min(self._config.concurrency - len(self._tasks), self._config.claim_batch)
        if free <= 0 or self._stopping:
            return 0
        rows = await self._repository.claim_queued(
            self.owner, timedelta(seconds=self._config.lease_seconds), free, self._clock()
        )
        for row in rows:
            run = ExecutionRun(self._deps, row)
            # The previous run of this id may still be ending here (its notifications, learning) when its
            # rollback, asked meanwhile, is claimed: the new run waits for it, and takes its place in
            # `_runs` and `_tasks` at once, so the heartbeat renews the new claim from the start.
            previous = self._tasks.get(row.id)
            self._runs[row.id] = run
            task = asyncio.create_task(
                self._guarded(run, rollback_only=row.status == "rolling_back", after=previous)
            )
            self._tasks[row.id] = task
            task.add_done_callback(functools.partial(self._forget, row.id))
        return len(rows)

    def _forget(self, execution_id: int, task: asyncio.Task[None]) -> None:
        """Drop a finished task's entries, unless a later run of the same id has taken them."""
        if self._tasks.get(execution_id) is task:
            del self._tasks[execution_id]
            self._runs.pop(execution_id, None)
        self._wake.set()

    async def _guarded(
        self, run: ExecutionRun, *, rollback_only: bool, after: asyncio.Task[None] | None = None
    ) -> None:
        if after is not None:
            try:
                await asyncio.wait([after])
            except asyncio.CancelledError:
                after.cancel()  # `stop` cancelling this run outright ends the one it waits for too
                raise
        try:
            if rollback_only:
                await run.run_rollback()
            else:
                await run.run()
        except StoreError as e:
            # Nothing more can be recorded: stop the actions and leave the row to recovery, which marks
            # it interrupted once its lease expires.
            run.stop("interrupted", "the database failed")
            log.error(
                "The database failed while an execution ran; it is left for recovery.",
                execution_id=run.row.execution_id,
                error=str(e),
            )
            return
        except Exception:
            # A bug: the same as a database failure, the row is left for recovery (no longer renewed).
            run.stop("interrupted", "the executor failed")
            log.exception(
                "An execution's run failed; it is left for recovery.", execution_id=run.row.execution_id
            )
            return
        if run.final_status == "interrupted" and not rollback_only:
            await self._queue_rollback(run.id, run.row.options, None)

    async def _queue_rollback(
        self, execution_id: int, options: dict[str, object], rollback_status: str | None
    ) -> None:
        if rollback_status is not None or not msgspec.convert(options, ExecutionOptions).rollback_on_failure:
            return
        try:
            outcome = await self._repository.request_rollback(execution_id, self._clock(), "recovery")
        except StoreError as e:
            log.warning("The rollback of an interrupted execution could not be queued.", error=str(e))
            return
        if outcome.allowed:
            self.wake()
