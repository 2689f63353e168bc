"""Outbound subscriptions and their durable outbox in PostgreSQL.

Two sides meet here:

- the ingest path: `SubscriptionOutbox`, a batch writer of the event repository, runs inside the
  transaction that stores a batch of events and writes one outbox row per (matching subscription, new
  event), so a committed event can never miss a delivery and a rolled-back batch leaves no row. It keeps
  the active subscriptions' filters in a cache of its own, which `SubscriptionRepository` invalidates on
  every change, and costs no query at all when no subscription matches (or none exists);
- the delivery side: `SubscriptionRepository.claim` locks due rows with ``FOR UPDATE SKIP LOCKED`` for the
  duration of one HTTP delivery, so several workers (also in several processes) never send the same row at
  the same time, and a worker that dies releases its rows with its transaction.

Why rows per delivery rather than a cursor per subscription over ``events.events``: event ids are taken in
blocks per process, so ids are not in commit order across processes; a cursor past id N can miss an event
with a smaller id that another process commits later. Rows written in the event's own transaction cannot.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg
import msgspec
import structlog

from opsresponder.config import SubscriptionsConfig
from opsresponder.core.batch import Batch
from opsresponder.core.event import Event
from opsresponder.rules.filter import EventFilter
from opsresponder.store.errors import StoreError
from opsresponder.store.event_columns import SELECT_EVENTS_WITHOUT_RAW, row_to_event
from opsresponder.store.pool import connection

log = structlog.get_logger(__name__)

# How long the ingest path trusts its cached filters. A change made through this process's repository
# takes effect at once; one made by another process is seen within this time.
FILTER_CACHE_SECONDS: Final = 1.0

STATUS_PENDING: Final = "pending"
STATUS_DEAD: Final = "dead"


class SubscriptionError(StoreError):
    """Root of subscription storage errors."""


class SubscriptionNameTakenError(SubscriptionError):
    """Another subscription already has this name."""


class Secret:
    """A signing secret that never shows in a repr, a log line or an exception message."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


class SubscriptionSpec(msgspec.Struct, kw_only=True):
    """What the API writes; None in the batch and attempt fields means "the configured default"."""

    name: str
    url: str
    filters: EventFilter = msgspec.field(default_factory=EventFilter)
    batch_max_events: int | None = None
    batch_max_delay_ms: int | None = None
    max_attempts: int | None = None
    active: bool = True


class Subscription(msgspec.Struct, kw_only=True):
    """A stored subscription. ``secret`` is for signing only; API views show ``has_secret``."""

    id: int
    name: str
    url: str
    filters: EventFilter
    secret: Secret | None
    batch_max_events: int
    batch_max_delay_ms: int
    max_attempts: int
    active: bool
    created_at: datetime
    updated_at: datetime


class DeliveryStatus(msgspec.Struct, kw_only=True):
    """Delivery state of one subscription.

    Attributes:
        pending: outbox rows waiting to be sent.
        dead: dead-letter rows kept for redelivery.
        delivered: events delivered since the subscription was created.
        dead_lettered: events that went dead since creation (including those redelivered or expired since).
        failed_attempts: HTTP deliveries that failed since creation.
        consecutive_failures: failed deliveries since the last success; drives the backoff.
        retry_at: nothing is sent before this time (backoff after a failure), or None.
    """

    pending: int = 0
    dead: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    failed_attempts: int = 0
    consecutive_failures: int = 0
    retry_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None


@dataclass(slots=True, frozen=True)
class ClaimedRow:
    outbox_id: int
    event_id: int
    attempts: int


_SUBSCRIPTION_COLUMNS: Final = (
    "id, name, url, severities, event_type, host, service, min_score, include_suppressed, secret, "
    "batch_max_events, batch_max_delay_ms, max_attempts, active, created_at, updated_at"
)

_STATUS_COLUMNS: Final = (
    "delivered_count, dead_count, failed_attempts, consecutive_failures, retry_at, last_attempt_at, "
    "last_success_at, last_error, last_error_at"
)

