"""Correlations in ``events.event_correlations`` (a row per correlated event): the batch writer, the API's
reads, the stage's history and the learned lead-lag suggestions.

- `CorrelationWriter` (a `store.writers.BatchWriter`) writes what the ``correlate`` stage found
  (`core.correlation.CORRELATIONS`) in the batch's transaction, one COPY per batch, and flags the stored
  events it newly named root cause (`core.correlation.NEW_ROOT_CAUSES`).
- `CorrelationRepository` answers ``GET /api/v1/events/{id}/correlations`` and ``include_correlations``,
  is the stage's `pipeline.correlation.CorrelationHistory` (the events of the last lookback window, read
  at start), and computes ``GET /api/v1/correlations/suggestions`` from stored events.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Final

import asyncpg
import msgspec

from opsresponder.core.batch import Batch
from opsresponder.core.correlation import CORRELATIONS, NEW_ROOT_CAUSES
from opsresponder.core.event import Event
from opsresponder.store.errors import StoreError
from opsresponder.store.event_columns import SELECT_EVENTS_WITHOUT_RAW, row_to_event
from opsresponder.store.pool import connection
from opsresponder.store.retention import RetentionRule

# One row per correlated event (migration 018 says why), written by binary COPY (encoded in C, where an
# INSERT over unnest() arrays had asyncpg check every element in Python); `links` goes through the pool's
# msgspec jsonb codec. created_at takes its default.
_COLUMNS: Final = ("event_id", "correlation_id", "related", "links")

# SKIP LOCKED: never wait for a row another batch holds (its duplicate count being updated): waiting there
# could deadlock two batches; a skipped flag stays in the stage's memory and in the causal rows.
_FLAG_ROOTS: Final = """
UPDATE events.events AS e
SET metadata = jsonb_set(e.metadata, '{correlation,root_cause}', 'true'::jsonb)
WHERE e.id IN (
    SELECT id FROM events.events
    WHERE id = ANY($1::bigint[]) AND metadata ? 'correlation'
      AND metadata->'correlation'->'root_cause' IS DISTINCT FROM 'true'::jsonb
    ORDER BY id
    FOR UPDATE SKIP LOCKED
)
"""

# What the stage needs of an event, and no more (no raw, no description, three parts of the metadata).
# last_seen_at stands for received_at: the stage's repeat check compares it as dedup does.
_HISTORY: Final = """
SELECT id, source, source_type, event_type, severity, state, host, service, title, occurred_at,
       last_seen_at AS received_at, tags, fingerprint, correlation_id, suppressed_reason,
       jsonb_strip_nulls(jsonb_build_object(
           'asset', metadata->'asset', 'pattern', metadata->'pattern',
           'correlation', metadata->'correlation')) AS metadata
FROM events.events
WHERE occurred_at >= $1 AND suppressed_reason IS NULL
ORDER BY occurred_at, id
"""
_HISTORY_CHUNK: Final = 5000

# Both directions: the rows of the events asked for (primary key), and the rows of other events naming one
# of them (the GIN index on `related`; migration 018). Two branches, each through its index: written as
# one WHERE with OR, PostgreSQL may scan the whole table.
_ROWS_OF: Final = """
SELECT c.event_id, c.related, c.links, c.created_at
FROM events.event_correlations AS c
WHERE c.event_id = ANY($1::bigint[])
UNION ALL
SELECT c.event_id, c.related, c.links, c.created_at
FROM events.event_correlations AS c
WHERE c.related && $1::bigint[] AND NOT c.event_id = ANY($1::bigint[])
ORDER BY event_id
"""

# Lead-lag statistics: for each (cause, effect) pair of "what on where" keys, how often the cause was
# followed by the effect on another host or service within the window, against how often chance would
# give it (Poisson: the effect's rate over the history's span). See docs/correlation.md.
_SUGGESTIONS: Final = """
WITH ev AS (
    SELECT id, occurred_at,
           coalesce(metadata->'pattern'->>'id', event_type) AS what,
           coalesce(metadata->'pattern'->>'template', event_type) AS label,
           coalesce(host, service) AS place
    FROM events.events
    WHERE occurred_at >= $1 AND suppressed_reason IS NULL AND state = 'problem'
      AND coalesce(host, service) IS NOT NULL
    ORDER BY occurred_at DESC
    LIMIT $2
), span AS (
    SELECT greatest(extract(epoch FROM max(occurred_at) - min(occurred_at)), 1) AS seconds FROM ev
), counts AS (
    SELECT what, place, count(*) AS n, min(label) AS label FROM ev GROUP BY what, place
), pairs AS (
    SELECT a.what AS a_what, a.place AS a_place, b.what AS b_what, b.place AS b_place,
           count(DISTINCT a.id) AS support
    FROM ev AS a
    JOIN ev AS b ON b.occurred_at > a.occurred_at AND b.occurred_at <= a.occurred_at + $3::interval
                AND b.place <> a.place
    GROUP BY 1, 2, 3, 4
)
SELECT p.a_what, p.a_place, ca.label AS a_label, p.b_what, p.b_place, cb.label AS b_label,
       p.support, ca.n AS cause_count, cb.n AS effect_count,
       p.support / (ca.n * (1 - exp(-cb.n * $4::float8 / s.seconds))) AS lift
