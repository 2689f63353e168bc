"""Syslog over UDP: one datagram is one message, offered to the intake without waiting.

UDP cannot push back on a sender, so the listener never waits: an event the intake has no room for is dropped
and counted (``reason="intake_full"``). The other place datagrams are lost is the kernel's receive buffer,
which absorbs bursts while the loop is busy; its size is asked for in config and checked.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import Final

import structlog

from opsresponder.config import SyslogListenerConfig
from opsresponder.core.clock import Clock, utcnow
from opsresponder.core.sink import EventSink
from opsresponder.ingest.syslog.framing import strip_octet_count
from opsresponder.ingest.syslog.listener import DecodeFn, IngestError, MessageDecoder, bind_error, format_peer
from opsresponder.ingest.syslog.metrics import SyslogMetrics

log = structlog.get_logger(__name__)

RMEM_SYSCTL: Final = "net.core.rmem_max"
# Linux doubles the SO_RCVBUF value it is given (the extra half is bookkeeping overhead) and reports the
# doubled value back; other systems report what they granted.
_KERNEL_DOUBLES_RCVBUF: Final = sys.platform.startswith("linux")


def set_receive_buffer(sock: socket.socket, requested: int, *, allow_force: bool = True) -> int:
    """Ask for a receive buffer of `requested` bytes; return the usable size granted.

    The kernel silently caps SO_RCVBUF at ``net.core.rmem_max``. Like rsyslog, when the cap bites and the
    process may (CAP_NET_ADMIN), SO_RCVBUFFORCE is tried next. If the buffer is still smaller than asked, one
    warning names the sysctl to raise, since a small buffer loses bursts silently in the kernel.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, requested)
    granted = _granted_receive_buffer(sock)
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    if granted < requested and allow_force and force is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, requested)
        except PermissionError:
            pass  # no CAP_NET_ADMIN: the warning below tells the operator what to raise instead
        else:
            granted = _granted_receive_buffer(sock)
    if granted < requested:
        log.warning(
            "The kernel granted a smaller UDP receive buffer than configured; bursts may be lost.",
            requested_bytes=requested,
            granted_bytes=granted,
            sysctl=RMEM_SYSCTL,
            hint=f"sysctl -w {RMEM_SYSCTL}={requested}",
        )
    return granted


def _granted_receive_buffer(sock: socket.socket) -> int:
    value = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    return value // 2 if _KERNEL_DOUBLES_RCVBUF else value


class SyslogUdpListener:
    """Receives syslog datagrams; each datagram is one message (trailing LF, CR and NUL removed, and an
    octet count that a sender put in front, as ``loggen -P`` does, when it counts the datagram exactly).

    Invariants: every datagram is counted as received, then as parsed or parse_failed, and is either offered
    to the sink or counted as dropped by reason; a datagram longer than ``max_message_bytes`` is kept
    truncated. Nothing a sender sends stops the listener.

    Raises:
        IngestError: from `start`, when the address cannot be resolved or bound.
    """

    def __init__(
        self,
        config: SyslogListenerConfig,
        sink: EventSink,
        decode: DecodeFn,
        metrics: SyslogMetrics,
        clock: Clock = utcnow,
    ) -> None:
        self._config = config
        self._sink = sink
        self._metrics = metrics.for_listener("udp")
        self._decoder = MessageDecoder(decode, self._metrics, "udp")
        self._clock = clock
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _UdpProtocol | None = None
        self.receive_buffer_bytes = 0
        """The usable receive buffer the kernel granted, known after `start`."""

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)``; after binding port 0, the port the kernel chose.

        Raises:
            IngestError: the listener is not started.
        """
        if self._transport is None:
            raise IngestError("the syslog udp listener is not started")
        sockname = self._transport.get_extra_info("sockname")
        return str(sockname[0]), int(sockname[1])

    async def start(self) -> None:
        """Bind the socket (with its receive buffer) and start receiving.

        Raises:
            IngestError: the host cannot be resolved, or the address cannot be bound.
        """
        if self._transport is not None:
            raise IngestError("the syslog udp listener is already started")
        loop = asyncio.get_running_loop()
        host, port = self._config.host, self._config.port
        sock = await self._bind(loop, host, port)
        protocol = _UdpProtocol(self)
        transport, _ = await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
        self._transport = transport
        self._protocol = protocol
        log.info(
            "Syslog listener started.",
            listener="udp",
            address=self.address,
            receive_buffer_bytes=self.receive_buffer_bytes,
        )

    async def _bind(self, loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
        # The socket is made here rather than by create_datagram_endpoint so that SO_RCVBUF is set before
        # bind (the buffer must be there before the first burst) and a taken port fails as IngestError.
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
        except OSError as e:  # socket.gaierror included
            raise bind_error("udp", host, port, e) from e
        family, kind, proto, _, sockaddr = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            self.receive_buffer_bytes = set_receive_buffer(sock, self._config.recv_buffer_bytes)
            sock.bind(sockaddr)
            sock.setblocking(False)
        except OSError as e:
            sock.close()
            raise bind_error("udp", host, port, e) from e
        return sock

    async def stop(self) -> None:
        """Stop receiving and close the socket. Datagrams already received have been offered."""
        transport, protocol = self._transport, self._protocol
        if transport is None or protocol is None:
            return
        transport.close()
        await protocol.closed
        self._transport = None
        self._protocol = None
        log.info("Syslog listener stopped.", listener="udp")

    def handle_datagram(self, data: bytes, addr: object) -> None:
        if data[:1].isdigit():
            data = strip_octet_count(data)
        max_bytes = self._config.max_message_bytes
        truncated = len(data) > max_bytes
        if truncated:
            data = data[:max_bytes]
        event = self._decoder(data, format_peer(addr), self._clock(), truncated)
        if event is not None and not self._sink.offer(event):
            self._metrics.dropped("intake_full")


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, listener: SyslogUdpListener) -> None:
        self._listener = listener
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self._listener.handle_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # We never send, so this is an ICMP error for someone else's traffic: nothing to act on.
        log.debug("Syslog UDP socket reported an error.", error=str(exc))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
