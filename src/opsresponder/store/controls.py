"""The global pause of automatic execution (``autonomous.automation_pause``), with its audit log.

The response side's safety governor reads it; the API's pause and resume write it. One row means paused.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from opsresponder.store.pool import connection


class PauseState(msgspec.Struct, kw_only=True, frozen=True):
    """Automatic execution is paused: by whom (a token name), why, since when."""

    paused_by: str
    reason: str
    paused_at: datetime


class AutomationControls:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def pause_state(self) -> PauseState | None:
        """The current pause, None while automatic execution runs."""
        async with connection(self.pool) as conn:
            row = await conn.fetchrow(
                "SELECT paused_by, reason, paused_at FROM autonomous.automation_pause WHERE singleton"
            )
        return None if row is None else PauseState(**dict(row))

    async def pause(self, by: str, reason: str) -> tuple[PauseState, bool]:
        """Pause (a pause already in force is kept as it is); True when this call paused."""
        async with connection(self.pool) as conn, conn.transaction():
            row = await conn.fetchrow(
                """INSERT INTO autonomous.automation_pause (paused_by, reason) VALUES ($1, $2)
                   ON CONFLICT (singleton) DO NOTHING RETURNING paused_by, reason, paused_at""",
                by,
                reason,
            )
            if row is None:
                row = await conn.fetchrow(
                    "SELECT paused_by, reason, paused_at FROM autonomous.automation_pause WHERE singleton"
                )
                assert row is not None
                return PauseState(**dict(row)), False
            await _log(conn, "pause", by, reason)
        return PauseState(**dict(row)), True

    async def resume(self, by: str, reason: str = "") -> bool:
        """End the pause; False when automatic execution was not paused."""
        async with connection(self.pool) as conn, conn.transaction():
            removed = await conn.fetchval(
                "DELETE FROM autonomous.automation_pause WHERE singleton RETURNING true"
            )
            if not removed:
                return False
            await _log(conn, "resume", by, reason)
        return True


async def _log(conn: asyncpg.Connection, action: str, by: str, reason: str) -> None:
    await conn.execute(
        "INSERT INTO autonomous.automation_pause_log (action, by_name, reason) VALUES ($1, $2, $3)",
        action,
        by,
        reason,
    )
