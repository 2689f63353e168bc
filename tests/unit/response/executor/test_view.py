"""The execution as the API shows it: progress, the estimate, rollback steps named after what they undo."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from opsresponder.response.executor.view import execution_view
from opsresponder.store.executions import ActionRow, ExecutionRow, LogRow, StoredExecution

T0 = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)


def _action(key: str, minutes: float, **fields: Any) -> dict[str, Any]:
    return {"key": key, "name": key.title(), "estimated_duration_minutes": minutes, "script": "s", **fields}


def stored(status: str, actions: list[ActionRow], **fields: Any) -> StoredExecution:
    plan = {
        "actions": [_action("a", 2), _action("b", 5, required=True), _action("c", 1)],
        "levels": [["a", "b"], ["c"]],
        "rollback_scripts": {"a": "undo_a"},
        "rollback_actions": [{"key": "r", "name": "Restore", "script": "restore", "condition": "b.failed"}],
    }
    values: dict[str, Any] = {
        "id": 12,
        "decision_id": 3,
        "event_id": 4,
        "target": "web-01",
        "template_id": "t",
        "template_version": "1",
        "status": status,
        "dry_run": False,
        "requested_by": "alice",
        "options": {},
        "plan": plan,
        "plan_hash": "h",
        "max_minutes": 30,
        "created_at": T0,
        "started_at": T0,
        "completed_at": None,
        "deadline_at": None,
        "owner": "p",
        "lease_until": None,
        "error": None,
        "cancel_requested": False,
        "rollback_requested": False,
        "rollback_status": None,
        "criteria": None,
    }
    values.update(fields)
    log = LogRow(id=1, execution_id=12, at=T0, level="info", message="Queued.", action_id=7, action_key="a")
    return StoredExecution(execution=ExecutionRow(**values), actions=actions, logs=[log])


def row(key: str, status: str, phase: str = "action", **fields: Any) -> ActionRow:
    return ActionRow(
        execution_id=12, phase=phase, action_key=key, action_id=7, position=0, status=status, **fields
    )


def test_progress_estimate_and_names() -> None:
    result = {
        "success": True,
        "output": "ok",
        "metrics": {"cpu": 1.5},
        "duration_seconds": 1.25,
        "exit_code": 0,
    }
    view = execution_view(
        stored(
            "running",
            [
                row("a", "completed", started_at=T0, completed_at=T0 + timedelta(seconds=2), result=result),
                row("b", "running", started_at=T0),
                row("c", "queued"),
            ],
        ),
        T0,
    )
    assert view.execution_id == "exec_12"
    assert (view.progress.current_step, view.progress.total_steps, view.progress.percentage_complete) == (
        2,
        3,
        33,
    )
    # The longest level chain: max(2, 5) + 1 minutes from the start.
    assert view.estimated_completion == T0 + timedelta(minutes=6)
    a = view.actions[0]
    assert a.duration_seconds == 1.25 and a.result is not None and a.result.metrics == {"cpu": 1.5}
    assert view.actions[1].required and view.actions[1].result is None
    assert [(s.key, s.undoes, s.condition) for s in view.rollback_plan.rollback_actions] == [
        ("a", "a", None),
        ("r", None, "b.failed"),
    ]
    assert view.logs[0].action_id == 7 and view.logs[0].timestamp == T0


def test_rollback_rows_and_finished_execution() -> None:
    done = T0 + timedelta(minutes=1)
    view = execution_view(
        stored(
            "rolled_back",
            [
                row("a", "rolled_back"),
                row("a", "completed", phase="rollback"),
                row("r", "failed", phase="rollback"),
            ],
            completed_at=done,
        ),
        T0,
    )
    assert view.estimated_completion == done
    assert [(a.phase, a.name, a.script) for a in view.actions] == [
        ("action", "A", "s"),
        ("rollback", "Undo A", "undo_a"),
        ("rollback", "Restore", "restore"),
    ]
    assert view.progress.total_steps == 1 and view.progress.percentage_complete == 100
