"""The delivery side of subscriptions: which are due, and claiming their outbox rows for one delivery.

`DeliveryQueue.claim` locks due rows with ``FOR UPDATE SKIP LOCKED`` for the duration of one HTTP
delivery, so several workers (also in several processes) never send the same row at the same time, and a
worker that dies releases its rows with its transaction. The management side (the API's CRUD) is
`store.subscriptions`; the rows are written by `store.subscription_outbox`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg
import structlog

from opsresponder.core.event import Event
from opsresponder.store.event_columns import SELECT_EVENTS_WITHOUT_RAW, row_to_event
from opsresponder.store.pool import connection
from opsresponder.store.subscriptions import (
    SUBSCRIPTION_COLUMNS,
    Subscription,
    SubscriptionError,
    subscription_from_row,
)

log = structlog.get_logger(__name__)


@dataclass(slots=True, frozen=True)
class ClaimedRow:
    outbox_id: int
    event_id: int
    attempts: int


# Subscriptions worth a claim now: active, not in backoff, and with a batch that is due (its oldest row
# reached its deadline) or full. The count stops at batch_max_events rows, so a backlog costs no more.
_CANDIDATES: Final = f"""
SELECT {SUBSCRIPTION_COLUMNS} FROM events.subscriptions AS s
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


class DeliveryQueue:
    """The delivery worker's view of ``events.subscription_outbox``: due subscriptions, claims, clean-up."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def candidates(self, now: datetime) -> list[Subscription]:
        """Active subscriptions out of backoff with a due or full batch waiting."""
        async with connection(self._pool) as conn:
            rows = await conn.fetch(_CANDIDATES, now)
        return [subscription_from_row(r) for r in rows]

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
                f"""SELECT {SUBSCRIPTION_COLUMNS}, consecutive_failures FROM events.subscriptions
                    WHERE id = $1 AND active AND (retry_at IS NULL OR retry_at <= $2)""",
                subscription_id,
                now,
            )
            if sub_row is None:
                yield None
                return
            subscription = subscription_from_row(sub_row)
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
