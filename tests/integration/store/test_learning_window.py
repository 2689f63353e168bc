"""The learning window's read against a real PostgreSQL: it runs each time an action's run is settled,
so it must read the action's newest runs and their feedback, not the action's whole history."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from opsresponder.store.learning import _WINDOW
from opsresponder.store.outcomes import NOT_RUNS


@pytest.mark.parametrize(
    "after", [None, datetime(2026, 1, 1, tzinfo=UTC)], ids=["all runs", "since a policy change"]
)
@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
async def test_the_window_reads_the_newest_runs_through_an_index_and_only_their_feedback(
    db_pool: asyncpg.Pool, after: datetime | None, plan_cache_mode: str
) -> None:
    async with db_pool.acquire() as conn, conn.transaction():
        # PostgreSQL still sorts, or scans a table, when no index serves: that is what fails.
        await conn.execute("SET LOCAL enable_seqscan = off")
        await conn.execute("SET LOCAL enable_sort = off")
        # asyncpg prepares its statements: after a few runs PostgreSQL may plan them once for any values.
        await conn.execute(f"SET LOCAL plan_cache_mode = {plan_cache_mode}")
        await conn.execute("PREPARE learning_window(text, text, text[], timestamptz, bigint) AS " + _WINDOW)
        # EXPLAIN EXECUTE takes no bind parameters: the test's own constants, as literals.
        statuses = "ARRAY[" + ", ".join(f"'{status}'" for status in NOT_RUNS) + "]::text[]"
        since = "NULL" if after is None else f"'{after.isoformat()}'::timestamptz"
        try:
            explain = f"EXPLAIN EXECUTE learning_window('tpl', 'diag', {statuses}, {since}, 10)"
            rows = await conn.fetch(explain)
        finally:
            await conn.execute("DEALLOCATE learning_window")
        plan = "\n".join(r[0] for r in rows)
    assert "action_outcomes_recent_idx" in plan, plan
    assert "Sort" not in plan, plan  # the index's order, read backward, is the window's
    # The scan stops at the window's start: the time bound is part of the index condition, not a filter
    # over every older run of the action.
    assert "Index Cond: ((template_id = " in plan and "(finished_at > " in plan, plan
    assert "Filter: ((finished_at" not in plan and "OR (finished_at" not in plan, plan
    # The feedback of each run's execution, looked up by its id: not every execution's, aggregated first.
    assert "Index Cond: (execution_id = action_outcomes.execution_id)" in plan, plan
    assert "Seq Scan" not in plan, plan