_ENQUEUE: Final = """
INSERT INTO events.subscription_outbox (subscription_id, event_id, next_attempt_at)
SELECT u.subscription_id, u.event_id, now() + s.batch_max_delay_ms * interval '1 millisecond'
FROM unnest($1::bigint[], $2::bigint[]) AS u(subscription_id, event_id)
JOIN events.subscriptions AS s ON s.id = u.subscription_id AND s.active
"""

# Subscriptions worth a claim now: active, not in backoff, and with a batch that is due (its oldest row
# reached its deadline) or full. The count stops at batch_max_events rows, so a backlog costs no more.
_CANDIDATES: Final = f"""
SELECT {_SUBSCRIPTION_COLUMNS} FROM events.subscriptions AS s
WHERE s.active AND (s.retry_at IS NULL OR s.retry_at <= $1)
  AND (EXISTS (SELECT 1 FROM events.subscription_outbox AS o
               WHERE o.subscription_id = s.id AND o.status = 'pending' AND o.next_attempt_at <= $1)
       OR (SELECT count(*) FROM (SELECT 1 FROM events.subscription_outbox AS o
                                 WHERE o.subscription_id = s.id AND o.status = 'pending'
                                 LIMIT s.batch_max_events) AS c) >= s.batch_max_events)
ORDER BY s.id
"""

_CLAIM: Final = """
SELECT id, event_id, attempts, next_attempt_at FROM events.subscription_outbox
WHERE subscription_id = $1 AND status = 'pending'
ORDER BY id
LIMIT $2
FOR UPDATE SKIP LOCKED
"""


