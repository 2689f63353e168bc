"""The live event stream over HTTP: ``GET /api/v1/events/stream`` (Server-Sent Events, scope ``read``).

The process's `live.hub.StreamHub` does the fan-out and buffering; this module registers a client with it,
replays what a resuming client missed from the database, then writes the client's buffer as SSE, with
heartbeats, until either side ends. The protocol, the resume cursor and its multi-process caveat are
documented in docs/stream.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Final

import structlog
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, QueryParameter
from litestar.types import ASGIApp, Receive, Scope, Send

from opsresponder.api.auth import scope_opt
from opsresponder.api.context import EventsApiContext, context_of
from opsresponder.api.errors import encode_error, send_json
from opsresponder.api.filters import CURSOR_BOUNDS, EVENT_FILTER, MAX_BIGINT
from opsresponder.api.openapi import RETRY_AFTER, Answer, documented, error
from opsresponder.core.event import Event
from opsresponder.live.hub import EventHeader, StreamClient, StreamHub, StreamUnavailableError, frame
from opsresponder.live.wire import encode_event
from opsresponder.rules.filter import EventFilter
from opsresponder.store.errors import StoreError

log = structlog.get_logger(__name__)

STREAM_PATH: Final = "/api/v1/events/stream"

# A replayed event may also arrive live if it was published after the client registered. Publishing lags
# commit by the notify queue and the hub's buffer only, far less than this; events processed earlier than
# this before the client registered cannot still be in flight, so their ids need not be remembered.
_LIVE_OVERLAP: Final = timedelta(seconds=60)
# Writing the final empty chunk must not hang the shutdown on a client whose socket is full.
_FINAL_WRITE_TIMEOUT: Final = 1.0

_KEEPALIVE: Final = b": keepalive\n\n"
SSE_EVENT: Final = {
    "type": "object",
    "required": ["event", "id", "data"],
    "properties": {
        "event": {"const": "event"},
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "The event id: the resume cursor."},
        "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": Event},
    },
}
"""One message of the stream, as OpenAPI 3.1 describes a text/event-stream answer (per event)."""
_SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # nginx buffers proxied responses by default, which would hold events back until a buffer fills.
    (b"x-accel-buffering", b"no"),
]


class _StreamResponse:
    """The ASGI response of one stream: registration, replay, live events, heartbeats, and the end."""

    def __init__(self, hub: StreamHub, event_filter: EventFilter, cursor: int | None) -> None:
        self._hub = hub
        self._filter = event_filter
        self._cursor = cursor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub = self._hub
        try:
            # Registered before the backlog query, so that nothing committed meanwhile is missed.
            client = hub.connect(self._filter)
        except StreamUnavailableError as e:
            await _send_unavailable(send, str(e), hub.retry_after_seconds)
            return
        try:
            await self._serve(client, receive, send)
        finally:
            hub.disconnect(client, "client")

    async def _serve(self, client: StreamClient, receive: Receive, send: Send) -> None:
        hub = self._hub
        page: list[Event] = []
        if self._cursor is not None:
            try:
                page = await hub.backlog.after(self._cursor, self._filter, hub.replay_page)
            except StoreError as e:
                client.close("error")
                # The database's words stay in the log: an answer never carries a driver message.
                log.warning("A stream client could not resume from the stored events.", error=str(e))
                await _send_unavailable(send, "cannot read the stored events now", hub.retry_after_seconds)
                return
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        watcher = asyncio.create_task(_watch_disconnect(receive, client), name="stream-disconnect")
        try:
            async with asyncio.timeout(None) as abort_scope:
                write = _writer(client, send, abort_scope)
                replayed = await self._replay(client, write, page) if page else set()
                await self._live(client, write, replayed)
        except TimeoutError:
            # A write was cut short (slow client, or shutdown while its socket was full): the response
            # cannot be completed, and returning makes uvicorn close the connection.
            log.info("A live stream client stopped reading and was cut off.", reason=client.close_reason)
            return
        finally:
            watcher.cancel()
            await asyncio.wait([watcher])
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_FINAL_WRITE_TIMEOUT):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _replay(self, client: StreamClient, write: _Write, page: list[Event]) -> set[int]:
        """Send the stored events after the cursor; return the ids that may also arrive live."""
        hub = self._hub
        horizon = client.registered_at - _LIVE_OVERLAP
        replayed: set[int] = set()
        while page and not client.closed:
            await write(b"".join(frame(e.id or 0, encode_event(e)) for e in page))
            hub.metrics.events_replayed.inc(len(page))
            hub.metrics.events_sent.inc(len(page))
            replayed.update(e.id for e in page if e.id is not None and _after(e.processed_at, horizon))
            if len(page) < hub.replay_page:
                break
            last = page[-1].id
            assert last is not None
            try:
                page = await hub.backlog.after(last, self._filter, hub.replay_page)
            except StoreError as e:
                # The client resumes from its last id when it reconnects; nothing is lost.
                log.warning("Replaying stored events to a stream client failed.", error=str(e))
                client.close("error")
        return replayed

    async def _live(self, client: StreamClient, write: _Write, replayed: set[int]) -> None:
        hub = self._hub
        loop = asyncio.get_running_loop()
        cursor = self._cursor
        # Until then, an event published late may be one the client already has; see `_seen`.
        overlap_ends = loop.time() + _LIVE_OVERLAP.total_seconds() if cursor is not None else 0.0
        while True:
            batches = client.take()
            if batches:
                if overlap_ends and loop.time() > overlap_ends:
                    overlap_ends, replayed = 0.0, set()
                if overlap_ends:
                    registered_at = client.registered_at
                    frames = [
                        fr
                        for b in batches
                        for h, fr in zip(b.headers, b.frames, strict=True)
                        if not _seen(h, cursor, replayed, registered_at)
                    ]
                    body, count = b"".join(frames), len(frames)
                elif len(batches) == 1:
                    body, count = batches[0].body(), len(batches[0].headers)
                else:
                    body, count = b"".join(b.body() for b in batches), sum(len(b.headers) for b in batches)
                if count:
                    await write(body)
                    hub.metrics.events_sent.inc(count)
                continue
            if client.closed:
                return
            if not await client.wait(hub.heartbeat_seconds):
                await write(_KEEPALIVE)


_Write = Callable[[bytes], Awaitable[None]]


def _writer(client: StreamClient, send: Send, abort_scope: asyncio.Timeout) -> _Write:
    """Writes one chunk of the response body; `client.close` cuts a blocked write short."""

    async def write(body: bytes) -> None:
        with client.writing(abort_scope):
            await send({"type": "http.response.body", "body": body, "more_body": True})

    return write


def _after(processed_at: datetime | None, horizon: datetime) -> bool:
    return processed_at is None or processed_at >= horizon


def _seen(header: EventHeader, cursor: int | None, replayed: set[int], registered_at: datetime) -> bool:
    """Whether a live event of a resumed stream is one the client has already.

    Replayed events, obviously. And events at or below the cursor that were processed before the client
    connected: the cursor says "I have everything up to here", which is exact in one process, where ids
    grow with commit order, and is the same rule the replay query applies (docs/stream.md explains the
    caveat with several processes). Events processed after the client connected are always new to it.
    """
    if header.id in replayed:
        return True
    return (
        cursor is not None
        and header.id <= cursor
        and header.processed_at is not None
        and header.processed_at < registered_at
    )


async def _watch_disconnect(receive: Receive, client: StreamClient) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            client.close("client")
            return


async def _send_unavailable(send: Send, message: str, retry_after: int) -> None:
    await send_json(send, 503, encode_error(503, message), [(b"retry-after", str(retry_after).encode())])


def parse_cursor(header: int | None, query: int | None) -> int | None:
    """The resume cursor: the ``Last-Event-ID`` header, else the ``last_event_id`` query parameter.

    The header wins because a browser's EventSource sends it on every reconnect, with a newer id than the
    query string of the URL it was first opened with. Both are bounded to PostgreSQL's bigint by their
    parameter declarations (400 otherwise).
    """
    return header if header is not None else query


def hub_of(request: Request[Any, Any, Any]) -> StreamHub | None:
    """The process's hub, or None where the composition root built none."""
    return context_of(request, EventsApiContext).stream_hub


