"""A small, strict BER reader for SNMP messages, and the encoder for v1/v2c inform acknowledgements.

Why not pyasn1 for everything: pysnmp's pyasn1 path costs about 1.5 ms per v2c trap (three decodes of the
whole message), which caps one event loop near 650 traps/s and starves it long before that. This reader
handles exactly what a trap receiver needs (v1/v2c messages completely; the unencrypted outer layer of v3
messages, so that garbage never reaches pysnmp) in a few tens of microseconds. v3 security (USM
authentication, privacy, engine IDs, reports) stays with pysnmp.

Every malformed input raises `BerError`; nothing else escapes. Lengths are checked against the enclosing
value before anything is sliced, indefinite lengths and high tag numbers (never legal in SNMP) are refused.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

# Universal and SNMP application tags (RFC 1155, RFC 2578 / SNMPv2-SMI, RFC 3416).
TAG_INTEGER: Final = 0x02
TAG_OCTET_STRING: Final = 0x04
TAG_NULL: Final = 0x05
TAG_OID: Final = 0x06
TAG_SEQUENCE: Final = 0x30
TAG_IP_ADDRESS: Final = 0x40
TAG_COUNTER32: Final = 0x41
TAG_GAUGE32: Final = 0x42
TAG_TIMETICKS: Final = 0x43
TAG_OPAQUE: Final = 0x44
TAG_COUNTER64: Final = 0x46
TAG_NO_SUCH_OBJECT: Final = 0x80
TAG_NO_SUCH_INSTANCE: Final = 0x81
TAG_END_OF_MIB_VIEW: Final = 0x82

PDU_GET: Final = 0xA0
PDU_GET_NEXT: Final = 0xA1
PDU_RESPONSE: Final = 0xA2
PDU_SET: Final = 0xA3
PDU_V1_TRAP: Final = 0xA4
PDU_GET_BULK: Final = 0xA5
PDU_INFORM: Final = 0xA6
PDU_V2_TRAP: Final = 0xA7
PDU_REPORT: Final = 0xA8

PDU_NAMES: Final = {
    PDU_GET: "get",
    PDU_GET_NEXT: "get-next",
    PDU_RESPONSE: "response",
    PDU_SET: "set",
    PDU_V1_TRAP: "trap",
    PDU_GET_BULK: "get-bulk",
    PDU_INFORM: "inform",
    PDU_V2_TRAP: "snmpV2-trap",
    PDU_REPORT: "report",
}

VERSION_1: Final = 0
VERSION_2C: Final = 1
VERSION_3: Final = 3

# RFC 2578 section 3.5: at most 128 sub-identifiers, each at most 2^32-1.
_MAX_OID_ARCS: Final = 128
_MAX_ARC: Final = 0xFFFFFFFF
# Lengths beyond 4 octets cannot occur in a datagram of at most 64 KiB.
_MAX_LENGTH_OCTETS: Final = 4
# Counter64 needs 9 octets when its top bit is set (a leading zero octet).
_MAX_INTEGER_OCTETS: Final = 9

SCALAR_TYPES: Final = {
    TAG_INTEGER: "integer",
    TAG_OCTET_STRING: "octet_string",
    TAG_NULL: "null",
    TAG_OID: "oid",
    TAG_IP_ADDRESS: "ip_address",
    TAG_COUNTER32: "counter32",
    TAG_GAUGE32: "gauge32",
    TAG_TIMETICKS: "timeticks",
    TAG_OPAQUE: "opaque",
    TAG_COUNTER64: "counter64",
    TAG_NO_SUCH_OBJECT: "no_such_object",
    TAG_NO_SUCH_INSTANCE: "no_such_instance",
    TAG_END_OF_MIB_VIEW: "end_of_mib_view",
}
"""Every varbind value type SNMP defines, by BER tag, with the type name kept in metadata."""

SnmpValue = int | str | bytes | None
"""A varbind value: int for INTEGER/counters/gauges/timeticks, bytes for OCTET STRING and Opaque, dotted
str for OBJECT IDENTIFIER and IpAddress, None for NULL and the v2 exception values."""


class BerError(ValueError):
    """The bytes are not a well-formed SNMP message (truncated, bad length, wrong tag...)."""


class TooManyVarBindsError(BerError):
    """The message is well formed so far but carries more varbinds than the configured limit."""


@dataclass(frozen=True, slots=True)
class VarBind:
    """One decoded variable binding: the OID as arcs, the SNMP type name and the typed value."""

    oid: tuple[int, ...]
    type: str
    value: SnmpValue


@dataclass(frozen=True, slots=True)
class Pdu:
    """A decoded PDU. For a v1 Trap-PDU the v1 fields are set and ``request_id`` is None.

    ``varbind_list`` is the exact encoding of the varbind list, echoed in an inform acknowledgement.
    """

    tag: int
    request_id: int | None
    error_status: int
    error_index: int
    varbinds: tuple[VarBind, ...]
    varbind_list: bytes = b""
    enterprise: tuple[int, ...] | None = None
    agent_addr: str | None = None
    generic_trap: int | None = None
    specific_trap: int | None = None
    timestamp: int | None = None


@dataclass(frozen=True, slots=True)
class CommunityMessage:
    """A decoded v1 or v2c message. The community is kept as bytes: it is compared, never stored."""

    version: int
    community: bytes
    pdu: Pdu


@dataclass(frozen=True, slots=True)
class V3Header:
    """The unencrypted part of a v3 message: enough to classify a refusal without pysnmp's help.

    ``pdu`` is set only when the scoped PDU is plaintext (noAuthNoPriv or authNoPriv).
    """

    msg_id: int
    flags: int
    security_model: int
    engine_id: bytes
    engine_boots: int
    engine_time: int
    user_name: bytes
    auth_params: bytes
    priv_params: bytes
    encrypted: bool
    pdu: Pdu | None


def read_tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read one tag-length header at ``buf[pos:end]``.

    Returns:
        (tag, start, stop): the tag octet and the bounds of the value.

    Raises:
        BerError: truncated header, long-form tag, indefinite or oversized length, value past `end`.
    """
    if pos + 2 > end:
        raise BerError("truncated tag or length")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise BerError("multi-octet tags are not used by SNMP")
    first = buf[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise BerError("indefinite length is not allowed")
    else:
        n = first & 0x7F
        if n > _MAX_LENGTH_OCTETS or pos + n > end:
            raise BerError("bad long-form length")
        length = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
    stop = pos + length
    if stop > end:
        raise BerError("value runs past its container")
    return tag, pos, stop


def _expect(buf: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    got, start, stop = read_tlv(buf, pos, end)
    if got != tag:
        raise BerError(f"expected tag 0x{tag:02x}, got 0x{got:02x}")
    return start, stop


def _integer(buf: bytes, start: int, stop: int, *, signed: bool = True) -> int:
    if not 0 < stop - start <= _MAX_INTEGER_OCTETS:
        raise BerError("bad integer length")
    return int.from_bytes(buf[start:stop], "big", signed=signed)


def _read_integer(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    start, stop = _expect(buf, pos, end, TAG_INTEGER)
    return _integer(buf, start, stop), stop


def _read_octets(buf: bytes, pos: int, end: int) -> tuple[bytes, int]:
    start, stop = _expect(buf, pos, end, TAG_OCTET_STRING)
    return buf[start:stop], stop


def decode_oid(buf: bytes, start: int, stop: int) -> tuple[int, ...]:
    """Decode the content octets of an OBJECT IDENTIFIER.

    Raises:
        BerError: empty, unterminated sub-identifier, non-minimal encoding, too many or too large arcs.
    """
    if start >= stop:
        raise BerError("empty object identifier")
    chunk = buf[start:stop]
    if max(chunk) < 0x80:
        # Fast path (most standard OIDs): every sub-identifier fits one octet, no loop in Python.
        if len(chunk) + 1 > _MAX_OID_ARCS:
            raise BerError("too many sub-identifiers")
        first = chunk[0]
        head = (0, first) if first < 40 else (1, first - 40) if first < 80 else (2, first - 80)
        return head + tuple(chunk[1:])
    arcs: list[int] = []
    value = 0
    fresh = True
    for i in range(start, stop):
        octet = buf[i]
        if fresh and octet == 0x80:
            raise BerError("non-minimal sub-identifier")
        value = (value << 7) | (octet & 0x7F)
        if octet & 0x80:
            fresh = False
            continue
        if value > _MAX_ARC + (0 if arcs else 80):
            raise BerError("sub-identifier out of range")
        if not arcs:
            # X.690 8.19.4: the first sub-identifier packs the first two arcs.
            if value < 40:
                arcs.extend((0, value))
            elif value < 80:
                arcs.extend((1, value - 40))
            else:
                arcs.extend((2, value - 80))
        else:
            arcs.append(value)
        if len(arcs) > _MAX_OID_ARCS:
            raise BerError("too many sub-identifiers")
        value = 0
        fresh = True
    if not fresh:
        raise BerError("unterminated sub-identifier")
    return tuple(arcs)


# Traps repeat the same OIDs (snmpTrapOID.0, sysUpTime.0, the trap OIDs, the varbinds of one device's
# interfaces): a cache hit costs a tenth of the join. Bounded, so a sender of ever new OIDs only evicts.
@functools.lru_cache(maxsize=4096)
def oid_str(arcs: tuple[int, ...]) -> str:
    return ".".join(map(str, arcs))


def _ip_address(buf: bytes, start: int, stop: int) -> str:
    if stop - start != 4:
        raise BerError("IpAddress must be 4 octets")
    return ".".join(str(b) for b in buf[start:stop])


def _value(buf: bytes, tag: int, start: int, stop: int) -> SnmpValue:
    if tag == TAG_INTEGER:
        return _integer(buf, start, stop)
    if tag in (TAG_OCTET_STRING, TAG_OPAQUE):
        return buf[start:stop]
    if tag in (TAG_COUNTER32, TAG_GAUGE32, TAG_TIMETICKS, TAG_COUNTER64):
        # Unsigned: senders that forget the leading zero octet still get their intended value.
        return _integer(buf, start, stop, signed=False)
    if tag == TAG_OID:
        return oid_str(decode_oid(buf, start, stop))
    if tag == TAG_IP_ADDRESS:
        return _ip_address(buf, start, stop)
    if tag in (TAG_NULL, TAG_NO_SUCH_OBJECT, TAG_NO_SUCH_INSTANCE, TAG_END_OF_MIB_VIEW):
        if stop != start:
            raise BerError("NULL with content")
        return None
    raise BerError(f"unknown value tag 0x{tag:02x}")


def _read_varbinds(buf: bytes, pos: int, end: int, max_varbinds: int) -> tuple[tuple[VarBind, ...], int]:
    start, stop = _expect(buf, pos, end, TAG_SEQUENCE)
    out: list[VarBind] = []
    pos = start
    while pos < stop:
        if len(out) >= max_varbinds:
            raise TooManyVarBindsError(f"more than {max_varbinds} varbinds")
        vb_start, vb_stop = _expect(buf, pos, stop, TAG_SEQUENCE)
        oid_start, oid_stop = _expect(buf, vb_start, vb_stop, TAG_OID)
        oid = decode_oid(buf, oid_start, oid_stop)
        tag, v_start, v_stop = read_tlv(buf, oid_stop, vb_stop)
        if v_stop != vb_stop:
            raise BerError("trailing data in varbind")
        type_name = SCALAR_TYPES.get(tag)
        if type_name is None:
            raise BerError(f"unknown value tag 0x{tag:02x}")
        out.append(VarBind(oid, type_name, _value(buf, tag, v_start, v_stop)))
        pos = vb_stop
    return tuple(out), stop


def decode_pdu(buf: bytes, pos: int, end: int, max_varbinds: int) -> tuple[Pdu, int]:
    """Decode one PDU (any of the nine SNMP PDU types) starting at `pos`.

    Raises:
        BerError: malformed PDU. TooManyVarBindsError: more than `max_varbinds` varbinds.
    """
    tag, start, stop = read_tlv(buf, pos, end)
    if tag not in PDU_NAMES:
        raise BerError(f"unknown PDU tag 0x{tag:02x}")
    if tag == PDU_V1_TRAP:
        e_start, e_stop = _expect(buf, start, stop, TAG_OID)
        enterprise = decode_oid(buf, e_start, e_stop)
        a_start, a_stop = _expect(buf, e_stop, stop, TAG_IP_ADDRESS)
        agent_addr = _ip_address(buf, a_start, a_stop)
        generic, pos = _read_integer(buf, a_stop, stop)
        specific, pos = _read_integer(buf, pos, stop)
        t_start, t_stop = _expect(buf, pos, stop, TAG_TIMETICKS)
        timestamp = _integer(buf, t_start, t_stop, signed=False)
        varbinds, vb_end = _read_varbinds(buf, t_stop, stop, max_varbinds)
        if vb_end != stop:
            raise BerError("trailing data in PDU")
        return (
            Pdu(
                tag=tag,
                request_id=None,
                error_status=0,
                error_index=0,
                varbinds=varbinds,
                varbind_list=buf[t_stop:vb_end],
                enterprise=enterprise,
                agent_addr=agent_addr,
                generic_trap=generic,
                specific_trap=specific,
                timestamp=timestamp,
            ),
            stop,
        )
    request_id, pos = _read_integer(buf, start, stop)
    error_status, pos = _read_integer(buf, pos, stop)
    error_index, pos = _read_integer(buf, pos, stop)
    varbinds, vb_end = _read_varbinds(buf, pos, stop, max_varbinds)
    if vb_end != stop:
        raise BerError("trailing data in PDU")
    return Pdu(tag, request_id, error_status, error_index, varbinds, buf[pos:vb_end]), stop


def message_version(buf: bytes) -> int:
    """The msgVersion of a message (0 = v1, 1 = v2c, 3 = v3), reading only the first two headers.

    Raises:
        BerError: not an SNMP message.
    """
    start, stop = _expect(buf, 0, len(buf), TAG_SEQUENCE)
    version, _ = _read_integer(buf, start, stop)
    return version


def decode_community_message(buf: bytes, max_varbinds: int) -> CommunityMessage:
    """Decode a whole v1 or v2c message.

    Raises:
        BerError: malformed, trailing bytes, or a version other than v1/v2c.
        TooManyVarBindsError: more than `max_varbinds` varbinds.
    """
    end = len(buf)
    start, stop = _expect(buf, 0, end, TAG_SEQUENCE)
    if stop != end:
        raise BerError("trailing bytes after the message")
    version, pos = _read_integer(buf, start, stop)
    if version not in (VERSION_1, VERSION_2C):
        raise BerError(f"not a community-based message (version {version})")
    community, pos = _read_octets(buf, pos, stop)
    pdu, pos = decode_pdu(buf, pos, stop, max_varbinds)
    if pos != stop:
        raise BerError("trailing data in message")
    if (pdu.tag == PDU_V1_TRAP) != (version == VERSION_1):
        raise BerError("Trap-PDU only in v1, SNMPv2 PDUs only in v2c")
    return CommunityMessage(version, community, pdu)


def decode_v3_header(buf: bytes, max_varbinds: int) -> V3Header:
    """Decode the outer layer of a v3 message with the USM security parameters (RFC 3412, RFC 3414).

    The scoped PDU is decoded too when it is plaintext, so that an oversized varbind list is refused
    before pysnmp spends time on it.

    Raises:
        BerError: malformed. TooManyVarBindsError: plaintext scoped PDU over `max_varbinds`.
    """
    end = len(buf)
    start, stop = _expect(buf, 0, end, TAG_SEQUENCE)
    if stop != end:
        raise BerError("trailing bytes after the message")
    version, pos = _read_integer(buf, start, stop)
    if version != VERSION_3:
        raise BerError("not a v3 message")
    h_start, h_stop = _expect(buf, pos, stop, TAG_SEQUENCE)
    msg_id, p = _read_integer(buf, h_start, h_stop)
    _max_size, p = _read_integer(buf, p, h_stop)
    flags_raw, p = _read_octets(buf, p, h_stop)
    security_model, p = _read_integer(buf, p, h_stop)
    if p != h_stop or len(flags_raw) != 1:
        raise BerError("bad v3 header data")
    sp_raw_start, sp_raw_stop = _expect(buf, h_stop, stop, TAG_OCTET_STRING)
    engine_id = user = auth = priv = b""
    boots = etime = 0
    if security_model == 3:  # USM; other models are refused by pysnmp and counted there
        s_start, s_stop = _expect(buf, sp_raw_start, sp_raw_stop, TAG_SEQUENCE)
        engine_id, p = _read_octets(buf, s_start, s_stop)
        boots, p = _read_integer(buf, p, s_stop)
        etime, p = _read_integer(buf, p, s_stop)
        user, p = _read_octets(buf, p, s_stop)
        auth, p = _read_octets(buf, p, s_stop)
        priv, p = _read_octets(buf, p, s_stop)
        if p != s_stop:
            raise BerError("trailing data in security parameters")
    tag, d_start, d_stop = read_tlv(buf, sp_raw_stop, stop)
    if d_stop != stop:
        raise BerError("trailing data in message")
    pdu: Pdu | None = None
    if tag == TAG_SEQUENCE:
        _ctx_engine, p = _read_octets(buf, d_start, d_stop)
        _ctx_name, p = _read_octets(buf, p, d_stop)
        pdu, p = decode_pdu(buf, p, d_stop, max_varbinds)
        if p != d_stop:
            raise BerError("trailing data in scoped PDU")
        encrypted = False
    elif tag == TAG_OCTET_STRING:
        encrypted = True
    else:
        raise BerError("msgData is neither a scoped PDU nor encrypted")
    return V3Header(
        msg_id, flags_raw[0], security_model, engine_id, boots, etime, user, auth, priv, encrypted, pdu
    )


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _length(len(content)) + content


def _int_tlv(value: int) -> bytes:
    size = max(1, (value.bit_length() + 8) // 8)
    return _tlv(TAG_INTEGER, value.to_bytes(size, "big", signed=True))


def encode_inform_response(message: CommunityMessage) -> bytes:
    """The Response-PDU that acknowledges a v2c InformRequest (RFC 3416 section 4.2.7).

    It echoes the request-id and the varbind list exactly, with error-status and error-index zero.
    """
    pdu = message.pdu
    if pdu.request_id is None:
        raise ValueError("only an InformRequest-PDU can be acknowledged")
    body = _int_tlv(pdu.request_id) + _int_tlv(0) + _int_tlv(0) + pdu.varbind_list
    return _tlv(
        TAG_SEQUENCE,
        _int_tlv(message.version) + _tlv(TAG_OCTET_STRING, message.community) + _tlv(PDU_RESPONSE, body),
    )
