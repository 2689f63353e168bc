"""Message templates in ``events.patterns``: the batch writer that counts them, and the API's reads.

`PatternWriter` (a `store.writers.BatchWriter`) upserts, in the batch's transaction, one row per template
id the transaction's events carry in ``metadata.pattern`` (set by the ``patterns`` stage), with one
statement per batch: occurrences are summed per id first. Duplicates count: an event folded into an
existing one is still an occurrence of its template.

`PatternRepository` lists the templates for ``GET /api/v1/patterns`` and gives the stage the most recently
seen templates at start (`pipeline.patterns.PatternSource`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, Literal

import asyncpg
import msgspec

from opsresponder.core.batch import Batch
from opsresponder.core.event import Event
from opsresponder.store.errors import StoreError
from opsresponder.store.pool import connection

# Sorted by id so that concurrent writers lock the rows they share in one order (no deadlock).
_UPSERT: Final = """
INSERT INTO events.patterns AS p (id, template, count, first_seen, last_seen)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[], $5::timestamptz[])
ON CONFLICT (id) DO UPDATE SET
    count = p.count + EXCLUDED.count,
    first_seen = LEAST(p.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(p.last_seen, EXCLUDED.last_seen)
"""

PatternSort = Literal["last_seen", "first_seen", "count"]
# A unique tie-breaker keeps pages stable when many rows share a count or a time.
_ORDER: Final[dict[str, str]] = {
    "last_seen": "last_seen DESC, id",
    "first_seen": "first_seen DESC, id",
    "count": "count DESC, id",
}


class Pattern(msgspec.Struct, kw_only=True):
    """One stored template, as ``GET /api/v1/patterns`` shows it."""

    id: str
    template: str
    count: int
    first_seen: datetime
    last_seen: datetime


class PatternQuery(msgspec.Struct, kw_only=True):
    """``GET /api/v1/patterns``: which templates (first seen at or after `since`), in what order, a page."""

    since: datetime | None = None
    sort: PatternSort = "last_seen"
    limit: int = 100
    offset: int = 0


class _Tally:
    __slots__ = ("count", "first", "last", "template")

    def __init__(self, template: str, seen: datetime) -> None:
        self.template = template
        self.count = 0
        self.first = seen
        self.last = seen


class PatternWriter:
    """The batch writer of template counts (see the module docstring)."""

    async def write(self, conn: asyncpg.Connection, batch: Batch, stored: Sequence[Event]) -> None:
        """One upsert for the templates of `batch.transaction_events`; nothing when none has one.

        Raises:
            asyncpg.PostgresError: as the caller's other statements would; the transaction is then aborted.
        """
        tallies = count_patterns(batch.transaction_events)
        if not tallies:
            return
        ids = sorted(tallies)
        await conn.execute(
            _UPSERT,
            ids,
            [tallies[i].template for i in ids],
            [tallies[i].count for i in ids],
            [tallies[i].first for i in ids],
            [tallies[i].last for i in ids],
        )


def count_patterns(events: Sequence[Event]) -> dict[str, _Tally]:
    """Occurrences per template id of `events` (those with a well-formed ``metadata.pattern``)."""
    tallies: dict[str, _Tally] = {}
    for event in events:
        pattern = event.metadata.get("pattern")
        if not isinstance(pattern, dict):
            continue
        pattern_id, template = pattern.get("id"), pattern.get("template")
        if not isinstance(pattern_id, str) or not isinstance(template, str):
            continue
        seen = event.received_at
        tally = tallies.get(pattern_id)
        if tally is None:
            tally = tallies[pattern_id] = _Tally(template, seen)
        tally.count += 1
        if seen < tally.first:
            tally.first = seen
        elif seen > tally.last:
            tally.last = seen
    return tallies


class PatternRepository:
    """Reads ``events.patterns``: the API's list, and the stage's known templates at start."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def query(self, q: PatternQuery) -> tuple[list[Pattern], int]:
        """The templates matching `q` in its order, and how many match in all.

        Raises:
            DatabaseUnavailableError: PostgreSQL cannot be reached.
        """
        where, args = ("WHERE first_seen >= $1", [q.since]) if q.since is not None else ("", [])
        n = len(args)
        sql = (
            f"SELECT id, template, count, first_seen, last_seen, count(*) OVER () AS total "
            f"FROM events.patterns {where} ORDER BY {_ORDER[q.sort]} LIMIT ${n + 1} OFFSET ${n + 2}"
        )
        async with connection(self.pool) as conn:
            rows = await conn.fetch(sql, *args, q.limit, q.offset)
            if rows:
                total = int(rows[0]["total"])
            else:  # past the last page, the window count is not there to read
                total = int(await conn.fetchval(f"SELECT count(*) FROM events.patterns {where}", *args))
        return [_from_row(r) for r in rows], total

    async def get(self, pattern_id: str) -> Pattern | None:
        async with connection(self.pool) as conn:
            row = await conn.fetchrow(
                "SELECT id, template, count, first_seen, last_seen FROM events.patterns WHERE id = $1",
                pattern_id,
            )
        return None if row is None else _from_row(row)

    async def recent_templates(self, limit: int) -> Sequence[str]:
        """The texts of the `limit` most recently seen templates, most recent first.

        Raises:
            StoreError: PostgreSQL cannot be reached (`DatabaseUnavailableError`) or refused the query.
        """
        async with connection(self.pool) as conn:
            try:
                rows = await conn.fetch(
                    "SELECT template FROM events.patterns ORDER BY last_seen DESC, id LIMIT $1", limit
                )
            except asyncpg.PostgresError as e:
                raise StoreError(f"reading the known templates failed: {e.__class__.__name__}: {e}") from e
        return [r["template"] for r in rows]


def _from_row(row: asyncpg.Record) -> Pattern:
    values: dict[str, Any] = {k: row[k] for k in ("id", "template", "count", "first_seen", "last_seen")}
    return Pattern(**values)
