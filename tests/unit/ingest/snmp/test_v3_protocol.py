"""The worker's wire format: notifications survive the pipe exactly, and nothing else passes for one."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsresponder.ingest.snmp.convert import Notification
from opsresponder.ingest.snmp.decode import PDU_INFORM, Pdu, VarBind
from opsresponder.ingest.snmp.v3_protocol import (
    RESULT_DECODER,
    FrameError,
    FrameReader,
    V3Result,
    decode_body,
    encode_frame,
    notification_from_wire,
    notification_to_wire,
)

_oids = st.lists(st.integers(0, 2**32 - 1), min_size=2, max_size=12).map(tuple)
_values = st.none() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=40) | st.binary(max_size=40)
_varbinds = st.builds(VarBind, _oids, st.sampled_from(["integer", "octet_string", "oid", "null"]), _values)
_pdus = st.builds(
    Pdu,
    tag=st.just(PDU_INFORM),
    request_id=st.integers(0, 2**31 - 1),
    error_status=st.just(0),
    error_index=st.just(0),
    varbinds=st.lists(_varbinds, max_size=8).map(tuple),
)
_notifications = st.builds(
    Notification,
    version=st.just("3"),
    pdu=_pdus,
    peer=st.tuples(st.sampled_from(["127.0.0.1", "::1"]), st.integers(1, 65535)),
    user=st.text(max_size=20),
    security_level=st.sampled_from(["authPriv", "authNoPriv"]),
    security_engine_id=st.binary(min_size=5, max_size=32),
    context_engine_id=st.binary(max_size=32),
    context_name=st.text(max_size=10),
)


@given(_notifications)
def test_a_notification_crosses_the_pipe_unchanged(notification: Notification) -> None:
    frame = encode_frame(V3Result(7, "event", notification_to_wire(notification), [b"r"], b"ack"))
    result = decode_body(frame[4:], RESULT_DECODER)
    assert result.notification is not None
    assert notification_from_wire(result.notification) == notification
    assert (result.seq, result.replies, result.ack) == (7, [b"r"], b"ack")


_anything = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=10)
    | st.binary(max_size=10),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)


@given(_anything)
def test_anything_else_is_refused_with_a_frame_error(value: object) -> None:
    body = msgspec.msgpack.encode(value)
    try:
        result = decode_body(body, RESULT_DECODER)
    except FrameError:
        return
    # Whatever passed is fully typed: rebuilding the notification cannot fail.
    if result.notification is not None:
        assert isinstance(notification_from_wire(result.notification), Notification)


def test_a_bool_is_not_taken_for_an_integer_value() -> None:
    notification = Notification("3", Pdu(PDU_INFORM, 1, 0, 0, (VarBind((1, 3), "integer", 1),)), ("::1", 1))
    raw = msgspec.msgpack.decode(encode_frame(V3Result(1, "event", notification_to_wire(notification)))[4:])
    raw[2][1][4][0][2] = True  # notification -> pdu -> varbinds[0] -> integer
    with pytest.raises(FrameError):
        decode_body(msgspec.msgpack.encode(raw), RESULT_DECODER)


@given(st.binary(max_size=200), st.integers(1, 64))
async def test_frames_split_anywhere_are_read_back_whole(payload: bytes, chunk: int) -> None:
    frames = [encode_frame(V3Result(i, "malformed_packet", replies=[payload])) for i in range(3)]
    reader = asyncio.StreamReader()
    reader.feed_data(b"".join(frames))
    reader.feed_eof()
    split = FrameReader(reader, chunk_bytes=chunk)
    bodies: list[bytes] = []
    while (more := await split.next_bodies()) is not None:
        bodies.extend(more)
    assert [decode_body(b, RESULT_DECODER).seq for b in bodies] == [0, 1, 2]


async def test_a_stream_cut_inside_a_frame_is_an_error() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(encode_frame(V3Result(1, "malformed_packet"))[:-1])
    reader.feed_eof()
    with pytest.raises(FrameError):
        await FrameReader(reader).next_bodies()
