"""What the SNMPv3 worker process and the receiver say to each other over the worker's stdin and stdout.

Frames are a 4-byte big-endian length and a msgpack body. The first frame to the worker is a `V3Setup`;
then each `V3Request` (one datagram) is answered by one `V3Result`, in order. Both ends are this
package's own code: the worker decodes untrusted datagrams, but only our typed structs cross the pipe.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any, Final, TypeVar

import msgspec

from opsresponder.config import SnmpConfig
from opsresponder.ingest.snmp.convert import Notification
from opsresponder.ingest.snmp.decode import Pdu, VarBind

_LENGTH: Final = struct.Struct(">I")
# A datagram is at most 64 KiB; a result carries it decoded plus at most a few replies.
MAX_FRAME_BYTES: Final = 4 * 1024 * 1024

T = TypeVar("T")


class V3Setup(msgspec.Struct, frozen=True):
    """How to build the worker's engine: the same configuration and engine ID as the receiver's."""

    config: SnmpConfig
    engine_id: bytes
    ipv6: bool


class V3Request(msgspec.Struct, frozen=True, array_like=True):
    """One SNMPv3 datagram whose header the receiver already decoded; `address` as the socket gave it."""

    seq: int
    data: bytes
    address: tuple[Any, ...]


class WireVarBind(msgspec.Struct, frozen=True, array_like=True):
    """A `VarBind` on the pipe. msgspec cannot type its value (int, str or bytes) as one field, so each
    kind has its own, all None for a NULL; msgspec then checks every type while decoding, in C."""

    oid: tuple[int, ...]
    type: str
    integer: int | None = None
    text: str | None = None
    octets: bytes | None = None


class WirePdu(msgspec.Struct, frozen=True, array_like=True):
    tag: int
    request_id: int | None
    error_status: int
    error_index: int
    varbinds: list[WireVarBind]
    varbind_list: bytes
    enterprise: tuple[int, ...] | None
    agent_addr: str | None
    generic_trap: int | None
    specific_trap: int | None
    timestamp: int | None


class WireNotification(msgspec.Struct, frozen=True, array_like=True):
    version: str
    pdu: WirePdu
    peer: tuple[str, int]
    community_index: int | None
    user: str | None
    security_level: str | None
    security_engine_id: bytes | None
    context_engine_id: bytes | None
    context_name: str | None


class V3Result(msgspec.Struct, frozen=True, array_like=True):
    """What pysnmp made of a datagram.

    Attributes:
        outcome: `EVENT` or `ACKNOWLEDGED` (then `notification` is set: the receiver turns it into an event
            and offers it), `DISCOVERY`, or the drop reason.
        replies: datagrams to send back to the sender whatever happens (reports, e.g. for discovery).
        ack: the inform's acknowledgement, to send only once the event was accepted by the intake.
    """

    seq: int
    outcome: str
    notification: WireNotification | None = None
    replies: list[bytes] = []
    ack: bytes | None = None


def notification_to_wire(n: Notification) -> WireNotification:
    p = n.pdu
    pdu = WirePdu(
        p.tag,
        p.request_id,
        p.error_status,
        p.error_index,
        [_varbind_to_wire(v) for v in p.varbinds],
        p.varbind_list,
        p.enterprise,
        p.agent_addr,
        p.generic_trap,
        p.specific_trap,
        p.timestamp,
    )
    return WireNotification(
        n.version,
        pdu,
        n.peer,
        n.community_index,
        n.user,
        n.security_level,
        n.security_engine_id,
        n.context_engine_id,
        n.context_name,
    )


def notification_from_wire(w: WireNotification) -> Notification:
    p = w.pdu
    pdu = Pdu(
        tag=p.tag,
        request_id=p.request_id,
        error_status=p.error_status,
        error_index=p.error_index,
        varbinds=tuple(_varbind_from_wire(v) for v in p.varbinds),
        varbind_list=p.varbind_list,
        enterprise=p.enterprise,
        agent_addr=p.agent_addr,
        generic_trap=p.generic_trap,
        specific_trap=p.specific_trap,
        timestamp=p.timestamp,
    )
    return Notification(
        version=w.version,
        pdu=pdu,
        peer=w.peer,
        community_index=w.community_index,
        user=w.user,
        security_level=w.security_level,
        security_engine_id=w.security_engine_id,
        context_engine_id=w.context_engine_id,
        context_name=w.context_name,
    )


def _varbind_to_wire(v: VarBind) -> WireVarBind:
    value = v.value
    if isinstance(value, int):
        return WireVarBind(v.oid, v.type, integer=value)
    if isinstance(value, str):
        return WireVarBind(v.oid, v.type, text=value)
    if isinstance(value, bytes):
        return WireVarBind(v.oid, v.type, octets=value)
    return WireVarBind(v.oid, v.type)


def _varbind_from_wire(w: WireVarBind) -> VarBind:
    if w.integer is not None:
        return VarBind(w.oid, w.type, w.integer)
    return VarBind(w.oid, w.type, w.text if w.text is not None else w.octets)


_encoder = msgspec.msgpack.Encoder()


def encode_frame(message: V3Setup | V3Request | V3Result) -> bytes:
    body = _encoder.encode(message)
    return _LENGTH.pack(len(body)) + body


class FrameError(Exception):
    """The other end sent something that is not a frame of the expected type (a bug or a dead peer)."""


class FrameReader:
    """Splits a byte stream into frame bodies; reads whatever is available, so one read serves many frames.

    One read (and one write at the other end) per burst instead of two reads per frame: with a frame per
    trap, the pipe's system calls were most of the receiver's cost of a v3 trap.
    """

    def __init__(self, reader: asyncio.StreamReader, chunk_bytes: int = 1 << 16) -> None:
        self._reader = reader
        self._chunk = chunk_bytes
        self._buffer = bytearray()

    async def next_bodies(self) -> list[bytes] | None:
        """The bodies of every complete frame now available (waiting for at least one); None at the end.

        Raises:
            FrameError: the stream ended inside a frame, or a frame exceeds `MAX_FRAME_BYTES`.
        """
        while True:
            bodies = self._split()
            if bodies:
                return bodies
            data = await self._reader.read(self._chunk)
            if not data:
                if self._buffer:
                    raise FrameError("the stream ended inside a frame")
                return None
            self._buffer += data

    def _split(self) -> list[bytes]:
        bodies: list[bytes] = []
        buffer, offset, size = self._buffer, 0, _LENGTH.size
        while len(buffer) - offset >= size:
            (length,) = _LENGTH.unpack_from(buffer, offset)
            if length > MAX_FRAME_BYTES:
                raise FrameError(f"a frame of {length} bytes exceeds the limit of {MAX_FRAME_BYTES}")
            if len(buffer) - offset - size < length:
                break
            bodies.append(bytes(buffer[offset + size : offset + size + length]))
            offset += size + length
        del buffer[:offset]
        return bodies


def decode_body(body: bytes, decoder: msgspec.msgpack.Decoder[T]) -> T:
    """Raises: FrameError: the body is not of the decoder's type."""
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as e:
        raise FrameError(f"an undecodable frame: {e}") from e


SETUP_DECODER: Final = msgspec.msgpack.Decoder(V3Setup)
REQUEST_DECODER: Final = msgspec.msgpack.Decoder(V3Request)
RESULT_DECODER: Final = msgspec.msgpack.Decoder(V3Result)
