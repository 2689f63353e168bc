"""What an operator does to executions: dry run, pending approval, cancel (local and from another
process) killing a hanging script, the rollback endpoint, the 409 cases, and the time limit."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import asyncpg
import msgspec
import pytest

from opsresponder.response.executor.errors import ExecutionNotFound, ExecutionStateError
from opsresponder.response.executor.options import ExecutionOptions
from opsresponder.response.executor.plan import ExecutionPlan, PlanError, plan_hash
from opsresponder.response.executor.view import ExecutionView
from opsresponder.store.executions import parse_execution_id
from tests.integration.response.executor.harness import Rig, action, decision, make_rig
from tests.integration.response.runners.test_script import alive
from tests.waiting import eventually


async def view_of(rig: Rig, execution_id: str) -> ExecutionView:
    view = await rig.service.get(execution_id)
    assert view is not None
    return view


async def test_dry_run_resolves_everything_and_runs_nothing(db_pool: asyncpg.Pool, tmp_path: Path) -> None:
    rig = make_rig(db_pool, tmp_path)
    marker = tmp_path / "created-by-the-script"
    plan = decision(action("make", script="fix", action_type="remediation", touch=str(marker), sleep=0.0))
    view = await rig.service.submit(
        plan, None, ExecutionOptions(dry_run=True), requested_by="bob", approved=False
    )

    assert view.status == "dry_run" and view.dry_run
    make = view.actions[0]
    assert make.status == "would_run"
    assert make.preview is not None
    assert make.preview["parameters"]["touch"] == str(marker)
    assert f"--touch={marker}" in make.preview["argv"]
    assert view.rollback_plan.supported
    await rig.service.run_until_idle()
    assert not marker.exists()
    assert (await view_of(rig, view.execution_id)).status == "dry_run"
    # The stored plan hashes to what the execution shows (what an approval token will be bound to).
    row_id = parse_execution_id(view.execution_id)
    assert row_id is not None
    stored = await rig.repository.get(row_id)
    assert stored is not None
    assert plan_hash(msgspec.convert(stored.execution.plan, ExecutionPlan)) == view.plan_hash


async def test_submit_refuses_a_parameter_the_runner_would_refuse(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path)
    with pytest.raises(PlanError) as refused:
        await rig.service.submit(
            decision(action("a", sleep="soon")),
            None,
            ExecutionOptions(dry_run=True),
            requested_by="b",
            approved=True,
        )
    assert refused.value.field.startswith("actions[")
    assert "'sleep' must be a float, not string" in refused.value.reason


async def test_pending_approval_runs_nothing_until_queued(db_pool: asyncpg.Pool, tmp_path: Path) -> None:
    rig = make_rig(db_pool, tmp_path)
    marker = tmp_path / "marker"
    plan = decision(
        action("risky", script="fix", action_type="remediation", approval_required=True, touch=str(marker))
    )
    view = await rig.service.submit(plan, None, ExecutionOptions(), requested_by="bob", approved=False)
    assert view.status == "pending_approval"
    assert view.actions[0].status == "queued" and view.actions[0].preview is not None
    await rig.service.run_until_idle()
    assert not marker.exists()

    # The approvals issue's seam: pending -> queued in one repository call; then it runs.
    row_id = parse_execution_id(view.execution_id)
    assert row_id is not None
    queued = await rig.repository.queue_pending(row_id, now=rig.clock(), by="carol")
    assert queued.allowed and queued.status == "queued"
    assert not (await rig.repository.queue_pending(row_id, now=rig.clock(), by="carol")).allowed
    await rig.service.run_until_idle()
    assert marker.exists()
    assert (await view_of(rig, view.execution_id)).status == "completed"


async def test_approved_submission_of_an_approval_action_is_queued(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path)
    plan = decision(action("risky", approval_required=True))
    view = await rig.service.submit(plan, None, ExecutionOptions(), requested_by="bob", approved=True)
    assert view.status == "queued"


async def test_cancel_of_queued_and_pending_executions_and_409s(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path)
    queued = await rig.service.submit(
        decision(action("a")), None, ExecutionOptions(), requested_by="b", approved=True
    )
    cancelled = await rig.service.cancel(queued.execution_id, by="carol")
    assert cancelled.status == "cancelled"
    assert [a.status for a in cancelled.actions] == ["cancelled"]
    with pytest.raises(ExecutionStateError) as again:
        await rig.service.cancel(queued.execution_id, by="carol")
    assert again.value.status == "cancelled"
    with pytest.raises(ExecutionStateError):
        await rig.service.rollback(queued.execution_id, by="carol")  # nothing completed to undo

    dry = await rig.service.submit(
        decision(action("a")), None, ExecutionOptions(dry_run=True), requested_by="b", approved=True
    )
    with pytest.raises(ExecutionStateError):
        await rig.service.cancel(dry.execution_id, by="carol")
    with pytest.raises(ExecutionStateError):
        await rig.service.rollback(dry.execution_id, by="carol")
    for missing in ("exec_999999", "999", "exec_x", "exec_"):
        with pytest.raises(ExecutionNotFound):
            await rig.service.cancel(missing, by="carol")
        assert await rig.service.get(missing) is None


@pytest.mark.parametrize("where", ["here", "other_process"])
async def test_cancel_mid_run_kills_the_hanging_script(
    db_pool: asyncpg.Pool, tmp_path: Path, where: str
) -> None:
    rig = make_rig(db_pool, tmp_path)
    other = make_rig(db_pool, tmp_path, owner="api-only")  # answers the API, runs nothing
    pid_file = tmp_path / "pid"
    plan = decision(
        action("hang", hang="true", pid_file=str(pid_file), timeout=60),
        action("next", depends_on=["hang"]),
    )
    view = await rig.service.submit(plan, None, ExecutionOptions(), requested_by="b", approved=True)
    worker = asyncio.create_task(rig.service.run_until_idle())
    await eventually(lambda: pid_file.exists() and pid_file.read_text() != "", what="the script's pid")
    pid = int(pid_file.read_text())
    with pytest.raises(ExecutionStateError):
        await rig.service.rollback(view.execution_id, by="carol")  # running: 409

    answering = rig if where == "here" else other
    answered = await answering.service.cancel(view.execution_id, by="carol")
    assert answered.status in ("running", "cancelled")
    async with asyncio.timeout(15):
        await worker
    final = await view_of(rig, view.execution_id)
    assert final.status == "cancelled", final.logs
    states = {a.key: a.status for a in final.actions}
    assert states == {"hang": "cancelled", "next": "cancelled"}
    await eventually(lambda: not alive(pid), what="the hanging script (ignoring SIGTERM) to be killed")
    assert any("Cancel requested by carol" in log.message for log in final.logs)
    with pytest.raises(ExecutionStateError):
        await rig.service.cancel(view.execution_id, by="carol")


async def test_rollback_endpoint_undoes_completed_actions_in_reverse(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path)
    other = make_rig(db_pool, tmp_path, owner="worker-2")
    journal = tmp_path / "journal"
    plan = decision(
        action("one", script="fix", action_type="remediation", journal=str(journal)),
        action("two", script="fix", action_type="remediation", depends_on=["one"], journal=str(journal)),
        action("look"),
    )
    view = await rig.service.submit(plan, None, ExecutionOptions(), requested_by="b", approved=True)
    await rig.service.run_until_idle()
    assert (await view_of(rig, view.execution_id)).status == "completed"

    asked = await rig.service.rollback(view.execution_id, by="carol")
    assert asked.status == "rolling_back" and asked.rollback_status == "queued"
    with pytest.raises(ExecutionStateError):
        await rig.service.rollback(view.execution_id, by="carol")
    with pytest.raises(ExecutionStateError):
        await rig.service.cancel(view.execution_id, by="carol")
    await other.service.run_until_idle()  # any process takes a queued rollback

    final = await view_of(rig, view.execution_id)
    assert final.status == "rolled_back", final.logs
    assert final.rollback_status == "completed"
    undone = [
        line.split()[1]
        for line in journal.read_text().splitlines()
        if line.startswith("undo") and "end" in line
    ]
    assert undone == ["two", "one"]
    assert {a.key: a.status for a in final.actions if a.phase == "action"} == {
        "one": "rolled_back",
        "two": "rolled_back",
        "look": "completed",
    }
    with pytest.raises(ExecutionStateError) as twice:
        await rig.service.rollback(view.execution_id, by="carol")
    assert twice.value.status == "rolled_back"


async def test_execution_time_limit_cancels_running_actions_and_fails(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path)
    pid_file = tmp_path / "pid"
    plan = decision(action("hang", hang="true", pid_file=str(pid_file), timeout=600))
    options = ExecutionOptions(max_execution_time_minutes=1, rollback_on_failure=False)
    view = await rig.service.submit(plan, None, options, requested_by="b", approved=True)
    worker = asyncio.create_task(rig.service.run_until_idle())
    await eventually(lambda: pid_file.exists() and pid_file.read_text() != "", what="the script's pid")
    rig.clock.advance(timedelta(seconds=61))
    async with asyncio.timeout(15):
        await worker
    final = await view_of(rig, view.execution_id)
    assert final.status == "failed"
    assert final.error is not None and "time limit (1 min)" in final.error
    assert final.actions[0].status == "cancelled"
    await eventually(lambda: not alive(int(pid_file.read_text())), what="the script to be killed")


async def test_list_filters_and_counts(db_pool: asyncpg.Pool, tmp_path: Path) -> None:
    rig = make_rig(db_pool, tmp_path)
    first = decision(action("a"))
    dry = await rig.service.submit(
        first, None, ExecutionOptions(dry_run=True), requested_by="b", approved=True
    )
    queued = await rig.service.submit(first, None, ExecutionOptions(), requested_by="b", approved=True)
    await rig.service.submit(decision(action("a")), None, ExecutionOptions(), requested_by="b", approved=True)

    views, total = await rig.service.list(
        status=None, event_id=None, start_time=None, end_time=None, limit=2, offset=0
    )
    assert total == 3 and len(views) == 2
    views, total = await rig.service.list(
        status=None, event_id=first.event_id, start_time=None, end_time=None, limit=10, offset=0
    )
    assert total == 2 and [v.execution_id for v in views] == [queued.execution_id, dry.execution_id]
    views, total = await rig.service.list(
        status="dry_run", event_id=None, start_time=None, end_time=None, limit=10, offset=0
    )
    assert total == 1 and views[0].actions[0].status == "would_run"
    later = rig.clock() + timedelta(hours=1)
    _, total = await rig.service.list(
        status=None, event_id=None, start_time=later, end_time=None, limit=10, offset=0
    )
    assert total == 0
    _, total = await rig.service.list(
        status=None, event_id=None, start_time=None, end_time=later, limit=10, offset=1
    )
    assert total == 3


async def test_a_cancelled_execution_can_be_rolled_back(db_pool: asyncpg.Pool, tmp_path: Path) -> None:
    rig = make_rig(db_pool, tmp_path)
    journal, pid_file = tmp_path / "journal", tmp_path / "pid"
    plan = decision(
        # The undo (same parameters) outlasts a heartbeat, which must not read the old cancel as a new one.
        action("fix", script="fix", action_type="remediation", journal=str(journal), sleep=0.8),
        action("hang", hang="true", pid_file=str(pid_file), depends_on=["fix"], timeout=60),
    )
    view = await rig.service.submit(plan, None, ExecutionOptions(), requested_by="b", approved=True)
    worker = asyncio.create_task(rig.service.run_until_idle())
    await eventually(lambda: pid_file.exists() and pid_file.read_text() != "", what="the script's pid")
    await rig.service.cancel(view.execution_id, by="carol")
    async with asyncio.timeout(15):
        await worker
    cancelled = await view_of(rig, view.execution_id)
    assert cancelled.status == "cancelled" and cancelled.rollback_status is None  # no rollback by itself

    await rig.service.rollback(view.execution_id, by="carol")
    await rig.service.run_until_idle()
    final = await view_of(rig, view.execution_id)
    assert final.status == "rolled_back", final.logs
    assert {a.key: a.status for a in final.actions if a.phase == "action"} == {
        "fix": "rolled_back",
        "hang": "cancelled",
    }
    assert [line for line in journal.read_text().splitlines() if line.startswith("undo")] == [
        f"undo fix start {view.execution_id}",
        f"undo fix end {view.execution_id}",
    ]
