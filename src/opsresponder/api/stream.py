"""The live event stream: ``GET /api/v1/events/stream`` (Server-Sent Events, scope ``read``).

One `StreamHub` per process holds ONE subscription to the events channel of the state backend and fans
each published batch out to the connected clients: an event is decoded and framed once per process, not
once per client, and on Redis a process needs one pub/sub connection however many clients it serves.

Each client has a bounded buffer of matching events. The hub only appends to it, never waits: a client
that falls ``client_buffer`` events behind is disconnected (``reason="slow"``) and resumes later with
``Last-Event-ID``. Whenever the hub may have missed a published batch (its subscription overflowed or was
lost, or a publisher's sequence number jumped) it disconnects every client (``reason="resync"``): their
resume from the database fills the hole, which is better than a stream with a silent gap.

The protocol, the resume cursor and its multi-process caveat are documented in docs/stream.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Annotated, Any, Final

import msgspec
import structlog
from litestar import Request, get
from litestar.params import FromQuery, HeaderParameter, QueryParameter
from litestar.types import ASGIApp, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge

from opsresponder.api.auth import scope_opt
from opsresponder.api.context import context_of
from opsresponder.api.errors import encode_error, send_json
from opsresponder.api.filters import CURSOR_BOUNDS, MAX_BIGINT, SeverityFilter, TextFilter, parse_severities
from opsresponder.api.openapi import RETRY_AFTER, Answer, documented, error
from opsresponder.core.clock import Clock, utcnow
from opsresponder.core.errors import OpsResponderError
from opsresponder.core.event import Event
from opsresponder.pipeline.notify import EVENTS_CHANNEL, decode_message, encode_event
from opsresponder.state.base import StateBackend
from opsresponder.state.errors import StateError
from opsresponder.store.errors import StoreError
from opsresponder.store.stream_cursor import StreamBacklog, StreamFilter

log = structlog.get_logger(__name__)

STREAM_PATH: Final = "/api/v1/events/stream"

DEFAULT_HEARTBEAT_SECONDS: Final = 15.0
# About two seconds of a 5,000 events/s firehose: a client that lags more than that is better served by a
# reconnect and a replay from the database. Entries are references to frames shared by every client.
DEFAULT_CLIENT_BUFFER: Final = 10_000
DEFAULT_MAX_CLIENTS: Final = 200
# Published batches (not events) the hub's own subscription may hold while fanning out.
DEFAULT_HUB_BUFFER: Final = 1000
DEFAULT_REPLAY_PAGE: Final = 500
DEFAULT_FLUSH_INTERVAL_SECONDS: Final = 0.05
DEFAULT_RETRY_AFTER_SECONDS: Final = 5

# A replayed event may also arrive live if it was published after the client registered. Publishing lags
# commit by the notify queue and the hub's buffer only, far less than this; events processed earlier than
# this before the client registered cannot still be in flight, so their ids need not be remembered.
_LIVE_OVERLAP: Final = timedelta(seconds=60)
# Writing the final empty chunk must not hang the shutdown on a client whose socket is full.
_FINAL_WRITE_TIMEOUT: Final = 1.0
# Clients are flushed in this many groups, one group per tick of flush_interval / FLUSH_GROUPS, so that the
# socket writes of a flush are spread over the interval instead of stalling the event loop all at once.
FLUSH_GROUPS: Final = 5
_RESUBSCRIBE_FIRST_DELAY: Final = 0.1
_RESUBSCRIBE_MAX_DELAY: Final = 5.0

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


class StreamUnavailableError(OpsResponderError):
    """The hub cannot take a client now (not subscribed, closing, or full); answered 503."""


class _Header(msgspec.Struct):
    """The fields of a published event that filters look at; everything else stays raw JSON."""

    id: int
    severity: str
    event_type: str
    host: str | None = None
    service: str | None = None
    score: float | None = None
    processed_at: datetime | None = None


_header_decoder = msgspec.json.Decoder(_Header)


class _Batch:
    """Events of one published batch (or the part of it one client wants), framed for SSE.

    A batch is shared by every client without a filter, and its body is joined once for all of them: the
    cost of an unfiltered client is one append and one write per batch, not work per event.
    """

    __slots__ = ("_body", "frames", "headers")

    def __init__(self, headers: list[_Header], frames: list[bytes]) -> None:
        self.headers = headers
        self.frames = frames
        self._body: bytes | None = None

    def body(self) -> bytes:
        if self._body is None:
            self._body = b"".join(self.frames)
        return self._body


def frame(event_id: int, data: bytes | msgspec.Raw) -> bytes:
    """One SSE message: ``id:`` (the resume cursor), ``event: event`` and the event's JSON on one line."""
    return b"".join((b"id: %d\nevent: event\ndata: " % event_id, data, b"\n\n"))


