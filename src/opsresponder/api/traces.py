"""``GET /api/v1/events/{event_id}/trace``: why an event was stored the way it was (docs/trace.md).

The answer joins two sources: the event row (how it came in, its fingerprint and what dedup folded into
it, its suppression, correlation and score, with the score's factors) and its stored trace entries (what
each pipeline stage said, in stage order: ``events.event_traces``, written by `store.traces.TraceWriter`).
How the event came in is read from the row itself (``source_type``, ``raw`` and the metadata each
listener records), so it costs nothing at write time; so is the score's sentence, from the row and the
score stage's compact entry (`pipeline.scoring.explain`) and the template (``metadata.pattern``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import msgspec
from litestar import Request, get
from litestar.exceptions import NotFoundException
from litestar.response.base import ASGIResponse

from opsresponder.api.auth import scope_opt
from opsresponder.api.common import json_response
from opsresponder.api.context import EventsApiContext, context_of
from opsresponder.api.filters import ResourceId
from opsresponder.api.openapi import DATABASE_DOWN, NOT_FOUND, Answer, documented
from opsresponder.core.event import Event
from opsresponder.ingest.snmp.convert import SOURCE as SNMP_SOURCE_TYPE
from opsresponder.ingest.syslog.decode import SOURCE_TYPE as SYSLOG_SOURCE_TYPE
from opsresponder.pipeline.patterns import Patterns
from opsresponder.pipeline.patterns import stored_detail as stored_template
from opsresponder.pipeline.scoring import Score, stored_sentence

# The source_type each native adapter gives its events, and the adapter's name (docs/integrations.md).
_ADAPTER_BY_SOURCE_TYPE: Final = {
    "prometheus": "alertmanager",
    "grafana": "grafana",
    "zabbix": "zabbix",
    "nagios": "nagios",
    "icinga": "icinga",
}


class TraceEntryView(msgspec.Struct):
    """One decision of one stage, in the order the stages took them."""

    stage: str
    detail: str


class EventTrace(msgspec.Struct, kw_only=True):
    """The decision trace of one stored event.

    Attributes:
        ingest: how the event came in: the listener, and the parser or adapter that made it
            (``syslog rfc5424 over udp``, ``snmp v2c trap``, ``alertmanager adapter``, ``generic webhook``).
        fingerprint: the dedup key; ``duplicate_count`` later events with it were folded into this one
            (``last_seen_at`` is the latest), none of which has a row or a trace of its own.
        asset: the inventory entry enrichment matched (``metadata.asset.name``), null when none did.
        correlation: ``metadata.correlation`` (group size, root cause, types), null when not correlated.
        score_factors: each factor's contribution; ``score_missing`` the factors whose input was absent.
        traced: whether entries were stored for this event (false when ``pipeline.trace`` was off).
    """

    event_id: int
    source_type: str
    ingest: str
    fingerprint: str
    duplicate_count: int
    last_seen_at: datetime | None
    suppressed_reason: str | None
    asset: str | None
    correlation_id: uuid.UUID | None
    correlation: dict[str, Any] | None
    score: float | None
    score_factors: dict[str, float] | None
    score_missing: list[str]
    traced: bool
    entries: list[TraceEntryView]


@get(
    "/api/v1/events/{event_id:int}/trace",
    opt={
        **scope_opt("read"),
        **documented(
            answers={
                200: Answer("The event's decision trace.", EventTrace),
                404: NOT_FOUND,
                503: DATABASE_DOWN,
            }
        ),
    },
    summary="Why an event was grouped, scored or suppressed: its decision trace",
)
async def get_event_trace(request: Request[Any, Any, Any], event_id: ResourceId) -> ASGIResponse:
    ctx = context_of(request, EventsApiContext)
    event = await ctx.events.get(event_id)
    if event is None:
        raise NotFoundException(f"event {event_id} does not exist")
    entries = None if ctx.traces is None else await ctx.traces.entries(event_id)
    view = trace_view(event, entries)
    if ctx.traces is not None:
        # Rule fired -> decision -> execution or approval request, read from the autonomous tables.
        view.entries.extend(TraceEntryView(s, d) for s, d in await ctx.traces.response_entries(event_id))
    return json_response(view)


TRACE_HANDLERS: Final = (get_event_trace,)
"""The route handlers to add to the events app (port 3009)."""


def trace_view(event: Event, entries: list[tuple[str, str]] | None) -> EventTrace:
    """The answer for `event` (a stored one, with its id) and its stored entries (None: none stored)."""
    assert event.id is not None
    metadata = event.metadata
    asset = metadata.get("asset")
    asset_name = asset.get("name") if isinstance(asset, dict) else None
    correlation = metadata.get("correlation")
    factors = metadata.get("score_factors")
    missing = metadata.get("score_missing")
    return EventTrace(
        event_id=event.id,
        source_type=event.source_type,
        ingest=describe_ingest(event),
        fingerprint=event.fingerprint,
        duplicate_count=event.duplicate_count,
        last_seen_at=event.last_seen_at,
        suppressed_reason=event.suppressed_reason,
        asset=asset_name if isinstance(asset_name, str) else None,
        correlation_id=event.correlation_id,
        correlation=correlation if isinstance(correlation, dict) else None,
        score=event.score,
        score_factors=_numbers(factors) if isinstance(factors, dict) else None,
        score_missing=[m for m in missing if isinstance(m, str)] if isinstance(missing, list) else [],
        traced=entries is not None,
        entries=[TraceEntryView(stage, _readable(event, stage, detail)) for stage, detail in entries or ()],
    )


# Stages whose entries hold only what the row does not say: their sentence is written when read.
_WRITTEN_ON_READ: Final[dict[str, Callable[[Event, str], str]]] = {
    Score.name: stored_sentence,
    Patterns.name: stored_template,
}


def _readable(event: Event, stage: str, detail: str) -> str:
    """The entry as a person reads it (see `_WRITTEN_ON_READ`)."""
    write = _WRITTEN_ON_READ.get(stage)
    return detail if write is None else write(event, detail)


def describe_ingest(event: Event) -> str:
    """How `event` came in, from what each listener records on it.

    Syslog and SNMP events carry their parse in the metadata (``format``, ``transport``, ``snmp``);
    native adapters keep the sender's payload in ``raw`` under their own ``source_type``; the generic
    webhook keeps no ``raw`` (its body is the event).
    """
    metadata = event.metadata
    if event.source_type == SYSLOG_SOURCE_TYPE and ("format" in metadata or "parse_error" in metadata):
        text = f"syslog {metadata.get('format', 'unparsed')}"
        envelope = metadata.get("envelope")
        if isinstance(envelope, str):
            text += f" in {envelope}"
        transport = metadata.get("transport")
        if isinstance(transport, str):
            text += f" over {transport}"
        rule = metadata.get("parsing_rule")
        if isinstance(rule, dict):
            text += f"; parsing rule {rule.get('index')} matched"
        error = metadata.get("parse_error")
        if isinstance(error, str):
            text += f"; parse error: {error}"
        return text
    snmp = metadata.get("snmp")
    if event.source_type == SNMP_SOURCE_TYPE and isinstance(snmp, dict):
        kind = "inform" if snmp.get("inform") else "trap"
        text = f"snmp v{snmp.get('version')} {kind} {snmp.get('trap_name') or snmp.get('trap_oid')}"
        user = snmp.get("user")
        return text + (f" (user {user})" if isinstance(user, str) else "")
    adapter = _ADAPTER_BY_SOURCE_TYPE.get(event.source_type)
    if adapter is not None and event.raw is not None:
        return f"{adapter} adapter"
    if event.raw is None:
        return "generic webhook"
    return f"{event.source_type} (unknown listener)"


def _numbers(values: dict[Any, Any]) -> dict[str, float]:
    return {
        str(k): float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
