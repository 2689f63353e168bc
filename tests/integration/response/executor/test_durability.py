"""Several processes on one database: the per-target lock, claims that never run one execution twice,
recovery of what a dead process left running, and what `stop` leaves behind."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from opsresponder.response.executor.options import ExecutionOptions
from opsresponder.state import MemoryStateBackend, RedisStateBackend, StateBackend
from opsresponder.store.executions import parse_execution_id
from tests.integration.response.executor.harness import Rig, action, decision, journal_lines, make_rig
from tests.unit.state.test_backends import random_prefix, redis_url
from tests.waiting import eventually


async def intervals(rig: Rig, execution_ids: list[str], key: str) -> list[tuple[float, float]]:
    found = []
    for execution_id in execution_ids:
        view = await rig.service.get(execution_id)
        assert view is not None and view.status == "completed", view
        step = next(a for a in view.actions if a.key == key)
        assert step.started_at is not None and step.completed_at is not None
        found.append((step.started_at.timestamp(), step.completed_at.timestamp()))
    return sorted(found)


@pytest.fixture(params=["memory", "redis"])
async def states(request: pytest.FixtureRequest) -> AsyncIterator[tuple[StateBackend, StateBackend]]:
    """Two processes' views of the shared state: one memory backend, or two Redis connections."""
    if request.param == "memory":
        memory = MemoryStateBackend()
        yield memory, memory
        return
    prefix = random_prefix()
    try:
        async with RedisStateBackend(redis_url(), prefix) as a, RedisStateBackend(redis_url(), prefix) as b:
            yield a, b
    finally:
        cleaner = aioredis.from_url(redis_url())
        keys = [k async for k in cleaner.scan_iter(match=prefix + "*")]
        if keys:
            await cleaner.delete(*keys)
        await cleaner.aclose()


async def test_target_lock_serialises_remediations_on_one_host_not_diagnostics(
    db_pool: asyncpg.Pool, tmp_path: Path, states: tuple[StateBackend, StateBackend]
) -> None:
    state, peer = states
    one = make_rig(db_pool, tmp_path, owner="p1", state=state)
    two = make_rig(db_pool, tmp_path, owner="p2", state=peer)
    options = ExecutionOptions()
    fixes = [
        await one.service.submit(
            decision(action("fix", script="fix", action_type="remediation", sleep=0.4)),
            None,
            options,
            requested_by="b",
            approved=True,
        )
        for _ in range(2)
    ]
    await asyncio.gather(one.service.run_until_idle(), two.service.run_until_idle())
    (_, e1), (s2, _) = await intervals(one, [f.execution_id for f in fixes], "fix")
    assert s2 >= e1, "two remediations ran on web-01 at once"
    logs = [log.message for f in fixes for log in ((await one.service.get(f.execution_id)) or fixes[0]).logs]
    assert "Waiting for the lock on web-01." in logs
    assert await state.lock_owner("exec-target:web-01") is None

    looks = [
        await one.service.submit(
            decision(action("look", sleep=0.4)), None, options, requested_by="b", approved=True
        )
        for _ in range(2)
    ]
    await asyncio.gather(one.service.run_until_idle(), two.service.run_until_idle())
    (_, e1), (s2, _) = await intervals(one, [x.execution_id for x in looks], "look")
    assert s2 < e1, "diagnostics on one host waited for each other"

    # Another host is not held up by web-01's lock.
    await state.acquire_lock("exec-target:web-01", "someone-else", 30)
    other_host = await one.service.submit(
        decision(action("fix", script="fix", action_type="remediation"), target="db-01"),
        None,
        options,
        requested_by="b",
        approved=True,
    )
    await one.service.run_until_idle()
    done = await one.service.get(other_host.execution_id)
    assert done is not None and done.status == "completed"


