"""What the rule-to-response loop decided for each firing (``autonomous.firing_responses``, migration 016),
so that handling a firing again (a retry after an error, or a second consumer after a lost lease) creates
nothing twice.

The record is written once (the firing id is the key) after the analysis and the safety governor, before
any execution is submitted: the decision and how its actions were split. A retry reuses it and submits
only the parts whose execution does not exist yet. Those are found by the execution rows themselves (an
execution of the decision requested by the loop, automatic or not), so an execution committed just before
a crash is found too; a unique index on them stops two consumers creating one part twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import asyncpg
import msgspec

from opsresponder.store.executions import EXECUTION_PREFIX
from opsresponder.store.pool import connection

_COLUMNS: Final = (
    "firing_id, decision_id, automatic_action_ids, approval_action_ids, approval_reason, created_at"
)


class FiringResponse(msgspec.Struct, kw_only=True, frozen=True):
    """The loop's plan for one firing: its decision, the action ids run without a person
    (`automatic_action_ids`) and those waiting for approval, with the governor's reason when it asked."""

    firing_id: int
    decision_id: int
    automatic_action_ids: list[int]
    approval_action_ids: list[int]
    approval_reason: str | None
    created_at: datetime


class FiringResponseRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get(self, firing_id: int) -> FiringResponse | None:
        async with connection(self.pool) as conn:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM autonomous.firing_responses WHERE firing_id = $1", firing_id
            )
        return None if row is None else msgspec.convert(dict(row.items()), FiringResponse)

    async def record(self, response: FiringResponse) -> FiringResponse:
        """Store `response` unless the firing has one already; the one stored (the first wins)."""
        r = response
        async with connection(self.pool) as conn:
            row = await conn.fetchrow(
                f"""WITH added AS (
                        INSERT INTO autonomous.firing_responses ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
                        ON CONFLICT (firing_id) DO NOTHING RETURNING {_COLUMNS})
                    SELECT {_COLUMNS} FROM added
                    UNION ALL
                    SELECT {_COLUMNS} FROM autonomous.firing_responses WHERE firing_id = $1
                    LIMIT 1""",
                r.firing_id,
                r.decision_id,
                r.automatic_action_ids,
                r.approval_action_ids,
                r.approval_reason,
                r.created_at,
            )
        assert row is not None  # inserted, or there already
        return msgspec.convert(dict(row.items()), FiringResponse)

    async def parts_of(self, decision_id: int, requested_by: str) -> dict[bool, str]:
        """The executions of `decision_id` that `requested_by` (the loop) created, by part: True the
        automatic one, False the one waiting for approval (or approved since)."""
        async with connection(self.pool) as conn:
            rows = await conn.fetch(
                "SELECT id, coalesce((plan ->> 'automatic')::boolean, false) AS automatic "
                "FROM autonomous.executions WHERE decision_id = $1 AND requested_by = $2 AND NOT dry_run "
                "ORDER BY id",
                decision_id,
                requested_by,
            )
        return {bool(r["automatic"]): f"{EXECUTION_PREFIX}{r['id']}" for r in rows}
