"""Endpoints served on both ports: health, readiness, metrics; and the shared app construction."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, get
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.response.base import ASGIResponse
from litestar.types import ControllerRouterHandler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from opsresponder import __version__
from opsresponder.api.auth import PUBLIC, AuthMiddleware, TokenAuthenticator, scope_opt
from opsresponder.api.context import CONTEXT_KEY, ApiContext, context_of
from opsresponder.store.errors import DatabaseUnavailableError

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


@get("/health", sync_to_thread=False, opt=scope_opt(PUBLIC), summary="Liveness and bound listeners")
def health(request: Request[Any, Any, Any]) -> ASGIResponse:
    ctx = context_of(request)
    return json_response({"status": "ok", "version": __version__, "listeners": ctx.listeners})


@get("/ready", opt=scope_opt(PUBLIC), summary="Readiness: database reachable and listeners bound")
async def ready(request: Request[Any, Any, Any]) -> ASGIResponse:
    ctx = context_of(request)
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(ctx.check_database(), _READY_DB_TIMEOUT)
        checks["database"] = "ok"
    except (DatabaseUnavailableError, TimeoutError) as e:
        checks["database"] = f"unavailable: {e}"
    checks["listeners"] = "ok" if ctx.listeners else "none bound"
    is_ready = all(v == "ok" for v in checks.values())
    return json_response(
        {"status": "ready" if is_ready else "not_ready", "checks": checks, "listeners": ctx.listeners},
        status_code=200 if is_ready else 503,
    )


@get("/metrics", opt=scope_opt("read"), sync_to_thread=False, summary="Prometheus metrics")
def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    ctx = context_of(request)
    ctx.pipeline_metrics.intake_depth.set(ctx.intake.depth)
    return Response(generate_latest(ctx.registry), media_type=CONTENT_TYPE_LATEST)


def build_app(
    ctx: ApiContext, title: str, description: str, handlers: Sequence[ControllerRouterHandler]
) -> Litestar:
    """A Litestar app with the shared endpoints, token auth, body limit and OpenAPI schema at /schema."""
    return Litestar(
        route_handlers=[health, ready, metrics, *handlers],
        middleware=[
            DefineMiddleware(AuthMiddleware, authenticator=TokenAuthenticator(ctx.settings.api.tokens))
        ],
        state=State({CONTEXT_KEY: ctx}),
        openapi_config=OpenAPIConfig(
            title=title, version=__version__, description=description, path="/schema"
        ),
        request_max_body_size=ctx.settings.api.max_body_bytes,
        debug=False,
        logging_config=None,
    )
