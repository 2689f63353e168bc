"""The executor's facade: what the API calls (submit, get, list, cancel, rollback) and the local worker's
life (start, stop). docs/response.md "Executions" describes the states and rules."""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import msgspec
import structlog

from opsresponder.config import ExecutorConfig
from opsresponder.core.clock import utcnow
from opsresponder.response.analysis.analyzer import ActionPolicies
from opsresponder.response.approvals import ApprovalRequest, ApprovalWorkflow
from opsresponder.response.executor.errors import ExecutionNotFound, ExecutionStateError
from opsresponder.response.executor.options import ExecutionOptions, NotificationPreferences
from opsresponder.response.executor.plan import (
    NOTIFYING_TYPES,
    ExecutionPlan,
    PlanError,
    build_plan,
    plan_hash,
)
from opsresponder.response.executor.ports import ExecutionEndSink, OutcomeSink, TemplateVersions
from opsresponder.response.executor.run import Deps
from opsresponder.response.executor.view import ExecutionView, execution_view
from opsresponder.response.executor.worker import Worker
from opsresponder.response.notify.base import Notifier
from opsresponder.response.runners.base import Runner
from opsresponder.response.runners.parameters import ParameterError, check_parameters
from opsresponder.response.runners.script import PARAMETER_ENV_PREFIX
from opsresponder.rules.templates import Script, ScriptCatalog
from opsresponder.state.base import StateBackend
from opsresponder.store.decisions import StoredDecision
from opsresponder.store.executions import (
    ControlOutcome,
    ExecutionRepository,
    ExecutionStatus,
    LogEntry,
    NewAction,
    NewExecution,
    parse_execution_id,
)
from opsresponder.store.pool import Connection

__all__ = [
    "ExecutionNotFound",
    "ExecutionOptions",
    "ExecutionService",
    "ExecutionStateError",
    "ExecutionView",
    "NotificationPreferences",
    "OutcomeSink",
    "PlanError",
    "TemplateVersions",
]

log = structlog.get_logger(__name__)


