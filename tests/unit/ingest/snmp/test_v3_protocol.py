"""The worker's wire format: notifications survive the pipe exactly, and nothing else passes for one."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsresponder.ingest.snmp.convert import Notification
from opsresponder.ingest.snmp.decode import PDU_INFORM, Pdu, VarBind
from opsresponder.ingest.snmp.v3_protocol import (
    RESULT_DECODER,
    FrameError,
    V3Result,
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
    result = RESULT_DECODER.decode(frame[4:])
    assert notification_from_wire(result.notification) == notification
    assert (result.seq, result.replies, result.ack) == (7, [b"r"], b"ack")


_anything = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=10)
    | st.binary(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(_anything)
def test_anything_else_is_refused_with_a_frame_error(value: object) -> None:
    raw = msgspec.Raw(msgspec.msgpack.encode(value))
    try:
        notification = notification_from_wire(raw)
    except FrameError:
        return
    assert notification is None and value is None


def test_a_bool_is_not_taken_for_an_integer_value() -> None:
    bad = msgspec.msgpack.decode(
        notification_to_wire(
            Notification("3", Pdu(PDU_INFORM, 1, 0, 0, (VarBind((1, 3), "integer", 1),)), ("::1", 1))
        )
    )
    bad["pdu"]["varbinds"][0]["value"] = True
    with pytest.raises(FrameError):
        notification_from_wire(msgspec.Raw(msgspec.msgpack.encode(bad)))
