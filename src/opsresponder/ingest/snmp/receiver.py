"""The SNMP trap receiver: one UDP socket, v1/v2c decoded here, v3 handed to pysnmp.

Each v1/v2c datagram is handled synchronously in ``datagram_received``: it costs about 20 to 150 us
depending on the machine (see ``bench/snmp_decode.py``), about what the loop's side of a hand-off to
another process costs, and doing it inline keeps the order of traps and needs no queue. v3 goes through
pysnmp's engine (USM), which is slower (milliseconds with privacy) but rare in volume, in a worker process.

Every datagram ends in exactly one counted outcome (see `SnmpMetrics`); no input raises out of here.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import socket
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import structlog

from opsresponder.config import SnmpConfig
from opsresponder.core.clock import Clock, utcnow
from opsresponder.core.sink import EventSink
from opsresponder.ingest.snmp import metrics as m
from opsresponder.ingest.snmp.convert import Notification, agent_address, to_event
from opsresponder.ingest.snmp.decode import (
    PDU_INFORM,
    PDU_V1_TRAP,
    PDU_V2_TRAP,
    VERSION_1,
    VERSION_2C,
    VERSION_3,
    BerError,
    TooManyVarBindsError,
    decode_community_message,
    decode_v3_header,
    encode_inform_response,
    message_version,
)
from opsresponder.ingest.snmp.errors import SnmpReceiverError
from opsresponder.ingest.snmp.mapping import TrapMapping
from opsresponder.ingest.snmp.metrics import SnmpMetrics
from opsresponder.ingest.snmp.transport import Udp4, Udp6
from opsresponder.ingest.snmp.v3 import (
    ACKNOWLEDGED,
    DISCOVERY,
    EVENT,
    V3Engine,
    default_engine_id,
    parse_engine_id,
)
from opsresponder.ingest.snmp.v3_offload import Pending, V3Offload
from opsresponder.ingest.snmp.v3_protocol import V3Result, notification_from_wire

log = structlog.get_logger(__name__)

HostNames = Callable[[str], str | None]
"""Address -> host name (the asset inventory); None when unknown. Never reverse DNS: it would block."""

_NOTIFICATION_PDUS: Final = (PDU_V1_TRAP, PDU_V2_TRAP, PDU_INFORM)
_CLOSE_TIMEOUT_SECONDS: Final = 5.0
_VERSION_LABELS: Final = {VERSION_1: "1", VERSION_2C: "2c", VERSION_3: "3"}
# The outcome of a v3 datagram handed to the worker process: counted when its result comes back.
_IN_WORKER: Final = "in_worker"


def _never_called(_notification: Notification) -> str:
    raise AssertionError("the receiver's own V3Engine only validates the configuration")


class SnmpTrapReceiver:
    """Receives SNMP v1/v2c/v3 traps and informs on UDP and offers one `Event` per notification to `sink`.

    Informs are acknowledged only once the sink accepted the event, so a full intake makes senders retry.
    The socket is bound in `start`, before anything is served: a taken port raises `SnmpReceiverError`.

    Raises:
        ConfigError: (at construction) an invalid trap mapping, v3 user or engine ID.
    """

    def __init__(
        self,
        config: SnmpConfig,
        sink: EventSink,
        metrics: SnmpMetrics,
        *,
        host_names: HostNames | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self._config = config
        self._sink = sink
        self._metrics = metrics
        self._host_names = host_names
        self._clock = clock
        self._mapping = TrapMapping(config.trap_mapping)
        self._communities = [c.encode("utf-8") for c in config.communities]
        engine_id = (
            parse_engine_id(config.engine_id, "snmp.engine_id")
            if config.engine_id
            else default_engine_id(socket.gethostname())
        )
        # Built here to refuse a bad user or engine ID at start; the worker process builds its own.
        self._engine_id = V3Engine(config, engine_id, _never_called).engine_id
        self._v3: V3Offload | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: Udp4 | Udp6 | None = None
        self._address: tuple[str, int] | None = None
        # Children resolved once: no label lookup per trap.
        self._received = {v: metrics.traps_received.labels(version=v) for v in m.VERSIONS}
        self._events = {v: metrics.events.labels(version=v) for v in m.VERSIONS[:3]}
        self._acked = {v: metrics.informs_acknowledged.labels(version=v) for v in m.VERSIONS[:3]}
        self._dropped = {r: metrics.traps_dropped.labels(reason=r) for r in m.DROP_REASONS}

    @property
    def engine_id(self) -> bytes:
        """The receiver's own SNMPv3 engine ID, to which informs are sent."""
        return self._engine_id

    @property
    def v3_worker_pid(self) -> int | None:
        """The process id of the SNMPv3 worker process, None while it is not running."""
        return None if self._v3 is None else self._v3.worker_pid

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); with port 0 in config, the port the kernel picked.

        Raises:
            RuntimeError: before `start`.
        """
        if self._address is None:
            raise RuntimeError("the SNMP trap receiver is not started")
        return self._address

    async def start(self) -> None:
        """Bind the UDP socket and start receiving.

        Raises:
            SnmpReceiverError: the address cannot be bound (port taken, no permission, bad host).
        """
        host, port = self._config.host, self._config.port
        v6 = _is_ipv6(host)
        sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._config.recv_buffer_bytes)
            sock.bind((host, port))
        except OSError as e:
            sock.close()
            raise SnmpReceiverError(
                f"cannot bind the SNMP trap receiver to {host}:{port}: {e.strerror or e}"
            ) from e
        except BaseException:
            sock.close()
            raise
        sock.setblocking(False)
        protocol = (Udp6 if v6 else Udp4)(self._handle_address)
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
        except BaseException:
            sock.close()
            raise
        self._transport = transport
        self._protocol = protocol
        self._v3 = V3Offload(self._config, self._engine_id, v6, self._on_v3_result)
        await self._v3.start()
        bound = sock.getsockname()
        self._address = (bound[0], bound[1])
        log.info(
            "SNMP trap receiver listening.", host=bound[0], port=bound[1], engine_id=self.engine_id.hex()
        )

    async def stop(self) -> None:
        """Stop receiving and close the socket. Idempotent."""
        if self._transport is None:
            return
        if self._v3 is not None:
            await self._v3.stop()  # v3 datagrams already read are finished first
            self._v3 = None
        self._transport.close()
        self._transport = None
        if self._protocol is not None:
            # Wait for the socket to be really closed, so that the port is free when stop() returns.
            async with asyncio.timeout(_CLOSE_TIMEOUT_SECONDS):
                await self._protocol.closed.wait()
            self._protocol = None
        log.info("SNMP trap receiver stopped.")

    # The datagram path -----------------------------------------------------------------------------

    def _handle_address(self, data: bytes, address: Any) -> None:
        self.handle_datagram(data, address)

    def handle_datagram(self, data: bytes, address: Any) -> None:
        """Handle one datagram from `address`; never raises, counts exactly one outcome.

        A v3 datagram's outcome is counted when the worker process has answered (`settled` waits for it).
        Public so that tests (and fuzzers) can feed the exact path the socket feeds.
        """
        try:
            version, outcome = self._dispatch(data, address, self._clock())
        except Exception:  # a receiver bug must cost one datagram, never the listener
            log.exception("SNMP datagram handling failed; the datagram is lost.", peer=str(address))
            version, outcome = "unknown", m.INTERNAL_ERROR
        self._received[version].inc()
        self._count(version, outcome)

    async def settled(self) -> None:
        """Return once every v3 datagram handed to the worker process has been answered and counted."""
        if self._v3 is not None:
            await self._v3.settled()

    def _count(self, version: str, outcome: str) -> None:
        if outcome == _IN_WORKER:
            return
        if outcome == EVENT:
            self._events[version].inc()
        elif outcome == ACKNOWLEDGED:
            self._events[version].inc()
            self._acked[version].inc()
        elif outcome == DISCOVERY:
            self._metrics.engine_discoveries.inc()
        else:
            self._dropped[outcome].inc()

    def _dispatch(self, data: bytes, address: Any, received_at: datetime) -> tuple[str, str]:
        try:
            version = message_version(data)
        except BerError:
            return "unknown", m.MALFORMED_PACKET
        label = _VERSION_LABELS.get(version)
        if label is None:
            return "unknown", m.MALFORMED_PACKET
        peer = (str(address[0]), int(address[1]))
        if version == VERSION_3:
            try:
                header = decode_v3_header(data, self._config.max_varbinds)
            except TooManyVarBindsError:
                return label, m.TOO_MANY_VARBINDS
            except BerError:
                return label, m.MALFORMED_PACKET
            del header  # decoded here only to refuse malformed messages cheaply, before the worker
            if self._v3 is None or self._v3.worker_pid is None:
                return label, m.INTERNAL_ERROR  # the worker is restarting (its supervisor logged why)
            if not self._v3.submit(data, address, received_at):
                return label, m.V3_BACKLOG
            return label, _IN_WORKER
        try:
            message = decode_community_message(data, self._config.max_varbinds)
        except TooManyVarBindsError:
            return label, m.TOO_MANY_VARBINDS
        except BerError:
            return label, m.MALFORMED_PACKET
        index = self._community_index(message.community)
        if index is None:
            return label, m.BAD_COMMUNITY
        if message.pdu.tag not in _NOTIFICATION_PDUS:
            return label, m.UNSUPPORTED_PDU
        notification = Notification(label, message.pdu, peer, community_index=index)
        outcome = self._deliver(notification, received_at)
        # Acknowledge only what the intake took: an unacknowledged inform is retried by its sender.
        if outcome == EVENT and notification.inform and self._transport is not None:
            self._transport.sendto(encode_inform_response(message), address)
            return label, ACKNOWLEDGED
        return label, outcome

    def _community_index(self, community: bytes) -> int | None:
        found = None
        for i, candidate in enumerate(self._communities):
            # Constant time per candidate, and every candidate is tried, so timing tells nothing.
            if hmac.compare_digest(candidate, community) and found is None:
                found = i
        return found

    def _on_v3_result(self, result: V3Result, pending: Pending) -> None:
        """A v3 datagram answered by the worker: offer its event, send what pysnmp would have sent."""
        outcome = result.outcome
        transport = self._transport
        wire = result.notification
        notification = None if wire is None else notification_from_wire(wire)
        if notification is not None and outcome in (EVENT, ACKNOWLEDGED):
            delivered = self._deliver(notification, pending.received_at)
            if delivered != EVENT:
                outcome = delivered
            elif result.ack is not None and transport is not None:
                # Acknowledge only what the intake took: an unacknowledged inform is retried by its sender.
                transport.sendto(result.ack, pending.address)
        if transport is not None:
            for reply in result.replies:
                transport.sendto(reply, pending.address)
        self._count("3", outcome)

    def _deliver(self, notification: Notification, received_at: datetime) -> str:
        address = agent_address(notification)
        host = self._host_name(address)
        try:
            event = to_event(notification, self._mapping, host=host, address=address, received_at=received_at)
        except BerError:
            return m.MALFORMED_PACKET
        if not self._sink.offer(event):
            return m.INTAKE_FULL
        return EVENT

    def _host_name(self, address: str) -> str:
        if self._host_names is None:
            return address
        try:
            name = self._host_names(address)
        except Exception:  # an inventory bug must not lose the trap; the address will do
            log.warning("Host name lookup failed; using the address.", address=address, exc_info=True)
            return address
        return name or address


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return ":" in host