class ExecutionService:
    """Submits executions and runs the queued ones (this process's share of them).

    Every state is in PostgreSQL (`ExecutionRepository`); several services (processes) on one database
    share the queue, each claiming with ``FOR UPDATE SKIP LOCKED``. A cancel or rollback answered by one
    process reaches the process running the execution through the row.
    """

    def __init__(
        self,
        *,
        repository: ExecutionRepository,
        runner: Runner,
        notifier: Notifier,
        catalog: ScriptCatalog,
        templates: TemplateVersions,
        outcomes: OutcomeSink,
        state: StateBackend,
        config: ExecutorConfig,
        owner: str,
        clock: Callable[[], datetime] = utcnow,
        ended: ExecutionEndSink | None = None,
        automation_paused: Callable[[], Awaitable[bool]] | None = None,
        policies: ActionPolicies | None = None,
    ) -> None:
        self._repository = repository
        self._approvals: ApprovalWorkflow | None = None
        self._policies = policies
        self._catalog = catalog
        self._templates = templates
        self._config = config
        self._clock = clock
        self._worker = Worker(
            Deps(
                repository=repository,
                runner=runner,
                notifier=notifier,
                catalog=catalog,
                outcomes=outcomes,
                state=state,
                config=config,
                owner=owner,
                clock=clock,
                ended=ended,
                automation_paused=automation_paused,
            )
        )

    def attach_approvals(self, workflow: ApprovalWorkflow) -> None:
        """Ask `workflow` for approval of every ``pending_approval`` execution submitted from now on (the
        workflow, in turn, calls this service back as its `PendingExecutions`)."""
        self._approvals = workflow

    # PendingExecutions (response/approvals.py): what the approval workflow does to executions.

    async def current_plan_hash(self, execution_id: int) -> str | None:
        """None also when the execution no longer waits for approval (cancelled meanwhile): approving is
        then refused (409) instead of approving something that will never run."""
        return await self._repository.pending_plan_hash(execution_id)

    async def start_approved(self, execution_id: int, *, by: str, conn: Connection) -> bool:
        outcome = await self._repository.queue_pending(execution_id, now=self._clock(), by=by, conn=conn)
        if not outcome.allowed:
            log.warning(
                "An approved execution is no longer pending; nothing was started.",
                execution_id=f"exec_{execution_id}",
                status=outcome.status,
            )
        return outcome.allowed

    def wake(self) -> None:
        self._worker.wake()

    async def reject_pending(self, execution_id: int, *, by: str, reason: str, conn: Connection) -> None:
        outcome = await self._repository.cancel_pending(
            execution_id, now=self._clock(), reason=reason, conn=conn
        )
        log.info(
            "A pending execution was rejected.",
            execution_id=f"exec_{execution_id}",
            by=by,
            reason=reason,
            cancelled=outcome.allowed,
        )

    async def plan_hash_for(self, decision: StoredDecision, action_ids: Sequence[int] | None) -> str:
        """The plan hash an execution of `action_ids` of `decision` would have (what an approval token
        must be bound to).

        Raises:
            PlanError: the actions cannot run as asked (422).
        """
        return plan_hash(await self._plan(decision, action_ids))

    async def _plan(self, decision: StoredDecision, action_ids: Sequence[int] | None) -> ExecutionPlan:
        template = None
        if decision.template_id is not None and decision.template_version is not None:
            template = await self._templates.get_version(decision.template_id, decision.template_version)
            if template is None:
                log.warning(
                    "The decision's template version is no longer stored; executing without its rollback "
                    "actions and criteria.",
                    decision_id=decision.decision_id,
                    template=decision.template_id,
                    version=decision.template_version,
                )
        return build_plan(decision, action_ids, self._catalog, template)

    async def _demotions(self, decision: StoredDecision, plan: ExecutionPlan) -> dict[str, str]:
        """The chosen actions learning demoted to "approval required" *now* (action key -> why): a decision
        is analyzed once but may be executed later, after a ``dangerous`` feedback or bad outcomes demoted
        one of its actions; its stored ``approval_required`` does not know that."""
        if self._policies is None or decision.template_id is None:
            return {}
        return await self._policies.demotions(decision.template_id, [a.key for a in plan.actions])

    @property
    def owner(self) -> str:
        return self._worker.owner

    async def submit(
        self,
        decision: StoredDecision,
        action_ids: Sequence[int] | None,
        options: ExecutionOptions,
        *,
        requested_by: str,
        approved: bool,
        automatic: bool = False,
        approval_reason: str | None = None,
    ) -> ExecutionView:
        """Store an execution of `action_ids` of `decision` (None: all of them) and, when it may run,
        queue it for the worker.

        ``dry_run``: stored as ``dry_run`` with each action ``would_run`` and its resolved parameters and
        argv; nothing runs. Not `approved` while a chosen action requires approval, or `approval_reason`
        given (the governor asks a person): ``pending_approval``, nothing runs, and an approval request is
        made (when a workflow is attached). Otherwise ``queued``. `automatic`: the rule-to-response loop's
        run, which the global pause holds between actions.

        Raises:
            PlanError: the actions cannot run as asked (422).
            DatabaseUnavailableError: PostgreSQL cannot be reached.
        """
        plan = await self._plan(decision, action_ids)
        demoted = {} if options.dry_run else await self._demotions(decision, plan)
        now = self._clock()
        needs_approval = (
            any(a.approval_required for a in plan.actions) or approval_reason is not None or bool(demoted)
        )
        status: ExecutionStatus
        if options.dry_run:
            status, message = "dry_run", "Dry run: nothing was run; each action shows what would run."
        elif needs_approval and not approved:
            status, message = "pending_approval", "Waiting for approval: nothing runs until it is given."
            if demoted:
                message += f" {_demotion_reason(demoted)}."
        else:
            status, message = "queued", "Queued."
        max_minutes = (
            options.max_execution_time_minutes
            or plan.max_execution_time_minutes
            or self._config.default_max_execution_time_minutes
        )
        actions = [
            NewAction(
                phase="action",
                action_key=a.key,
                action_id=a.action_id,
                position=i,
                status="would_run" if options.dry_run else "queued",
                result=None if status == "queued" else {"preview": self._preview(a.script, a.parameters, a)},
            )
            for i, a in enumerate(plan.actions)
        ]
        new = NewExecution(
            decision_id=decision.decision_id,
            event_id=decision.event_id,
            target=decision.target,
            template_id=decision.template_id,
            template_version=decision.template_version,
            status=status,
            dry_run=options.dry_run,
            requested_by=requested_by,
            options=msgspec.to_builtins(options),
            plan=_plan_document(plan, decision, automatic=automatic and status == "queued"),
            plan_hash=plan_hash(plan),
            max_minutes=max_minutes,
            created_at=now,
            completed_at=now if options.dry_run else None,
        )
        logs = [LogEntry(at=now, level="info", message=f"Submitted by {requested_by}. {message}")]
        if status == "pending_approval" and self._approvals is not None:
            # The execution and its approval request commit together: never one waiting without the other.
            async with self._repository.transaction() as conn:
                stored = await self._repository.create(new, actions, logs, conn)
                request = _approval_request(
                    stored.execution.id, plan, decision, requested_by, approval_reason, demoted
                )
                record = await self._approvals.record_request(request, conn)
            await self._approvals.announce(record, request.context)
            return execution_view(stored, now)
        stored = await self._repository.create(new, actions, logs)
        if status == "queued":
            self._worker.wake()
        return execution_view(stored, now)

    async def get(self, execution_id: str) -> ExecutionView | None:
        row_id = parse_execution_id(execution_id)
        if row_id is None:
            return None
        stored = await self._repository.get(row_id)
        return None if stored is None else execution_view(stored, self._clock())

    async def list(
        self,
        *,
        status: str | None,
        event_id: int | None,
        start_time: datetime | None,
        end_time: datetime | None,
        limit: int,
        offset: int,
    ) -> tuple[builtins.list[ExecutionView], int]:
        """Executions newest first (without their logs: GET one for them), and how many match."""
        rows, total = await self._repository.list(
            status=status,
            event_id=event_id,
            start_time=start_time,
            end_time=end_time,
            limit=limit,
            offset=offset,
        )
        now = self._clock()
        return [execution_view(r, now) for r in rows], total

    async def cancel(self, execution_id: str, *, by: str) -> ExecutionView:
        """Cancel a pending, queued or running execution (running: its actions' processes are killed, no
        action starts any more; the owner, in whichever process, sees the flag within a heartbeat).

        Raises:
            ExecutionNotFound: no such execution (404).
            ExecutionStateError: it is not pending, queued or running (409).
        """
        row_id = self._row_id(execution_id)
        outcome = await self._repository.request_cancel(row_id, self._clock(), by)
        self._check(outcome, execution_id, "cancelled", "pending_approval, queued or running")
        if outcome.status == "running":
            self._worker.cancel_local(row_id, f"cancelled by {by}")
        return await self._view(row_id, execution_id)

    async def rollback(self, execution_id: str, *, by: str) -> ExecutionView:
        """Queue the rollback of a finished execution's completed rollback-capable actions (reverse
        completion order), for whichever process claims it first.

        Raises:
            ExecutionNotFound: no such execution (404).
            ExecutionStateError: it is not finished, a rollback was already asked or ran, or no completed
                action has a rollback script (409).
        """
        row_id = self._row_id(execution_id)
        outcome = await self._repository.request_rollback(row_id, self._clock(), by)
        self._check(
            outcome,
            execution_id,
            "rolled back",
            "completed, failed, cancelled or interrupted, with a completed action that has a rollback "
            "script, and not rolled back before",
        )
        self._worker.wake()
        return await self._view(row_id, execution_id)

    async def start(self) -> None:
        """Recover the executions a dead process left running, then claim and run queued ones."""
        await self._worker.start()

    async def stop(self) -> None:
        """Stop claiming; cancel what runs here (process groups killed) and mark it interrupted, so
        recovery never takes it for still running. Its rollback runs (when asked) on the next start."""
        await self._worker.stop()

    async def run_until_idle(self) -> None:
        """Tests and benches ("burst" mode): claim and run until nothing is queued or running here."""
        await self._worker.run_until_idle()

    def _row_id(self, execution_id: str) -> int:
        row_id = parse_execution_id(execution_id)
        if row_id is None:
            raise ExecutionNotFound(f"no execution has id {execution_id!r}")
        return row_id

    @staticmethod
    def _check(outcome: ControlOutcome, execution_id: str, verb: str, allowed: str) -> None:
        if not outcome.found:
            raise ExecutionNotFound(f"no execution has id {execution_id!r}")
        if not outcome.allowed:
            raise ExecutionStateError(
                f"execution {execution_id} is {outcome.status}: it can be {verb} only when {allowed}",
                outcome.status,
            )

    async def _view(self, row_id: int, execution_id: str) -> ExecutionView:
        stored = await self._repository.get(row_id)
        if stored is None:
            raise ExecutionNotFound(f"no execution has id {execution_id!r}")
        return execution_view(stored, self._clock())

    def _preview(self, script_name: str | None, parameters: dict[str, Any], action: Any) -> dict[str, Any]:
        """What would run: the resolved parameters and the argv (or the HTTP call, or the message)."""
        if action.action_type in NOTIFYING_TYPES and script_name is None:
            return {
                "parameters": parameters,
                "notification": {"template": action.message_template, "channels": list(action.channels)},
            }
        script = self._catalog.by_name.get(script_name or "")
        preview: dict[str, Any] = {"parameters": parameters}
        if script is not None:
            preview.update(argv_preview(script, parameters))
        return preview


