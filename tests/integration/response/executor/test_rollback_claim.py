"""A rollback asked while the execution's own run is still ending in this process (a slow failure
notification) is claimed by the same process: the new run must keep its lease renewed (it is not forgotten
when the old run's task ends) and finish its rollback instead of being recovered as interrupted."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from opsresponder.response.executor.options import ExecutionOptions, NotificationPreferences
from opsresponder.response.notify.base import ChannelResult, Notification
from opsresponder.store.executions import parse_execution_id
from tests.integration.response.executor.harness import Notes, action, decision, journal_lines, make_rig
from tests.waiting import eventually


@dataclass
class SlowFailureNotes(Notes):
    """The failure notification takes a while (a slow SMTP server)."""

    delay: float = 1.0

    async def send(self, notification: Notification) -> list[ChannelResult]:
        if notification.template == "execution_failed":
            await asyncio.sleep(self.delay)
        return await super().send(notification)


async def test_a_rollback_claimed_while_the_run_still_notifies_is_not_forgotten(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path, notifier=SlowFailureNotes())
    journal = tmp_path / "journal"
    plan = decision(
        # The undo runs with the same parameters: 3 s, so it still runs after the old run has ended.
        action("fix", script="fix", action_type="remediation", journal=str(journal), sleep=3.0),
        action("bad", exit=1, required=True, depends_on=["fix"]),
    )
    options = ExecutionOptions(
        rollback_on_failure=False, notification_preferences=NotificationPreferences(notify_on_failure=True)
    )
    view = await rig.service.submit(plan, None, options, requested_by="b", approved=True)
    row_id = parse_execution_id(view.execution_id)
    await rig.service.start()
    try:

        async def status(*wanted: str) -> bool:
            current = await rig.service.get(view.execution_id)
            return current is not None and current.status in wanted

        async def notified() -> bool:
            current = await rig.service.get(view.execution_id)
            return current is not None and any(
                line.message.startswith("Sent the execution_failed notification") for line in current.logs
            )

        await eventually(lambda: status("failed"), what="the execution to fail")
        assert "execution_failed" not in rig.notes.templates()  # its run is still notifying
        await rig.service.rollback(view.execution_id, by="carol")
        await eventually(notified, what="the first run's last notification")
        await asyncio.sleep(0.2)  # that run's task has ended
        assert await status("rolling_back")
        assert rig.service._worker.running == [row_id], "the rollback's run was forgotten"
        await eventually(lambda: status("rolled_back", "interrupted", "failed"), within=20)
    finally:
        await rig.service.stop()
    final = await rig.service.get(view.execution_id)
    assert final is not None
    assert final.status == "rolled_back" and final.rollback_status == "completed", final.logs
    assert [line.split()[:3] for line in journal_lines(journal) if line.startswith("undo")] == [
        ["undo", "fix", "start"],
        ["undo", "fix", "end"],
    ]
    assert rig.notes.templates() == ["execution_failed"]
