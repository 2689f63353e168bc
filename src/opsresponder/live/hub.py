"""The stream hub: one process's fan-out of published events to its live stream clients (not HTTP).

One `StreamHub` per process holds ONE subscription to the events channel of the state backend and fans
each published batch out to the connected clients: an event is decoded and framed once per process, not
once per client, and on Redis a process needs one pub/sub connection however many clients it serves.

Each client has a bounded buffer of matching events. The hub only appends to it, never waits: a client
that falls ``client_buffer`` events behind is disconnected (``reason="slow"``) and resumes later with
``Last-Event-ID``. Whenever the hub may have missed a published batch (its subscription overflowed or was
lost, or a publisher's sequence number jumped) it disconnects every client (``reason="resync"``): their
resume from the database fills the hole, which is better than a stream with a silent gap.

`api.stream` serves the clients over SSE. The protocol, the resume cursor and its multi-process caveat
are documented in docs/stream.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Final

import msgspec
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from opsresponder.config import StreamConfig
from opsresponder.core.clock import Clock, utcnow
from opsresponder.core.errors import OpsResponderError
from opsresponder.core.json_errors import MALFORMED_JSON_ERRORS
from opsresponder.live.wire import EVENTS_CHANNEL, decode_message
from opsresponder.rules.filter import EventFilter
from opsresponder.state.base import StateBackend
from opsresponder.state.errors import StateError
from opsresponder.store.stream_cursor import StreamBacklog

log = structlog.get_logger(__name__)

# Clients are flushed in this many groups, one group per tick of flush_interval / FLUSH_GROUPS, so that the
# socket writes of a flush are spread over the interval instead of stalling the event loop all at once.
FLUSH_GROUPS: Final = 5
_RESUBSCRIBE_FIRST_DELAY: Final = 0.1
_RESUBSCRIBE_MAX_DELAY: Final = 5.0


class StreamUnavailableError(OpsResponderError):
    """The hub cannot take a client now (not subscribed, closing, or full); answered 503."""


class _MetadataHeader(msgspec.Struct):
    # Any JSON: without the patterns stage, metadata.pattern is whatever the sender put there.
    pattern: object = None


class EventHeader(msgspec.Struct):
    """The fields of a published event that filters look at; everything else stays raw JSON."""

    id: int
    severity: str
    event_type: str
    host: str | None = None
    service: str | None = None
    score: float | None = None
    suppressed_reason: str | None = None
    processed_at: datetime | None = None
    metadata: _MetadataHeader | None = None

    @property
    def pattern_id(self) -> str | None:
        pattern = None if self.metadata is None else self.metadata.pattern
        if isinstance(pattern, dict):
            pattern_id = pattern.get("id")
            if isinstance(pattern_id, str):
                return pattern_id
        return None


_header_decoder = msgspec.json.Decoder(EventHeader)


class FramedBatch:
    """Events of one published batch (or the part of it one client wants), framed for SSE.

    A batch is shared by every client without a filter, and its body is joined once for all of them: the
    cost of an unfiltered client is one append and one write per batch, not work per event. That holds for
    the default filter too (suppressed events left out) when the batch has no suppressed event, which
    `has_suppressed` says once per batch rather than each client finding out per event.
    """

    __slots__ = ("_body", "frames", "has_suppressed", "headers")

    def __init__(self, headers: list[EventHeader], frames: list[bytes]) -> None:
        self.headers = headers
        self.frames = frames
        self.has_suppressed = any(h.suppressed_reason is not None for h in headers)
        self._body: bytes | None = None

    def body(self) -> bytes:
        if self._body is None:
            self._body = b"".join(self.frames)
        return self._body


def frame(event_id: int, data: bytes | msgspec.Raw) -> bytes:
    """One SSE message: ``id:`` (the resume cursor), ``event: event`` and the event's JSON on one line."""
    return b"".join((b"id: %d\nevent: event\ndata: " % event_id, data, b"\n\n"))


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

    def __init__(self, event_filter: EventFilter, limit: int, registered_at: datetime) -> None:
        self.filter = event_filter
        self.registered_at = registered_at
        self._limit = limit
        self._buffer: list[FramedBatch] = []
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

    def offer(self, batch: FramedBatch) -> bool:
        """Buffer the events of `batch` that match; False (and closed as slow) when they do not fit."""
        if self.closed:
            return True
        f = self.filter
        if f.has_conditions or (batch.has_suppressed and not f.include_suppressed):
            matches = f.matches
            keep = [i for i, h in enumerate(batch.headers) if matches(h)]
            if not keep:
                return True
            if len(keep) < len(batch.headers):
                batch = FramedBatch([batch.headers[i] for i in keep], [batch.frames[i] for i in keep])
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

    def take(self) -> list[FramedBatch]:
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

    @contextlib.contextmanager
    def writing(self, abort_scope: asyncio.Timeout) -> Iterator[None]:
        """Mark a socket write in progress: `close` cuts it short by expiring `abort_scope`, the timeout
        context the write runs in."""
        self._abort_scope = abort_scope
        self._writing = True
        try:
            yield
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
        config: ``stream`` settings: heartbeat, buffers, client limit, replay page, flush interval. Each
            client is flushed once per ``flush_interval_ms``, its group's turn among `FLUSH_GROUPS`, so
            several commits go out in one socket write per client instead of one write each (0: at once).
        retry_after_seconds: the ``Retry-After`` of a refused connection.
        clock: wall clock, compared with the stored ``processed_at``.
    """

    def __init__(
        self,
        state: StateBackend,
        backlog: StreamBacklog,
        registry: CollectorRegistry,
        *,
        config: StreamConfig,
        retry_after_seconds: int,
        clock: Clock = utcnow,
    ) -> None:
        self._state = state
        self.backlog = backlog
        self.metrics = StreamMetrics(registry)
        self.heartbeat_seconds = config.heartbeat_seconds
        self.replay_page = config.replay_page
        self.retry_after_seconds = retry_after_seconds
        self._client_buffer = config.client_buffer
        self._max_clients = config.max_clients
        self._hub_buffer = config.hub_buffer
        self._flush_interval = config.flush_interval_ms / 1000
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

    def connect(self, event_filter: EventFilter) -> StreamClient:
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
        client = StreamClient(event_filter, self._client_buffer, self._clock())
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
        except MALFORMED_JSON_ERRORS:
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
        except MALFORMED_JSON_ERRORS:
            self.metrics.bad_messages.inc()
            return
        batch = FramedBatch(headers, [frame(h.id, raw) for h, raw in zip(headers, message.e, strict=True)])
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