def matches(
    f: StreamFilter,
    severity: str,
    event_type: str,
    host: str | None,
    service: str | None,
    score: float | None,
) -> bool:
    """The live twin of the SQL in `store.stream_cursor`: the same event must match both or neither."""
    return (
        (f.severities is None or severity in f.severities)
        and (f.event_type is None or event_type == f.event_type)
        and (f.host is None or host == f.host)
        and (f.service is None or service == f.service)
        and (f.min_score is None or (score is not None and score >= f.min_score))
    )


class StreamMetrics:
    """Metric families of the live stream."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.clients = Gauge(
            "opsresponder_stream_clients", "Live stream clients connected now.", registry=registry
        )
        self.disconnected = Counter(
            "opsresponder_stream_clients_disconnected_total",
            "Live stream clients that went away, by reason (client, slow, resync, shutdown, error).",
            ["reason"],
            registry=registry,
        )
        self.refused = Counter(
            "opsresponder_stream_clients_refused_total",
            "Live stream connections refused with 503, by reason (max_clients, unavailable).",
            ["reason"],
            registry=registry,
        )
        self.events_sent = Counter(
            "opsresponder_stream_events_sent_total",
            "Events written to live stream clients (live and replayed), summed over clients.",
            registry=registry,
        )
        self.events_replayed = Counter(
            "opsresponder_stream_events_replayed_total",
            "Events replayed from the database to resuming clients.",
            registry=registry,
        )
        self.resyncs = Counter(
            "opsresponder_stream_resyncs_total",
            "Times the hub may have missed published events and disconnected every client, by reason "
            "(publisher_gap, hub_overflow, state_error).",
            ["reason"],
            registry=registry,
        )
        self.bad_messages = Counter(
            "opsresponder_stream_bad_messages_total",
            "Messages on the events channel that are not published batches (ignored).",
            registry=registry,
        )


class StreamClient:
    """One connected client as the hub sees it: a filter and a bounded buffer of SSE frames.

    Invariants: the buffer never holds more than ``limit`` events; `offer` never waits; once closed, the
    client takes nothing more and ``close_reason`` says why (the first reason wins).
    """

    def __init__(self, stream_filter: StreamFilter, limit: int, registered_at: datetime) -> None:
        self.filter = stream_filter
        self.registered_at = registered_at
        self._limit = limit
        self._buffer: list[_Batch] = []
        self._buffered_events = 0
        self.flush_group = 0
        self._wake = asyncio.Event()
        self.close_reason: str | None = None
        # Set while a write to the socket is in progress: a client that stopped reading blocks there, and
        # only cancelling that write (through this timeout context) can cut it off.
        self._abort_scope: asyncio.Timeout | None = None
        self._writing = False

    @property
    def closed(self) -> bool:
        return self.close_reason is not None

    def offer(self, batch: _Batch) -> bool:
        """Buffer the events of `batch` that match; False (and closed as slow) when they do not fit."""
        if self.closed:
            return True
        f = self.filter
        if not f.matches_everything:
            keep = [
                i
                for i, h in enumerate(batch.headers)
                if matches(f, h.severity, h.event_type, h.host, h.service, h.score)
            ]
            if not keep:
                return True
            if len(keep) < len(batch.headers):
                batch = _Batch([batch.headers[i] for i in keep], [batch.frames[i] for i in keep])
        count = len(batch.headers)
        if self._buffered_events + count > self._limit:
            self.close("slow")
            return False
        self._buffer.append(batch)
        self._buffered_events += count
        return True

    @property
    def has_buffered(self) -> bool:
        return self._buffered_events > 0

    def wake(self) -> None:
        """Let the client's response write what is buffered (the hub calls it once per flush interval)."""
        if self._buffered_events:
            self._wake.set()

    def take(self) -> list[_Batch]:
        self._wake.clear()
        batches, self._buffer, self._buffered_events = self._buffer, [], 0
        return batches

    def close(self, reason: str) -> None:
        """Stop taking events and end the response; cut a blocked write short."""
        if self.close_reason is None:
            self.close_reason = reason
        self._wake.set()
        if self._writing and self._abort_scope is not None:
            self._abort_scope.reschedule(asyncio.get_running_loop().time())

    async def wait(self, timeout: float) -> bool:
        """Wait until the hub flushes buffered events or the client is closed; False after `timeout` s."""
        if self._wake.is_set() or self.closed:
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        except TimeoutError:
            return False
        return True

    async def write(self, send: Send, body: bytes) -> None:
        """Send one chunk of the response body; cancelled by `close` when it blocks."""
        self._writing = True
        try:
            await send({"type": "http.response.body", "body": body, "more_body": True})
        finally:
            self._writing = False


