"""Executions run with real scripts on the test database: DAG order and parallelism, required and
optional failures, rollback order and template rollback actions, criteria, notifications, outcomes."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import msgspec

from opsresponder.response.executor.options import ExecutionOptions, NotificationPreferences
from opsresponder.response.executor.view import ActionView, ExecutionView
from opsresponder.rules.templates import ResponseTemplate
from opsresponder.rules.templates.model import RollbackAction, TemplateAction
from tests.integration.response.executor.harness import Rig, action, decision, journal_lines, make_rig


def by_key(view: ExecutionView, phase: str = "action") -> dict[str, ActionView]:
    return {a.key: a for a in view.actions if a.phase == phase}


async def finished(rig: Rig, execution_id: str) -> ExecutionView:
    await rig.service.run_until_idle()
    view = await rig.service.get(execution_id)
    assert view is not None
    return view


async def test_dag_runs_dependencies_first_and_independent_actions_in_parallel(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path, max_parallel_actions=2)
    plan = decision(
        action("a", sleep=0.4),
        action("b", sleep=0.4),
        action("c", depends_on=["a", "b"]),
    )
    submitted = await rig.service.submit(plan, None, ExecutionOptions(), requested_by="alice", approved=True)
    assert submitted.status == "queued"
    assert submitted.progress.total_steps == 3
    view = await finished(rig, submitted.execution_id)

    assert view.status == "completed", view.logs
    a, b, c = (by_key(view)[k] for k in "abc")
    assert all(x.status == "completed" for x in (a, b, c))
    assert a.started_at and b.started_at and c.started_at and a.completed_at and b.completed_at
    # a and b overlap (two at once); c starts only after both ended.
    assert b.started_at < a.completed_at and a.started_at < b.completed_at
    assert c.started_at >= max(a.completed_at, b.completed_at)
    assert a.result is not None and a.result.success and a.result.metrics["cpu_usage"] == 42.5
    assert view.progress.percentage_complete == 100
    answer = msgspec.json.decode(msgspec.json.encode(view))
    assert answer["execution_id"] == view.execution_id and answer["actions"][0]["result"]["success"] is True
    assert any(log.action_id == a.action_id and "Starting" in log.message for log in view.logs)


async def test_parallel_limit_of_one_runs_ready_actions_one_after_the_other(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path, max_parallel_actions=1)
    plan = decision(action("a", sleep=0.2), action("b", sleep=0.2))
    submitted = await rig.service.submit(plan, None, ExecutionOptions(), requested_by="alice", approved=True)
    view = await finished(rig, submitted.execution_id)
    a, b = by_key(view)["a"], by_key(view)["b"]
    assert a.completed_at is not None and b.started_at is not None
    assert b.started_at >= a.completed_at


async def test_failed_optional_action_skips_its_dependants_only(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path)
    plan = decision(
        action("x", exit=3),
        action("y", depends_on=["x"]),
        action("z", depends_on=["y"]),
        action("w"),
    )
    submitted = await rig.service.submit(plan, None, ExecutionOptions(), requested_by="alice", approved=True)
    view = await finished(rig, submitted.execution_id)

    states = {k: a.status for k, a in by_key(view).items()}
    assert states == {"x": "failed", "y": "skipped", "z": "skipped", "w": "completed"}
    assert view.status == "completed"
    assert by_key(view)["x"].error_message == "exit code 3" or "3" in (by_key(view)["x"].error_message or "")
    assert any("is skipped" in log.message and log.action_key == "y" for log in view.logs)


async def test_failed_required_action_fails_the_execution_and_starts_nothing_more(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path, max_parallel_actions=2)
    journal = tmp_path / "journal"
    plan = decision(
        action("must", exit=1, required=True, journal=str(journal)),
        action("slow", sleep=0.5, journal=str(journal)),
        action("after", depends_on=["must"], journal=str(journal)),
        action("later", depends_on=["slow"], journal=str(journal)),
    )
    options = ExecutionOptions(rollback_on_failure=False)
    submitted = await rig.service.submit(plan, None, options, requested_by="alice", approved=True)
    view = await finished(rig, submitted.execution_id)

    states = {k: a.status for k, a in by_key(view).items()}
    # The running optional action finishes; nothing new starts.
    assert states == {"must": "failed", "slow": "completed", "after": "skipped", "later": "skipped"}
    assert view.status == "failed"
    assert view.error is not None and "required action 'must' failed" in view.error
    assert not any(line.startswith(("after", "later")) for line in journal_lines(journal))
    assert view.rollback_status is None
    # Outcomes recorded once the execution ended.
    assert {o.action_key: o.status for o in rig.outcomes.recorded} == states
    assert all(o.event_type == "threshold_breach" and o.pattern_id == "pat-1" for o in rig.outcomes.recorded)


async def test_failure_rolls_back_completed_actions_in_reverse_completion_order(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path, lock_per_target=False)
    journal = tmp_path / "journal"
    plan = decision(
        action("first", script="fix", action_type="remediation", journal=str(journal)),
        action("second", script="fix", action_type="remediation", depends_on=["first"], journal=str(journal)),
        action("look", journal=str(journal)),
        action("broken", exit=2, required=True, depends_on=["second"], journal=str(journal)),
    )
    submitted = await rig.service.submit(plan, None, ExecutionOptions(), requested_by="alice", approved=True)
    assert submitted.rollback_plan.supported
    assert [s.undoes for s in submitted.rollback_plan.rollback_actions] == ["first", "second"]
    view = await finished(rig, submitted.execution_id)

    assert view.status == "rolled_back", view.logs
    assert view.rollback_status == "completed"
    assert view.error is not None and "broken" in view.error
    undo = [line.split()[1] for line in journal_lines(journal) if line.startswith("undo") and " end " in line]
    assert undo == ["second", "first"]
    steps = by_key(view, "rollback")
    assert set(steps) == {"first", "second"}
    assert steps["second"].completed_at is not None and steps["first"].started_at is not None
    assert steps["first"].started_at >= steps["second"].completed_at
    states = {k: a.status for k, a in by_key(view).items()}
    assert states == {
        "first": "rolled_back",
        "second": "rolled_back",
        "look": "completed",
        "broken": "failed",
    }
    assert {o.action_key for o in rig.outcomes.recorded if o.rolled_back} == {"first", "second"}


async def test_template_rollback_actions_run_when_their_condition_holds(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path, lock_per_target=False)
    journal = tmp_path / "journal"
    template = ResponseTemplate(
        id="cpu_fix",
        name="CPU fix",
        version="3",
        actions=[
            TemplateAction(id="check", name="Check", type="diagnostic", automation_script="step"),
            TemplateAction(id="repair", name="Repair", type="remediation", automation_script="cleanup"),
            TemplateAction(id="unused", name="Unused", type="diagnostic", automation_script="step"),
        ],
        rollback_actions=[
            RollbackAction(
                id="restore",
                name="Restore",
                automation_script="cleanup",
                parameters={"name": "restore", "journal": str(journal)},
                condition="repair.failed && check.result.value == 7",
            ),
            RollbackAction(
                id="never",
                name="Never",
                automation_script="cleanup",
                parameters={"name": "never", "journal": str(journal)},
                condition="repair.succeeded",
            ),
        ],
        success_criteria=["check.result.value > {{ threshold }}", "repair.succeeded"],
        failure_criteria=["repair.failed", "unused.succeeded"],
        max_execution_time_minutes=10,
    )
    await rig.templates.create(template, "tester")
    plan = decision(
        action("check", journal=str(journal)),
        action(
            "repair", script="cleanup", action_type="remediation", exit=1, required=True, depends_on=["check"]
        ),
        template=("cpu_fix", "3"),
    )
    submitted = await rig.service.submit(plan, None, ExecutionOptions(), requested_by="alice", approved=True)
    assert [s.key for s in submitted.rollback_plan.rollback_actions] == ["restore", "never"]
    view = await finished(rig, submitted.execution_id)

    assert view.status == "rolled_back", view.logs
    assert [line.split()[0] for line in journal_lines(journal) if " end " in line] == ["check", "restore"]
    assert set(by_key(view, "rollback")) == {"restore"}
    assert any("'never' not run: its condition is false" in log.message for log in view.logs)
    assert view.criteria is not None
    assert [c["value"] for c in view.criteria["success_criteria"]] == [True, False]
    assert [c["value"] for c in view.criteria["failure_criteria"]] == [True, False]
    assert view.criteria["succeeded"] is False


async def test_notifications_on_start_and_failure_and_notification_actions(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path)
    plan = decision(
        action("alert", script=None, action_type="notification"),
        action("bad", exit=1, required=True, depends_on=["alert"]),
    )
    plan.recommended_actions[0].message_template = "high_cpu_alert"
    plan.recommended_actions[0].channels = ["slack"]
    preferences = NotificationPreferences(
        notify_on_start=True, notify_on_completion=True, notify_on_failure=True
    )
    options = ExecutionOptions(notification_preferences=preferences, rollback_on_failure=False)
    submitted = await rig.service.submit(plan, None, options, requested_by="alice", approved=True)
    view = await finished(rig, submitted.execution_id)

    assert view.status == "failed"
    assert rig.notes.templates() == ["execution_started", "high_cpu_alert", "execution_failed"]
    alert = by_key(view)["alert"]
    assert alert.status == "completed" and alert.result is not None and alert.result.output == "slack: sent"
    sent = rig.notes.sent[1]
    assert sent.channels == ("slack",) and sent.context["event"]["host"] == "web-01"
    assert sent.context["threshold"] == 5


async def test_a_failing_notifier_is_logged_and_never_fails_the_execution(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path)
    rig.notes.raise_error = True
    preferences = NotificationPreferences(notify_on_start=True, notify_on_completion=True)
    options = ExecutionOptions(notification_preferences=preferences)
    submitted = await rig.service.submit(
        decision(action("a")), None, options, requested_by="a", approved=True
    )
    view = await finished(rig, submitted.execution_id)
    assert view.status == "completed"
    assert sum("notification failed" in log.message for log in view.logs) == 2


async def test_failure_whose_rollback_conditions_all_fail_stays_failed(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path, lock_per_target=False)
    template = ResponseTemplate(
        id="only_conditional",
        name="Only conditional",
        version="1",
        actions=[TemplateAction(id="bad", name="Bad", type="diagnostic", automation_script="step")],
        rollback_actions=[
            RollbackAction(
                id="restore", name="Restore", automation_script="cleanup", condition="bad.succeeded"
            )
        ],
    )
    await rig.templates.create(template, "tester")
    plan = decision(action("bad", exit=1, required=True), template=("only_conditional", "1"))
    submitted = await rig.service.submit(plan, None, ExecutionOptions(), requested_by="alice", approved=True)
    view = await finished(rig, submitted.execution_id)
    assert view.status == "failed" and view.rollback_status == "completed"
    assert not by_key(view, "rollback")
    assert any(log.message.startswith("Nothing was rolled back") for log in view.logs)
