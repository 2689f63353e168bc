"""The Event Processing API (port 3009): webhook ingest and event queries."""

from __future__ import annotations

import asyncio
import time
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
from opsresponder.api.filters import parse_severities
from opsresponder.api.stream import stream_events
from opsresponder.api.subscriptions import SUBSCRIPTION_HANDLERS
from opsresponder.core.clock import as_utc, utcnow
from opsresponder.core.errors import InvalidEventError
from opsresponder.core.event import Event
from opsresponder.ingest.http.generic import decode_generic, decode_generic_fast, decode_json
from opsresponder.pipeline.errors import IntakeClosedError, StoreUnavailableError
from opsresponder.store.errors import StoreError
from opsresponder.store.events import EventQuery, WriteOutcome

MAX_LIMIT = 1000
_LIST_OMITS = ("raw",)


@post("/api/v1/events/webhook", opt=scope_opt("ingest"), summary="Ingest one event or an array")
async def webhook(request: Request[Any, Any, Any]) -> ASGIResponse:
    return await _ingest(request, adapter_name=None)


@post(
    "/api/v1/events/webhook/{source_type:str}",
    opt=scope_opt("ingest"),
    summary="Ingest a monitoring system's native payload (alertmanager, zabbix, nagios, icinga, grafana)",
)
async def webhook_native(request: Request[Any, Any, Any], source_type: FromPath[str]) -> ASGIResponse:
    return await _ingest(request, adapter_name=source_type)


async def _ingest(request: Request[Any, Any, Any], adapter_name: str | None) -> ASGIResponse:
    started = time.perf_counter()
    ctx = context_of(request)
    body = await request.body()
    received_at = utcnow()
    content_type = request.headers.get("content-type", "application/json")
    try:
        items, is_array = _decode(ctx, body, content_type, received_at, adapter_name)
    except InvalidEventError as e:
        ctx.pipeline_metrics.rejected_by_source(adapter_name or "webhook").inc()
        return _rejected(400, e.message, e.field)
    if len(items) > ctx.settings.api.max_events_per_request:
        return _rejected(413, f"at most {ctx.settings.api.max_events_per_request} events per request")
    if not ctx.worker.database_available:
        return _unavailable(ctx)

    futures: list[asyncio.Future[WriteOutcome] | None] = []
    valid = [item for item in items if isinstance(item, Event)]
    for _ in range(len(items) - len(valid)):
        ctx.pipeline_metrics.rejected_by_source(adapter_name or "webhook").inc()
    try:
        pending = await ctx.intake.put_many(valid)
        queued = iter(pending)
        futures = [next(queued) if isinstance(item, Event) else None for item in items]
        outcomes = await asyncio.gather(*pending, return_exceptions=True)
    except IntakeClosedError:
        _cancel(futures)
        return _rejected(503, "the service is shutting down; retry on another instance or later")
    except asyncio.CancelledError:
        _cancel(futures)  # the client went away: nobody will read these answers
        raise
    elapsed_ms = round((time.perf_counter() - started) * 1000, 2)

    if any(isinstance(o, StoreUnavailableError) for o in outcomes) and not any(
        isinstance(o, WriteOutcome) for o in outcomes
    ):
        return _unavailable(ctx)
    results: list[dict[str, Any]] = []
    outcome_iter = iter(outcomes)
    for item, future in zip(items, futures, strict=True):
        if future is None:
            assert isinstance(item, InvalidEventError)
            results.append(_rejection_body(item.message, item.field))
        else:
            results.append(_result_body(next(outcome_iter), elapsed_ms))
    if not is_array:
        result = results[0]
        status = 200 if result["status"] == "accepted" else _status_of(result)
        return json_response(result, status_code=status)
    accepted = sum(1 for r in results if r["status"] == "accepted")
    status = 200 if accepted == len(results) else (207 if accepted else 400)
    return json_response(
        {
            "status": "accepted" if accepted == len(results) else ("partial" if accepted else "rejected"),
            "accepted": accepted,
            "rejected": len(results) - accepted,
            "results": results,
            "processing_time_ms": elapsed_ms,
        },
        status_code=status,
    )


def _decode(
    ctx: ApiContext, body: bytes, content_type: str, received_at: datetime, adapter_name: str | None
) -> tuple[list[Event | InvalidEventError], bool]:
    if adapter_name is not None:
        adapter = ctx.native_adapters.get(adapter_name)
        if adapter is None:
            known = ", ".join(sorted(ctx.native_adapters))
            raise InvalidEventError(
                f"unknown source type '{adapter_name}' (known: {known})", field="source_type"
            )
        return list(adapter.parse(body, content_type, received_at)), True
    decoded = decode_generic_fast(body, received_at)
    if decoded is not None:
        return list(decoded.items), decoded.is_array
    payload = decode_json(body)
    adapter = ctx.detect_native(payload)
    if adapter is not None:
        return list(adapter.parse(body, content_type, received_at)), True
    decoded = decode_generic(payload, received_at)
    return list(decoded.items), decoded.is_array


def _result_body(outcome: WriteOutcome | BaseException, elapsed_ms: float) -> dict[str, Any]:
    if isinstance(outcome, WriteOutcome):
        return {
            "event_id": outcome.event_id,
            "status": "accepted",
            "message": (
                f"Duplicate of event {outcome.event_id}; its duplicate count was increased"
                if outcome.duplicate
                else "Event processed successfully"
            ),
            "correlation_id": str(outcome.correlation_id),
            "processing_time_ms": elapsed_ms,
            "duplicate": outcome.duplicate,
        }
    if isinstance(outcome, StoreUnavailableError):
        return {
            "status": "rejected",
            "message": "the database is unavailable; retry later",
            "retryable": True,
        }
    if isinstance(outcome, StoreError):
        return {
            "status": "rejected",
            "message": f"the database refused the event: {outcome}",
            "retryable": False,
        }
    raise outcome


def _status_of(result: dict[str, Any]) -> int:
    if result.get("retryable"):
        return 503
    return 400 if "field" in result else 500


def _rejection_body(message: str, field: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "rejected", "message": message}
    if field is not None:
        body["field"] = field
    return body


def _rejected(status: int, message: str, field: str | None = None) -> ASGIResponse:
    return json_response(_rejection_body(message, field), status_code=status)


def _unavailable(ctx: ApiContext) -> ASGIResponse:
    retry_after = str(ctx.settings.api.retry_after_seconds)
    return json_response(
        {"status": "rejected", "message": "the database is unavailable; nothing was stored, retry later"},
        status_code=503,
        headers={"Retry-After": retry_after},
    )


def _cancel(futures: list[asyncio.Future[WriteOutcome] | None]) -> None:
    for f in futures:
        if f is not None and not f.done():
            f.cancel()


@get("/api/v1/events", opt=scope_opt("read"), summary="Query events, newest first")
async def list_events(
    request: Request[Any, Any, Any],
    severity: FromQuery[str | None] = None,
    event_type: FromQuery[str | None] = None,
    host: FromQuery[str | None] = None,
    service: FromQuery[str | None] = None,
    start_time: FromQuery[datetime | None] = None,
    end_time: FromQuery[datetime | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = 100,
    offset: Annotated[int, QueryParameter(ge=0)] = 0,
    include_correlations: FromQuery[bool] = False,
) -> ASGIResponse:
    severities = parse_severities(severity)
    if start_time and end_time and as_utc(start_time) > as_utc(end_time):
        raise ValidationException("start_time is after end_time")
    query = EventQuery(
        severities=severities,
        event_type=event_type,
        host=host,
        service=service,
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