FROM pairs AS p
JOIN counts AS ca ON ca.what = p.a_what AND ca.place = p.a_place
JOIN counts AS cb ON cb.what = p.b_what AND cb.place = p.b_place
CROSS JOIN span AS s
WHERE p.support >= $5
  AND p.support / (ca.n * (1 - exp(-cb.n * $4::float8 / s.seconds))) >= $6
ORDER BY lift DESC, p.support DESC
LIMIT $7
"""


# (event_id, correlation_id, related, links): a row of ``events.event_correlations``; a link is
# (kind, score, reason) of the related event at the same place.
_Row = tuple[int, "uuid.UUID | None", list[int], list[tuple[str, float, str]]]


class CorrelationWriter:
    """The batch writer (`store.writers.BatchWriter`) of the correlations the stage found."""

    async def write(self, conn: asyncpg.Connection, batch: Batch, stored: Sequence[Event]) -> None:
        """One COPY for the correlations of `stored` events (a row per event); one UPDATE flagging new root
        causes.

        A correlation with an event that was not stored as a new row (a duplicate) is left out.
        """
        links = batch.get(CORRELATIONS)
        if links and stored:
            mine = {id(e) for e in stored}
            # The stage appends an event's links together; keyed by the event all the same.
            by_event: dict[int, _Row] = {}
            for link in links:
                event = link.event
                event_id = event.id
                if event_id is None or id(event) not in mine:
                    continue
                related = link.related
                related_id = related if isinstance(related, int) else related.id
                if not related_id or related_id == event_id:
                    continue
                row = by_event.get(event_id)
                if row is None:
                    row = by_event[event_id] = (event_id, event.correlation_id, [], [])
                row[2].append(related_id)
                row[3].append((link.correlation_type, link.score, link.reason))
            if by_event:
                await conn.copy_records_to_table(
                    "event_correlations", schema_name="events", columns=_COLUMNS, records=by_event.values()
                )
        roots = batch.get(NEW_ROOT_CAUSES)
        if roots and stored:
            ids = sorted({r if isinstance(r, int) else (r.id or 0) for r in roots} - {0})
            if ids:
                await conn.execute(_FLAG_ROOTS, ids)


class CorrelationRow(msgspec.Struct, frozen=True):
    """One stored correlation seen from one event: the other event, the kind, score, reason and time."""

    event_id: int
    other_event_id: int
    correlation_type: str
    score: float
    reason: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A learned lead-lag pair: ``cause`` on ``cause_place`` is followed by ``effect`` on
    ``effect_place`` within the window ``support`` times, ``lift`` times more often than chance."""

    cause: str
    cause_template: str
    cause_place: str
    effect: str
    effect_template: str
    effect_place: str
    support: int
    cause_count: int
    effect_count: int
    lift: float