class SubscriptionRepository:
    """Reads and writes ``events.subscriptions`` and ``events.subscription_outbox``.

    ``outbox`` is the ingest path's batch writer (give it to the event repository): every change through
    this class invalidates its filter cache, so the next batch follows the change.
    """

    def __init__(self, pool: asyncpg.Pool, defaults: SubscriptionsConfig) -> None:
        self._pool = pool
        self.defaults = defaults
        self.outbox = SubscriptionOutbox()

    # --- management (the API) -------------------------------------------------------------------------

    async def create(self, spec: SubscriptionSpec, secret: str | None) -> Subscription:
        """Store a new subscription.

        Raises:
            SubscriptionNameTakenError: the name is in use.
            DatabaseUnavailableError: PostgreSQL cannot be reached.
        """
        async with connection(self._pool) as conn:
            try:
                row = await conn.fetchrow(
                    f"""INSERT INTO events.subscriptions (name, url, severities, event_type, host, service,
                            min_score, include_suppressed, secret, batch_max_events, batch_max_delay_ms,
                            max_attempts, active)
                        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                        RETURNING {_SUBSCRIPTION_COLUMNS}""",
                    *self._spec_args(spec),
                    secret,
                    *self._batch_args(spec),
                    spec.active,
                )
            except asyncpg.UniqueViolationError as e:
                raise SubscriptionNameTakenError(f"a subscription named {spec.name!r} exists") from e
        self.outbox.invalidate()
        assert row is not None
        return _to_subscription(row)

    async def update(
        self,
        subscription_id: int,
        spec: SubscriptionSpec,
        secret: str | msgspec.UnsetType | None = msgspec.UNSET,
    ) -> Subscription | None:
        """Replace a subscription's definition; `secret` UNSET keeps the current secret, None removes it.

        Delivery state and the outbox are kept. Returns None when no such subscription exists.

        Raises:
            SubscriptionNameTakenError: the new name is in use by another subscription.
            DatabaseUnavailableError: PostgreSQL cannot be reached.
        """
        keep_secret = secret is msgspec.UNSET
        async with connection(self._pool) as conn:
            try:
                row = await conn.fetchrow(
                    f"""UPDATE events.subscriptions SET name = $2, url = $3, severities = $4,
                            event_type = $5, host = $6, service = $7, min_score = $8,
                            include_suppressed = $9,
                            secret = CASE WHEN $10 THEN secret ELSE $11 END,
                            batch_max_events = $12, batch_max_delay_ms = $13, max_attempts = $14,
                            active = $15, updated_at = now(),
                            -- a changed endpoint deserves a prompt try, not the old one's backoff
                            retry_at = CASE WHEN url = $3 THEN retry_at ELSE NULL END
                        WHERE id = $1
                        RETURNING {_SUBSCRIPTION_COLUMNS}""",
                    subscription_id,
                    *self._spec_args(spec),
                    keep_secret,
                    None if isinstance(secret, msgspec.UnsetType) else secret,
                    *self._batch_args(spec),
                    spec.active,
                )
            except asyncpg.UniqueViolationError as e:
                raise SubscriptionNameTakenError(f"a subscription named {spec.name!r} exists") from e
        self.outbox.invalidate()
        return None if row is None else _to_subscription(row)

    async def delete(self, subscription_id: int) -> bool:
        """Remove a subscription and its outbox rows; False when it did not exist."""
        async with connection(self._pool) as conn, conn.transaction():
            # Outbox rows first: a delivery in flight holds some of them and then updates the subscription
            # row; taking the subscription row first would make the two wait for each other.
            await conn.execute(
                "DELETE FROM events.subscription_outbox WHERE subscription_id = $1", subscription_id
            )
            status = await conn.execute("DELETE FROM events.subscriptions WHERE id = $1", subscription_id)
        self.outbox.invalidate()
        return status.endswith(" 1")

    async def get(self, subscription_id: int) -> Subscription | None:
        async with connection(self._pool) as conn:
            row = await conn.fetchrow(
                f"SELECT {_SUBSCRIPTION_COLUMNS} FROM events.subscriptions WHERE id = $1", subscription_id
            )
        return None if row is None else _to_subscription(row)

    async def list_all(self) -> list[Subscription]:
        async with connection(self._pool) as conn:
            rows = await conn.fetch(f"SELECT {_SUBSCRIPTION_COLUMNS} FROM events.subscriptions ORDER BY id")
        return [_to_subscription(r) for r in rows]

    async def statuses(self, subscription_ids: Sequence[int]) -> dict[int, DeliveryStatus]:
        """Delivery state of the given subscriptions (absent ids are left out)."""
        async with connection(self._pool) as conn:
            rows = await conn.fetch(
                f"""SELECT s.id, {_STATUS_COLUMNS},
                        (SELECT count(*) FROM events.subscription_outbox AS o
                         WHERE o.subscription_id = s.id AND o.status = 'pending') AS pending,
                        (SELECT count(*) FROM events.subscription_outbox AS o
                         WHERE o.subscription_id = s.id AND o.status = 'dead') AS dead
                    FROM events.subscriptions AS s WHERE s.id = ANY($1::bigint[])""",
                list(subscription_ids),
            )
        return {
            r["id"]: DeliveryStatus(
                pending=r["pending"],
                dead=r["dead"],
                delivered=r["delivered_count"],
                dead_lettered=r["dead_count"],
                failed_attempts=r["failed_attempts"],
                consecutive_failures=r["consecutive_failures"],
                retry_at=r["retry_at"],
                last_attempt_at=r["last_attempt_at"],
                last_success_at=r["last_success_at"],
                last_error=r["last_error"],
                last_error_at=r["last_error_at"],
            )
            for r in rows
        }

    async def redeliver(self, subscription_id: int, now: datetime) -> int:
        """Put a subscription's dead-letter rows back to pending with a fresh attempt count.

        Also lifts the subscription's backoff, so they go out at the next poll. Returns how many rows.
        """
        async with connection(self._pool) as conn, conn.transaction():
            status = await conn.execute(
                """UPDATE events.subscription_outbox
                   SET status = 'pending', attempts = 0, next_attempt_at = $2, dead_at = NULL
                   WHERE subscription_id = $1 AND status = 'dead'""",
                subscription_id,
                now,
            )
            await conn.execute(
                "UPDATE events.subscriptions SET retry_at = NULL WHERE id = $1", subscription_id
            )
        return int(status.rsplit(" ", 1)[1])

    def _spec_args(self, spec: SubscriptionSpec) -> tuple[Any, ...]:
        f = spec.filters
        return (spec.name, spec.url, f.severity, f.event_type, f.host, f.service, f.min_score,
                f.include_suppressed)  # fmt: skip

    def _batch_args(self, spec: SubscriptionSpec) -> tuple[int, int, int]:
        d = self.defaults
        return (
            d.batch_max_events if spec.batch_max_events is None else spec.batch_max_events,
            d.batch_max_delay_ms if spec.batch_max_delay_ms is None else spec.batch_max_delay_ms,
            d.max_attempts if spec.max_attempts is None else spec.max_attempts,
        )

    # --- delivery (the worker) ------------------------------------------------------------------------

    async def candidates(self, now: datetime) -> list[Subscription]:
        """Active subscriptions out of backoff with a due or full batch waiting."""
        async with connection(self._pool) as conn:
            rows = await conn.fetch(_CANDIDATES, now)
        return [_to_subscription(r) for r in rows]

    @contextlib.asynccontextmanager
    async def claim(self, subscription_id: int, now: datetime) -> AsyncIterator[Claim | None]:
        """Lock the subscription's next batch for one delivery; None when nothing is due (or it is gone).

        The rows stay locked until the block ends; the block must call `Claim.delivered` or
        `Claim.failed`. If it raises (or is cancelled) instead, the transaction rolls back and the rows
        are pending again, untouched, for the next claim.

        Raises:
            DatabaseUnavailableError: PostgreSQL cannot be reached.
        """
        async with connection(self._pool) as conn, conn.transaction():
            # Read again under the transaction: the caller's copy may predate an edit (URL, secret).
            sub_row = await conn.fetchrow(
                f"""SELECT {_SUBSCRIPTION_COLUMNS}, consecutive_failures FROM events.subscriptions
                    WHERE id = $1 AND active AND (retry_at IS NULL OR retry_at <= $2)""",
                subscription_id,
                now,
            )
            if sub_row is None:
                yield None
                return
            subscription = _to_subscription(sub_row)
            rows = await conn.fetch(_CLAIM, subscription_id, subscription.batch_max_events)
            due = len(rows) >= subscription.batch_max_events or any(r["next_attempt_at"] <= now for r in rows)
            if not due:
                # Another worker holds the due rows, or the batch is still filling: leave it.
                yield None
                return
            claimed = [ClaimedRow(r["id"], r["event_id"], r["attempts"]) for r in rows]
            event_rows = await conn.fetch(
                SELECT_EVENTS_WITHOUT_RAW + " WHERE id = ANY($1::bigint[]) ORDER BY id",
                [c.event_id for c in claimed],
            )
            events = [row_to_event(r) for r in event_rows]
            present = {e.id for e in events}
            expired = [c.outbox_id for c in claimed if c.event_id not in present]
            if expired:
                # Retention removed these events before they could be sent; nothing is left to send.
                await conn.execute(
                    "DELETE FROM events.subscription_outbox WHERE id = ANY($1::bigint[])", expired
                )
            claim = Claim(
                conn,
                subscription,
                [c for c in claimed if c.event_id in present],
                events,
                expired=len(expired),
                consecutive_failures=sub_row["consecutive_failures"],
            )
            yield claim
            if not claim.settled and claim.rows:
                raise SubscriptionError("a claim ended without delivered() or failed()")

    async def sweep(self, dead_before: datetime) -> tuple[int, int]:
        """Remove rows of deleted subscriptions and dead rows older than `dead_before`.

        Orphans appear when a batch committed rows for a subscription deleted meanwhile (the ingest path
        checks subscriptions without locking them). Returns (orphans, expired dead rows) removed.
        """
        async with connection(self._pool) as conn:
            orphans = await conn.execute(
                """DELETE FROM events.subscription_outbox AS o WHERE NOT EXISTS
                       (SELECT 1 FROM events.subscriptions AS s WHERE s.id = o.subscription_id)"""
            )
            dead = await conn.execute(
                "DELETE FROM events.subscription_outbox WHERE status = 'dead' AND dead_at < $1", dead_before
            )
        return int(orphans.rsplit(" ", 1)[1]), int(dead.rsplit(" ", 1)[1])

    async def backlog(self) -> dict[int, tuple[int, int]]:
        """``{subscription_id: (pending, dead)}`` for every subscription with outbox rows."""
        async with connection(self._pool) as conn:
            rows = await conn.fetch(
                """SELECT subscription_id,
                          count(*) FILTER (WHERE status = 'pending') AS pending,
                          count(*) FILTER (WHERE status = 'dead') AS dead
                   FROM events.subscription_outbox GROUP BY subscription_id"""
            )
        return {r["subscription_id"]: (r["pending"], r["dead"]) for r in rows}


