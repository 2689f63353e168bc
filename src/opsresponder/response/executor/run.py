"""One claimed execution, run to its end: the actions as a DAG, then the criteria, the rollback when it
failed, the outcomes and the notifications. Every state change is written to the store as it happens.

The rules (docs/response.md "Executions"):
- An action starts once every action it depends on has completed, at most ``max_parallel_actions`` at
  once, in the plan's order among those ready. An action whose dependency did not complete (failed, timed
  out, skipped) is skipped, with the reason logged; a skipped *required* action fails the execution.
- A failed (or timed-out) required action fails the execution: no action starts any more; those running
  are left to finish within their own timeouts (stopping a remediation half-way is worse than letting it
  end; it can then be rolled back); the ones not started are skipped.
- Past the execution's deadline (``max_execution_time_minutes`` from the claim) the running actions are
  cancelled (the runner kills their process groups) and the execution fails with that reason.
- A cancel stops the running actions the same way, starts nothing more, and ends ``cancelled``; no
  rollback runs by itself (the rollback endpoint can ask for one).
- A failed execution with ``rollback_on_failure`` becomes ``rolling_back``: the completed actions that have
  a rollback script are undone in reverse completion order with their own parameters, then the template's
  rollback actions whose condition holds run in the template's order. Every step runs even when an
  earlier one failed. All succeeded: ``rolled_back``; else ``failed`` with ``rollback_status`` failed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

import msgspec
import structlog

from opsresponder.config import ExecutorConfig
from opsresponder.response.executor.options import ExecutionOptions
from opsresponder.response.executor.plan import (
    NOTIFYING_TYPES,
    ExecutionPlan,
    changes_target,
    needs_target_lock,
)
from opsresponder.response.executor.ports import EndedExecution, ExecutionEndSink, OutcomeSink
from opsresponder.response.notify.base import Notification, Notifier
from opsresponder.response.runners.base import ActionRequest, Runner, RunResult
from opsresponder.rules.expressions import Expression, ExpressionError, execution_scope
from opsresponder.rules.templates import ScriptCatalog
from opsresponder.state.base import StateBackend
from opsresponder.state.errors import StateError
from opsresponder.store.decisions import DecisionAction
from opsresponder.store.errors import StoreError
from opsresponder.store.executions import (
    ActionChange,
    ActionStatus,
    ExecutionRepository,
    ExecutionRow,
    ExecutionStatus,
    LogEntry,
    LogLevel,
    NewAction,
    Phase,
)
from opsresponder.store.outcomes import ActionOutcome

log = structlog.get_logger(__name__)

KILL_GRACE_SECONDS: Final = 10.0
"""Beyond an action's timeout, how long the executor waits for the runner to report it before it cancels
the run itself (the runner kills on its own timeout; this only guards against a runner that hangs)."""
NOTIFY_TIMEOUT_SECONDS: Final = 60.0
"""A message about the execution (start, end) never holds the execution up longer than this."""
DEADLINE_CHECK_SECONDS: Final = 1.0
PAUSE_CHECK_SECONDS: Final = 0.5
"""How often a paused automatic execution looks whether it may go on (the governor caches the pause)."""
"""The deadline is checked against the clock at least this often (a wall clock may jump)."""
LOCK_KEY_PREFIX: Final = "exec-target:"
LOST_LOCK: Final = "lost the target lock"
ERROR_TEXT_LIMIT: Final = 2000

StopKind = Literal["cancelled", "interrupted", "deadline"]

_FINISHED_STEP: Final = frozenset({"completed", "failed", "timed_out", "cancelled", "interrupted"})

# The ACTION_OUTCOME contract (rules/expressions/scope.py) has its own status words.
_OUTCOME_STATUS: Final[dict[str, str]] = {
    "queued": "pending",
    "would_run": "pending",
    "running": "running",
    "completed": "succeeded",
    "rolled_back": "succeeded",
    "failed": "failed",
    "timed_out": "timed_out",
    "skipped": "skipped",
    "cancelled": "failed",
    "interrupted": "failed",
}


@dataclass(slots=True)
class ActionState:
    """What the run knows of one action (or rollback step) as it goes."""

    key: str
    action_id: int | None
    status: str = "queued"
    started_at: datetime | None = None
    completed_at: datetime | None = None
    result: RunResult | None = None
    error: str | None = None

    def outcome(self) -> dict[str, Any]:
        """This action as criteria and rollback conditions read it (ACTION_OUTCOME)."""
        duration = 0.0
        if self.result is not None:
            duration = self.result.duration_seconds
        elif self.started_at is not None and self.completed_at is not None:
            duration = (self.completed_at - self.started_at).total_seconds()
        status = _OUTCOME_STATUS.get(self.status, self.status)
        if self.never_started:
            status = "skipped"  # cancelled before it started (a stop, the deadline): it did nothing
        return {
            "status": status,
            "completed": self.status in ("completed", "failed", "timed_out", "rolled_back"),
            "succeeded": status == "succeeded",
            "failed": status in ("failed", "timed_out"),
            "skipped": status == "skipped",
            "error": self.error,
            "duration_seconds": duration,
            "result": (self.result.data if self.result is not None else None) or {},
        }

    @property
    def never_started(self) -> bool:
        return self.started_at is None and self.status in ("cancelled", "skipped")


@dataclass(slots=True)
class Deps:
    """What every run needs (the worker's)."""

    repository: ExecutionRepository
    runner: Runner
    notifier: Notifier
    catalog: ScriptCatalog
    outcomes: OutcomeSink
    state: StateBackend
    config: ExecutorConfig
    owner: str
    clock: Callable[[], datetime]
    ended: ExecutionEndSink | None = None
    """Told of each execution that ran to its own end (learning, verification); None: nobody."""
    automation_paused: Callable[[], Awaitable[bool]] | None = None
    """The safety governor's global pause: while it answers True, an automatic execution (one the loop
    started without a person) starts no new action; its running actions finish."""


@dataclass(slots=True)
class _Batch:
    """Changes and log lines of one moment, written in one statement."""

    changes: list[ActionChange] = field(default_factory=list)
    logs: list[LogEntry] = field(default_factory=list)

    def log(self, entry: LogEntry) -> None:
        self.logs.append(entry)


@dataclass(slots=True)
class _Stop:
    kind: StopKind
    reason: str


class ExecutionRun:
    """The run of one claimed execution (or of its queued rollback); `stop` ends it early."""

    def __init__(self, deps: Deps, row: ExecutionRow) -> None:
        self.deps = deps
        self.row = row
        self.plan = msgspec.convert(row.plan, ExecutionPlan)
        self.options = msgspec.convert(row.options, ExecutionOptions)
        self.states = {a.key: ActionState(a.key, a.action_id) for a in self.plan.actions}
        self.rollback_states: dict[str, ActionState] = {}
        """Template rollback actions run (by their id: criteria and conditions may read them)."""
        self._undo_states: list[ActionState] = []
        """The rollback scripts' steps run (keyed like the actions they undo)."""
        self.final_status: ExecutionStatus | None = None
        self.error: str | None = None
        self._failure: str | None = None
        self._stop: _Stop | None = None
        self._stopped = asyncio.Event()
        self._interrupted = asyncio.Event()
        self._lock_key: str | None = None
        self._lock_renewal: asyncio.Task[None] | None = None
        self._lock_token = f"{deps.owner}/{row.execution_id}"
        self._lock_lost = asyncio.Event()
        self._criteria_seen: dict[str, Any] | None = row.criteria

    @property
    def id(self) -> int:
        return self.row.id

    def stop(self, kind: StopKind, reason: str) -> None:
        """End the run early: running actions are cancelled (the runner kills their processes) and none
        starts any more. ``interrupted`` (the service stops) also stops a rollback between steps. The first
        stop decides the outcome."""
        if self._stop is None:
            self._stop = _Stop(kind, reason)
        self._stopped.set()
        if kind == "interrupted":
            self._interrupted.set()

    # The two entry points

    async def run(self) -> None:
        """Run a claimed ``queued`` execution to its final state."""
        await self._notify_execution(
            "execution_started", self.options.notification_preferences.notify_on_start
        )
        try:
            if await self._lock(bounded=True):
                await self._run_dag()
            await self._conclude()
        finally:
            await self._unlock()
        if self.final_status in ("completed", "failed", "rolled_back"):
            await self._report_end(await self._record_outcomes())
        if self.final_status == "completed":
            await self._notify_execution(
                "execution_completed", self.options.notification_preferences.notify_on_completion
            )
        elif self.final_status in ("failed", "rolled_back"):
            await self._notify_execution(
                "execution_failed", self.options.notification_preferences.notify_on_failure
            )

    async def run_rollback(self) -> None:
        """Run a rollback asked through the API (or by recovery) on a finished execution."""
        stored = await self.deps.repository.get(self.row.id)
        for row in stored.actions if stored is not None else []:
            state = self.states.get(row.action_key)
            if row.phase != "action" or state is None:
                continue
            state.status = row.status
            state.started_at, state.completed_at, state.error = row.started_at, row.completed_at, row.error
            if row.result is not None and "success" in row.result:
                state.result = msgspec.convert(row.result, RunResult)
        ok = False
        try:
            if await self._lock(bounded=False):
                ok = await self._rollback()
        finally:
            await self._unlock()
        if self._interrupted.is_set():
            reason = self._stop.reason if self._stop is not None else "the service stopped"
            await self._finish("interrupted", reason, rollback_status="interrupted")
        elif ok:
            await self._finish("rolled_back", None, rollback_status="completed")
        else:
            await self._finish("failed", "a rollback step failed", rollback_status="failed")

    # The actions as a DAG

    async def _run_dag(self) -> None:
        """Run the actions. What happens at one moment (actions ended, their dependants skipped or
        started, the failure) is written in one statement before any newly started action runs, so a
        start is always on record before its process exists."""
        pending = [a.key for a in self.plan.actions]
        running: dict[asyncio.Task[RunResult], str] = {}
        batch = _Batch()
        stop_wait = asyncio.create_task(self._stopped.wait())
        lost_wait = asyncio.create_task(self._lock_lost.wait())
        held = False
        try:
            while True:
                starting: list[DecisionAction] = []
                paused = (
                    bool(pending)
                    and self._stop is None
                    and self._failure is None  # nothing starts any more: no reason to wait for a resume
                    and await self._automation_paused()
                )
                if paused != held:
                    held = paused
                    batch.log(
                        self._entry(
                            "warning" if paused else "info",
                            "Automatic execution is paused: no further action starts until it is resumed."
                            if paused
                            else "Automatic execution resumed.",
                        )
                    )
                if self._failure is None and self._stop is None and not paused:
                    starting = self._take_ready(pending, len(running), batch)
                await self._flush(batch)
                for action in starting:
                    running[asyncio.create_task(self._invoke(action))] = action.key
                if not running and not paused:
                    return
                left = self._seconds_left()
                timeout = None if left is None else min(left, DEADLINE_CHECK_SECONDS)
                if paused:
                    timeout = min(timeout or PAUSE_CHECK_SECONDS, PAUSE_CHECK_SECONDS)
                done, _ = await asyncio.wait(
                    [*running, stop_wait, *([] if lost_wait.done() else [lost_wait])],
                    timeout=timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if lost_wait in done:
                    self._lost_lock_in(batch, running)
                if not done and self._seconds_left() == 0:
                    self.stop(
                        "deadline", f"the execution reached its time limit ({self.row.max_minutes} min)"
                    )
                if self._stop is not None:
                    batch.log(
                        self._entry(
                            "warning", f"Stopping: {self._stop.reason}; running actions are cancelled."
                        )
                    )
                    for task in running:
                        task.cancel()
                    await asyncio.gather(*running, return_exceptions=True)
                    done = set(running)
                for finished in done:
                    if finished is not stop_wait and finished is not lost_wait:
                        key = running.pop(finished)  # type: ignore[arg-type]  # one of the action tasks
                        self._ended_in(batch, key, finished)  # type: ignore[arg-type]
                if self._stop is not None:
                    await self._flush(batch)
                    return
        finally:
            stop_wait.cancel()
            lost_wait.cancel()
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    def _lost_lock_in(self, batch: _Batch, running: dict[asyncio.Task[RunResult], str]) -> None:
        """The target lock was lost (another execution may now change the target): no action starts any
        more and the running ones that change the target are cancelled; read-only ones may finish."""
        if self._failure is None:
            self._fail(batch, LOST_LOCK)
        for task, key in running.items():
            if changes_target(self.plan.action(key), self.deps.catalog):
                task.cancel()

    async def _automation_paused(self) -> bool:
        check = self.deps.automation_paused
        if check is None or not self.row.plan.get("automatic"):
            return False
        try:
            return await check()
        except StoreError:
            # The pause cannot be read: the careful side is not to start anything new until it can.
            return True

    def _take_ready(self, pending: list[str], running: int, batch: _Batch) -> list[DecisionAction]:
        """The ready actions to start now, in plan order, up to the parallel limit (each marked running in
        `batch`); those whose dependency did not complete are skipped (which may make more ready: loop
        until nothing changes), and a skipped required one fails the execution."""
        starting: list[DecisionAction] = []
        changed = True
        while changed and self._failure is None:
            changed = False
            for key in list(pending):
                if running + len(starting) >= self.deps.config.max_parallel_actions:
                    return starting
                action = self.plan.action(key)
                dependencies = [self.states[d] for d in action.depends_on]
                if any(d.status in ("queued", "running") for d in dependencies):
                    continue
                pending.remove(key)
                state = self.states[key]
                blocked = next((d for d in dependencies if d.status != "completed"), None)
                if blocked is None:
                    self._change(batch, state, "action", "running", None, "info", f"Starting {action.name}.")
                    starting.append(action)
                    continue
                reason = f"its dependency {blocked.key!r} is {blocked.status}"
                self._change(
                    batch,
                    state,
                    "action",
                    "skipped",
                    f"skipped: {reason}",
                    "warning",
                    f"{action.name} is skipped: {reason}.",
                )
                changed = True
                if action.required:
                    self._fail(
                        batch, f"required action {key!r} could not run: {blocked.key!r} is {blocked.status}"
                    )
                    return starting
        return starting

    def _ended_in(self, batch: _Batch, key: str, task: asyncio.Task[RunResult]) -> None:
        """Put how an action's task ended into `batch`: its result, or cancelled by the stop."""
        state = self.states[key]
        action = self.plan.action(key)
        if task.cancelled():
            stop = self._stop or (
                _Stop("cancelled", LOST_LOCK)
                if self._lock_lost.is_set()
                else _Stop("interrupted", "the executor stopped")
            )
            status: ActionStatus = "interrupted" if stop.kind == "interrupted" else "cancelled"
            self._change(
                batch,
                state,
                "action",
                status,
                f"{status}: {stop.reason}",
                "warning",
                f"Stopped: {stop.reason}.",
            )
        else:
            self._result_in(batch, state, "action", task.result(), action.name)
        if state.status != "completed" and action.required and self._failure is None and self._stop is None:
            self._fail(batch, f"required action {key!r} {state.status}: {state.error or 'no reason given'}")

    def _fail(self, batch: _Batch, reason: str) -> None:
        self._failure = reason
        batch.log(self._entry("error", f"The execution fails: {reason}. No further action starts."))

    async def _invoke(self, action: DecisionAction) -> RunResult:
        if action.action_type in NOTIFYING_TYPES and action.script is None:
            return await self._guard(self._notify_action(action), action.timeout_seconds)
        return await self._run_script(
            str(action.action_id), action.script or "", action.parameters, action.timeout_seconds
        )

    def _change(
        self,
        batch: _Batch,
        state: ActionState,
        phase: Phase,
        status: ActionStatus,
        error: str | None,
        level: LogLevel,
        message: str,
        result: RunResult | None = None,
    ) -> None:
        """Change a step's state in memory and put the change and its log line in `batch`."""
        now = self.deps.clock()
        state.status = status
        if status == "running":
            state.started_at = now
        else:
            state.completed_at, state.error = now, error
        if result is not None:
            state.result = result
        batch.changes.append(
            ActionChange(
                phase=phase,
                action_key=state.key,
                status=status,
                started_at=now if status == "running" else None,
                completed_at=None if status == "running" else now,
                result=None if result is None else msgspec.to_builtins(result),
                error=error,
            )
        )
        batch.log(self._entry(level, message, state))

    def _result_in(
        self, batch: _Batch, state: ActionState, phase: Phase, result: RunResult, name: str
    ) -> None:
        status: ActionStatus = (
            "completed" if result.success else "timed_out" if result.timed_out else "failed"
        )
        error = None if result.success else _bounded(result.error or f"{status} without a reason")
        message = f"{name} completed." if result.success else f"{name} {status.replace('_', ' ')}: {error}."
        self._change(
            batch, state, phase, status, error, "info" if result.success else "warning", message, result
        )

    async def _flush(self, batch: _Batch) -> None:
        if batch.changes or batch.logs:
            await self.deps.repository.record(self.id, batch.changes, batch.logs)
            batch.changes, batch.logs = [], []

    # Running one step

    async def _run_script(
        self, action_id: str, script_name: str, parameters: dict[str, Any], timeout: float
    ) -> RunResult:
        script = self.deps.catalog.by_name.get(script_name)
        if script is None:
            return RunResult(success=False, error=f"script {script_name!r} is no longer in the catalog")
        request = ActionRequest(
            execution_id=self.row.execution_id,
            action_id=action_id,
            script=script,
            parameters=dict(parameters),
            target=self.row.target,
            timeout_seconds=timeout,
        )
        return await self._guard(self.deps.runner.run(request), timeout)

    @staticmethod
    async def _guard(run: Any, timeout: float) -> RunResult:
        """The run's result; a runner that hangs past its own timeout, or raises, fails the action
        instead of the execution's bookkeeping."""
        try:
            async with asyncio.timeout(timeout + KILL_GRACE_SECONDS):
                result: RunResult = await run
                return result
        except TimeoutError:
            return RunResult(
                success=False, timed_out=True, error=f"no result within {timeout + KILL_GRACE_SECONDS:.0f} s"
            )
        except Exception as e:  # any runner bug becomes this action's failure, logged
            log.exception("A runner raised instead of reporting a failed result.")
            return RunResult(success=False, error=f"the runner failed: {e.__class__.__name__}: {e}")

    async def _started(self, state: ActionState, phase: Phase, message: str) -> None:
        batch = _Batch()
        self._change(batch, state, phase, "running", None, "info", message)
        await self._flush(batch)

    async def _ended(self, state: ActionState, phase: Phase, result: RunResult, name: str) -> None:
        batch = _Batch()
        self._result_in(batch, state, phase, result, name)
        await self._flush(batch)

    async def _stopped_step(self, state: ActionState, phase: Phase) -> None:
        stop = self._stop or _Stop("interrupted", "the executor stopped")
        status: ActionStatus = "interrupted" if stop.kind == "interrupted" else "cancelled"
        batch = _Batch()
        self._change(
            batch, state, phase, status, f"{status}: {stop.reason}", "warning", f"Stopped: {stop.reason}."
        )
        await self._flush(batch)

    # After the actions

    async def _conclude(self) -> None:
        now = self.deps.clock()
        leftover = [s for s in self.states.values() if s.status == "queued"]
        if leftover:
            await self._close_leftover(leftover)
        criteria = self._criteria(now)
        status: ExecutionStatus
        error: str | None
        if self._stop is not None and self._stop.kind != "deadline":
            status, error = self._stop.kind, self._stop.reason
        elif self._stop is not None or self._failure is not None:
            status, error = "failed", (self._stop.reason if self._stop is not None else self._failure)
        else:
            status, error = "completed", None
        rollback_status: str | None = None
        rollback = status == "failed" and self.options.rollback_on_failure and self._has_rollback_work()
        if rollback and all(s.never_started for s in self.states.values()):
            # Nothing ran (the deadline passed while waiting for the target lock): nothing to undo, and
            # no template rollback action may run on a target this execution never touched.
            await self._log("info", "Nothing was rolled back: no action started.")
            rollback = False
        if rollback and self._lock_key is None and not await self._lock(bounded=False):
            # Stopped while waiting for the lock a rollback needs (lost, or never taken): left undone.
            await self._log("warning", "The rollback did not run: stopped while waiting for the target lock.")
            rollback = False
            if self._interrupted.is_set():
                status = "interrupted"
        if rollback:
            await self.deps.repository.set_status(
                self.id,
                self.deps.owner,
                "rolling_back",
                rollback_status="running",
                error=error,
                logs=[self._entry("info", "Rolling back, as rollback_on_failure asks.")],
            )
            ok = await self._rollback()
            if self._interrupted.is_set():
                status, rollback_status = "interrupted", "interrupted"
            elif not any(s.status in _FINISHED_STEP for s in self._rollback_steps()):
                # Only template rollback actions, none of whose conditions held: nothing was undone.
                await self._log("info", "Nothing was rolled back: no rollback action's condition held.")
                rollback_status = "completed"
            else:
                status, rollback_status = ("rolled_back", "completed") if ok else ("failed", "failed")
        await self._finish(status, error, criteria=criteria, rollback_status=rollback_status)

    async def _close_leftover(self, leftover: Sequence[ActionState]) -> None:
        """The actions that never started: cancelled when the run was stopped, else skipped."""
        status: ActionStatus = "cancelled" if self._stop is not None else "skipped"
        reason = self._stop.reason if self._stop is not None else self._failure or "not started"
        batch = _Batch()
        for state in leftover:
            self._change(
                batch, state, "action", status, f"not started: {reason}", "info", f"Not started: {reason}."
            )
        await self._flush(batch)

    def _has_rollback_work(self) -> bool:
        return bool(self.plan.rollback_actions) or any(
            s.status == "completed" and s.key in self.plan.rollback_scripts for s in self.states.values()
        )

    async def _rollback(self) -> bool:
        """Undo the completed rollback-capable actions (reverse completion order), then run the template
        rollback actions whose condition holds. True when every step that ran succeeded."""
        position = {a.key: i for i, a in enumerate(self.plan.actions)}
        done = sorted(
            (
                s
                for s in self.states.values()
                if s.status == "completed" and s.key in self.plan.rollback_scripts
            ),
            key=lambda s: (s.completed_at or self.deps.clock(), position[s.key]),
            reverse=True,
        )
        if done:
            await self.deps.repository.add_actions(
                self.id,
                [
                    NewAction(
                        phase="rollback", action_key=s.key, action_id=s.action_id, position=i, status="queued"
                    )
                    for i, s in enumerate(done)
                ],
                [self._entry("info", f"Undoing in reverse order: {', '.join(s.key for s in done)}.")],
            )
        ok = True
        for state in done:
            action = self.plan.action(state.key)
            script_name = self.plan.rollback_scripts[state.key]
            script = self.deps.catalog.by_name.get(script_name)
            step = ActionState(state.key, state.action_id)
            self._undo_states.append(step)
            result = await self._rollback_step(
                step,
                f"Undo {action.name}",
                self._run_script(
                    str(state.action_id),
                    script_name,
                    action.parameters,
                    script.timeout_seconds if script is not None else action.timeout_seconds,
                ),
            )
            if result is None:
                return False
            if result.success:
                state.status = "rolled_back"
                await self.deps.repository.update_action(self.id, "action", state.key, status="rolled_back")
            ok = ok and result.success
        for i, template_step in enumerate(self.plan.rollback_actions, start=len(done)):
            if template_step.condition is not None:
                holds, reason = self._evaluate(template_step.condition, self.deps.clock())
                if not holds:
                    why = f" ({reason})" if reason else ""
                    await self._log(
                        "info", f"Rollback action {template_step.key!r} not run: its condition is false{why}."
                    )
                    continue
            step = ActionState(template_step.key, None)
            self.rollback_states[template_step.key] = step
            await self.deps.repository.add_actions(
                self.id,
                [
                    NewAction(
                        phase="rollback", action_key=step.key, action_id=None, position=i, status="queued"
                    )
                ],
            )
            result = await self._rollback_step(
                step,
                template_step.name,
                self._run_script(
                    template_step.key,
                    template_step.script,
                    template_step.parameters,
                    template_step.timeout_seconds,
                ),
            )
            if result is None:
                return False
            ok = ok and result.success
        return ok

    def _rollback_steps(self) -> list[ActionState]:
        return [*self._undo_states, *self.rollback_states.values()]

    async def _rollback_step(self, state: ActionState, name: str, run: Any) -> RunResult | None:
        """Run one rollback step; None when the service stopped meanwhile (the step is interrupted)."""
        await self._started(state, "rollback", f"Starting rollback step: {name}.")
        task: asyncio.Task[RunResult] = asyncio.create_task(run)
        interrupted = asyncio.create_task(self._interrupted.wait())
        try:
            await asyncio.wait([task, interrupted], return_when=asyncio.FIRST_COMPLETED)
        finally:
            interrupted.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if task.cancelled():
            await self._stopped_step(state, "rollback")
            return None
        result = task.result()
        await self._ended(state, "rollback", result, name)
        return result

    # Criteria and conditions (ACTION_OUTCOME, docs/templates.md)

    def _criteria(self, now: datetime) -> dict[str, Any] | None:
        if not self.plan.success_criteria and not self.plan.failure_criteria:
            return None
        results: dict[str, Any] = {}
        for name, texts in (
            ("success_criteria", self.plan.success_criteria),
            ("failure_criteria", self.plan.failure_criteria),
        ):
            results[name] = []
            for text in texts:
                value, reason = self._evaluate(text, now)
                results[name].append({"expression": text, "value": value, "reason": reason})
        results["succeeded"] = all(r["value"] for r in results["success_criteria"]) and not any(
            r["value"] for r in results["failure_criteria"]
        )
        return results

    def _evaluate(self, text: str, now: datetime) -> tuple[bool, str | None]:
        names = {*self.plan.template_actions, *self.states, *(s.key for s in self.plan.rollback_actions)}
        try:
            program = Expression.parse(text, execution_scope(names), frozenset(self.plan.variables)).bind(
                self.plan.variables
            )
        except ExpressionError as e:
            return False, f"cannot be evaluated: {e}"
        outcome = program.evaluate(self._activation(now))
        return outcome.value, outcome.reason

    def _activation(self, now: datetime) -> dict[str, Any]:
        activation: dict[str, Any] = {
            key: ActionState(key, None, status="skipped", error="not chosen for this execution").outcome()
            for key in self.plan.template_actions
        }
        activation.update({key: s.outcome() for key, s in self.rollback_states.items()})
        activation.update({key: s.outcome() for key, s in self.states.items()})
        chosen = list(self.states.values())
        started = self.row.started_at or now
        activation.update(
            all_actions_completed=all(s.status in ("completed", "rolled_back") for s in chosen),
            any_action_failed=any(
                s.status in ("failed", "timed_out", "cancelled", "interrupted") and not s.never_started
                for s in chosen
            ),
            execution_time=max(0.0, (now - started).total_seconds() / 60),
            max_execution_time=self.plan.max_execution_time_minutes or self.row.max_minutes,
            event=dict(self.row.plan.get("event") or {}),
        )
        return activation

    # The end

    async def _finish(
        self,
        status: ExecutionStatus,
        error: str | None,
        *,
        criteria: dict[str, Any] | None = None,
        rollback_status: str | None = None,
    ) -> None:
        self.final_status, self.error = status, error
        if criteria is not None:
            self._criteria_seen = criteria
        level: LogLevel = "info" if status in ("completed", "rolled_back") else "warning"
        message = f"Execution {status.replace('_', ' ')}" + (f": {error}." if error else ".")
        kept = await self.deps.repository.finish(
            self.id,
            self.deps.owner,
            status,
            self.deps.clock(),
            error=None if error is None else _bounded(error),
            criteria=criteria,
            rollback_status=rollback_status,
            logs=[self._entry(level, message)],
        )
        if not kept:
            log.warning(
                "An execution was taken over by recovery before it ended here; its stored state stands.",
                execution_id=self.row.execution_id,
            )

    async def _record_outcomes(self) -> list[ActionOutcome]:
        event = self.row.plan.get("event") or {}
        now = self.deps.clock()
        outcomes = []
        for action in self.plan.actions:
            state = self.states[action.key]
            rolled_back = state.status == "rolled_back"
            status = "completed" if rolled_back else state.status
            outcomes.append(
                ActionOutcome(
                    execution_id=self.row.execution_id,
                    decision_id=self.row.decision_id,
                    event_id=self.row.event_id,
                    template_id=self.row.template_id,
                    action_key=action.key,
                    script=action.script,
                    event_type=str(event.get("event_type") or ""),
                    pattern_id=self.row.plan.get("pattern_id"),
                    target=self.row.target,
                    status=status,
                    success=status == "completed" and state.result is not None and state.result.success,
                    duration_seconds=state.outcome()["duration_seconds"],
                    rolled_back=rolled_back,
                    finished_at=state.completed_at or now,
                )
            )
        try:
            await self.deps.outcomes.record(outcomes)
        except Exception as e:  # noqa: BLE001 - learning data lost is logged; the execution stands
            log.warning("The execution's outcomes could not be recorded.", execution_id=self.row.execution_id)
            await self._log("warning", f"The outcomes could not be recorded: {e.__class__.__name__}: {e}.")
        return outcomes

    async def _report_end(self, outcomes: list[ActionOutcome]) -> None:
        """Tell the end sink (learning, verification); its failure is logged and changes nothing."""
        if self.deps.ended is None or self.final_status is None:
            return
        remediated = [
            a.key
            for a in self.plan.actions
            if self.states[a.key].status == "completed" and changes_target(a, self.deps.catalog)
        ]
        ended = EndedExecution(
            execution=self.row,
            status=self.final_status,
            error=self.error,
            criteria=self._criteria_seen,
            completed_at=self.deps.clock(),
            outcomes=outcomes,
            remediated=remediated,
        )
        try:
            await self.deps.ended.execution_ended(ended)
        except Exception as e:  # noqa: BLE001 - learning lost is logged; the execution stands
            log.warning("The execution's end could not be reported.", execution_id=self.row.execution_id)
            await self._log("warning", f"Learning from this execution failed: {e.__class__.__name__}: {e}.")

    # Notifications

    def _context(self) -> dict[str, Any]:
        return {
            **self.plan.variables,
            "variables": self.plan.variables,
            "event": dict(self.row.plan.get("event") or {}),
            "execution": {
                "id": self.row.execution_id,
                "decision_id": self.row.decision_id,
                "event_id": self.row.event_id,
                "target": self.row.target,
                "template_id": self.row.template_id,
                "status": self.final_status or "running",
                "error": self.error,
                "actions": [
                    {"key": s.key, "status": s.status, "error": s.error} for s in self.states.values()
                ],
            },
        }

    async def _notify_action(self, action: DecisionAction) -> RunResult:
        started = asyncio.get_running_loop().time()
        context = self._context()
        context["action"] = {"key": action.key, "name": action.name, "parameters": action.parameters}
        results = await self.deps.notifier.send(
            Notification(
                template=action.message_template or "", channels=tuple(action.channels), context=context
            )
        )
        success = bool(results) and all(r.success for r in results)
        output = "; ".join(f"{r.channel}: sent" if r.success else f"{r.channel}: {r.error}" for r in results)
        return RunResult(
            success=success,
            output=output,
            error=None if success else output or "no channel to send to",
            data={"channels": [msgspec.to_builtins(r) for r in results]},
            duration_seconds=asyncio.get_running_loop().time() - started,
        )

    async def _notify_execution(self, template: str, wanted: bool) -> None:
        """A message about the execution; its failure is logged and never fails the execution."""
        if not wanted:
            return
        notification = Notification(
            template=template,
            channels=tuple(self.options.notification_preferences.channels),
            context=self._context(),
        )
        try:
            async with asyncio.timeout(NOTIFY_TIMEOUT_SECONDS):
                results = await self.deps.notifier.send(notification)
        except TimeoutError:
            await self._log(
                "warning",
                f"The {template} notification did not finish within {NOTIFY_TIMEOUT_SECONDS:.0f} s.",
            )
            return
        except Exception as e:  # noqa: BLE001 - a notifier bug must not change the execution's outcome
            await self._log("warning", f"The {template} notification failed: {e.__class__.__name__}: {e}.")
            return
        failed = [r for r in results if not r.success]
        if failed or not results:
            why = "; ".join(f"{r.channel}: {r.error}" for r in failed) or "no channel to send to"
            await self._log("warning", f"The {template} notification was not sent: {why}.")
        else:
            await self._log(
                "info", f"Sent the {template} notification ({', '.join(r.channel for r in results)})."
            )

    # The per-target lock

    async def _lock(self, *, bounded: bool) -> bool:
        """Take the target's lock when the plan changes something there; wait (polling) while another
        execution holds it. False when the run was stopped (or, `bounded`, its deadline passed) first."""
        target = self.row.target
        config = self.deps.config
        if not (config.lock_per_target and target and needs_target_lock(self.plan, self.deps.catalog)):
            return True
        key = f"{LOCK_KEY_PREFIX}{target}"
        waiting = False
        while True:
            try:
                taken = await self.deps.state.acquire_lock(key, self._lock_token, config.lock_ttl_seconds)
            except StateError as e:
                taken = False
                log.warning("The target lock cannot be taken; retrying.", target=target, error=str(e))
            if taken:
                self._lock_key = key
                self._lock_renewal = asyncio.create_task(self._renew_lock(key))
                if waiting:
                    await self._log("info", f"Took the lock on {target}.")
                return True
            if not waiting:
                waiting = True
                await self._log("info", f"Waiting for the lock on {target}.")
            left = self._seconds_left() if bounded else None
            if left is not None and left <= 0:
                self.stop("deadline", f"the execution reached its time limit ({self.row.max_minutes} min)")
                return False
            poll = config.poll_interval_ms / 1000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), poll if left is None else min(poll, left))
            if self._stop is not None:
                return False

    async def _renew_lock(self, key: str) -> None:
        ttl = self.deps.config.lock_ttl_seconds
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                if not await self.deps.state.extend_lock(key, self._lock_token, ttl):
                    # Another execution may hold it now: this one must stop changing the target. Not
                    # ours to release any more; a rollback takes it again before its first step.
                    log.error(
                        "An execution lost its target lock; it stops: no action starts and the running "
                        "ones that change the target are cancelled.",
                        key=key,
                        execution_id=self.row.execution_id,
                    )
                    if self._lock_key == key:
                        self._lock_key = None
                    self._lock_lost.set()
                    return
            except StateError as e:
                log.warning("A target lock could not be renewed; retrying.", key=key, error=str(e))

    async def _unlock(self) -> None:
        if self._lock_renewal is not None:
            self._lock_renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lock_renewal
            self._lock_renewal = None
        if self._lock_key is not None:
            try:
                await self.deps.state.release_lock(self._lock_key, self._lock_token)
            except StateError as e:
                log.warning(
                    "A target lock could not be released; it expires.", key=self._lock_key, error=str(e)
                )
            self._lock_key = None

    # Small things

    def _seconds_left(self) -> float | None:
        if self.row.deadline_at is None:
            return None
        return max(0.0, (self.row.deadline_at - self.deps.clock()).total_seconds())

    def _entry(self, level: LogLevel, message: str, state: ActionState | None = None) -> LogEntry:
        return LogEntry(
            at=self.deps.clock(),
            level=level,
            message=message,
            action_id=None if state is None else state.action_id,
            action_key=None if state is None else state.key,
        )

    async def _log(self, level: LogLevel, message: str) -> None:
        await self.deps.repository.append_logs(self.id, [self._entry(level, message)])


def _bounded(text: str) -> str:
    return text if len(text) <= ERROR_TEXT_LIMIT else text[: ERROR_TEXT_LIMIT - 1] + "…"