def argv_preview(script: Script, parameters: dict[str, Any]) -> dict[str, Any]:
    """The command line (or HTTP call) the runner would make, as the script runner builds it; a value
    the runner would refuse shows as ``refused`` instead."""
    if script.http is not None:
        return {"http": {"method": script.http.method, "url": script.http.url}}
    try:
        values = check_parameters(script, parameters)
    except ParameterError as e:
        return {"refused": str(e)}
    argv = list(script.command or [])
    if script.parameters_as == "environment":
        return {"argv": argv, "environment": {PARAMETER_ENV_PREFIX + k.upper(): v for k, v in values.items()}}
    return {"argv": argv + [f"--{name}={text}" for name, text in values.items()]}


def _approval_request(
    execution_id: int,
    plan: ExecutionPlan,
    decision: StoredDecision,
    requested_by: str,
    governor_reason: str | None,
    demoted: dict[str, str] | None = None,
) -> ApprovalRequest:
    """What approvers are asked: the exact actions with their resolved parameters, the highest risk of
    those actions, the decision's business impact, and why (the analysis's reasons, the governor's)."""
    levels = ["low", "medium", "high", "critical"]
    risk = max(
        (a.risk_level for a in plan.actions),
        key=lambda r: levels.index(r) if r in levels else 0,
        default="low",
    )
    demoted = demoted or {}
    learning = _demotion_reason(demoted) if demoted else ""
    reasons = [r for r in (str(decision.approval.get("reason") or ""), governor_reason or "", learning) if r]
    event = decision.inputs.get("event") if isinstance(decision.inputs.get("event"), dict) else {}
    return ApprovalRequest(
        execution_id=execution_id,
        plan_hash=plan_hash(plan),
        requested_by=requested_by,
        risk_level=risk,
        business_impact=str(decision.analysis.get("business_impact") or "unknown"),
        reason=" ".join(reasons) or "approval required",
        actions=[
            {
                "action_id": a.action_id,
                "key": a.key,
                "name": a.name,
                "action_type": a.action_type,
                "script": a.script,
                "parameters": a.parameters,
                "depends_on": list(a.depends_on),
                "risk_level": a.risk_level,
                "approval_required": a.approval_required or a.key in demoted,
            }
            for a in plan.actions
        ],
        context={
            "event": {**(event or {}), "id": decision.event_id, "host": decision.target},
            "decision": {
                "id": decision.decision_id,
                "recommended_action": decision.analysis.get("recommended_action"),
                "template": decision.template_id,
            },
        },
    )


def _demotion_reason(demoted: dict[str, str]) -> str:
    """The Analyzer's words for a demotion (analysis/analyzer.py), one clause per demoted action."""
    return "; ".join(
        f"{key}: learning demoted it to approval required ({why})" for key, why in demoted.items()
    )


def _plan_document(
    plan: ExecutionPlan, decision: StoredDecision, *, automatic: bool = False
) -> dict[str, Any]:
    """The plan as stored, plus what the run reads about the event and whether the automatic loop started
    it without a person (neither is part of the hash)."""
    document: dict[str, Any] = msgspec.to_builtins(plan)
    document["automatic"] = automatic
    document["event"] = {
        "id": decision.event_id,
        "host": decision.target,
        "fingerprint": decision.fingerprint,
        "event_type": _event_type(decision),
    }
    document["pattern_id"] = decision.pattern_id
    return document


def _event_type(decision: StoredDecision) -> str:
    event = decision.inputs.get("event")
    if isinstance(event, dict) and isinstance(event.get("event_type"), str):
        return str(event["event_type"])
    value = decision.inputs.get("event_type")
    return value if isinstance(value, str) else ""
