"""Rule firings in ``rules.rule_firings``: written in the batch's transaction, listed, and claimed.

`FiringsWriter` is a `store.writers.BatchWriter`: the trigger firings the ``rules`` stage put under
`FIRINGS` commit or roll back with the event that completed them. `FiringRepository` writes the absence
checker's firings (no event, no batch), lists a rule's firings for the API, and is the outbox the
response side consumes: `claim` takes open firings with ``FOR UPDATE SKIP LOCKED`` under a lease, so
several consumers (also in several processes) never take the same firing, and a consumer that dies
before `complete` leaves its firings to be claimed again once the lease expires. Nothing is lost between
a firing and its handling, and a firing is completed once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import asyncpg
import msgspec

from opsresponder.core.batch import Batch
from opsresponder.core.event import Event
from opsresponder.rules.evaluation import FIRINGS, Firing
from opsresponder.store.pool import connection
from opsresponder.store.retention import RetentionRule

SETTLED: Final = ("done", "failed")
"""Firing states the response loop is finished with: `complete` and `fail` set them, and nothing claims
them again (`release` puts a firing back to ``new``)."""

_COLUMNS: Final = (
    "id, firing_key, rule_id, group_key, kind, event_ids, fired_at, detail, status, claimed_by, claimed_at, "
    "lease_until, attempts, last_error"
)

# One statement per batch. A firing completed by an event the store folded into an earlier row (a
# duplicate) names that row, found through events.dedup by the event's fingerprint.
_INSERT: Final = """
INSERT INTO rules.rule_firings (firing_key, rule_id, group_key, kind, event_ids, fired_at, detail)
SELECT f.firing_key, f.rule_id, f.group_key, f.kind,
       f.ids::bigint[] || CASE WHEN f.fingerprint IS NULL THEN '{}'::bigint[]
                               ELSE ARRAY(SELECT d.event_id FROM events.dedup AS d
                                          WHERE d.fingerprint = f.fingerprint) END,
       f.fired_at, f.detail::jsonb
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::text[],
            $8::uuid[])
     AS f(rule_id, group_key, kind, ids, fired_at, detail, fingerprint, firing_key)
ON CONFLICT (firing_key) DO NOTHING
"""

_CLAIM: Final = f"""
UPDATE rules.rule_firings SET status = 'claimed', claimed_by = $2, claimed_at = $3,
       lease_until = $3 + $4::interval, attempts = attempts + 1
WHERE id IN (SELECT id FROM rules.rule_firings
             WHERE status = 'new' OR (status = 'claimed' AND lease_until <= $3)
             ORDER BY id LIMIT $1
             FOR UPDATE SKIP LOCKED)
