"""The SNMPv3 worker process: authenticates and decrypts v3 datagrams with pysnmp, off the service's loop.

    python -m opsresponder.ingest.snmp.v3_worker   (started by `V3Offload`; it speaks `v3_protocol` frames)

pysnmp's USM costs about 0.7 ms of CPU per authPriv trap; on the service's event loop a v3 flood starved
the webhook (p99 over a second at 1,300 traps/s). Here it only costs this process's CPU. The worker
never touches the socket: what pysnmp would send (reports, inform acknowledgements) goes back to the
receiver, which sends an acknowledgement only once the event is in the intake.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp, udp6  # type: ignore[import-untyped]

from opsresponder.ingest.snmp import metrics as m
from opsresponder.ingest.snmp.convert import Notification
from opsresponder.ingest.snmp.decode import BerError, TooManyVarBindsError, decode_v3_header
from opsresponder.ingest.snmp.transport import Udp4, Udp6
from opsresponder.ingest.snmp.v3 import ACKNOWLEDGED, EVENT, V3Engine
from opsresponder.ingest.snmp.v3_protocol import (
    REQUEST_DECODER,
    SETUP_DECODER,
    FrameReader,
    V3Request,
    V3Result,
    V3Setup,
    decode_body,
    encode_frame,
    notification_to_wire,
)

# The worker's stderr is the service's; stdlib logging's last-resort handler writes errors there.
log = logging.getLogger(__name__)


class _Capture:
    """Stands in for the datagram transport: keeps what pysnmp sends instead of sending it."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, _address: Any = None) -> None:
        self.sent.append(bytes(data))

    def close(self) -> None:
        return None


class V3Decoder:
    """A pysnmp engine configured like the receiver's, answering one datagram at a time."""

    def __init__(self, setup: V3Setup) -> None:
        self._max_varbinds = setup.config.max_varbinds
        self._engine = V3Engine(setup.config, setup.engine_id, self._deliver)
        self._capture = _Capture()
        protocol = (Udp6 if setup.ipv6 else Udp4)(lambda _data, _address: None)
        protocol.connection_made(self._capture)
        self._engine.attach(protocol, udp6.DOMAIN_NAME if setup.ipv6 else udp.DOMAIN_NAME)
        self._notification: Notification | None = None
        self._sent_before_delivery = 0

    def _deliver(self, notification: Notification) -> str:
        # The receiver decides whether the intake takes it; tell pysnmp "taken" so that it builds the
        # acknowledgement of an inform, which the receiver sends only if the intake did take the event.
        self._notification = notification
        self._sent_before_delivery = len(self._capture.sent)
        return EVENT

    def decode(self, request: V3Request) -> V3Result:
        self._notification = None
        self._capture.sent.clear()
        address = request.address
        try:
            header = decode_v3_header(request.data, self._max_varbinds)
        except TooManyVarBindsError:
            return V3Result(request.seq, m.TOO_MANY_VARBINDS)
        except BerError:
            return V3Result(request.seq, m.MALFORMED_PACKET)
        try:
            outcome = self._engine.receive(request.data, (str(address[0]), int(address[1])), address, header)
        except Exception:  # a pysnmp bug costs this datagram, never the worker
            log.exception("SNMPv3 processing failed; the datagram is lost.")
            return V3Result(request.seq, m.INTERNAL_ERROR)
        sent = list(self._capture.sent)
        notification = self._notification
        if notification is None or outcome not in (EVENT, ACKNOWLEDGED):
            return V3Result(request.seq, outcome, replies=sent)
        before, after = sent[: self._sent_before_delivery], sent[self._sent_before_delivery :]
        return V3Result(
            request.seq,
            outcome,
            notification_to_wire(notification),
            replies=before,
            ack=after[0] if outcome == ACKNOWLEDGED and after else None,
        )

    def close(self) -> None:
        self._engine.close()


async def serve(reader: asyncio.StreamReader, write: Any) -> None:
    """Answer requests until the receiver closes our stdin; one write per burst of requests."""
    frames = FrameReader(reader)
    decoder: V3Decoder | None = None
    try:
        while (bodies := await frames.next_bodies()) is not None:
            answers: list[bytes] = []
            for body in bodies:
                if decoder is None:
                    decoder = V3Decoder(decode_body(body, SETUP_DECODER))
                    continue
                answers.append(encode_frame(decoder.decode(decode_body(body, REQUEST_DECODER))))
            if answers:
                write(b"".join(answers))
    finally:
        if decoder is not None:
            decoder.close()


async def _main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**22)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    out = sys.stdout.buffer

    def write(data: bytes) -> None:
        out.write(data)
        out.flush()

    await serve(reader, write)


def main() -> None:
    # Ctrl-C or a SIGTERM to the whole process group is for the service, which stops us by closing our
    # stdin once its v3 datagrams are answered; we also end when it dies (end of input).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    asyncio.run(_main())


if __name__ == "__main__":
    main()
