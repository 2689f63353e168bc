"""Event storage: one transaction per batch, dedup by fingerprint and state, and the queries of the API."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import asyncpg
import msgspec
import structlog

from opsresponder.core.batch import Batch
from opsresponder.core.event import Event
from opsresponder.rules.conditions import Condition
from opsresponder.rules.filter import EventFilter
from opsresponder.rules.sql import WhereClause
from opsresponder.store.errors import (
    CommitOutcomeUnknownError,
    DatabaseUnavailableError,
    EarlierBatchWithdrawnError,
    StoreError,
)
from opsresponder.store.event_columns import EVENT_COLUMNS, SELECT_EVENTS, event_record, row_to_event
from opsresponder.store.ids import EventIdAllocator
from opsresponder.store.pool import CONNECTION_ERRORS, connection
from opsresponder.store.write_order import WriteOrder, WriteTurn
from opsresponder.store.writers import BatchWriter

log = structlog.get_logger(__name__)

# Not a refusal of the batch: the connection's failures (some are PostgresErrors), an earlier batch's.
_NOT_REFUSED: Final[tuple[type[Exception], ...]] = (*CONNECTION_ERRORS, EarlierBatchWithdrawnError)


class WriteOutcome(msgspec.Struct, frozen=True):
    """What storing one event did: the id to report and whether it was folded into an existing event."""

    event_id: int
    correlation_id: uuid.UUID
    duplicate: bool


class EventQuery(msgspec.Struct, kw_only=True):
    """``GET /api/v1/events``: which events, the time window on ``occurred_at`` (None: open), one page."""

    filter: EventFilter = msgspec.field(default_factory=EventFilter)
    where: Condition | None = None
    """A condition of the condition language the SQL answers exactly (``sql_exact``)."""
    start_time: datetime | None = None
    end_time: datetime | None = None
    limit: int = 100
    offset: int = 0


# A row is replaced (the incoming event is new) when the state changed or the window has passed since it
# was last seen; otherwise the incoming event is a duplicate of the row's event.
_UPSERT_DEDUP: Final = """
INSERT INTO events.dedup AS d (fingerprint, state, event_id, correlation_id, last_seen_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::uuid[], $5::timestamptz[])
ON CONFLICT (fingerprint) DO UPDATE SET
    event_id = CASE WHEN d.state = EXCLUDED.state AND d.last_seen_at >= EXCLUDED.last_seen_at - $6::interval
                    THEN d.event_id ELSE EXCLUDED.event_id END,
    correlation_id = CASE WHEN d.state = EXCLUDED.state
                               AND d.last_seen_at >= EXCLUDED.last_seen_at - $6::interval
                          THEN d.correlation_id ELSE EXCLUDED.correlation_id END,
    state = EXCLUDED.state,
    last_seen_at = GREATEST(d.last_seen_at, EXCLUDED.last_seen_at)
