"""What the API answers about an execution (service-spec.md "Execute Autonomous Action" and "Execution
Status Tracking"), made from the stored rows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec

from opsresponder.store.executions import ActionRow, StoredExecution

_FINISHED_ACTION = frozenset(
    {"completed", "failed", "timed_out", "skipped", "cancelled", "interrupted", "rolled_back"}
)


class Progress(msgspec.Struct, kw_only=True):
    current_step: int
    total_steps: int
    percentage_complete: int


class ActionResultView(msgspec.Struct, kw_only=True):
    success: bool
    output: str = ""
    metrics: dict[str, float] = msgspec.field(default_factory=dict)
    data: dict[str, Any] | None = None
    exit_code: int | None = None
    stderr: str = ""
    timed_out: bool = False
    truncated: bool = False


class ActionView(msgspec.Struct, kw_only=True):
    """One action (phase ``action``) or rollback step (phase ``rollback``).

    ``preview`` is a dry run's (and a pending execution's) resolved ``parameters`` and ``argv``."""

    action_id: int | None
    key: str
    name: str
    phase: str
    status: str
    script: str | None = None
    required: bool = False
    depends_on: list[str] = msgspec.field(default_factory=list)
    risk_level: str | None = None
    approval_required: bool = False
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_seconds: float | None = None
    result: ActionResultView | None = None
    error_message: str | None = None
    preview: dict[str, Any] | None = None
    attempt: int = 0


class RollbackActionView(msgspec.Struct, kw_only=True):
    key: str
    name: str
    script: str
    undoes: str | None = None
    """The action key this step undoes (None: a template rollback action)."""
    condition: str | None = None


class RollbackPlan(msgspec.Struct, kw_only=True):
    supported: bool
    rollback_actions: list[RollbackActionView] = msgspec.field(default_factory=list)


class LogView(msgspec.Struct, kw_only=True):
    timestamp: datetime
    level: str
    message: str
    action_id: int | None = None
    action_key: str | None = None


class VerificationView(msgspec.Struct, kw_only=True):
    """Closed-loop verification (docs/response.md "Verification"): ``pending`` until decided, then
    ``passed`` or ``failed`` with the reason; ``next_check_at`` while pending."""

    status: str
    reason: str
    checked_at: datetime | None = None
    next_check_at: datetime | None = None


class ExecutionView(msgspec.Struct, kw_only=True):
    """An execution as the API shows it.

    ``criteria``: the success and failure criteria's outcomes once the actions ended
    (``{"success_criteria": [{"expression", "value", "reason"}], "failure_criteria": [...],
    "succeeded": bool | null}``), None before. ``estimated_completion``: the start (or now, while
    queued) plus the longest chain of estimated durations.
    """

    execution_id: str
    decision_id: int
    event_id: int
    target: str | None
    template_id: str | None
    template_version: str | None
    status: str
    dry_run: bool
    requested_by: str
    plan_hash: str
    options: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    estimated_completion: datetime | None
    progress: Progress
    actions: list[ActionView]
    rollback_plan: RollbackPlan
    logs: list[LogView]
    error: str | None
    cancel_requested: bool
    rollback_status: str | None
    criteria: dict[str, Any] | None
    verification: VerificationView | None = None


def execution_view(stored: StoredExecution, now: datetime) -> ExecutionView:
    e = stored.execution
    plan_actions = {a["key"]: a for a in e.plan.get("actions", [])}
    rollback_steps = {s["key"]: s for s in e.plan.get("rollback_actions", [])}
    actions = [_action_view(row, plan_actions, rollback_steps, e.plan) for row in stored.actions]
    main = [a for a in actions if a.phase == "action"]
    finished = sum(1 for a in main if a.status in _FINISHED_ACTION)
    started = sum(1 for a in main if a.status in _FINISHED_ACTION or a.status == "running")
    total = len(main)
    return ExecutionView(
        execution_id=e.execution_id,
        decision_id=e.decision_id,
        event_id=e.event_id,
        target=e.target,
        template_id=e.template_id,
        template_version=e.template_version,
        status=e.status,
        dry_run=e.dry_run,
        requested_by=e.requested_by,
        plan_hash=e.plan_hash,
        options=e.options,
        created_at=e.created_at,
        started_at=e.started_at,
        completed_at=e.completed_at,
        estimated_completion=_estimate(e.plan, e.started_at, e.completed_at, e.status, now),
        progress=Progress(
            current_step=started,
            total_steps=total,
            percentage_complete=round(100 * finished / total) if total else 100,
        ),
        actions=actions,
        rollback_plan=_rollback_plan(e.plan),
        logs=[
            LogView(
                timestamp=log.at,
                level=log.level,
                message=log.message,
                action_id=log.action_id,
                action_key=log.action_key,
            )
            for log in stored.logs
        ],
        error=e.error,
        cancel_requested=e.cancel_requested,
        rollback_status=e.rollback_status,
        criteria=e.criteria,
        verification=_verification(stored.verification),
    )


def _verification(stored: dict[str, Any] | None) -> VerificationView | None:
    if stored is None:
        return None
    pending = stored["status"] == "pending"
    return VerificationView(
        status="failed" if stored["status"] == "acting" else stored["status"],  # acting: failed, acting on it
        reason=stored["reason"],
        checked_at=stored["checked_at"],
        next_check_at=stored["due_at"] if pending else None,
    )


def _action_view(
    row: ActionRow,
    plan_actions: dict[str, dict[str, Any]],
    rollback_steps: dict[str, dict[str, Any]],
    plan: dict[str, Any],
) -> ActionView:
    duration = None
    if row.started_at is not None and row.completed_at is not None:
        duration = round((row.completed_at - row.started_at).total_seconds(), 3)
    result: ActionResultView | None = None
    preview: dict[str, Any] | None = None
    if row.result is not None:
        if "preview" in row.result:
            preview = row.result["preview"]
        else:
            result = msgspec.convert(row.result, ActionResultView)
            duration = row.result.get("duration_seconds", duration)
    if row.phase == "action":
        spec = plan_actions.get(row.action_key, {})
        return ActionView(
            action_id=row.action_id,
            key=row.action_key,
            name=spec.get("name", row.action_key),
            phase=row.phase,
            status=row.status,
            script=spec.get("script"),
            required=bool(spec.get("required", False)),
            depends_on=list(spec.get("depends_on", [])),
            risk_level=spec.get("risk_level"),
            approval_required=bool(spec.get("approval_required", False)),
            started_at=row.started_at,
            completed_at=row.completed_at,
            duration_seconds=duration,
            result=result,
            error_message=row.error,
            preview=preview,
            attempt=row.attempt,
        )
    step = rollback_steps.get(row.action_key)
    undone = plan_actions.get(row.action_key)
    if undone is not None:
        name = f"Undo {undone.get('name', row.action_key)}"
        script = plan.get("rollback_scripts", {}).get(row.action_key)
    else:
        name = step["name"] if step else row.action_key
        script = step["script"] if step else None
    return ActionView(
        action_id=row.action_id,
        key=row.action_key,
        name=name,
        phase=row.phase,
        status=row.status,
        script=script,
        started_at=row.started_at,
        completed_at=row.completed_at,
        duration_seconds=duration,
        result=result,
        error_message=row.error,
        attempt=row.attempt,
    )


def _rollback_plan(plan: dict[str, Any]) -> RollbackPlan:
    names = {a["key"]: a.get("name", a["key"]) for a in plan.get("actions", [])}
    steps = [
        RollbackActionView(key=key, name=f"Undo {names.get(key, key)}", script=script, undoes=key)
        for key, script in plan.get("rollback_scripts", {}).items()
    ]
    steps.extend(
        RollbackActionView(key=s["key"], name=s["name"], script=s["script"], condition=s.get("condition"))
        for s in plan.get("rollback_actions", [])
    )
    return RollbackPlan(supported=bool(steps), rollback_actions=steps)


def _estimate(
    plan: dict[str, Any],
    started_at: datetime | None,
    completed_at: datetime | None,
    status: str,
    now: datetime,
) -> datetime | None:
    if completed_at is not None:
        return completed_at
    if status in ("dry_run", "pending_approval", "cancelled", "interrupted"):
        return None
    minutes = {a["key"]: float(a.get("estimated_duration_minutes", 0.0)) for a in plan.get("actions", [])}
    total = sum(max((minutes.get(k, 0.0) for k in level), default=0.0) for level in plan.get("levels", []))
    return (started_at or now) + timedelta(minutes=total)
