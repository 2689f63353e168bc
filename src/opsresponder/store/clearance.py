"""Whether the condition an event reported is still there: the latest sighting of its fingerprint.

``events.dedup`` holds, per fingerprint, the state of the latest stored event and when the fingerprint
was last seen (duplicates included), so one indexed read answers "resolved since?" and "seen since?".
That row is only the latest state, though: a problem that came back and was resolved again between two
checks shows as resolved. `problem_seen_after` looks at the event rows themselves (``events.events``,
through its fingerprint index): a problem row whose ``last_seen_at`` (moved by every duplicate of it) is
after the remediation is a recurrence, whatever came later.
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

    async def problem_seen_after(self, fingerprint: str, since: datetime) -> datetime | None:
        """When the problem state of `fingerprint` was last seen after `since` (a new event or a
        duplicate); None when it was not."""
        async with connection(self.pool) as conn:
            seen: datetime | None = await conn.fetchval(
                "SELECT max(last_seen_at) FROM events.events "
                "WHERE fingerprint = $1 AND state = 'problem' AND last_seen_at > $2",
                fingerprint,
                since,
            )
        return seen