class StreamHub:
    """Fans the published events of the whole deployment out to this process's stream clients.

    Lifecycle: ``await start()`` after the state backend started and before the HTTP server serves;
    ``await close()`` at shutdown, before the state backend stops: every stream then ends, so uvicorn's
    graceful shutdown does not wait for them.

    Args:
        state: the state backend the `CommitPublisher`s publish through.
        backlog: stored events for resuming clients.
        registry: where the stream metrics are registered.
        heartbeat_seconds: idle time after which a ``: keepalive`` comment is written.
        client_buffer: events a client may lag behind before it is disconnected as slow.
        max_clients: connected clients beyond which new ones are refused with 503.
        hub_buffer: published batches the hub's subscription may hold.
        replay_page: events per backlog query when resuming.
        flush_interval_seconds: how long published events may wait to be written to clients, so that
            several commits go out in one socket write per client instead of one write each (0: at once).
            Each client is flushed once per interval, its group's turn among `FLUSH_GROUPS`.
        clock: wall clock, compared with the stored ``processed_at``.
    """

    def __init__(
        self,
        state: StateBackend,
        backlog: StreamBacklog,
        registry: CollectorRegistry,
        *,
        heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS,
        client_buffer: int = DEFAULT_CLIENT_BUFFER,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        hub_buffer: int = DEFAULT_HUB_BUFFER,
        replay_page: int = DEFAULT_REPLAY_PAGE,
        retry_after_seconds: int = DEFAULT_RETRY_AFTER_SECONDS,
        flush_interval_seconds: float = DEFAULT_FLUSH_INTERVAL_SECONDS,
        clock: Clock = utcnow,
    ) -> None:
        if flush_interval_seconds < 0:
            raise ValueError(f"flush_interval_seconds must not be negative, got {flush_interval_seconds!r}")
        for name, value in (
            ("heartbeat_seconds", heartbeat_seconds),
            ("client_buffer", client_buffer),
            ("max_clients", max_clients),
            ("hub_buffer", hub_buffer),
            ("replay_page", replay_page),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        self._state = state
        self.backlog = backlog
        self.metrics = StreamMetrics(registry)
        self.heartbeat_seconds = heartbeat_seconds
        self.replay_page = replay_page
        self.retry_after_seconds = retry_after_seconds
        self._client_buffer = client_buffer
        self._max_clients = max_clients
        self._hub_buffer = hub_buffer
        self._flush_interval = flush_interval_seconds
        self._flush_pending: asyncio.TimerHandle | None = None
        self._flush_turn = 0
        self._clock = clock
        self._clients: set[StreamClient] = set()
        self._sequences: dict[str, int] = {}
        self._subscribed = asyncio.Event()
        self._ever_subscribed = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._no_clients = asyncio.Event()
        self._no_clients.set()

    @property
    def client_count(self) -> int:
        return len(self._clients)

    async def start(self) -> None:
        """Subscribe; return once events published from now on reach clients.

        Raises:
            StateError: the first subscription failed (the backend is unreachable).
        """
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._run(), name="stream-hub")
        subscribed = asyncio.create_task(self._subscribed.wait())
        await asyncio.wait({self._task, subscribed}, return_when=asyncio.FIRST_COMPLETED)
        if not subscribed.done():
            subscribed.cancel()
            self._task.result()  # raises the subscription failure

    async def close(self, timeout: float = 5.0) -> None:
        """End every stream, wait (at most `timeout` s) until their responses ended, unsubscribe."""
        self._closing = True
        for client in list(self._clients):
            client.close("shutdown")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._no_clients.wait(), timeout)
        task, self._task = self._task, None
        if self._flush_pending is not None:
            self._flush_pending.cancel()
            self._flush_pending = None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])  # raises our own cancellation, not the task's

    def connect(self, stream_filter: StreamFilter) -> StreamClient:
        """Register a client; from now on every matching published event is buffered for it.

        Raises:
            StreamUnavailableError: the hub is closing or not subscribed, or `max_clients` are connected.
        """
        if self._closing or not self._subscribed.is_set():
            self.metrics.refused.labels("unavailable").inc()
            raise StreamUnavailableError("the live stream is not available right now")
        if len(self._clients) >= self._max_clients:
            self.metrics.refused.labels("max_clients").inc()
            raise StreamUnavailableError(f"the live stream already serves {self._max_clients} clients")
        client = StreamClient(stream_filter, self._client_buffer, self._clock())
        sizes = [0] * FLUSH_GROUPS
        for other in self._clients:
            sizes[other.flush_group] += 1
        client.flush_group = sizes.index(min(sizes))  # the least populated group
        self._clients.add(client)
        self._no_clients.clear()
        self.metrics.clients.set(len(self._clients))
        return client

    def disconnect(self, client: StreamClient, reason: str) -> None:
        """Forget `client` once its response ended; counts the reason it was closed for."""
        if client not in self._clients:
            return
        client.close(reason)
        self._clients.discard(client)
        self.metrics.clients.set(len(self._clients))
        assert client.close_reason is not None
        self.metrics.disconnected.labels(client.close_reason).inc()
        if not self._clients:
            self._no_clients.set()

    async def _run(self) -> None:
        delay = _RESUBSCRIBE_FIRST_DELAY
        while True:
            reason = "state_error"
            try:
                async with self._state.subscribe([EVENTS_CHANNEL], max_buffer=self._hub_buffer) as sub:
                    self._subscribed.set()
                    self._ever_subscribed = True
                    delay = _RESUBSCRIBE_FIRST_DELAY
                    async for _channel, data in sub:
                        self._on_message(data)
                    reason = "hub_overflow" if sub.overflowed else "state_error"
            except StateError as e:
                if not self._ever_subscribed:
                    raise  # `start` reports it: the process should not serve a stream that cannot work
                log.warning("The live stream lost its subscription; clients will resume.", error=str(e))
            self._subscribed.clear()
            if self._closing:
                return
            self._resync(reason)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RESUBSCRIBE_MAX_DELAY)

    def _on_message(self, data: bytes) -> None:
        try:
            message = decode_message(data)
        except msgspec.DecodeError:
            self.metrics.bad_messages.inc()
            return
        last = self._sequences.get(message.p)
        self._sequences[message.p] = message.s
        if last is not None and message.s != last + 1:
            self._resync("publisher_gap")
        # Most of the time nobody is watching: skip the per-event work then.
        if not self._clients:
            return
        try:
            headers = [_header_decoder.decode(raw) for raw in message.e]
        except msgspec.DecodeError:
            self.metrics.bad_messages.inc()
            return
        batch = _Batch(headers, [frame(h.id, raw) for h, raw in zip(headers, message.e, strict=True)])
        for client in list(self._clients):
            if not client.offer(batch):
                log.warning("A live stream client fell behind and was disconnected.")
        if self._flush_interval == 0:
            for client in self._clients:
                client.wake()
        elif self._flush_pending is None:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        # One timer for every client: waking 50 response tasks and writing 50 sockets per commit cost the
        # webhook's p99 more than anything else the stream does. One group per tick: at 5,000 events/s,
        # flushing all 50 clients at once (about 5 MB of socket writes) stalled the event loop for up to
        # 8 ms every interval; in groups, the loop's p99.9 lag fell from 7.6 ms to about 2.
        delay = self._flush_interval / FLUSH_GROUPS
        self._flush_pending = asyncio.get_running_loop().call_later(delay, self._flush_group)

    def _flush_group(self) -> None:
        group, self._flush_turn = self._flush_turn, (self._flush_turn + 1) % FLUSH_GROUPS
        others_waiting = False
        for client in self._clients:
            if client.flush_group == group:
                client.wake()
            elif client.has_buffered:
                others_waiting = True
        if others_waiting:
            self._schedule_flush()
        else:
            self._flush_pending = None

    def _resync(self, reason: str) -> None:
        self._sequences.clear()
        if not self._clients:
            return
        self.metrics.resyncs.labels(reason).inc()
        log.warning(
            "The live stream may have missed events; its clients are disconnected to resume.",
            reason=reason,
            clients=len(self._clients),
        )
        for client in list(self._clients):
            client.close("resync")