RETURNING {_COLUMNS}
"""


@dataclass(frozen=True, slots=True)
class StoredFiring:
    """A row of ``rules.rule_firings``."""

    id: int
    firing_key: uuid.UUID
    rule_id: int
    group_key: str
    kind: str
    event_ids: list[int]
    fired_at: datetime
    detail: dict[str, Any]
    status: str
    claimed_by: str | None
    claimed_at: datetime | None
    lease_until: datetime | None
    attempts: int
    last_error: str | None


def _from_row(row: asyncpg.Record) -> StoredFiring:
    return StoredFiring(**dict(row.items()))


def _ids_text(ids: Sequence[int]) -> str:
    return "{" + ",".join(str(i) for i in ids) + "}"


async def insert_firings(
    conn: asyncpg.Connection, firings: Sequence[Firing], duplicates: Sequence[Event | None] = ()
) -> None:
    """Insert `firings`; `duplicates[i]`, when given, is the completing event of firing i that the store
    folded into an earlier row (its id is then that row's)."""
    if not firings:
        return
    dup = list(duplicates) or [None] * len(firings)
    await conn.execute(
        _INSERT,
        [f.rule_id for f in firings],
        [f.group_key for f in firings],
        [f.kind for f in firings],
        [_ids_text([e.id for e in f.events if e.id is not None]) for f in firings],
        [f.fired_at for f in firings],
        [msgspec.json.encode(f.detail).decode() for f in firings],
        [None if d is None else d.fingerprint for d in dup],
        [f.key for f in firings],
    )


class FiringsWriter:
    """The batch writer of trigger firings: each goes in with the event that completed it.

    A firing is written in the transaction that stores its completing event: as a new row, or as a
    duplicate of an earlier row (it has no id of its own after the store), whose row the firing then names,
    found through ``events.dedup``. Writes are idempotent (``firing_key``), so a firing is stored once
    whatever the store retries. A firing whose completing event is not in the transaction at all is not
    written: the worker stores part of a batch (one event at a time after a refusal; after an outage, only
    the events nobody was answered 503 for, as the rest will be sent again).
    """

    async def write(self, conn: asyncpg.Connection, batch: Batch, stored: Sequence[Event]) -> None:
        firings = batch.get(FIRINGS)
        if not firings:
            return
        new = {id(e) for e in stored}
        in_tx = {id(e) for e in batch.transaction_events}
        chosen: list[Firing] = []
        duplicates: list[Event | None] = []
        for firing in firings:
            last = firing.events[-1]
            if id(last) in new:
                chosen.append(firing)
                duplicates.append(None)
            elif last.id is None and id(last) in in_tx:
                chosen.append(firing)
                duplicates.append(last)
        await insert_firings(conn, chosen, duplicates)


class FiringRepository:
    """Absence firings, the firings API's reads, and the outbox consumer's claims."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def write_firings(self, firings: Sequence[Firing]) -> None:
        """Insert firings that have no event transaction (the absence checker's), in one statement."""
        async with connection(self._pool) as conn:
            await insert_firings(conn, firings)

    async def list_for_rule(self, rule_id: int, *, limit: int, offset: int) -> tuple[list[StoredFiring], int]:
        """A rule's firings, newest first, and how many it has in all."""
        async with connection(self._pool) as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM rules.rule_firings WHERE rule_id = $1 ORDER BY id DESC "
                "LIMIT $2 OFFSET $3",
                rule_id,
                limit,
                offset,
            )
            total = await conn.fetchval("SELECT count(*) FROM rules.rule_firings WHERE rule_id = $1", rule_id)
        return [_from_row(r) for r in rows], int(total)

    async def rules_fired_for(self, event_id: int) -> list[int]:
        """The ids of the rules that fired with `event_id` among their events, in firing order, once each
        (the analysis's link from an event to the templates of those rules; a GIN index serves it).

        Raises:
            DatabaseUnavailableError: PostgreSQL cannot be reached.
        """
        async with connection(self._pool) as conn:
            rows = await conn.fetch(
                "SELECT rule_id FROM rules.rule_firings WHERE event_ids @> ARRAY[$1::bigint] ORDER BY id",
                event_id,
            )
        return list(dict.fromkeys(int(r["rule_id"]) for r in rows))

    async def claim(self, limit: int, owner: str, lease: timedelta, now: datetime) -> list[StoredFiring]:
        """Take up to `limit` open firings (new, or claimed under an expired lease), oldest first.

        They are `owner`'s until ``now + lease``: `complete`, `release` or `fail` them before. Concurrent
        claims skip each other's rows (SKIP LOCKED) and never return the same firing twice.
        """
        async with connection(self._pool) as conn:
            rows = await conn.fetch(_CLAIM, limit, owner, now, lease)
        return sorted((_from_row(r) for r in rows), key=lambda f: f.id)

    async def renew(self, ids: Sequence[int], owner: str, lease: timedelta, now: datetime) -> set[int]:
        """Extend `owner`'s lease on its claimed firings among `ids` to ``now + lease``; the ids still its
        own (a firing whose lease expired and was claimed by another consumer is not)."""
        async with connection(self._pool) as conn:
            rows = await conn.fetch(
                """UPDATE rules.rule_firings SET lease_until = $3::timestamptz + $4::interval
                   WHERE id = ANY($1::bigint[]) AND status = 'claimed' AND claimed_by = $2
                   RETURNING id""",
                list(ids),
                owner,
                now,
                lease,
            )
        return {int(r["id"]) for r in rows}

    async def complete(self, ids: Sequence[int], owner: str) -> int:
        """Mark `owner`'s claimed firings done; returns how many (a lost lease is not completed)."""
        return await self._settle(ids, owner, "done", None)

    async def release(self, ids: Sequence[int], owner: str, error: str | None = None) -> int:
        """Give `owner`'s claimed firings back (status new) for another try."""
        return await self._settle(ids, owner, "new", error)

    async def fail(self, ids: Sequence[int], owner: str, error: str) -> int:
        """Give up on `owner`'s claimed firings (status failed, kept with the error)."""
        return await self._settle(ids, owner, "failed", error)

    async def _settle(self, ids: Sequence[int], owner: str, status: str, error: str | None) -> int:
        async with connection(self._pool) as conn:
            result = await conn.execute(
                """UPDATE rules.rule_firings SET status = $3, last_error = COALESCE($4, last_error),
                       lease_until = NULL
                   WHERE id = ANY($1::bigint[]) AND status = 'claimed' AND claimed_by = $2""",
                list(ids),
                owner,
                status,
                None if error is None else error[:1000],
            )
        return int(result.rsplit(" ", 1)[1])


def firing_rules(*, max_age: timedelta, batch_size: int) -> list[RetentionRule]:
    """Retention of ``rules.rule_firings``: settled firings as old as the events they name
    (``retention.events_days``, on ``fired_at``), with the loop's plan for each (``firing_responses``).

    A firing still ``new`` or ``claimed`` is kept however old: it is the outbox, and deleting it would
    lose a response nobody has handled yet (an outage of the response side, say); it goes in the first
    run after it settles.
    """
    settled = ", ".join(f"'{s}'" for s in SETTLED)
    return [
        RetentionRule(
            "rules.rule_firings",
            "fired_at",
            max_age,
            batch_size,
            keep_if=f"t.status NOT IN ({settled})",
            also_delete=(("autonomous.firing_responses", "firing_id"),),
        )
    ]
