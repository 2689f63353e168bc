"""The Event Processing API (port 3009): webhook ingest and event queries."""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from litestar import Litestar, Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromQuery, PathParameter, QueryParameter
from litestar.response.base import ASGIResponse

from opsresponder.api.auth import scope_opt
from opsresponder.api.bodies import EventList, WebhookAccepted, WebhookBatch, WebhookRejection
from opsresponder.api.common import build_app, json_response
from opsresponder.api.context import EventsApiContext, context_of
from opsresponder.api.correlations import CORRELATION_HANDLERS, correlations_by_event
from opsresponder.api.filters import (
    EVENT_FILTER,
    InvalidParameterError,
    Offset,
    ResourceId,
    TimeFilter,
    WhereFilter,
    parse_time,
    parse_where,
)
from opsresponder.api.firings import FIRING_HANDLERS
from opsresponder.api.ingest import GENERIC_PATH, NATIVE_PATH_PREFIX, REQUIRED_SCOPE, ingest
from opsresponder.api.openapi import (
    DATABASE_DOWN,
    NOT_FOUND,
    RETRY_AFTER,
    Answer,
    AnyOf,
    WithProperties,
    documented,
)
from opsresponder.api.patterns import PATTERN_HANDLERS
from opsresponder.api.responses import RESPONSE_TEMPLATE_HANDLERS
from opsresponder.api.silences import SILENCE_HANDLERS
from opsresponder.api.stream import stream_events
from opsresponder.api.subscriptions import SUBSCRIPTION_HANDLERS
from opsresponder.api.traces import TRACE_HANDLERS
from opsresponder.api.trigger_rules import TRIGGER_RULE_HANDLERS
from opsresponder.core.event import Event
from opsresponder.ingest.http.adapters import ADAPTERS
from opsresponder.ingest.http.generic import WebhookEvent
from opsresponder.rules.filter import EventFilter
from opsresponder.store.events import EventQuery

MAX_LIMIT = 1000
WEBHOOK_EXAMPLE: Final = {
    "source": "nagios-prod",
    "source_type": "nagios",
    "event_type": "threshold_breach",
    "severity": "critical",
    "timestamp": "2024-12-20T10:30:00Z",
    "host": "web-server-01",
    "service": "nginx",
    "title": "High CPU Usage",
    "description": "CPU usage exceeded 95% threshold",
    "metadata": {"metrics": {"cpu_usage": 95.5}},
    "tags": ["production", "web-server"],
}
"""The spec's example body (service-spec.md)."""
NATIVE_PAYLOAD: Final = {
    "description": "A native notification: Alertmanager or Grafana (``alerts``), Zabbix media type "
    "(``event`` and ``host`` objects), Nagios or Icinga (macro names such as ``HOSTNAME``, "
    "``NOTIFICATIONTYPE``; also a JSON array of them, or the same fields form-encoded); "
    "docs/integrations.md has each.",
    "anyOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}],
}
_LIST_OMITS = ("raw",)


_BATCH: Final = WithProperties(
    WebhookBatch, {"results": {"type": "array", "items": AnyOf(WebhookAccepted, WebhookRejection)}}
)
_WEBHOOK_ANSWERS: Final = {
    207: Answer("Some events of the array were stored, some refused: one result per event.", _BATCH),
    400: Answer(
        "Refused, nothing stored: ``field`` names the wrong field (an array: every event was refused).",
        AnyOf(WebhookRejection, _BATCH),
    ),
    413: Answer(
        "The body exceeds api.max_body_bytes, or holds more than api.max_events_per_request events.",
        WebhookRejection,
    ),
    500: Answer(
        "The event was lost to an unexpected error, a processing stage's or the database's; the "
        "``request_id`` is that of the log line that describes it.",
        WebhookRejection,
    ),
    503: Answer(
        "The database is unavailable or the service is shutting down: nothing stored, retry later.",
        WebhookRejection,
        headers=RETRY_AFTER,
    ),
}


@post(
    GENERIC_PATH,
    opt={
        **scope_opt(REQUIRED_SCOPE),
        **documented(
            body=AnyOf(WebhookEvent, {"type": "array", "items": WebhookEvent}),
            body_example=WEBHOOK_EXAMPLE,
            body_description=(
                "One event, or an array of events, each validated on its own (an invalid one is refused "
                "with its index in ``field``, the others are stored: 207). Unknown fields are ignored. "
                "A monitoring system's native payload posted here is recognised and handled as by "
                "``POST /api/v1/events/webhook/{source_type}``."
            ),
            answers={
                200: Answer(
                    "Stored (committed) before this answer: one event's result, or every event's for an "
                    "array or a native payload.",
                    AnyOf(WebhookAccepted, _BATCH),
                ),
                **_WEBHOOK_ANSWERS,
            },
        ),
    },
    summary="Ingest one event or an array",
)
async def webhook(request: Request[Any, Any, Any]) -> ASGIResponse:
    return await _ingest(request, adapter_name=None)


