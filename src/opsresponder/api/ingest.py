"""Webhook ingest, independent of the HTTP framework: decode, queue, wait for the commit, build the answer.

Two callers share it: the Litestar route handlers (which also give the endpoints their OpenAPI entries)
and `api.ingest_asgi`, the lean ASGI path that serves the same routes under load.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsresponder.api.context import EventsApiContext
from opsresponder.core.clock import utcnow
from opsresponder.core.errors import InvalidEventError
from opsresponder.core.event import Event
from opsresponder.ingest.http.generic import decode_generic, decode_generic_fast, decode_json
from opsresponder.pipeline.errors import (
    EventRefusedError,
    IntakeClosedError,
    StageError,
    StoreUnavailableError,
)
from opsresponder.store.events import WriteOutcome

GENERIC_PATH = "/api/v1/events/webhook"
NATIVE_PATH_PREFIX = GENERIC_PATH + "/"
NESTED_TOO_DEEPLY = "malformed JSON: nested too deeply"
REQUIRED_SCOPE = "ingest"
"""The token scope every webhook endpoint needs, on both paths."""


@dataclass(frozen=True, slots=True)
class IngestAnswer:
    """The HTTP answer to one webhook request: status, JSON body and extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] | None = None


async def ingest(
    ctx: EventsApiContext, body: bytes, content_type: str, adapter_name: str | None
) -> IngestAnswer:
    """Ingest a webhook body: one event, an array, or a native payload (`adapter_name`, or detected).

    Answers only after every accepted event is committed. A bad event is answered with the field that is
    wrong and nothing of it is stored; in an array, the others are still stored (207).
    """
    started = time.perf_counter()
    received_at = utcnow()
    try:
        items, is_array = _decode(ctx, body, content_type, received_at, adapter_name)
    except InvalidEventError as e:
        ctx.pipeline_metrics.rejected_by_source(adapter_name or "webhook").inc()
        return rejected(400, e.message, e.field)
    except RecursionError:  # msgspec's answer to JSON nested thousands deep, whichever decoder met it
        ctx.pipeline_metrics.rejected_by_source(adapter_name or "webhook").inc()
        return rejected(400, NESTED_TOO_DEEPLY)
    if len(items) > ctx.api.max_events_per_request:
        return rejected(413, f"at most {ctx.api.max_events_per_request} events per request")
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
        outcomes = await _outcomes(pending)
    except IntakeClosedError:
        _cancel(futures)
        return rejected(503, "the service is shutting down; retry on another instance or later")
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
        return IngestAnswer(200 if result["status"] == "accepted" else _status_of(result), result)
    accepted = sum(1 for r in results if r["status"] == "accepted")
    return IngestAnswer(
        200 if accepted == len(results) else (207 if accepted else 400),
        {
            "status": "accepted" if accepted == len(results) else ("partial" if accepted else "rejected"),
            "accepted": accepted,
            "rejected": len(results) - accepted,
            "results": results,
            "processing_time_ms": elapsed_ms,
        },
    )


async def _outcomes(pending: list[asyncio.Future[WriteOutcome]]) -> list[WriteOutcome | BaseException]:
    """Each future's result or exception, in order."""
    if len(pending) == 1:
        # One event, the common webhook: skip gather's wrapper future and callbacks.
        try:
            return [await pending[0]]
        except (StoreUnavailableError, EventRefusedError, StageError) as e:  # the worker's answers
            return [e]
    return await asyncio.gather(*pending, return_exceptions=True)


def _decode(
    ctx: EventsApiContext, body: bytes, content_type: str, received_at: datetime, adapter_name: str | None
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
    if isinstance(outcome, StageError | EventRefusedError):
        # Logged by the worker with this request_id (and, when refused, the database's own message).
        return {
            "status": "rejected",
            "message": f"{outcome}; it was not stored",
            "retryable": False,
            "request_id": outcome.request_id,
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


def rejected(status: int, message: str, field: str | None = None) -> IngestAnswer:
    """An answer in the webhook's error shape: ``{"status": "rejected", "message": ..., "field": ...}``."""
    return IngestAnswer(status, _rejection_body(message, field))


def _unavailable(ctx: EventsApiContext) -> IngestAnswer:
    return IngestAnswer(
        503,
        {"status": "rejected", "message": "the database is unavailable; nothing was stored, retry later"},
        {"Retry-After": str(ctx.api.retry_after_seconds)},
    )


def _cancel(futures: list[asyncio.Future[WriteOutcome] | None]) -> None:
    for f in futures:
        if f is not None and not f.done():
            f.cancel()