class Claim:
    """One locked batch of a subscription's outbox rows and the events they name, in event id order.

    ``rows`` and ``events`` correspond one to one (rows whose event is gone were removed, counted in
    ``expired``). Settle it exactly once with `delivered` or `failed`, inside the claim block.
    ``consecutive_failures`` is the subscription's count of failed deliveries since its last success.
    """

    def __init__(
        self,
        conn: asyncpg.Connection,
        subscription: Subscription,
        rows: list[ClaimedRow],
        events: list[Event],
        *,
        expired: int,
        consecutive_failures: int,
    ) -> None:
        self._conn = conn
        self.consecutive_failures = consecutive_failures
        self.subscription = subscription
        self.rows = rows
        self.events = events
        self.expired = expired
        self.settled = False

    async def delivered(self, now: datetime) -> None:
        """The receiver accepted the batch: remove the rows, count them, clear the backoff."""
        self._settle()
        await self._conn.execute(
            "DELETE FROM events.subscription_outbox WHERE id = ANY($1::bigint[])",
            [r.outbox_id for r in self.rows],
        )
        await self._conn.execute(
            """UPDATE events.subscriptions SET delivered_count = delivered_count + $2,
                   consecutive_failures = 0, retry_at = NULL, last_attempt_at = $3, last_success_at = $3
               WHERE id = $1""",
            self.subscription.id,
            len(self.rows),
            now,
        )

    async def failed(self, error: str, now: datetime, retry_at: datetime) -> int:
        """The delivery failed: count an attempt on every row, dead-letter those out of attempts.

        Returns how many rows went dead.
        """
        self._settle()
        error = error[:1000]
        limit = self.subscription.max_attempts
        dead = sum(1 for r in self.rows if r.attempts + 1 >= limit)
        await self._conn.execute(
            """UPDATE events.subscription_outbox
               SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3,
                   status = CASE WHEN attempts + 1 >= $4 THEN 'dead' ELSE 'pending' END,
                   dead_at = CASE WHEN attempts + 1 >= $4 THEN $5::timestamptz END
               WHERE id = ANY($1::bigint[])""",
            [r.outbox_id for r in self.rows],
            error,
            retry_at,
            limit,
            now,
        )
        await self._conn.execute(
            """UPDATE events.subscriptions SET failed_attempts = failed_attempts + 1,
                   dead_count = dead_count + $2, consecutive_failures = consecutive_failures + 1,
                   retry_at = $3, last_attempt_at = $4, last_error = $5, last_error_at = $4
               WHERE id = $1""",
            self.subscription.id,
            dead,
            retry_at,
            now,
            error,
        )
        return dead

    def _settle(self) -> None:
        if self.settled:
            raise SubscriptionError("a claim was settled twice")
        self.settled = True


# --- the ingest path ------------------------------------------------------------------------------------


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
                "SELECT id, severities, event_type, host, service, min_score, include_suppressed "
                "FROM events.subscriptions WHERE active ORDER BY id"
            )
            self._matchers = [_Matcher(r["id"], _to_filters(r)) for r in rows]
            self._expires = now + self._ttl
        return self._matchers


def _to_filters(row: asyncpg.Record) -> EventFilter:
    severities = row["severities"]
    return EventFilter(
        severity=None if severities is None else tuple(severities),
        event_type=row["event_type"],
        host=row["host"],
        service=row["service"],
        min_score=row["min_score"],
        include_suppressed=row["include_suppressed"],
    )


def _to_subscription(row: asyncpg.Record) -> Subscription:
    return Subscription(
        id=row["id"],
        name=row["name"],
        url=row["url"],
        filters=_to_filters(row),
        secret=None if row["secret"] is None else Secret(row["secret"]),
        batch_max_events=row["batch_max_events"],
        batch_max_delay_ms=row["batch_max_delay_ms"],
        max_attempts=row["max_attempts"],
        active=row["active"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