@get(
    STREAM_PATH,
    opt={
        **scope_opt("read"),
        **documented(
            answers={
                200: Answer(
                    "An endless text/event-stream: per event ``id: <event id>``, ``event: event`` and "
                    "``data: <the event as JSON>``; ``: keepalive`` comments when idle (docs/stream.md). "
                    "The schema describes one event.",
                    SSE_EVENT,
                    media_type="text/event-stream",
                ),
                503: error("The stream cannot take a client now; retry later.", RETRY_AFTER),
            }
        ),
    },
    summary="Live stream of processed events (Server-Sent Events); resumes after Last-Event-ID",
    media_type="text/event-stream",
    dependencies=EVENT_FILTER,
)
async def stream_events(
    request: Request[Any, Any, Any],
    event_filter: NamedDependency[EventFilter],
    last_event_id: Annotated[
        int | None, QueryParameter(ge=0, le=MAX_BIGINT, schema_extra=CURSOR_BOUNDS)
    ] = None,
    last_event_id_header: Annotated[
        int | None, HeaderParameter(name="last-event-id", ge=0, le=MAX_BIGINT, schema_extra=CURSOR_BOUNDS)
    ] = None,
) -> ASGIApp:
    cursor = parse_cursor(last_event_id_header, last_event_id)
    hub = hub_of(request)
    if hub is None:
        return _Unconfigured()
    return _StreamResponse(hub, event_filter, cursor)


class _Unconfigured:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _send_unavailable(send, "the live stream is not enabled in this process", 60)
