"""A decision analyzed before learning demoted one of its actions: executing it later must still ask a
person (the demotion is read again at submit, not taken from the stored decision)."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from opsresponder.config import LearningConfig
from opsresponder.response.executor.options import ExecutionOptions
from opsresponder.response.learning import PolicyBook
from opsresponder.store.learning import LearningRepository
from tests.integration.response.executor.harness import action, decision, make_rig


async def test_an_action_demoted_after_the_analysis_needs_approval_when_executed(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    policies = PolicyBook(LearningRepository(db_pool), LearningConfig())
    rig = make_rig(db_pool, tmp_path, policies=policies)
    marker = tmp_path / "marker"
    # Analyzed while nothing was demoted: the stored decision says no approval is needed.
    analyzed = decision(
        action("look"),
        action("fix", script="fix", action_type="remediation", touch=str(marker)),
        template=("cpu_fix", "1"),
    )
    assert not any(a.approval_required for a in analyzed.recommended_actions)
    before = await rig.service.submit(analyzed, None, ExecutionOptions(), requested_by="bob", approved=False)
    assert before.status == "queued"
    await rig.service.run_until_idle()

    # Then an operator marks the fix dangerous: learning demotes it to approval required.
    marker.unlink()
    await policies.demote("cpu_fix", ["fix"], "feedback marked it dangerous", rig.clock())
    again = await rig.service.submit(analyzed, None, ExecutionOptions(), requested_by="bob", approved=False)
    assert again.status == "pending_approval"
    assert any(
        "fix: learning demoted it to approval required (feedback marked it dangerous)" in line.message
        for line in again.logs
    )
    await rig.service.run_until_idle()
    assert not marker.exists()

    # Only the demoted action's template counts; a dry run still previews without asking anybody.
    dry = await rig.service.submit(
        analyzed, None, ExecutionOptions(dry_run=True), requested_by="bob", approved=False
    )
    assert dry.status == "dry_run"
    look_only = await rig.service.submit(
        analyzed,
        [analyzed.recommended_actions[0].action_id],
        ExecutionOptions(),
        requested_by="bob",
        approved=False,
    )
    assert look_only.status == "queued"
