"""The per-target lock's failure cases: the deadline passing while the lock is awaited (nothing ran, so
nothing may read as failed nor be rolled back), and the lock lost while the execution runs (it stops
changing the target, and its rollback waits for the lock again)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import asyncpg

from opsresponder.response.executor.options import ExecutionOptions
from opsresponder.rules.templates import ResponseTemplate
from opsresponder.rules.templates.model import RollbackAction, TemplateAction
from tests.integration.response.executor.harness import Rig, action, decision, journal_lines, make_rig
from tests.integration.response.runners.test_script import alive
from tests.waiting import eventually

LOCK = "exec-target:web-01"


async def logged(rig: Rig, execution_id: str, message: str) -> bool:
    current = await rig.service.get(execution_id)
    return current is not None and any(line.message == message for line in current.logs)


async def test_a_deadline_passed_waiting_for_the_lock_runs_no_rollback_and_reads_as_skipped(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path)
    marker = tmp_path / "restored"
    template = ResponseTemplate(
        id="guarded_fix",
        name="Guarded fix",
        version="1",
        actions=[TemplateAction(id="fix", name="Fix", type="remediation", automation_script="fix")],
        rollback_actions=[
            RollbackAction(
                id="restore",
                name="Restore",
                automation_script="cleanup",
                parameters={"name": "restore", "touch": str(marker)},
                condition="fix.failed",
            )
        ],
        success_criteria=["fix.skipped"],
        failure_criteria=["fix.failed", "any_action_failed"],
    )
    await rig.templates.create(template, "tester")
    await rig.state.acquire_lock(LOCK, "another-execution", 60)
    submitted = await rig.service.submit(
        decision(action("fix", script="fix", action_type="remediation"), template=("guarded_fix", "1")),
        None,
        ExecutionOptions(max_execution_time_minutes=1),
        requested_by="b",
        approved=True,
    )
    worker = asyncio.create_task(rig.service.run_until_idle())
    await eventually(
        lambda: logged(rig, submitted.execution_id, "Waiting for the lock on web-01."),
        what="the execution to wait for the lock",
    )
    rig.clock.advance(timedelta(seconds=61))
    async with asyncio.timeout(10):
        await worker

    final = await rig.service.get(submitted.execution_id)
    assert final is not None
    assert final.status == "failed" and final.rollback_status is None, final.logs
    assert final.error is not None and "time limit (1 min)" in final.error
    [fix] = final.actions  # no rollback step was added
    assert fix.status == "cancelled" and fix.started_at is None
    assert not marker.exists(), "a rollback action ran although nothing ran, and without the lock"
    assert any(line.message == "Nothing was rolled back: no action started." for line in final.logs)
    assert final.criteria is not None
    assert [c["value"] for c in final.criteria["success_criteria"]] == [True]
    assert [c["value"] for c in final.criteria["failure_criteria"]] == [False, False]
    assert await rig.state.lock_owner(LOCK) == "another-execution"


async def test_a_lost_lock_stops_the_run_and_its_rollback_waits_for_the_lock(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path, lock_ttl_seconds=1.5)
    journal, pid_file = tmp_path / "journal", tmp_path / "pid"
    plan = decision(
        action("done", script="fix", action_type="remediation", journal=str(journal)),
        action(
            "hang", script="fix", action_type="remediation", depends_on=["done"], hang="true",
            pid_file=str(pid_file), timeout=60,
        ),
        action("look", depends_on=["done"], sleep=2.5, journal=str(journal)),
        action("later", depends_on=["look"], journal=str(journal)),
    )  # fmt: skip
    submitted = await rig.service.submit(plan, None, ExecutionOptions(), requested_by="b", approved=True)
    worker = asyncio.create_task(rig.service.run_until_idle())
    await eventually(lambda: pid_file.exists() and pid_file.read_text() != "", what="the hanging fix")
    # The lock expires under the execution (a stalled renewal) and another execution takes it.
    token = await rig.state.lock_owner(LOCK)
    assert token is not None and token.endswith(submitted.execution_id)
    assert await rig.state.release_lock(LOCK, token)
    assert await rig.state.acquire_lock(LOCK, "thief", 60)

    await eventually(
        lambda: logged(rig, submitted.execution_id, "Waiting for the lock on web-01."),
        what="the rollback to wait for the lock",
    )
    await eventually(lambda: not alive(int(pid_file.read_text())), what="the target-changing action killed")
    assert not any(line.startswith("undo") for line in journal_lines(journal))  # not while the thief holds it
    assert await rig.state.release_lock(LOCK, "thief")
    async with asyncio.timeout(15):
        await worker

    final = await rig.service.get(submitted.execution_id)
    assert final is not None
    assert final.status == "rolled_back", final.logs
    assert final.error == "lost the target lock"
    assert {a.key: a.status for a in final.actions if a.phase == "action"} == {
        "done": "rolled_back",
        "hang": "cancelled",  # changes the target: cancelled
        "look": "completed",  # a diagnostic already running may finish
        "later": "skipped",  # nothing starts any more
    }
    assert [line.split()[:2] for line in journal_lines(journal) if line.startswith("undo")] == [
        ["undo", "done"],
        ["undo", "done"],
    ]
    assert "later start" not in " ".join(journal_lines(journal))
    assert await rig.state.lock_owner(LOCK) is None