async def test_two_services_on_one_database_never_run_an_execution_twice(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    one = make_rig(db_pool, tmp_path, owner="p1", concurrency=3)
    two = make_rig(db_pool, tmp_path, owner="p2", concurrency=3)
    journal = tmp_path / "journal"
    submitted = [
        await one.service.submit(
            decision(action("a", journal=str(journal))),
            None,
            ExecutionOptions(),
            requested_by="b",
            approved=True,
        )
        for _ in range(16)
    ]
    await asyncio.gather(one.service.run_until_idle(), two.service.run_until_idle())

    starts = Counter(line.split()[2] for line in journal_lines(journal) if " start " in line)
    assert starts == Counter({s.execution_id: 1 for s in submitted})
    views = [await one.service.get(s.execution_id) for s in submitted]
    assert all(v is not None and v.status == "completed" and v.actions[0].attempt == 1 for v in views)
    owners = {
        log.message for v in views if v is not None for log in v.logs if log.message.startswith("Started by")
    }
    assert owners == {"Started by p1.", "Started by p2."}


async def test_recovery_marks_a_dead_process_execution_interrupted_and_rolls_it_back(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path, owner="new-process")
    journal = tmp_path / "journal"
    plan = decision(
        action("done", script="fix", action_type="remediation", journal=str(journal)),
        action("mid", script="fix", action_type="remediation", depends_on=["done"], journal=str(journal)),
        action("never", depends_on=["mid"], journal=str(journal)),
    )
    view = await rig.service.submit(plan, None, ExecutionOptions(), requested_by="b", approved=True)
    row_id = parse_execution_id(view.execution_id)
    assert row_id is not None
    # A process claims it, completes "done", starts "mid", and dies (kill -9: nothing more is written).
    now = rig.clock()
    [claimed] = await rig.repository.claim_queued("dead-process", timedelta(seconds=5), 1, now)
    assert claimed.id == row_id
    await rig.repository.update_action(row_id, "action", "done", status="running", started_at=now)
    await rig.repository.update_action(
        row_id, "action", "done", status="completed", completed_at=now, result={"success": True}
    )
    await rig.repository.update_action(row_id, "action", "mid", status="running", started_at=now)
    assert await rig.repository.recover_interrupted(now) == []  # its lease still holds

    rig.clock.advance(timedelta(seconds=6))
    await rig.service.start()
    try:

        async def rolled_back() -> bool:
            current = await rig.service.get(view.execution_id)
            return current is not None and current.status == "rolled_back"

        await eventually(rolled_back, what="the interrupted execution's rollback")
    finally:
        await rig.service.stop()
    final = await rig.service.get(view.execution_id)
    assert final is not None
    states = {a.key: a.status for a in final.actions if a.phase == "action"}
    assert states == {"done": "rolled_back", "mid": "interrupted", "never": "cancelled"}
    assert final.error is not None and "dead-process" in final.error
    assert [a.key for a in final.actions if a.phase == "rollback"] == ["done"]
    # Only the completed action was undone; the interrupted one was neither re-run nor undone.
    assert journal_lines(journal) == [
        f"undo done start {view.execution_id}",
        f"undo done end {view.execution_id}",
    ]
    messages = [log.message for log in final.logs]
    assert any(m.startswith("Interrupted: the process running this execution stopped") for m in messages)
    assert "Rollback requested by recovery." in messages


async def test_a_live_service_recovers_what_another_process_left_without_a_restart(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path)
    options = ExecutionOptions(rollback_on_failure=False)
    view = await rig.service.submit(decision(action("a")), None, options, requested_by="b", approved=True)
    await rig.repository.claim_queued("dead", timedelta(seconds=1), 1, rig.clock())
    await rig.service.start()
    try:
        rig.clock.advance(timedelta(seconds=2))

        async def interrupted() -> bool:
            current = await rig.service.get(view.execution_id)
            return current is not None and current.status == "interrupted"

        await eventually(interrupted, what="the live service's periodic recovery")
    finally:
        await rig.service.stop()


async def test_recovery_without_rollback_on_failure_only_marks_interrupted(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path)
    options = ExecutionOptions(rollback_on_failure=False)
    view = await rig.service.submit(
        decision(action("done", script="fix", action_type="remediation")),
        None,
        options,
        requested_by="b",
        approved=True,
    )
    row_id = parse_execution_id(view.execution_id)
    assert row_id is not None
    await rig.repository.claim_queued("dead", timedelta(seconds=1), 1, rig.clock())
    await rig.repository.update_action(row_id, "action", "done", status="running", started_at=rig.clock())
    rig.clock.advance(timedelta(seconds=2))
    recovered = await rig.service._worker.recover()
    assert [r.id for r in recovered] == [row_id]
    final = await rig.service.get(view.execution_id)
    assert final is not None and final.status == "interrupted" and final.rollback_status is None
    # An operator may still ask: nothing completed, so there is nothing to undo (409).
    assert not (await rig.repository.request_rollback(row_id, rig.clock(), "carol")).allowed


async def test_stop_interrupts_running_executions_instead_of_leaving_them_running(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path)
    pid_file = tmp_path / "pid"
    options = ExecutionOptions(rollback_on_failure=False)
    view = await rig.service.submit(
        decision(action("hang", hang="true", pid_file=str(pid_file), timeout=60)),
        None,
        options,
        requested_by="b",
        approved=True,
    )
    await rig.service.start()
    await eventually(lambda: pid_file.exists() and pid_file.read_text() != "", what="the script's pid")
    await rig.service.stop()
    final = await rig.service.get(view.execution_id)
    assert final is not None and final.status == "interrupted"
    assert final.actions[0].status == "interrupted"
    assert final.error == "the service stopped"


async def test_an_execution_waiting_for_the_lock_can_be_cancelled(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path)
    await rig.state.acquire_lock("exec-target:web-01", "another-execution", 30)
    view = await rig.service.submit(
        decision(action("fix", script="fix", action_type="remediation")),
        None,
        ExecutionOptions(),
        requested_by="b",
        approved=True,
    )
    worker = asyncio.create_task(rig.service.run_until_idle())

    async def waiting() -> bool:
        current = await rig.service.get(view.execution_id)
        return current is not None and any(
            log.message == "Waiting for the lock on web-01." for log in current.logs
        )

    await eventually(waiting, what="the execution to wait for the lock")
    await rig.service.cancel(view.execution_id, by="carol")
    async with asyncio.timeout(10):
        await worker
    final = await rig.service.get(view.execution_id)
    assert final is not None and final.status == "cancelled"
    assert [a.status for a in final.actions] == ["cancelled"] and final.actions[0].started_at is None
    assert await rig.state.lock_owner("exec-target:web-01") == "another-execution"
