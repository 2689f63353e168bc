"""Decision traces: `TraceWriter` stores what the stages said about each new event, `TraceRepository`
reads one back.

The stages append `core.batch.TraceEntry` (event, stage, detail) to ``Batch.trace``; the writer groups
them by event and writes one row per new event that has entries, in one COPY for the whole batch, in
the batch's transaction (``events.event_traces``). The entries are a msgpack list of ``[stage, detail]``
pairs: PostgreSQL stores the bytes as they come.

Duplicates: an event the store folded into an existing row has no row of its own, so its entries are not
written, and the original's trace is left as it was (no extra statement per duplicate): the event row's
``duplicate_count`` and ``last_seen_at`` say how often and until when it repeated (docs/trace.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import asyncpg
import msgspec

from opsresponder.core.batch import Batch
from opsresponder.core.event import Event
from opsresponder.store.pool import connection

# Binary COPY rather than an INSERT over unnest() arrays: asyncpg checks every array element's type in
# Python, COPY encodes the rows in C (see store/events.py, store/correlations.py).
_COLUMNS: Final = ("event_id", "entries")
_SELECT: Final = "SELECT entries FROM events.event_traces WHERE event_id = $1"

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(list[tuple[str, str]]).decode


class TraceWriter:
    """The batch writer (`store.writers.BatchWriter`) of decision traces: one statement per batch."""

    __slots__ = ()

    @staticmethod
    def encode(pairs: list[tuple[str, str]]) -> bytes:
        """The stored form of one event's ``(stage, detail)`` pairs (what `decode_entries` reads)."""
        return _encode(pairs)

    async def write(self, conn: asyncpg.Connection, batch: Batch, stored: Sequence[Event]) -> None:
        """One ``event_traces`` row per event of `stored` that has trace entries, in one COPY.

        Raises:
            asyncpg.PostgresError: as the caller's other statements would; the transaction is then aborted.
        """
        if not stored or not batch.trace:
            return
        # By object identity: the entries hold the events themselves (ids are taken after the stages).
        pending: dict[int, list[tuple[str, str]]] = {}
        for entry in batch.trace:
            key = id(entry.event)
            pairs = pending.get(key)
            if pairs is None:
                pending[key] = [(entry.stage, entry.detail)]
            else:
                pairs.append((entry.stage, entry.detail))
        rows: list[tuple[int, bytes]] = []
        for event in stored:
            pairs = pending.get(id(event))
            if pairs is not None:
                assert event.id is not None, "the trace writer needs stored events (with ids)"
                rows.append((event.id, _encode(pairs)))
        if rows:
            await conn.copy_records_to_table(
                "event_traces", schema_name="events", columns=_COLUMNS, records=rows
            )


def decode_entries(payload: bytes) -> list[tuple[str, str]]:
    """The ``[stage, detail]`` pairs of one stored trace, in the order the stages appended them."""
    return _decode(payload)


class TraceRepository:
    """Reads stored traces (``GET /api/v1/events/{event_id}/trace``)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def response_entries(self, event_id: int) -> list[tuple[str, str]]:
        """The response side's chain for the event (`response_chain`)."""
        return await response_chain(self._pool, event_id)

    async def entries(self, event_id: int) -> list[tuple[str, str]] | None:
        """The trace entries of `event_id`, or None when it has no stored trace.

        Raises:
            DatabaseUnavailableError: PostgreSQL cannot be reached.
        """
        async with connection(self._pool) as conn:
            payload = await conn.fetchval(_SELECT, event_id)
        return None if payload is None else decode_entries(payload)


_RESPONSE_CHAIN: Final = """
SELECT * FROM (
    SELECT f.fired_at AS at, 0 AS rank, f.id AS id, 'response.rule_fired' AS stage,
           'rule ' || f.rule_id || ' fired (' || f.kind || ', firing ' || f.id || ', ' || f.status || ')'
               AS detail
    FROM rules.rule_firings AS f WHERE f.event_ids @> ARRAY[$1::bigint]
  UNION ALL
    SELECT d.created_at, 1, d.id, 'response.decision',
           'decision ' || d.id || ' by ' || d.requested_by || ': '
               || coalesce(d.analysis ->> 'recommended_action', '?')
               || ', template ' || coalesce(d.template_id, 'none')
               || ', risk ' || coalesce(d.analysis ->> 'risk_level', '?')
               || CASE WHEN (d.approval ->> 'required')::boolean THEN ', approval required' ELSE '' END
               || CASE WHEN d.inputs ? 'governor'
                       THEN '; safety governor: ' || (d.inputs -> 'governor' ->> 'reasons') ELSE '' END
    FROM autonomous.decisions AS d WHERE d.event_id = $1
  UNION ALL
    SELECT x.created_at, 2, x.id, 'response.execution',
           'execution exec_' || x.id || ' of decision ' || x.decision_id || ' by ' || x.requested_by || ': '
               || x.status || coalesce(' (' || x.error || ')', '')
    FROM autonomous.executions AS x WHERE x.event_id = $1
  UNION ALL
    SELECT a.created_at, 3, a.id, 'response.approval',
           'approval request for exec_' || a.execution_id || ': ' || a.status
               || coalesce(' by ' || a.decided_by, '')
               || ', risk ' || a.risk_level || ', approvers '
               || coalesce(nullif(array_to_string(a.approvers, ', '), ''), 'nobody')
    FROM autonomous.approvals AS a JOIN autonomous.executions AS x ON x.id = a.execution_id
    WHERE x.event_id = $1
) AS chain ORDER BY at, rank, id
"""


async def response_chain(pool: asyncpg.Pool, event_id: int) -> list[tuple[str, str]]:
    """What the response side did about an event, read from its own tables at read time (nothing is
    written to ``events.event_traces``): the rules that fired, the decisions, the executions and the
    approval requests, in time order, as ``(stage, detail)`` pairs.

    Raises:
        DatabaseUnavailableError: PostgreSQL cannot be reached.
    """
    async with connection(pool) as conn:
        rows = await conn.fetch(_RESPONSE_CHAIN, event_id)
    return [(str(r["stage"]), str(r["detail"])) for r in rows]
