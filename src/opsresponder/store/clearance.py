"""Whether the condition an event reported is still there: the latest sighting of its fingerprint.

``events.dedup`` holds, per fingerprint, the state of the latest stored event and when the fingerprint
was last seen (duplicates included), so one indexed read answers "resolved since?" and "seen since?".
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from opsresponder.store.pool import connection


class Sighting(msgspec.Struct, kw_only=True, frozen=True):
    """The latest sighting of a fingerprint: its state (problem or resolved) and when."""

    state: str
    last_seen_at: datetime


class ClearanceRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def latest_sighting(self, fingerprint: str) -> Sighting | None:
        async with connection(self.pool) as conn:
            row = await conn.fetchrow(
                "SELECT state, last_seen_at FROM events.dedup WHERE fingerprint = $1", fingerprint
            )
        return None if row is None else Sighting(state=row["state"], last_seen_at=row["last_seen_at"])
