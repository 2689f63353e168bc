"""The live stream's backlog: stored events after a resume cursor, for clients that send Last-Event-ID."""

from __future__ import annotations

from typing import Any

import asyncpg

from opsresponder.core.event import Event
from opsresponder.rules.filter import EventFilter
from opsresponder.rules.sql import WhereClause
from opsresponder.store.errors import StoreError
from opsresponder.store.event_columns import SELECT_EVENTS_WITHOUT_RAW, row_to_event
from opsresponder.store.pool import CONNECTION_ERRORS, connection


class StreamBacklog:
    """Reads the events a resuming stream client missed, in pages, in id order.

    Within one process ids grow with commit order (one worker takes ids from its blocks in order), so
    "id greater than the cursor" is exactly "committed after the cursor's event" there. Across processes
    it is not: see docs/stream.md.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def after(self, cursor: int, event_filter: EventFilter, limit: int) -> list[Event]:
        """Up to `limit` events with an id greater than `cursor` that match `event_filter`, by id.

        Raises:
            DatabaseUnavailableError: PostgreSQL cannot be reached.
            StoreError: PostgreSQL refused the query.
        """
        where, args = _where(cursor, event_filter)
        sql = f"{SELECT_EVENTS_WITHOUT_RAW}{where} ORDER BY id LIMIT ${len(args) + 1}"
        async with connection(self._pool) as conn:
            try:
                rows = await conn.fetch(sql, *args, limit)
            except CONNECTION_ERRORS:
                raise  # some are PostgresErrors; `connection` reports them as DatabaseUnavailableError
            except asyncpg.PostgresError as e:
                raise StoreError(f"the stream backlog query failed: {e.__class__.__name__}: {e}") from e
        return [row_to_event(r) for r in rows]


def _where(cursor: int, event_filter: EventFilter) -> tuple[str, list[Any]]:
    where = WhereClause()
    where.add("id > {}", cursor)
    event_filter.to_sql(where)
    return where.sql(), where.args