RETURNING fingerprint, event_id, correlation_id
"""

_ADD_DUPLICATES: Final = """
UPDATE events.events AS e
SET duplicate_count = e.duplicate_count + u.n, last_seen_at = GREATEST(e.last_seen_at, u.seen)
FROM unnest($1::bigint[], $2::integer[], $3::timestamptz[]) AS u(id, n, seen)
WHERE e.id = u.id
"""


class EventRepository:
    """Reads and writes `events.events`.

    `store_batch` never leaves a batch half-stored: everything happens in one transaction, and a failure
    rolls it all back. `writers` (see `store.writers.BatchWriter`) add their rows in that transaction, in
    the order given.
    """

    def __init__(
        self, pool: asyncpg.Pool, dedup_window: timedelta, *, writers: Sequence[BatchWriter] = ()
    ) -> None:
        self._pool = pool
        self._window = dedup_window
        self._ids = EventIdAllocator()
        self._writers = tuple(writers)

    async def store_batch(
        self, events: Sequence[Event], turn: WriteTurn | None = None, *, batch: Batch | None = None
    ) -> list[WriteOutcome]:
        """Store `events` (fingerprint, correlation_id and processed_at already set), in one transaction.

        Returns one outcome per event, in order. Duplicates within the batch or of stored events are folded
        into the event they repeat (its ``duplicate_count`` and ``last_seen_at`` grow).

        `batch` is the pipeline batch `events` belong to (all of its events, or one of them when the worker
        retries a refused batch one at a time); the writers read what the stages added from it. Without
        one, the writers get a `Batch` of `events` alone.

        With a `turn`, the transaction may overlap those of other batches: it takes its ids and dedup locks,
        and commits, only after the batch of the previous turn did (see `store.write_order`). This method
        ends the turn's lock and commit phases on every path; the caller ends its publish phase.

        Raises:
            DatabaseUnavailableError: the connection failed; nothing was stored.
            CommitOutcomeUnknownError: the connection failed during COMMIT: taken as nothing stored (the
                ids are taken back), though the transaction may have committed.
            EarlierBatchWithdrawnError: an earlier turn's batch did not commit after this one could read
                its ids (so this one may name them); nothing was stored.
            StoreError: the database refused the batch; nothing was stored.
        """
        turn = turn or WriteOrder().next_turn()
        shown = committing = committed = False
        try:
            if not events:
                return []
            # The ids `_write` gives are undone with the transaction: an event stored again later (after an
            # outage, or alone after its batch was refused) gets a new one, and nothing may keep the old.
            ids_before = [e.id for e in events]
            try:
                try:
                    async with connection(self._pool) as conn:
                        try:
                            await turn.wait_to_lock()
                            ids = await self._ids.allocate(conn, len(events))
                            async with conn.transaction():
                                outcomes = await self._write(conn, events, ids, turn, batch)
                                shown = True  # its lock phase is over: later batches may read these ids
                                if await turn.wait_to_commit():
                                    raise EarlierBatchWithdrawnError(
                                        "an earlier batch did not commit after this one could read its ids"
                                    )
                                # Leaving the block sends COMMIT, unless the connection is gone already
                                # (asyncpg checks first, and nothing awaits in between).
                                committing = not conn.is_closed()
                            committed = True
                            return outcomes
                        except _NOT_REFUSED:
                            # A connection's (some are PostgresErrors): DatabaseUnavailableError by
                            # `connection`.
                            raise
                        except asyncpg.PostgresError as e:
                            message = f"the database refused the batch: {e.__class__.__name__}: {e}"
                            raise StoreError(message) from e
                        except Exception as e:
                            # A bug, or a value the driver cannot encode (a TypeError from COPY): refused
                            # like bad data, so the worker's retry one event at a time costs only the events
                            # at fault.
                            log.exception("Storing a batch failed outside the database; treated as refused.")
                            raise StoreError(f"storing the batch failed: {e.__class__.__name__}: {e}") from e
                except DatabaseUnavailableError as e:
                    if committing and not committed:
                        raise CommitOutcomeUnknownError(f"the connection was lost at COMMIT: {e}") from e
                    raise
            except BaseException:
                if not committed:
                    for event, before in zip(events, ids_before, strict=True):
                        event.id = before
                raise
        finally:
            # Committed: False; wrote and did not commit: True; wrote nothing: what the previous turn said.
            turn.end_commit_phase(withdrawn=(not committed) if shown else None)

    async def _write(
        self,
        conn: asyncpg.Connection,
        events: Sequence[Event],
        ids: list[int],
        turn: WriteTurn,
        batch: Batch | None,
    ) -> list[WriteOutcome]:
        rounds, heads = _plan_rounds(events)
        outcomes: list[WriteOutcome | None] = [None] * len(events)
        new: list[int] = []
        for round_indexes in rounds:
            round_indexes.sort(key=lambda i: events[i].fingerprint)  # one lock order for every writer
            rows = await conn.fetch(
                _UPSERT_DEDUP,
                [events[i].fingerprint for i in round_indexes],
                [events[i].state.value for i in round_indexes],
                [ids[i] for i in round_indexes],
                [events[i].correlation_id for i in round_indexes],
                [events[i].received_at for i in round_indexes],
                self._window,
            )
            by_fingerprint = {r["fingerprint"]: r for r in rows}
            for i in round_indexes:
                row = by_fingerprint[events[i].fingerprint]
                if row["event_id"] == ids[i]:
                    new.append(i)
                    outcomes[i] = WriteOutcome(ids[i], row["correlation_id"], duplicate=False)
                else:
                    outcomes[i] = WriteOutcome(row["event_id"], row["correlation_id"], duplicate=True)

        # In-batch repeats follow their run's head; every duplicate then counts towards the event it repeats.
        repeats: dict[int, tuple[int, datetime]] = {}
        for i, head in heads.items():
            head_outcome = outcomes[head]
            assert head_outcome is not None
            outcomes[i] = WriteOutcome(head_outcome.event_id, head_outcome.correlation_id, duplicate=True)
        for i, outcome in enumerate(outcomes):
            assert outcome is not None
            if outcome.duplicate:
                n, seen = repeats.get(outcome.event_id, (0, events[i].received_at))
                repeats[outcome.event_id] = (n + 1, max(seen, events[i].received_at))

        stored = [events[i] for i in new]
        if stored:
            for i, event in zip(new, stored, strict=True):
                event.id = ids[i]
                n, seen = repeats.pop(ids[i], (0, event.received_at))
                event.duplicate_count = n
                event.last_seen_at = seen
            # Binary COPY: about twice as fast as an INSERT over unnest() arrays for the same rows.
            await conn.copy_records_to_table(
                "events",
                schema_name="events",
                columns=EVENT_COLUMNS,
                records=[event_record(e) for e in stored],
            )
        if self._writers:
            # In the same transaction: an event and what it caused (deliveries...) commit (or not) together.
            if batch is None:
                batch = Batch(list(events))
            batch.transaction_events = events
            for writer in self._writers:
                await writer.write(conn, batch, stored)
        if repeats:
            targets = sorted(repeats)  # one row-lock order for every writer
            await conn.execute(
                _ADD_DUPLICATES, targets, [repeats[t][0] for t in targets], [repeats[t][1] for t in targets]
            )
        # Only now: the writers lock rows that later batches share without any dedup row in common (two
        # events of one message template upsert one events.patterns row). Were a later batch let in before,
        # it could take such a row first, then wait here for this batch's commit while this batch waits in
        # PostgreSQL for its row: a deadlock PostgreSQL cannot see. Overlap keeps the commit (its WAL flush).
        turn.end_lock_phase()
        return [o for o in outcomes if o is not None]

    async def get(self, event_id: int) -> Event | None:
        async with connection(self._pool) as conn:
            row = await conn.fetchrow(SELECT_EVENTS + " WHERE id = $1", event_id)
        return None if row is None else row_to_event(row)

    async def query(self, q: EventQuery) -> tuple[list[Event], int]:
        """The events matching `q`, newest first, and how many match in all."""
        where, args = _where(q)
        async with connection(self._pool) as conn:
            total = await conn.fetchval(f"SELECT count(*) FROM events.events{where}", *args)
            page = f" ORDER BY occurred_at DESC, id DESC LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}"
            rows = await conn.fetch(
                SELECT_EVENTS + where + page,
                *args,
                q.limit,
                q.offset,
            )
        return [row_to_event(r) for r in rows], int(total)


def _plan_rounds(events: Sequence[Event]) -> tuple[list[list[int]], dict[int, int]]:
    """Split a batch so no upsert statement touches one fingerprint twice (PostgreSQL forbids that).

    Consecutive events of one fingerprint in the same state form a run: the first is the run's head and
    goes to the database, the others repeat it. Runs of one fingerprint go to successive rounds, in order.
    Returns the rounds (event indexes) and a map from each repeat to its head.
    """
    rounds: list[list[int]] = []
    heads: dict[int, int] = {}
    last_head: dict[str, int] = {}
    runs_seen: dict[str, int] = {}
    for i, event in enumerate(events):
        head = last_head.get(event.fingerprint)
        if head is not None and events[head].state == event.state:
            heads[i] = head
            continue
        run = runs_seen.get(event.fingerprint, 0)
        runs_seen[event.fingerprint] = run + 1
        last_head[event.fingerprint] = i
        if run == len(rounds):
            rounds.append([])
        rounds[run].append(i)
    return rounds, heads


def _where(q: EventQuery) -> tuple[str, list[Any]]:
    where = WhereClause()
    q.filter.to_sql(where)
    if q.where is not None:
        q.where.to_sql(where)
    if q.start_time is not None:
        where.add("occurred_at >= {}", q.start_time)
    if q.end_time is not None:
        where.add("occurred_at <= {}", q.end_time)
    return where.sql(), where.args
