"""A running execution whose cancel was asked, left behind by a process that died before it saw the
cancel: recovery ends it ``cancelled`` (what the operator asked) and rolls nothing back."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import asyncpg

from opsresponder.response.executor.options import ExecutionOptions
from opsresponder.store.executions import parse_execution_id
from tests.integration.response.executor.harness import action, decision, journal_lines, make_rig


async def test_recovery_of_a_cancelled_execution_ends_it_cancelled_without_rollback(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path, owner="new-process")
    journal = tmp_path / "journal"
    plan = decision(
        action("done", script="fix", action_type="remediation", journal=str(journal)),
        action("mid", script="fix", action_type="remediation", depends_on=["done"], journal=str(journal)),
    )
    view = await rig.service.submit(plan, None, ExecutionOptions(), requested_by="b", approved=True)
    row_id = parse_execution_id(view.execution_id)
    assert row_id is not None
    # A process claims it, completes "done", starts "mid"; an operator cancels; the process dies (kill -9)
    # before its heartbeat reads the cancel.
    now = rig.clock()
    await rig.repository.claim_queued("dead-process", timedelta(seconds=1), 1, now)
    await rig.repository.update_action(row_id, "action", "done", status="running", started_at=now)
    await rig.repository.update_action(
        row_id, "action", "done", status="completed", completed_at=now, result={"success": True}
    )
    await rig.repository.update_action(row_id, "action", "mid", status="running", started_at=now)
    assert (await rig.service.cancel(view.execution_id, by="carol")).status == "running"

    rig.clock.advance(timedelta(seconds=2))
    recovered = await rig.service._worker.recover()
    assert [(r.id, r.status) for r in recovered] == [(row_id, "cancelled")]
    await rig.service.run_until_idle()  # a queued rollback would run here

    final = await rig.service.get(view.execution_id)
    assert final is not None
    assert final.status == "cancelled" and final.rollback_status is None, final.logs
    assert final.error is not None and final.error.startswith("cancelled on request")
    assert {a.key: a.status for a in final.actions} == {"done": "completed", "mid": "interrupted"}
    assert journal_lines(journal) == []  # nothing undone
    assert not any(log.message.startswith("Rollback requested") for log in final.logs)
    # An operator may still roll it back on purpose.
    assert (await rig.service.rollback(view.execution_id, by="carol")).status == "rolling_back"
