"""Outbound subscriptions: their management (the API's CRUD) and their delivery status.

The ingest side, the outbox rows written with each batch, is `store.subscription_outbox`; the delivery
side, claiming those rows for one HTTP delivery, is `store.deliveries`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import asyncpg
import msgspec
import structlog

from opsresponder.config import SubscriptionsConfig
from opsresponder.rules.filter import EventFilter
from opsresponder.store.errors import StoreError
from opsresponder.store.pool import connection
from opsresponder.store.subscription_outbox import SubscriptionOutbox, filters_from_row

log = structlog.get_logger(__name__)


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


SUBSCRIPTION_COLUMNS: Final = (
    "id, name, url, severities, event_type, host, service, min_score, include_suppressed, pattern, secret, "
    "batch_max_events, batch_max_delay_ms, max_attempts, active, created_at, updated_at"
)

_STATUS_COLUMNS: Final = (
    "delivered_count, dead_count, failed_attempts, consecutive_failures, retry_at, last_attempt_at, "
    "last_success_at, last_error, last_error_at"
)


class SubscriptionRepository:
    """Manages ``events.subscriptions`` and reports their deliveries (the API's side).

    ``outbox`` is the ingest path's batch writer (give it to the event repository): every change through
    this class invalidates its filter cache, so the next batch follows the change.
    """

    def __init__(self, pool: asyncpg.Pool, defaults: SubscriptionsConfig) -> None:
        self.pool = pool
        self.defaults = defaults
        self.outbox = SubscriptionOutbox()

    async def create(self, spec: SubscriptionSpec, secret: str | None) -> Subscription:
        """Store a new subscription.

        Raises:
            SubscriptionNameTakenError: the name is in use.
            DatabaseUnavailableError: PostgreSQL cannot be reached.
        """
        async with connection(self.pool) as conn:
            try:
                row = await conn.fetchrow(
                    f"""INSERT INTO events.subscriptions (name, url, severities, event_type, host, service,
                            min_score, include_suppressed, secret, batch_max_events, batch_max_delay_ms,
                            max_attempts, active, pattern)
                        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                        RETURNING {SUBSCRIPTION_COLUMNS}""",
                    *self._spec_args(spec),
                    secret,
                    *self._batch_args(spec),
                    spec.active,
                    spec.filters.pattern,
                )
            except asyncpg.UniqueViolationError as e:
                raise SubscriptionNameTakenError(f"a subscription named {spec.name!r} exists") from e
        self.outbox.invalidate()
        assert row is not None
        return subscription_from_row(row)

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
        async with connection(self.pool) as conn:
            try:
                row = await conn.fetchrow(
                    f"""UPDATE events.subscriptions SET name = $2, url = $3, severities = $4,
                            event_type = $5, host = $6, service = $7, min_score = $8,
                            include_suppressed = $9,
                            secret = CASE WHEN $10 THEN secret ELSE $11 END,
                            batch_max_events = $12, batch_max_delay_ms = $13, max_attempts = $14,
                            active = $15, pattern = $16, updated_at = now(),
                            -- a changed endpoint deserves a prompt try, not the old one's backoff
                            retry_at = CASE WHEN url = $3 THEN retry_at ELSE NULL END
                        WHERE id = $1
                        RETURNING {SUBSCRIPTION_COLUMNS}""",
                    subscription_id,
                    *self._spec_args(spec),
                    keep_secret,
                    None if isinstance(secret, msgspec.UnsetType) else secret,
                    *self._batch_args(spec),
                    spec.active,
                    spec.filters.pattern,
                )
            except asyncpg.UniqueViolationError as e:
                raise SubscriptionNameTakenError(f"a subscription named {spec.name!r} exists") from e
        self.outbox.invalidate()
        return None if row is None else subscription_from_row(row)

    async def delete(self, subscription_id: int) -> bool:
        """Remove a subscription and its outbox rows; False when it did not exist."""
        async with connection(self.pool) as conn, conn.transaction():
            # Outbox rows first: a delivery in flight holds some of them and then updates the subscription
            # row; taking the subscription row first would make the two wait for each other.
            await conn.execute(
                "DELETE FROM events.subscription_outbox WHERE subscription_id = $1", subscription_id
            )
            status = await conn.execute("DELETE FROM events.subscriptions WHERE id = $1", subscription_id)
        self.outbox.invalidate()
        return status.endswith(" 1")

    async def get(self, subscription_id: int) -> Subscription | None:
        async with connection(self.pool) as conn:
            row = await conn.fetchrow(
                f"SELECT {SUBSCRIPTION_COLUMNS} FROM events.subscriptions WHERE id = $1", subscription_id
            )
        return None if row is None else subscription_from_row(row)

    async def list_all(self) -> list[Subscription]:
        async with connection(self.pool) as conn:
            rows = await conn.fetch(f"SELECT {SUBSCRIPTION_COLUMNS} FROM events.subscriptions ORDER BY id")
        return [subscription_from_row(r) for r in rows]

    async def statuses(self, subscription_ids: Sequence[int]) -> dict[int, DeliveryStatus]:
        """Delivery state of the given subscriptions (absent ids are left out)."""
        async with connection(self.pool) as conn:
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
        async with connection(self.pool) as conn, conn.transaction():
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


def subscription_from_row(row: asyncpg.Record) -> Subscription:
    return Subscription(
        id=row["id"],
        name=row["name"],
        url=row["url"],
        filters=filters_from_row(row),
        secret=None if row["secret"] is None else Secret(row["secret"]),
        batch_max_events=row["batch_max_events"],
        batch_max_delay_ms=row["batch_max_delay_ms"],
        max_attempts=row["max_attempts"],
        active=row["active"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