class _StreamResponse:
    """The ASGI response of one stream: registration, replay, live events, heartbeats, and the end."""

    def __init__(self, hub: StreamHub, stream_filter: StreamFilter, cursor: int | None) -> None:
        self._hub = hub
        self._filter = stream_filter
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
                client._abort_scope = abort_scope
                replayed = await self._replay(client, send, page) if page else set()
                await self._live(client, send, replayed)
        except TimeoutError:
            # A write was cut short (slow client, or shutdown while its socket was full): the response
            # cannot be completed, and returning makes uvicorn close the connection.
            log.info("A live stream client stopped reading and was cut off.", reason=client.close_reason)
            return
        finally:
            client._abort_scope = None
            watcher.cancel()
            await asyncio.wait([watcher])
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_FINAL_WRITE_TIMEOUT):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _replay(self, client: StreamClient, send: Send, page: list[Event]) -> set[int]:
        """Send the stored events after the cursor; return the ids that may also arrive live."""
        hub = self._hub
        horizon = client.registered_at - _LIVE_OVERLAP
        replayed: set[int] = set()
        while page and not client.closed:
            await client.write(send, b"".join(frame(e.id or 0, encode_event(e)) for e in page))
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

    async def _live(self, client: StreamClient, send: Send, replayed: set[int]) -> None:
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
                    await client.write(send, body)
                    hub.metrics.events_sent.inc(count)
                continue
            if client.closed:
                return
            if not await client.wait(hub.heartbeat_seconds):
                await client.write(send, _KEEPALIVE)


