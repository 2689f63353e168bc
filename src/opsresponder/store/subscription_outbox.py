"""The ingest side of subscriptions: `SubscriptionOutbox`, the batch writer of deliveries.

It runs inside the transaction that stores a batch of events (see `store.writers`) and writes one outbox
row per (matching subscription, new event), so a committed event can never miss a delivery and a
rolled-back batch leaves no row.

Why rows per delivery rather than a cursor per subscription over ``events.events``: event ids are taken in
blocks per process, so ids are not in commit order across processes; a cursor past id N can miss an event
with a smaller id that another process commits later. Rows written in the event's own transaction cannot.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

import asyncpg

from opsresponder.core.batch import Batch
from opsresponder.core.event import Event
from opsresponder.rules.filter import EventFilter

# How long the ingest path trusts its cached filters. A change made through this process's repository
# takes effect at once; one made by another process is seen within this time.
FILTER_CACHE_SECONDS: Final = 1.0

_ENQUEUE: Final = """
INSERT INTO events.subscription_outbox (subscription_id, event_id, next_attempt_at)
SELECT u.subscription_id, u.event_id, now() + s.batch_max_delay_ms * interval '1 millisecond'
FROM unnest($1::bigint[], $2::bigint[]) AS u(subscription_id, event_id)
JOIN events.subscriptions AS s ON s.id = u.subscription_id AND s.active
"""


class _Matcher:
    __slots__ = ("filters", "subscription_id")

    def __init__(self, subscription_id: int, filters: EventFilter) -> None:
        self.subscription_id = subscription_id
        self.filters = filters


class SubscriptionOutbox:
    """The batch writer (`store.writers.BatchWriter`) of subscription deliveries.

    Writes the outbox rows of a batch's new events for every active subscription they match, in the
    batch's transaction: the rows commit or roll back with the events. The active subscriptions' filters
    are cached here for `cache_seconds`: with no active subscription, or none matching, a batch costs no
    query at all. A change made through this process's `SubscriptionRepository` (which owns this writer)
    invalidates the cache at once; one made by another process is seen within `cache_seconds`.
    """

    def __init__(self, cache_seconds: float = FILTER_CACHE_SECONDS) -> None:
        self._ttl = cache_seconds
        self._matchers: list[_Matcher] = []
        self._expires = 0.0  # monotonic; 0 forces the first load

    def invalidate(self) -> None:
        """Reload the filters before the next batch."""
        self._expires = 0.0

    async def write(self, conn: asyncpg.Connection, batch: Batch, stored: Sequence[Event]) -> None:
        """One outbox row per (matching subscription, event of `stored`), in one statement.

        The filters read only the events, so `batch` is not needed.

        Raises:
            asyncpg.PostgresError: as the caller's other statements would; the transaction is then aborted.
        """
        if not stored:
            return
        matchers = await self._load(conn)
        if not matchers:
            return
        subscription_ids: list[int] = []
        event_ids: list[int] = []
        for matcher in matchers:
            matches = matcher.filters.matches
            sid = matcher.subscription_id
            for event in stored:
                if matches(event):
                    assert event.id is not None, "the outbox needs stored events (with ids)"
                    subscription_ids.append(sid)
                    event_ids.append(event.id)
        if subscription_ids:
            # The join re-checks that each subscription still exists and is active: the cache may be stale.
            await conn.execute(_ENQUEUE, subscription_ids, event_ids)

    async def _load(self, conn: asyncpg.Connection) -> list[_Matcher]:
        """The cached filters, reloaded on the batch's connection when stale or invalidated."""
        now = time.monotonic()
        if now >= self._expires:
            rows = await conn.fetch(
                "SELECT id, severities, event_type, host, service, min_score, include_suppressed, pattern "
                "FROM events.subscriptions WHERE active ORDER BY id"
            )
            self._matchers = [_Matcher(r["id"], filters_from_row(r)) for r in rows]
            self._expires = now + self._ttl
        return self._matchers


def filters_from_row(row: asyncpg.Record) -> EventFilter:
    severities = row["severities"]
    return EventFilter(
        severity=None if severities is None else tuple(severities),
        event_type=row["event_type"],
        host=row["host"],
        service=row["service"],
        min_score=row["min_score"],
        pattern=row["pattern"],
        include_suppressed=row["include_suppressed"],
    )
