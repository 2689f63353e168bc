"""The BER reader: typed values, cross-checked against pysnmp's own encoder; malformed input refused."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import encoder  # type: ignore[import-untyped]
from pysnmp.proto import rfc1902  # type: ignore[import-untyped]
from pysnmp.proto.api import v1, v2c  # type: ignore[import-untyped]

from opsresponder.ingest.snmp.decode import (
    PDU_INFORM,
    PDU_RESPONSE,
    PDU_V1_TRAP,
    PDU_V2_TRAP,
    BerError,
    SnmpValue,
    TooManyVarBindsError,
    VarBind,
    decode_community_message,
    decode_oid,
    decode_v3_header,
    encode_inform_response,
    message_version,
)

LINK_DOWN = (1, 3, 6, 1, 6, 3, 1, 1, 5, 3)
IF_DESCR_2 = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2, 2)


def v2c_message(
    varbinds: list[tuple[tuple[int, ...], Any]], *, inform: bool = False, community: str = "public"
) -> bytes:
    """A v2c trap or inform encoded by pysnmp, the reference implementation."""
    pdu = v2c.InformRequestPDU() if inform else v2c.SNMPv2TrapPDU()
    v2c.apiTrapPDU.set_defaults(pdu)
    v2c.apiPDU.set_request_id(pdu, 4242)
    v2c.apiPDU.set_varbinds(pdu, [((1, 3, 6, 1, 2, 1, 1, 3, 0), rfc1902.TimeTicks(500)), *varbinds])
    msg = v2c.Message()
    v2c.apiMessage.set_defaults(msg)
    v2c.apiMessage.set_community(msg, community)
    v2c.apiMessage.set_pdu(msg, pdu)
    return bytes(encoder.encode(msg))


def v1_trap(generic: int, specific: int, enterprise: tuple[int, ...]) -> bytes:
    pdu = v1.TrapPDU()
    v1.apiTrapPDU.set_defaults(pdu)
    v1.apiTrapPDU.set_enterprise(pdu, enterprise)
    v1.apiTrapPDU.set_agent_address(pdu, "10.0.0.7")
    v1.apiTrapPDU.set_generic_trap(pdu, generic)
    v1.apiTrapPDU.set_specific_trap(pdu, specific)
    v1.apiTrapPDU.set_timestamp(pdu, 1234)
    v1.apiTrapPDU.set_varbinds(pdu, [((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 3), v1.Integer(3))])
    msg = v1.Message()
    v1.apiMessage.set_defaults(msg)
    v1.apiMessage.set_community(msg, "public")
    v1.apiMessage.set_pdu(msg, pdu)
    return bytes(encoder.encode(msg))


TYPED_CASES: list[tuple[Any, str, SnmpValue]] = [
    (rfc1902.Integer32(-5), "integer", -5),
    (rfc1902.Integer32(2147483647), "integer", 2147483647),
    (rfc1902.OctetString(b"eth0"), "octet_string", b"eth0"),
    (rfc1902.OctetString(b"\x00\x1a\x2b"), "octet_string", b"\x00\x1a\x2b"),
    (rfc1902.ObjectName("1.3.6.1.4.1.9.1.1"), "oid", "1.3.6.1.4.1.9.1.1"),
    (rfc1902.IpAddress("192.0.2.1"), "ip_address", "192.0.2.1"),
    (rfc1902.Counter32(4294967295), "counter32", 4294967295),
    (rfc1902.Gauge32(100), "gauge32", 100),
    (rfc1902.TimeTicks(123456), "timeticks", 123456),
    (rfc1902.Opaque(b"\x9f\x78\x04"), "opaque", b"\x9f\x78\x04"),
    (rfc1902.Counter64(18446744073709551615), "counter64", 18446744073709551615),
]


@pytest.mark.parametrize(("value", "type_name", "expected"), TYPED_CASES)
def test_typed_values_match_pysnmp_encoding(value: Any, type_name: str, expected: SnmpValue) -> None:
    message = decode_community_message(v2c_message([(IF_DESCR_2, value)]), 64)
    assert message.version == 1
    assert message.community == b"public"
    assert message.pdu.tag == PDU_V2_TRAP
    assert message.pdu.request_id == 4242
    assert message.pdu.varbinds[-1] == VarBind(IF_DESCR_2, type_name, expected)


def test_v1_trap_fields() -> None:
    message = decode_community_message(v1_trap(6, 17, (1, 3, 6, 1, 4, 1, 9999)), 64)
    pdu = message.pdu
    assert (message.version, pdu.tag, pdu.request_id) == (0, PDU_V1_TRAP, None)
    assert pdu.enterprise == (1, 3, 6, 1, 4, 1, 9999)
    assert (pdu.agent_addr, pdu.generic_trap, pdu.specific_trap, pdu.timestamp) == ("10.0.0.7", 6, 17, 1234)
    assert pdu.varbinds == (VarBind((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 3), "integer", 3),)


def test_inform_response_echoes_request_id_and_varbinds() -> None:
    data = v2c_message([(IF_DESCR_2, rfc1902.OctetString(b"eth0"))], inform=True)
    message = decode_community_message(data, 64)
    assert message.pdu.tag == PDU_INFORM
    response = decode_community_message(encode_inform_response(message), 64)
    assert response.pdu.tag == PDU_RESPONSE
    assert response.pdu.request_id == message.pdu.request_id
    assert response.pdu.varbinds == message.pdu.varbinds
    assert (response.pdu.error_status, response.pdu.error_index) == (0, 0)


def test_varbind_limit() -> None:
    varbinds: list[tuple[tuple[int, ...], Any]] = [
        ((1, 3, 6, 1, 4, 1, 1, i), rfc1902.Integer32(i)) for i in range(20)
    ]
    data = v2c_message(varbinds)
    with pytest.raises(TooManyVarBindsError):
        decode_community_message(data, 10)
    assert len(decode_community_message(data, 21).pdu.varbinds) == 21


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x30",
        b"\x30\x80\x02\x01\x01",  # indefinite length
        b"\x30\x03\x02\x01",  # value runs past the container
        b"\x30\x84\xff\xff\xff\xff",  # absurd length
        b"\x1f\x00",  # multi-octet tag
        b"\x04\x00",  # not a SEQUENCE
    ],
)
def test_malformed_headers(data: bytes) -> None:
    with pytest.raises(BerError):
        message_version(data)


def test_every_truncation_is_refused() -> None:
    data = v2c_message([(IF_DESCR_2, rfc1902.OctetString(b"eth0"))])
    for cut in range(len(data)):
        with pytest.raises(BerError):
            decode_community_message(data[:cut], 64)
    with pytest.raises(BerError):
        decode_community_message(data + b"\x00", 64)


@pytest.mark.parametrize("content", [b"", b"\x2b\x86", b"\x2b\x80\x01"])
def test_bad_oids(content: bytes) -> None:
    with pytest.raises(BerError):
        decode_oid(content, 0, len(content))


def test_v3_header_refuses_community_messages() -> None:
    with pytest.raises(BerError):
        decode_v3_header(v2c_message([]), 64)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=12),
            st.one_of(
                st.integers(-(2**31), 2**31 - 1).map(rfc1902.Integer32),
                st.binary(max_size=40).map(rfc1902.OctetString),
                st.integers(0, 2**32 - 1).map(rfc1902.Counter32),
                st.integers(0, 2**32 - 1).map(rfc1902.TimeTicks),
                st.integers(0, 2**64 - 1).map(rfc1902.Counter64),
                st.binary(min_size=4, max_size=4).map(rfc1902.IpAddress),
            ),
        ),
        max_size=8,
    )
)
def test_round_trip_against_pysnmp(varbinds: list[tuple[list[int], Any]]) -> None:
    items = [((1, 3, 6, *arcs), value) for arcs, value in varbinds]
    decoded = decode_community_message(v2c_message(items), 64).pdu.varbinds[1:]
    assert [vb.oid for vb in decoded] == [oid for oid, _ in items]
    for vb, (_, value) in zip(decoded, items, strict=True):
        if vb.type == "ip_address":
            assert vb.value == ".".join(str(b) for b in value.asOctets())
        elif isinstance(vb.value, bytes):
            assert vb.value == bytes(value)
        else:
            assert vb.value == int(value)