@post(
    NATIVE_PATH_PREFIX + "{source_type:str}",
    opt={
        **scope_opt(REQUIRED_SCOPE),
        **documented(
            body=NATIVE_PAYLOAD,
            body_description="The monitoring system's own webhook body (docs/integrations.md).",
            answers={
                200: Answer("Every alert of the payload was stored, one result each.", _BATCH),
                **_WEBHOOK_ANSWERS,
            },
        ),
    },
    summary="Ingest a monitoring system's native payload (alertmanager, zabbix, nagios, icinga, grafana)",
)
async def webhook_native(
    request: Request[Any, Any, Any],
    source_type: Annotated[
        str, PathParameter(description="Which monitoring system sent the payload.", enum=sorted(ADAPTERS))
    ],
) -> ASGIResponse:
    return await _ingest(request, adapter_name=source_type)


async def _ingest(request: Request[Any, Any, Any], adapter_name: str | None) -> ASGIResponse:
    body = await request.body()
    content_type = request.headers.get("content-type", "application/json")
    answer = await ingest(context_of(request, EventsApiContext), body, content_type, adapter_name)
    return json_response(answer.body, status_code=answer.status, headers=answer.headers)


@get(
    "/api/v1/events",
    opt={
        **scope_opt("read"),
        **documented(answers={200: Answer("A page of matching events.", EventList), 503: DATABASE_DOWN}),
    },
    summary="Query events, newest first",
    dependencies=EVENT_FILTER,
)
async def list_events(
    request: Request[Any, Any, Any],
    event_filter: NamedDependency[EventFilter],
    start_time: TimeFilter = None,
    end_time: TimeFilter = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = 100,
    offset: Offset = 0,
    include_correlations: FromQuery[bool] = False,
    where: WhereFilter = None,
) -> ASGIResponse:
    condition = parse_where(where)
    start, end = parse_time(start_time, "start_time"), parse_time(end_time, "end_time")
    if start and end and start > end:
        raise InvalidParameterError("start_time", "is after end_time")
    query = EventQuery(
        filter=event_filter,
        where=condition,
        start_time=start,
        end_time=end,
        limit=limit,
        offset=offset,
    )
    ctx = context_of(request, EventsApiContext)
    events, total = await ctx.events.query(query)
    views = [_view(e) for e in events]
    if include_correlations:
        found = await correlations_by_event(ctx, events)
        for view, event in zip(views, events, strict=True):
            view["correlations"] = found.get(event.id or 0, [])
    return json_response({"events": views, "total_count": total, "has_more": offset + len(events) < total})


@get(
    "/api/v1/events/{event_id:int}",
    opt={
        **scope_opt("read"),
        **documented(
            answers={200: Answer("The event, with its raw input.", Event), 404: NOT_FOUND, 503: DATABASE_DOWN}
        ),
    },
    summary="One event, with its raw input",
)
async def get_event(request: Request[Any, Any, Any], event_id: ResourceId) -> ASGIResponse:
    event = await context_of(request, EventsApiContext).events.get(event_id)
    if event is None:
        raise NotFoundException(f"event {event_id} does not exist")
    return json_response(msgspec.to_builtins(event))


def _view(event: Event) -> dict[str, Any]:
    view: dict[str, Any] = msgspec.to_builtins(event)
    for name in _LIST_OMITS:
        view.pop(name, None)
    return view


def build_events_app(ctx: EventsApiContext) -> Litestar:
    return build_app(
        ctx,
        title="OpsResponder Event Processing API",
        description="Webhook ingest, event queries and rules (port 3009).",
        handlers=[
            webhook,
            webhook_native,
            list_events,
            get_event,
            stream_events,
            *SUBSCRIPTION_HANDLERS,
            *SILENCE_HANDLERS,
            *TRACE_HANDLERS,
            *PATTERN_HANDLERS,
            *CORRELATION_HANDLERS,
            *TRIGGER_RULE_HANDLERS,
            *FIRING_HANDLERS,
            *RESPONSE_TEMPLATE_HANDLERS,
        ],
    )
