"""One error shape for both APIs, and what becomes of an unexpected error.

Every error answer is an `ErrorBody` (``{"status_code": 400, "detail": "limit: ...", "field": "limit"}``),
except the webhook's own answers, whose shape the spec fixes (``status: rejected``; api/ingest.py).

An unexpected error (an exception that is not an HTTP answer, or a 500) is reported once by
`report_unexpected`: logged at ERROR with its traceback, the API, method, path (no query string, no
header) and a new request id; counted in ``opsresponder_http_unexpected_errors_total{api}``; and answered
500 with that request id, so an operator finds the log line from what the client saw. Litestar's exception
handlers (`exception_handlers`) do this inside each app; `ErrorGuard`, the outermost ASGI layer of each
port, does it for whatever escapes them (the lean webhook front, an error after a response started).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from typing import Any, Final
from weakref import WeakKeyDictionary

import msgspec
import structlog
from litestar import Request, Response
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.response.base import ASGIResponse
from litestar.types import ASGIApp, ExceptionHandlersMap, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter

from opsresponder.store.errors import DatabaseUnavailableError

log = structlog.get_logger(__name__)

INTERNAL_ERROR_DETAIL: Final = "internal server error; quote the request_id when reporting it"


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """Every error answer of both APIs but the webhook's.

    Attributes:
        status_code: the HTTP status, repeated.
        detail: what is wrong, naming the field when one is.
        field: the request field that is wrong (``limit``, ``event_id``, ``filters.severity[1]``).
        extra: the individual problems when parameters fail validation (``message``, ``key``, ``source``).
        request_id: on a 500, the id of the log line that describes it.
    """

    status_code: int
    detail: str
    field: str | None = None
    extra: list[dict[str, Any]] | dict[str, Any] | None = None
    request_id: str | None = None


class HttpErrorMetrics:
    """The unexpected-error counter, one per metrics registry (both APIs of a process share one)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.unexpected = Counter(
            "opsresponder_http_unexpected_errors_total",
            "HTTP requests answered 500 because of an unexpected error (logged at ERROR), by API.",
            ["api"],
            registry=registry,
        )


_metrics: WeakKeyDictionary[CollectorRegistry, HttpErrorMetrics] = WeakKeyDictionary()


def error_metrics(registry: CollectorRegistry) -> HttpErrorMetrics:
    """The `HttpErrorMetrics` registered on `registry`, registering them on first use."""
    metrics = _metrics.get(registry)
    if metrics is None:
        metrics = _metrics[registry] = HttpErrorMetrics(registry)
    return metrics


def report_unexpected(
    registry: CollectorRegistry, api: str, method: str, path: str, error: BaseException
) -> str:
    """Log `error` once at ERROR with its traceback and the request, count it; return the request id."""
    request_id = uuid.uuid4().hex
    error_metrics(registry).unexpected.labels(api).inc()
    log.error(
        "A request failed with an unexpected error; answered 500.",
        request_id=request_id,
        api=api,
        method=method,
        path=path,
        exc_info=error,
    )
    return request_id


def encode_error(status: int, detail: str, field: str | None = None) -> bytes:
    return msgspec.json.encode(ErrorBody(status, detail, field))


def error_response(status: int, detail: str, field: str | None = None) -> ASGIResponse:
    """An error answered by a handler itself (a refused body, a conflict), in the one shape."""
    return ASGIResponse(
        body=encode_error(status, detail, field), status_code=status, media_type="application/json"
    )


def exception_handlers(
    registry: CollectorRegistry, api: str, retry_after_seconds: int
) -> ExceptionHandlersMap:
    """Litestar exception handlers that answer every error as an `ErrorBody`.

    PostgreSQL being unreachable is no bug: 503 with ``Retry-After``, logged at WARNING, not counted.
    """

    def unexpected(request: Request[Any, Any, Any], error: Exception) -> Response[bytes]:
        request_id = report_unexpected(registry, api, request.method, request.url.path, error)
        body = ErrorBody(500, INTERNAL_ERROR_DETAIL, request_id=request_id)
        return Response(msgspec.json.encode(body), status_code=500, media_type="application/json")

    def http_error(request: Request[Any, Any, Any], error: Exception) -> Response[bytes]:
        assert isinstance(error, HTTPException)
        if error.status_code == 500:
            return unexpected(request, error)
        body = _describe(error, request)
        return Response(
            msgspec.json.encode(body),
            status_code=error.status_code,
            headers=error.headers,
            media_type="application/json",
        )

    def database_down(request: Request[Any, Any, Any], error: Exception) -> Response[bytes]:
        # The driver's words go to the log only.
        log.warning(
            "A request found PostgreSQL unavailable; answered 503.", path=request.url.path, error=str(error)
        )
        return Response(
            encode_error(503, "the database is unavailable; retry later"),
            status_code=503,
            headers={"Retry-After": str(retry_after_seconds)},
            media_type="application/json",
        )

    return {HTTPException: http_error, DatabaseUnavailableError: database_down, Exception: unexpected}


def _describe(error: HTTPException, request: Request[Any, Any, Any]) -> ErrorBody:
    """The `ErrorBody` of an HTTP error; a validation failure names its field(s) in ``detail``."""
    field = getattr(error, "field", None)
    detail = error.detail
    extra = error.extra
    if isinstance(extra, list) and extra and all(isinstance(e, dict) and "key" in e for e in extra):
        # Litestar's parameter validation: [{"message": ..., "key": "limit", "source": "query"}, ...], keyed
        # by the handler's argument; the client knows the name it sent (a header's: Last-Event-ID).
        for item in extra:
            item["key"] = _sent_name(request, str(item["key"]))
        field = field or extra[0]["key"]
        detail = "; ".join(f"{e['key']}: {e.get('message', 'invalid value')}" for e in extra)
    return ErrorBody(error.status_code, detail, field, extra=extra)


def _sent_name(request: Request[Any, Any, Any], argument: str) -> str:
    """The name a client sends for the handler argument `argument` (its alias, if it has one)."""
    handler = request.scope.get("route_handler")
    parameter = handler.parsed_fn_signature.parameters.get(argument) if handler is not None else None
    alias = getattr(getattr(parameter, "kwarg_definition", None), "name", None)
    return alias if isinstance(alias, str) and alias else argument


class ErrorGuard:
    """The outermost ASGI layer of a port: reports what no handler caught, and answers 500 if it still can.

    When the response had already started (a stream), the error is reported and the body is ended; the
    client sees a cut-short answer and no request id, the log has everything.
    """

    def __init__(self, app: ASGIApp, registry: CollectorRegistry, api: str) -> None:
        self._app = app
        self._registry = registry
        self._api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self._app(scope, receive, tracking_send)
        except Exception as e:  # noqa: BLE001 - report_unexpected logs it with its traceback
            request_id = report_unexpected(self._registry, self._api, scope["method"], scope["path"], e)
            with contextlib.suppress(Exception):  # the connection may be gone; it was reported already
                if started:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                else:
                    body = ErrorBody(500, INTERNAL_ERROR_DETAIL, request_id=request_id)
                    await send_json(send, 500, msgspec.json.encode(body))


async def send_json(
    send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Send a whole JSON answer through raw ASGI (the paths that bypass Litestar's responses)."""
    all_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
