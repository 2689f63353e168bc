"""A storm of queued executions starts in paced claims (``claim_batch`` per claim, ``claim_gap_ms``
between claims in a row), not in one burst, and all of them still run; a lone execution is not delayed."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from opsresponder.response.executor.options import ExecutionOptions
from tests.integration.response.executor.harness import action, decision, make_rig
from tests.waiting import eventually


async def test_a_storm_starts_claim_batch_executions_per_claim_gap(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path, claim_batch=3, claim_gap_ms=1500, concurrency=50)
    ids = []
    for _ in range(7):
        plan = decision(action("a", sleep=0.2))
        submitted = await rig.service.submit(
            plan, None, ExecutionOptions(), requested_by="alice", approved=True
        )
        ids.append(submitted.execution_id)

    async def statuses() -> list[str]:
        views = [await rig.service.get(i) for i in ids]
        return [v.status for v in views if v is not None]

    await rig.service.start()
    try:

        async def first_claim() -> bool:
            return any(s != "queued" for s in await statuses())

        await eventually(first_claim, within=10, what="the first claim")
        # One statement claimed them; the next claim comes 1.5 s after it at the earliest.
        started = [s for s in await statuses() if s != "queued"]
        assert len(started) == 3, started

        async def all_done() -> bool:
            return all(s == "completed" for s in await statuses())

        await eventually(all_done, within=20, what="every execution of the storm completed")
    finally:
        await rig.service.stop()


async def test_a_lone_execution_is_claimed_without_waiting_for_the_gap(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig = make_rig(db_pool, tmp_path, claim_batch=3, claim_gap_ms=10_000, poll_interval_ms=20)
    await rig.service.start()
    try:
        for _ in range(2):  # the second comes after an idle moment: no gap to wait for
            plan = decision(action("a"))
            submitted = await rig.service.submit(
                plan, None, ExecutionOptions(), requested_by="alice", approved=True
            )

            async def done(execution_id: str = submitted.execution_id) -> bool:
                view = await rig.service.get(execution_id)
                return view is not None and view.status == "completed"

            await eventually(done, within=5, what="the lone execution completed")
    finally:
        await rig.service.stop()