def _after(processed_at: datetime | None, horizon: datetime) -> bool:
    return processed_at is None or processed_at >= horizon


def _seen(header: _Header, cursor: int | None, replayed: set[int], registered_at: datetime) -> bool:
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


def _frozen(values: list[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)


def parse_cursor(header: int | None, query: int | None) -> int | None:
    """The resume cursor: the ``Last-Event-ID`` header, else the ``last_event_id`` query parameter.

    The header wins because a browser's EventSource sends it on every reconnect, with a newer id than the
    query string of the URL it was first opened with. Both are bounded to PostgreSQL's bigint by their
    parameter declarations (400 otherwise).
    """
    return header if header is not None else query


def hub_of(request: Request[Any, Any, Any]) -> StreamHub | None:
    """The process's hub, or None where the composition root built none."""
    return context_of(request).stream_hub


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
)
async def stream_events(
    request: Request[Any, Any, Any],
    severity: SeverityFilter = None,
    event_type: TextFilter = None,
    host: TextFilter = None,
    service: TextFilter = None,
    min_score: FromQuery[float | None] = None,
    last_event_id: Annotated[
        int | None, QueryParameter(ge=0, le=MAX_BIGINT, schema_extra=CURSOR_BOUNDS)
    ] = None,
    last_event_id_header: Annotated[
        int | None, HeaderParameter(name="last-event-id", ge=0, le=MAX_BIGINT, schema_extra=CURSOR_BOUNDS)
    ] = None,
) -> ASGIApp:
    stream_filter = StreamFilter(
        severities=_frozen(parse_severities(severity)),
        event_type=event_type,
        host=host,
        service=service,
        min_score=min_score,
    )
    cursor = parse_cursor(last_event_id_header, last_event_id)
    hub = hub_of(request)
    if hub is None:
        return _Unconfigured()
    return _StreamResponse(hub, stream_filter, cursor)


class _Unconfigured:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _send_unavailable(send, "the live stream is not enabled in this process", 60)