class CorrelationRepository:
    """Reads of ``events.event_correlations`` and of the events the correlation stage and suggestions
    need."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def rows_of(self, event_ids: Sequence[int]) -> list[CorrelationRow]:
        """Every correlation that involves one of `event_ids`, both directions, best score first.

        Raises:
            DatabaseUnavailableError: PostgreSQL cannot be reached.
        """
        if not event_ids:
            return []
        wanted = list(event_ids)
        async with connection(self.pool) as conn:
            records = await conn.fetch(_ROWS_OF, wanted)
        asked = set(wanted)
        rows: list[CorrelationRow] = []
        add = rows.append
        for r in records:
            event_id, created = r["event_id"], r["created_at"]
            mine = event_id in asked
            for related, (kind, score, reason) in zip(r["related"], r["links"], strict=True):
                if mine:
                    add(CorrelationRow(event_id, related, kind, score, reason, created))
                if related in asked and related != event_id:
                    add(CorrelationRow(related, event_id, kind, score, reason, created))
        rows.sort(key=attrgetter("score"), reverse=True)  # stable: equal scores keep the written order
        return rows

    async def events(self, event_ids: Sequence[int]) -> dict[int, Event]:
        """The events (without ``raw``) of `event_ids` that still exist, by id."""
        if not event_ids:
            return {}
        async with connection(self.pool) as conn:
            records = await conn.fetch(
                SELECT_EVENTS_WITHOUT_RAW + " WHERE id = ANY($1::bigint[])", list(event_ids)
            )
        found = [row_to_event(r) for r in records]
        return {e.id: e for e in found if e.id is not None}

    async def recent_events(self, since: datetime) -> AsyncIterator[Sequence[Event]]:
        """`pipeline.correlation.CorrelationHistory`: stored, unsuppressed events since `since`, oldest
        first, in chunks, reading only what the stage needs.

        Raises:
            DatabaseUnavailableError: PostgreSQL cannot be reached.
            StoreError: the database refused the query, or a stored row is not an event.
        """
        try:
            async with connection(self.pool) as conn, conn.transaction(readonly=True):
                chunk: list[Event] = []
                async for record in conn.cursor(_HISTORY, since, prefetch=_HISTORY_CHUNK):
                    chunk.append(msgspec.convert(dict(record), Event))
                    if len(chunk) >= _HISTORY_CHUNK:
                        yield chunk
                        chunk = []
                if chunk:
                    yield chunk
        except (asyncpg.PostgresError, msgspec.ValidationError) as e:
            raise StoreError(f"reading the correlation history failed: {e.__class__.__name__}: {e}") from e

    async def suggestions(
        self,
        *,
        since: datetime,
        within: timedelta,
        min_support: int,
        min_lift: float,
        max_events: int,
        limit: int,
    ) -> list[Suggestion]:
        """Learned lead-lag pairs from the stored problems since `since` (at most the `max_events` most
        recent), strongest first. They are suggestions only: nothing here changes grouping.

        Raises:
            DatabaseUnavailableError: PostgreSQL cannot be reached.
        """
        async with connection(self.pool) as conn:
            records = await conn.fetch(
                _SUGGESTIONS,
                since,
                max_events,
                within,
                within.total_seconds(),
                min_support,
                min_lift,
                limit,
            )
        return [
            Suggestion(
                cause=r["a_what"],
                cause_template=r["a_label"],
                cause_place=r["a_place"],
                effect=r["b_what"],
                effect_template=r["b_label"],
                effect_place=r["b_place"],
                support=int(r["support"]),
                cause_count=int(r["cause_count"]),
                effect_count=int(r["effect_count"]),
                lift=float(r["lift"]),
            )
            for r in records
        ]


def correlation_rules(*, max_age: timedelta, batch_size: int) -> list[RetentionRule]:
    """Retention of ``events.correlations``, the table before migration 018: no longer read, but a replica
    of the previous release may still write there during a rolling upgrade; emptied by age
    (``retention.events_days``) until a later migration drops it. The current table's rows go with their
    events (`store.retention.EVENT_DEPENDENTS`)."""
    return [RetentionRule("events.correlations", "created_at", max_age, batch_size)]
