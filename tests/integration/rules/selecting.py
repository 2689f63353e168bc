"""Store events in a transaction that is rolled back and see which ones a WHERE clause selects."""

from __future__ import annotations

import asyncpg

from opsresponder.core.event import Event
from opsresponder.rules.sql import WhereClause
from opsresponder.store.event_columns import EVENT_COLUMNS, event_record
from tests.factories import prepared


class _Rollback(Exception):
    pass


def stored(batch: list[Event]) -> list[Event]:
    """`batch` as the store holds it: prepared, with ids 1, 2, ... and ``last_seen_at`` set."""
    events = prepared(*batch)
    for i, event in enumerate(events, start=1):
        event.id = i
        event.last_seen_at = event.received_at
    return events


async def selected_ids(pool: asyncpg.Pool, events: list[Event], where: WhereClause) -> set[int]:
    """The ids of `events` (stored with `stored`) that ``SELECT ... FROM events.events`` + `where` returns."""
    async with pool.acquire() as conn:
        try:
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "events",
                    schema_name="events",
                    columns=EVENT_COLUMNS,
                    records=[event_record(e) for e in events],
                )
                rows = await conn.fetch(f"SELECT id FROM events.events{where.sql()}", *where.args)
                raise _Rollback
        except _Rollback:
            pass
    return {r["id"] for r in rows}
