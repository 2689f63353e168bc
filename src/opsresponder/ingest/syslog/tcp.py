"""Syslog over TCP (RFC 6587): many connections, framing detected per frame, backpressure, idle timeout.

Each connection is an `asyncio.Protocol` (no streams: one callback per read, no task per connection). A read
is cut into frames, each frame decoded into an Event and queued on the connection; one feeder task per
connection hands the queue to the sink with ``await sink.put()``, in order. When the intake is full ``put``
waits; if the sender keeps sending meanwhile, the connection stops reading until its queue is empty, so the
kernel's buffers fill up and the sender feels the backpressure. Nothing received over TCP is dropped for
lack of room.

Why ``put`` and not ``offer``-then-``put``: the intake counts every refused ``offer`` as a drop
(``events_dropped_total{reason="intake_full"}``), so probing it with ``offer`` would report losses that never
happened. A feeder that finds room does not yield, so the fast path costs one task per read, not per event.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Coroutine
from typing import Any, Final, Protocol, cast

import structlog

from opsresponder.config import SyslogListenerConfig
from opsresponder.core.clock import Clock, utcnow
from opsresponder.core.errors import OpsResponderError
from opsresponder.core.event import Event
from opsresponder.core.sink import EventSink
from opsresponder.ingest.syslog.framing import Frame, SyslogFramer
from opsresponder.ingest.syslog.listener import (
    STOP_GRACE_SECONDS,
    DecodeFn,
    IngestError,
    MessageDecoder,
    bind_error,
    format_peer,
)
from opsresponder.ingest.syslog.metrics import ListenerMetrics, ListenerName, SyslogMetrics

log = structlog.get_logger(__name__)

_ABORT_WAIT_SECONDS: Final = 1.0
"""After `stop` aborts the connections that did not close in time, how long it waits for their callbacks."""


class StreamConfig(Protocol):
    """What the TCP and TLS listener configs share."""

    host: str
    port: int
    max_message_bytes: int
    idle_timeout_seconds: float
    max_connections: int


class StreamListener:
    """The part of TCP and TLS listeners that owns the server socket, the connections and their tasks.

    Not used directly: `SyslogTcpListener` and `SyslogTlsListener` give it their config.
    """

    def __init__(
        self,
        name: ListenerName,
        config: StreamConfig,
        sink: EventSink,
        decode: DecodeFn,
        metrics: SyslogMetrics,
        clock: Clock = utcnow,
    ) -> None:
        self.name: ListenerName = name
        self._host = config.host
        self._port = config.port
        self.max_message_bytes = config.max_message_bytes
        self.idle_timeout_seconds = config.idle_timeout_seconds
        self._max_connections = config.max_connections
        self.sink = sink
        self.metrics: ListenerMetrics = metrics.for_listener(name)
        self.decoder = MessageDecoder(decode, self.metrics, name)
        self.clock = clock
        self._server: asyncio.Server | None = None
        self._connections: set[StreamConnection] = set()
        self._no_connections = asyncio.Event()
        self._no_connections.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._at_capacity = False
        self._stopping = False

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)``; after binding port 0, the port the kernel chose.

        Raises:
            IngestError: the listener is not started.
        """
        if self._server is None or not self._server.sockets:
            raise IngestError(f"the syslog {self.name} listener is not started")
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        """Bind and start accepting connections.

        Raises:
            IngestError: the address cannot be bound (taken, not local, no permission), or, for TLS, the
                certificate, key or CA cannot be loaded.
        """
        if self._server is not None:
            raise IngestError(f"the syslog {self.name} listener is already started")
        self._prepare()
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                self._make_connection, self._host, self._port, reuse_address=True
            )
        except OSError as e:
            raise bind_error(self.name, self._host, self._port, e) from e
        log.info("Syslog listener started.", listener=self.name, address=self.address)

    def _prepare(self) -> None:
        """Hook for TLS: load what must fail before the port is bound."""

    def _make_connection(self) -> StreamConnection:
        return StreamConnection(self)

    async def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """Stop accepting, close every connection, and let already-received messages reach the sink.

        Order matters: the server stops accepting first, so no connection arrives while the others close;
        then connections are closed (what a sender had half-sent is flushed as a final message); then the
        feeders get until ``grace_seconds`` to hand their queues to the sink; what is still queued after that
        is counted as dropped (``reason="shutdown"``).
        """
        server = self._server
        if server is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        self._stopping = True
        server.close()
        for connection in list(self._connections):
            connection.close()
        try:
            await asyncio.wait_for(self._no_connections.wait(), max(deadline - loop.time(), 0))
        except TimeoutError:
            # A peer that stopped reading keeps our close_notify (TLS) in the write buffer, and close()
            # waits for that buffer to drain: nothing more will come from such a peer.
            for connection in list(self._connections):
                connection.abort()
            try:
                await asyncio.wait_for(self._no_connections.wait(), _ABORT_WAIT_SECONDS)
            except TimeoutError:
                log.warning(
                    "Syslog connections did not close after abort.",
                    listener=self.name,
                    connections=len(self._connections),
                )
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=max(deadline - loop.time(), 0))
            for task in late:
                task.cancel()
            if late:
                # asyncio.wait neither raises the tasks' CancelledError nor swallows our own cancellation.
                await asyncio.wait(late)
        await server.wait_closed()
        self._server = None
        self._stopping = False
        log.info("Syslog listener stopped.", listener=self.name)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `coro` as a task the listener keeps a reference to until it ends, and waits for in `stop`."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def register(self, connection: StreamConnection) -> bool:
        """Admit a new connection; False (and counted) when the listener is at ``max_connections``."""
        if self._stopping or len(self._connections) >= self._max_connections:
            reason = "stopping" if self._stopping else "max_connections"
            self.metrics.connection_refused(reason)
            if reason == "max_connections" and not self._at_capacity:
                # Once per episode rather than per connection: a reconnect storm must not flood the log.
                self._at_capacity = True
                log.warning(
                    "Syslog listener at max_connections; refusing new connections.",
                    listener=self.name,
                    max_connections=self._max_connections,
                )
            return False
        self._connections.add(connection)
        self._no_connections.clear()
        self.metrics.connections_active.inc()
        return True

    def unregister(self, connection: StreamConnection) -> None:
        """Forget a connection; safe to call more than once."""
        if connection in self._connections:
            self._connections.remove(connection)
            self.metrics.connections_active.dec()
            if len(self._connections) < self._max_connections:
                self._at_capacity = False
            if not self._connections:
                self._no_connections.set()


