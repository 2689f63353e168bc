"""The governor's pause reaches executions already queued or running: an automatic execution starts no
new action while paused (its running action finishes), and goes on after the resume; an execution a
person asked for is not held."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from opsresponder.response.executor.options import ExecutionOptions
from tests.integration.response.executor.harness import Rig, action, decision, journal_lines, make_rig
from tests.waiting import eventually


class Switch:
    def __init__(self) -> None:
        self.paused = False
        self.asked = 0

    async def __call__(self) -> bool:
        self.asked += 1
        return self.paused


async def test_a_paused_automatic_execution_finishes_its_step_and_starts_no_other(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    switch = Switch()
    rig = make_rig(db_pool, tmp_path, automation_paused=switch)
    journal = tmp_path / "journal"
    plan = decision(
        action("first", sleep=0.6, journal=str(journal), required=True),
        action("second", journal=str(journal), depends_on=["first"], required=True),
    )
    await rig.service.start()
    try:
        view = await rig.service.submit(
            plan, None, ExecutionOptions(), requested_by="rules", approved=False, automatic=True
        )
        await eventually(lambda: journal_lines(journal) == [f"first start {view.execution_id}"], within=10)
        switch.paused = True  # while the first step runs
        await eventually(lambda: len(journal_lines(journal)) == 2, within=10)
        assert journal_lines(journal)[1] == f"first end {view.execution_id}"  # the running step finished
        await asyncio.sleep(1.2)  # two pause checks: nothing more starts
        assert len(journal_lines(journal)) == 2
        held = await rig.service.get(view.execution_id)
        assert held is not None and held.status == "running"
        assert any("paused" in entry.message for entry in held.logs)

        switch.paused = False
        await eventually(lambda: len(journal_lines(journal)) == 4, within=10)
        await eventually(lambda: _status(rig, view.execution_id, "completed"), within=10)
    finally:
        await rig.service.stop()


async def _status(rig: Rig, execution_id: str, status: str) -> bool:
    view = await rig.service.get(execution_id)
    return view is not None and view.status == status


async def test_the_pause_does_not_hold_an_execution_a_person_asked_for(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    switch = Switch()
    switch.paused = True
    rig = make_rig(db_pool, tmp_path, automation_paused=switch)
    journal = tmp_path / "journal"
    plan = decision(action("only", journal=str(journal)))
    view = await rig.service.submit(plan, None, ExecutionOptions(), requested_by="alice", approved=False)
    await rig.service.run_until_idle()
    done = await rig.service.get(view.execution_id)
    assert done is not None and done.status == "completed"
    assert switch.asked == 0
