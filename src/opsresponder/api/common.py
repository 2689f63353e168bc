"""Endpoints served on both ports: health, readiness, metrics; and the shared app construction."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final

import msgspec
import structlog
from litestar import Litestar, Request, Response, get
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.response.base import ASGIResponse
from litestar.types import ControllerRouterHandler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from opsresponder import __version__
from opsresponder.api.auth import PUBLIC, AuthMiddleware, TokenAuthenticator, scope_opt
from opsresponder.api.bodies import AutomationState, Health, Readiness
from opsresponder.api.context import CONTEXT_KEY, ServiceContext, context_of
from opsresponder.api.errors import exception_handlers
from opsresponder.api.openapi import Answer, CompletedJsonRenderPlugin, documented
from opsresponder.api.options import options_handlers
from opsresponder.store.errors import DatabaseUnavailableError

log = structlog.get_logger(__name__)

_READY_DB_TIMEOUT = 2.0


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> ASGIResponse:
    """A JSON answer encoded with msgspec, handed to Litestar ready to send.

    Handlers annotated ``-> ASGIResponse`` skip Litestar's Response conversion, a noticeable share of the
    per-request CPU on the ingest path.
    """
    return ASGIResponse(
        body=msgspec.json.encode(content),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


@get(
    "/health",
    sync_to_thread=False,
    opt={**scope_opt(PUBLIC), **documented(answers={200: Answer("The process is alive.", Health)})},
    summary="Liveness and bound listeners",
)
def health(request: Request[Any, Any, Any]) -> ASGIResponse:
    ctx = context_of(request, ServiceContext)
    return json_response({"status": "ok", "version": __version__, "listeners": ctx.listeners})


@get(
    "/ready",
    opt={
        **scope_opt(PUBLIC),
        **documented(
            answers={
                200: Answer("PostgreSQL answers and the listeners are bound.", Readiness),
                503: Answer("Not ready: a check says what is wrong.", Readiness),
            }
        ),
    },
    summary="Readiness: database reachable and listeners bound",
)
async def ready(request: Request[Any, Any, Any]) -> ASGIResponse:
    ctx = context_of(request, ServiceContext)
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(ctx.check_database(), _READY_DB_TIMEOUT)
        checks["database"] = "ok"
    except (DatabaseUnavailableError, TimeoutError) as e:
        # The driver's words go to the log; this answer is public.
        log.warning("The readiness check cannot reach PostgreSQL.", error=str(e) or e.__class__.__name__)
        checks["database"] = "unavailable: PostgreSQL does not answer"
    checks["listeners"] = "ok" if ctx.listeners else "none bound"
    is_ready = all(v == "ok" for v in checks.values())
    answer: dict[str, Any] = {
        "status": "ready" if is_ready else "not_ready",
        "checks": checks,
        "listeners": ctx.listeners,
    }
    if ctx.automation is not None and checks["database"] == "ok":
        # Paused is not unready: the service takes events and answers; only automatic execution waits.
        try:
            pause = await asyncio.wait_for(ctx.automation(), _READY_DB_TIMEOUT)
        except (DatabaseUnavailableError, TimeoutError):
            pause = None
        answer["automation"] = AutomationState(
            paused=pause is not None,
            by=pause.paused_by if pause else None,
            reason=pause.reason if pause else None,
            since=pause.paused_at if pause else None,
        )
    if ctx.response_process is not None:
        answer["response_process"] = ctx.response_process()
    return json_response(answer, status_code=200 if is_ready else 503)


# Litestar appends "; charset=utf-8" to every text/ media type: leave it out here so it appears once.
_METRICS_MEDIA_TYPE: Final = "; ".join(
    p for p in CONTENT_TYPE_LATEST.split("; ") if not p.startswith("charset=")
)


@get(
    "/metrics",
    opt={
        **scope_opt("read"),
        **documented(
            answers={
                200: Answer(
                    "Prometheus text exposition format.", {"type": "string"}, media_type=_METRICS_MEDIA_TYPE
                )
            }
        ),
    },
    sync_to_thread=False,
    summary="Prometheus metrics",
)
def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    ctx = context_of(request, ServiceContext)
    ctx.refresh_metrics()
    return Response(generate_latest(ctx.registry), media_type=_METRICS_MEDIA_TYPE)


def build_app(
    ctx: ServiceContext,
    title: str,
    description: str,
    handlers: Sequence[ControllerRouterHandler],
    *,
    api: str = "events",
) -> Litestar:
    """A Litestar app with the shared endpoints, token auth, body limit, one error shape (api/errors.py)
    and its OpenAPI schema at /schema (api/openapi.py); `api` names it in logs and metrics."""
    route_handlers = [health, ready, metrics, *handlers]
    return Litestar(
        # The OPTIONS handlers first, so that Litestar adds none of its own (api/options.py).
        route_handlers=[*options_handlers(route_handlers), *route_handlers],
        middleware=[DefineMiddleware(AuthMiddleware, authenticator=TokenAuthenticator(ctx.api.tokens))],
        state=State({CONTEXT_KEY: ctx}),
        openapi_config=OpenAPIConfig(
            title=title,
            version=__version__,
            description=description,
            path="/schema",
            render_plugins=[CompletedJsonRenderPlugin()],
        ),
        exception_handlers=exception_handlers(ctx.registry, api, ctx.api.retry_after_seconds),
        request_max_body_size=ctx.api.max_body_bytes,
        debug=False,
        logging_config=None,
    )