class StreamConnection(asyncio.Protocol):
    """One stream connection: framer, queue of decoded events, feeder task, idle timer.

    Invariants: events reach the sink in the order their frames arrived; the connection reads only while
    its queue is empty or its feeder has never had to wait; a connection is in its listener's set from
    ``connection_made`` to ``connection_lost`` (or to a refused TLS handshake).
    """

    def __init__(self, listener: StreamListener) -> None:
        self._listener = listener
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self._framer = SyslogFramer(listener.max_message_bytes)
        self._pending: deque[Event] = deque()
        self._feeder: asyncio.Task[None] | None = None
        self._paused = False
        self._closed = False
        self._last_activity = 0.0
        self._idle_handle: asyncio.TimerHandle | None = None

    # asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self.peer = format_peer(transport.get_extra_info("peername"))
        if not self._listener.register(self):
            self._transport.abort()
            return
        self._begin()

    def data_received(self, data: bytes) -> None:
        self._receive(data)

    def eof_received(self) -> bool:
        self._deliver(self._framer.flush())
        return False  # close: syslog senders never expect an answer after they shut down writing

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        # A sender that vanished mid-frame (reset, idle timeout, shutdown) still gets its last bytes kept.
        self._deliver(self._framer.flush())
        self._listener.unregister(self)

    # Lifecycle

    def _begin(self) -> None:
        """Start receiving; TLS overrides this to run the handshake first."""
        self._start_idle_timer()

    def _start_idle_timer(self) -> None:
        self._last_activity = self._loop.time()
        self._idle_handle = self._loop.call_later(self._listener.idle_timeout_seconds, self._check_idle)

    def _receive(self, data: bytes) -> None:
        """Frame, decode and queue the plaintext of one read."""
        self._last_activity = self._loop.time()
        frames = self._framer.feed(data)
        if frames:
            self._deliver(frames)

    def close(self) -> None:
        if self._transport is not None and not self._closed:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None and not self._closed:
            self._transport.abort()

    def _check_idle(self) -> None:
        self._idle_handle = None
        if self._closed or self._transport is None:
            return
        timeout = self._listener.idle_timeout_seconds
        now = self._loop.time()
        if self._feeder is not None:
            # Waiting on a full intake is our silence, not the sender's.
            self._idle_handle = self._loop.call_later(timeout, self._check_idle)
            return
        idle_for = now - self._last_activity
        if idle_for < timeout:
            self._idle_handle = self._loop.call_later(timeout - idle_for, self._check_idle)
            return
        log.debug(
            "Closing an idle syslog connection.",
            listener=self._listener.name,
            peer=self.peer,
            idle_seconds=round(idle_for, 1),
        )
        self.close()

    # Delivery and backpressure

    def _deliver(self, frames: list[Frame]) -> None:
        if not frames:
            return
        listener = self._listener
        decoder = listener.decoder
        received_at = listener.clock()
        pending = self._pending
        peer = self.peer
        for frame in frames:
            event = decoder(frame.data, peer, received_at, frame.truncated)
            if event is not None:
                pending.append(event)
        if not pending:
            return
        if self._feeder is None:
            self._feeder = listener.spawn(self._feed())
        elif not self._paused and not self._closed and self._transport is not None:
            # The feeder started on an earlier read is still waiting for room in the intake, and the
            # sender goes on sending: stop reading until the queue is handed over.
            self._paused = True
            self._transport.pause_reading()
            listener.metrics.reads_paused.inc()

    async def _feed(self) -> None:
        pending = self._pending
        sink = self._listener.sink
        try:
            while pending:
                await sink.put(pending[0])
                pending.popleft()
        except asyncio.CancelledError:
            self._listener.metrics.dropped("shutdown", len(pending))
            pending.clear()
            raise
        except OpsResponderError as e:
            # The sink refuses for good (the intake is closed at shutdown): nothing will take these events,
            # so stop reading what would only be lost too.
            self._listener.metrics.dropped("intake_closed", len(pending))
            log.warning(
                "Syslog messages lost: the intake refused them.",
                listener=self._listener.name,
                peer=self.peer,
                count=len(pending),
                error=str(e),
            )
            pending.clear()
            self.abort()
        finally:
            self._feeder = None
            if self._paused:
                self._paused = False
                self._last_activity = self._loop.time()
                if not self._closed and self._transport is not None:
                    self._transport.resume_reading()


class SyslogTcpListener(StreamListener):
    """Receives syslog over TCP (RFC 6587): octet counting and LF/NUL/CRLF framing, told apart per frame.

    A frame over ``max_message_bytes`` is consumed to its end and kept as a truncated event. When the intake
    is full, connections stop reading (backpressure); nothing received is dropped for lack of room. A
    connection that sends nothing for ``idle_timeout_seconds`` is closed.

    Raises:
        IngestError: from `start`, when the address cannot be bound.
    """

    def __init__(
        self,
        config: SyslogListenerConfig,
        sink: EventSink,
        decode: DecodeFn,
        metrics: SyslogMetrics,
        clock: Clock = utcnow,
    ) -> None:
        super().__init__("tcp", config, sink, decode, metrics, clock)
