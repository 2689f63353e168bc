"""The lean ASGI path for webhook ingest: the hottest endpoints, served without the framework's machinery.

Litestar's routing, middleware stack, request and response objects cost about a third of the CPU of one
single-event webhook request. This front serves ``POST /api/v1/events/webhook`` and
``POST /api/v1/events/webhook/{source_type}`` itself, with the same token check (`TokenAuthenticator`),
body limit and answers (`api.ingest`, all in the webhook's own error shape), and hands every other request
to the Litestar app, which keeps the routes for the OpenAPI schema and serves anything this front does not
recognise. An unexpected error here is reported like any other (api/errors.py).
"""

from __future__ import annotations

from typing import Final

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from opsresponder.api.auth import TokenAuthenticator, authorize
from opsresponder.api.context import EventsApiContext
from opsresponder.api.errors import INTERNAL_ERROR_DETAIL, report_unexpected, send_json
from opsresponder.api.ingest import (
    GENERIC_PATH,
    NATIVE_PATH_PREFIX,
    REQUIRED_SCOPE,
    IngestAnswer,
    ingest,
    rejected,
)

_DEFAULT_CONTENT_TYPE: Final = "application/json"


class _BodyTooLargeError(Exception):
    pass


class _ClientGoneError(Exception):
    pass


class IngestFront:
    """ASGI app: webhook POSTs here, everything else to `app`."""

    def __init__(self, app: ASGIApp, ctx: EventsApiContext) -> None:
        self._app = app
        self._ctx = ctx
        self._authenticator = TokenAuthenticator(ctx.api.tokens)
        self._max_body = ctx.api.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        adapter_name: str | None = None
        if scope["type"] != ScopeType.HTTP or scope["method"] != "POST":
            await self._app(scope, receive, send)
            return
        path = scope["path"]
        if path != GENERIC_PATH:
            adapter_name = _native_adapter_name(path)
            if adapter_name is None:
                await self._app(scope, receive, send)
                return
        await self._serve(scope, receive, send, adapter_name)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, adapter_name: str | None) -> None:
        authorization = content_type = content_length = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                content_length = value
        if await authorize(self._authenticator, authorization, REQUIRED_SCOPE, send) is None:
            return
        if content_length is not None:
            try:
                declared = int(content_length)
            except ValueError:
                await _send_answer(send, rejected(400, "the Content-Length header is not a number"))
                return
            if declared > self._max_body:
                await _too_large(send, self._max_body)
                return
        try:
            body = await _read_body(receive, self._max_body)
        except _BodyTooLargeError:
            await _too_large(send, self._max_body)
            return
        except _ClientGoneError:
            return
        try:
            answer = await ingest(self._ctx, body, content_type or _DEFAULT_CONTENT_TYPE, adapter_name)
        except Exception as e:  # noqa: BLE001 - report_unexpected logs it with its traceback
            # Like the framework's handler of last resort: report it and answer 500, never crash the server.
            request_id = report_unexpected(self._ctx.registry, "events", "POST", scope["path"], e)
            answer = rejected(500, INTERNAL_ERROR_DETAIL)
            answer.body["request_id"] = request_id
            await _send_answer(send, answer)
            return
        await _send_answer(send, answer)


def _native_adapter_name(path: str) -> str | None:
    if not path.startswith(NATIVE_PATH_PREFIX):
        return None
    name = path[len(NATIVE_PATH_PREFIX) :]
    return name if name and "/" not in name else None


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect: the client went away
            raise _ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLargeError
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _too_large(send: Send, limit: int) -> None:
    await _send_answer(send, rejected(413, f"the request body exceeds the limit of {limit} bytes"))


async def _send_answer(send: Send, answer: IngestAnswer) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (answer.headers or {}).items()]
    await send_json(send, answer.status, msgspec.json.encode(answer.body), headers)
