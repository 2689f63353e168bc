"""The live stream's backlog: stored events after a resume cursor, for clients that send Last-Event-ID."""

from __future__ import annotations

from typing import Any, Final

import asyncpg
import msgspec

from opsresponder.core.event import Event
from opsresponder.store.errors import StoreError
from opsresponder.store.filters import WhereClause
from opsresponder.store.pool import CONNECTION_ERRORS, connection


class StreamFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Filters of ``GET /api/v1/events/stream``; None means "any".

    ``min_score`` matches only scored events (``score`` not null and at least ``min_score``): an event
    the scoring stage did not score has no score to compare, so a client asking for a minimum never gets it.
    """

    severities: frozenset[str] | None = None
    event_type: str | None = None
    host: str | None = None
    service: str | None = None
    min_score: float | None = None

    @property
    def matches_everything(self) -> bool:
        return (
            self.severities is None
            and self.event_type is None
            and self.host is None
            and self.service is None
            and self.min_score is None
        )


# Without ``raw``: the stream does not carry it (see pipeline/notify.py).
_SELECT: Final = (
    "SELECT id, source, source_type, event_type, severity, state, host, service, title, description, "
    "occurred_at, received_at, processed_at, last_seen_at, duplicate_count, metadata, tags, fingerprint, "
    "correlation_id, score, suppressed_reason FROM events.events"
)


class StreamBacklog:
    """Reads the events a resuming stream client missed, in pages, in id order.

    Within one process ids grow with commit order (one worker takes ids from its blocks in order), so
    "id greater than the cursor" is exactly "committed after the cursor's event" there. Across processes
    it is not: see docs/stream.md.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def after(self, cursor: int, stream_filter: StreamFilter, limit: int) -> list[Event]:
        """Up to `limit` events with an id greater than `cursor` that match `stream_filter`, by id.

        Raises:
            DatabaseUnavailableError: PostgreSQL cannot be reached.
            StoreError: PostgreSQL refused the query.
        """
        where, args = _where(cursor, stream_filter)
        sql = f"{_SELECT}{where} ORDER BY id LIMIT ${len(args) + 1}"
        async with connection(self._pool) as conn:
            try:
                rows = await conn.fetch(sql, *args, limit)
            except CONNECTION_ERRORS:
                raise  # some are PostgresErrors; `connection` reports them as DatabaseUnavailableError
            except asyncpg.PostgresError as e:
                raise StoreError(f"the stream backlog query failed: {e.__class__.__name__}: {e}") from e
        return [msgspec.convert(dict(r), Event) for r in rows]


def _where(cursor: int, f: StreamFilter) -> tuple[str, list[Any]]:
    where = WhereClause()
    where.add("id > {}", cursor)
    where.add_event_filters(severities=f.severities, event_type=f.event_type, host=f.host, service=f.service)
    if f.min_score is not None:
        # NULL >= x is NULL, so unscored events never match, as documented on StreamFilter.
        where.add("score >= {}", f.min_score)
    return where.sql(), where.args
