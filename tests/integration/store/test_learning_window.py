"""The learning window's read against a real PostgreSQL: it runs each time an action's run is settled,
so it must read the action's newest runs and their feedback, not the action's whole history."""

from __future__ import annotations

import asyncpg

from opsresponder.store.learning import _WINDOW
from opsresponder.store.outcomes import NOT_RUNS


async def test_the_window_reads_the_newest_runs_through_an_index_and_only_their_feedback(
    db_pool: asyncpg.Pool,
) -> None:
    async with db_pool.acquire() as conn, conn.transaction():
        # PostgreSQL still sorts, or scans a table, when no index serves: that is what fails.
        await conn.execute("SET LOCAL enable_seqscan = off")
        await conn.execute("SET LOCAL enable_sort = off")
        plan = "\n".join(
            r[0] for r in await conn.fetch("EXPLAIN " + _WINDOW, "tpl", "diag", list(NOT_RUNS), None, 10)
        )
    assert "action_outcomes_recent_idx" in plan, plan
    assert "Sort" not in plan, plan  # the index's order, read backward, is the window's
    # The feedback of each run's execution, looked up by its id: not every execution's, aggregated first.
    assert "Index Cond: (execution_id = action_outcomes.execution_id)" in plan, plan
    assert "Seq Scan" not in plan, plan
