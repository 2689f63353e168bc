"""The Event Processing API (port 3009): webhook ingest and event queries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, get, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response.base import ASGIResponse

from opsresponder.api.auth import scope_opt
from opsresponder.api.common import build_app, json_response
from opsresponder.api.context import ApiContext, context_of
from opsresponder.api.filters import event_filter_from_query
from opsresponder.api.ingest import GENERIC_PATH, NATIVE_PATH_PREFIX, REQUIRED_SCOPE, ingest
from opsresponder.api.stream import stream_events
from opsresponder.api.subscriptions import SUBSCRIPTION_HANDLERS
from opsresponder.core.clock import as_utc
from opsresponder.core.event import Event
from opsresponder.store.events import EventQuery

MAX_LIMIT = 1000
_LIST_OMITS = ("raw",)


@post(GENERIC_PATH, opt=scope_opt(REQUIRED_SCOPE), summary="Ingest one event or an array")
async def webhook(request: Request[Any, Any, Any]) -> ASGIResponse:
    return await _ingest(request, adapter_name=None)


@post(
    NATIVE_PATH_PREFIX + "{source_type:str}",
    opt=scope_opt(REQUIRED_SCOPE),
    summary="Ingest a monitoring system's native payload (alertmanager, zabbix, nagios, icinga, grafana)",
)
async def webhook_native(request: Request[Any, Any, Any], source_type: FromPath[str]) -> ASGIResponse:
    return await _ingest(request, adapter_name=source_type)


async def _ingest(request: Request[Any, Any, Any], adapter_name: str | None) -> ASGIResponse:
    body = await request.body()
    content_type = request.headers.get("content-type", "application/json")
    answer = await ingest(context_of(request), body, content_type, adapter_name)
    return json_response(answer.body, status_code=answer.status, headers=answer.headers)


@get("/api/v1/events", opt=scope_opt("read"), summary="Query events, newest first")
async def list_events(
    request: Request[Any, Any, Any],
    severity: FromQuery[str | None] = None,
    event_type: FromQuery[str | None] = None,
    host: FromQuery[str | None] = None,
    service: FromQuery[str | None] = None,
    min_score: FromQuery[float | None] = None,
    include_suppressed: FromQuery[bool] = False,
    start_time: FromQuery[datetime | None] = None,
    end_time: FromQuery[datetime | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = 100,
    offset: Annotated[int, QueryParameter(ge=0)] = 0,
    include_correlations: FromQuery[bool] = False,
) -> ASGIResponse:
    event_filter = event_filter_from_query(
        severity=severity,
        event_type=event_type,
        host=host,
        service=service,
        min_score=min_score,
        include_suppressed=include_suppressed,
    )
    if start_time and end_time and as_utc(start_time) > as_utc(end_time):
        raise ValidationException("start_time is after end_time")
    query = EventQuery(
        filter=event_filter,
        start_time=as_utc(start_time) if start_time else None,
        end_time=as_utc(end_time) if end_time else None,
        limit=limit,
        offset=offset,
    )
    events, total = await context_of(request).events.query(query)
    views = [_view(e, include_correlations) for e in events]
    return json_response({"events": views, "total_count": total, "has_more": offset + len(events) < total})


@get("/api/v1/events/{event_id:int}", opt=scope_opt("read"), summary="One event, with its raw input")
async def get_event(request: Request[Any, Any, Any], event_id: FromPath[int]) -> ASGIResponse:
    event = await context_of(request).events.get(event_id)
    if event is None:
        raise NotFoundException(f"event {event_id} does not exist")
    return json_response(msgspec.to_builtins(event))


def _view(event: Event, include_correlations: bool) -> dict[str, Any]:
    view: dict[str, Any] = msgspec.to_builtins(event)
    for name in _LIST_OMITS:
        view.pop(name, None)
    if include_correlations:
        # Correlation records arrive with the correlation engine; until then no event has any.
        view["correlations"] = []
    return view


def build_events_app(ctx: ApiContext) -> Litestar:
    return build_app(
        ctx,
        title="OpsResponder Event Processing API",
        description="Webhook ingest, event queries and rules (port 3009).",
        handlers=[webhook, webhook_native, list_events, get_event, stream_events, *SUBSCRIPTION_HANDLERS],
    )
