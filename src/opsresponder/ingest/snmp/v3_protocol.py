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


class V3Result(msgspec.Struct, frozen=True, array_like=True):
    """What pysnmp made of a datagram.

    Attributes:
        outcome: `EVENT` or `ACKNOWLEDGED` (then `notification` is set: the receiver turns it into an event
            and offers it), `DISCOVERY`, or the drop reason.
        notification: a `Notification` in msgpack (`notification_to_wire`); msgspec cannot type a varbind
            value (int, str or bytes), so `notification_from_wire` rebuilds and checks it.
        replies: datagrams to send back to the sender whatever happens (reports, e.g. for discovery).
        ack: the inform's acknowledgement, to send only once the event was accepted by the intake.
    """

    seq: int
    outcome: str
    notification: msgspec.Raw = msgspec.Raw(b"\xc0")  # msgpack nil: none
    replies: list[bytes] = []
    ack: bytes | None = None


_encoder = msgspec.msgpack.Encoder()


def notification_to_wire(notification: Notification) -> msgspec.Raw:
    return msgspec.Raw(_encoder.encode(notification))


def notification_from_wire(data: msgspec.Raw) -> Notification | None:
    """Rebuild a `Notification` sent by the worker (None when it sent none).

    Raises:
        FrameError: it does not have a notification's shape.
    """
    try:
        raw = msgspec.msgpack.decode(data)
        if raw is None:
            return None
        pdu = raw["pdu"]
        return Notification(
            version=_of(raw["version"], str),
            pdu=Pdu(
                tag=_of(pdu["tag"], int),
                request_id=_optional(pdu["request_id"], int),
                error_status=_of(pdu["error_status"], int),
                error_index=_of(pdu["error_index"], int),
                varbinds=tuple(_varbind(v) for v in pdu["varbinds"]),
                varbind_list=_of(pdu["varbind_list"], bytes),
                enterprise=None if pdu["enterprise"] is None else _oid(pdu["enterprise"]),
                agent_addr=_optional(pdu["agent_addr"], str),
                generic_trap=_optional(pdu["generic_trap"], int),
                specific_trap=_optional(pdu["specific_trap"], int),
                timestamp=_optional(pdu["timestamp"], int),
            ),
            peer=(_of(raw["peer"][0], str), _of(raw["peer"][1], int)),
            community_index=_optional(raw["community_index"], int),
            user=_optional(raw["user"], str),
            security_level=_optional(raw["security_level"], str),
            security_engine_id=_optional(raw["security_engine_id"], bytes),
            context_engine_id=_optional(raw["context_engine_id"], bytes),
            context_name=_optional(raw["context_name"], str),
        )
    except (msgspec.DecodeError, KeyError, IndexError, TypeError) as e:
        raise FrameError(f"not a notification: {e}") from e


def _varbind(raw: Any) -> VarBind:
    value = raw["value"]
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, str, bytes))):
        raise TypeError(f"a varbind value of type {type(value).__name__}")
    return VarBind(_oid(raw["oid"]), _of(raw["type"], str), value)


def _oid(raw: Any) -> tuple[int, ...]:
    return tuple(_of(arc, int) for arc in raw)


def _of(value: Any, kind: type[T]) -> T:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _optional(value: Any, kind: type[T]) -> T | None:
    return None if value is None else _of(value, kind)


def encode_frame(message: V3Setup | V3Request | V3Result) -> bytes:
    body = _encoder.encode(message)
    return _LENGTH.pack(len(body)) + body


class FrameError(Exception):
    """The other end sent something that is not a frame of the expected type (a bug or a dead peer)."""


async def read_frame(reader: asyncio.StreamReader, decoder: msgspec.msgpack.Decoder[T]) -> T | None:
    """The next frame, or None at a clean end of the stream.

    Raises:
        FrameError: a truncated or oversized frame, or a body that is not of the decoder's type.
    """
    try:
        head = await reader.readexactly(_LENGTH.size)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise FrameError("the stream ended inside a frame header") from e
    (length,) = _LENGTH.unpack(head)
    if length > MAX_FRAME_BYTES:
        raise FrameError(f"a frame of {length} bytes exceeds the limit of {MAX_FRAME_BYTES}")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError as e:
        raise FrameError("the stream ended inside a frame") from e
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as e:
        raise FrameError(f"an undecodable frame: {e}") from e


SETUP_DECODER: Final = msgspec.msgpack.Decoder(V3Setup)
REQUEST_DECODER: Final = msgspec.msgpack.Decoder(V3Request)
RESULT_DECODER: Final = msgspec.msgpack.Decoder(V3Result)
