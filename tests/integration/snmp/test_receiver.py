"""The SNMP trap receiver against net-snmp's snmptrap/snmpinform: versions, informs, refusals, bad input."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
from collections.abc import Callable
from typing import Any

import pytest
from pyasn1.codec.ber import decoder, encoder  # type: ignore[import-untyped]
from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message  # type: ignore[import-untyped]
from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters  # type: ignore[import-untyped]

from opsresponder.core.event import Event, EventState
from opsresponder.core.severity import Severity
from opsresponder.ingest.snmp import SnmpReceiverError
from opsresponder.ingest.snmp.decode import TAG_OCTET_STRING, TAG_SEQUENCE
from tests.waiting import eventually

from .conftest import IF_VARBINDS, LINK_DOWN, SENDER_ENGINE_ID, Harness, run_tool, v3_args

ALICE = v3_args("alice", "authPriv", ("SHA", "alice-auth-pass"), ("AES", "alice-priv-pass"))
BOB = v3_args("bob", "authNoPriv", ("MD5", "bob-auth-pass"), None)


def assert_link_down(event: Event, version: str) -> None:
    assert event.event_type == "connectivity_issue"
    assert event.severity == Severity.HIGH
    assert event.state == EventState.PROBLEM
    assert event.metadata["ifIndex"] == 2
    assert event.metadata["snmpTrapOID"] == LINK_DOWN
    assert event.metadata["snmp"]["version"] == version
    assert event.metadata["snmp"]["trap_name"] == "linkDown"


# Versions and informs --------------------------------------------------------------------------------


async def test_v1_link_down_keeps_agent_addr(snmp: Harness) -> None:
    code, err = await run_tool(
        "snmptrap", "-v1", "-c", "public", snmp.target,
        "1.3.6.1.4.1.8072.3.2.10", "10.20.30.40", "2", "0", "", "1.3.6.1.2.1.2.2.1.1.2", "i", "2",
    )  # fmt: skip
    assert code == 0, err
    (event,) = await snmp.sink.wait_for(1)
    assert_link_down(event, "1")
    assert event.host == "10.20.30.40"
    snmp_meta = event.metadata["snmp"]
    assert snmp_meta["agent_addr"] == "10.20.30.40"
    assert snmp_meta["enterprise"] == "1.3.6.1.4.1.8072.3.2.10"
    assert (snmp_meta["generic_trap"], snmp_meta["specific_trap"]) == (2, 0)
    assert event.title == "linkDown on ifIndex 2"


async def test_v1_enterprise_specific_trap(snmp: Harness) -> None:
    code, err = await run_tool(
        "snmptrap", "-v1", "-c", "monitoring", snmp.target, "1.3.6.1.4.1.9999", "", "6", "17", "",
        "1.3.6.1.4.1.9999.1.1.0", "s", "fan failed",
    )  # fmt: skip
    assert code == 0, err
    (event,) = await snmp.sink.wait_for(1)
    assert event.event_type == "snmp_trap"
    assert event.metadata["snmp"]["trap_oid"] == "1.3.6.1.4.1.9999.0.17"
    assert event.metadata["snmp"]["community_index"] == 1
    assert event.metadata["1.3.6.1.4.1.9999.1.1.0"] == "fan failed"


async def test_v2c_link_down_with_named_varbinds(snmp: Harness) -> None:
    event = await snmp.good_trap()
    assert_link_down(event, "2c")
    assert event.metadata["ifDescr"] == "eth0"
    assert event.metadata["ifOperStatus"] == 2
    assert isinstance(event.metadata["sysUpTime"], int)
    assert event.title == "linkDown on ifIndex 2 (eth0)"
    assert event.host == "127.0.0.1"
    assert snmp.metric("opsresponder_snmp_events_total", version="2c") == 1


async def test_v2c_inform_is_acknowledged(snmp: Harness) -> None:
    code, err = await run_tool(
        "snmpinform", "-v2c", "-c", "public", "-t", "2", "-r", "0", snmp.target, "", LINK_DOWN, *IF_VARBINDS
    )
    assert code == 0, err
    (event,) = await snmp.sink.wait_for(1)
    assert_link_down(event, "2c")
    assert event.metadata["snmp"]["inform"] is True
    assert snmp.metric("opsresponder_snmp_informs_acknowledged_total", version="2c") == 1


async def test_v2c_inform_is_not_acknowledged_when_the_intake_is_full(snmp: Harness) -> None:
    snmp.sink.full = True
    code, _ = await run_tool(
        "snmpinform", "-v2c", "-c", "public", "-t", "0.5", "-r", "1", snmp.target, "", LINK_DOWN
    )
    assert code != 0
    assert snmp.dropped("intake_full") == 2  # the first try and one retry
    assert snmp.metric("opsresponder_snmp_informs_acknowledged_total", version="2c") == 0


async def test_v3_inform_is_not_acknowledged_when_the_intake_is_full(snmp: Harness) -> None:
    # One inform taken first, with time to spare: the worker process may still be importing pysnmp, and
    # the short timeouts below must measure refusals, not a cold start (on a slow machine both tries
    # of the engine discovery could expire before it answers, and no inform would be sent at all).
    code, err = await run_tool("snmpinform", *ALICE, "-t", "5", "-r", "0", snmp.target, "", LINK_DOWN)
    assert code == 0, err
    snmp.sink.full = True
    code, _ = await run_tool("snmpinform", *ALICE, "-t", "0.5", "-r", "1", snmp.target, "", LINK_DOWN)
    assert code != 0  # no acknowledgement: the sender knows its inform was not taken
    await snmp.receiver.settled()
    assert snmp.dropped("intake_full") == 2  # the first try and one retry
    assert snmp.metric("opsresponder_snmp_informs_acknowledged_total", version="3") == 1  # the first inform
    # The worker still answered the engine discovery (once per try), which needs no room in the intake.
    assert snmp.metric("opsresponder_snmp_engine_discoveries_total") >= 1


async def test_a_killed_v3_worker_is_restarted(snmp: Harness) -> None:
    genuine = await _capture_v3_trap(BOB)
    pid = snmp.receiver.v3_worker_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await eventually(lambda: snmp.receiver.v3_worker_pid != pid, 15, "the receiver to notice the kill")
    # Until it is back (0.5 s later), v3 datagrams are refused and counted, not queued for nobody.
    snmp.send_raw(genuine)
    await snmp.good_trap()
    assert snmp.dropped("internal_error") == 1
    await eventually(lambda: snmp.receiver.v3_worker_pid is not None, 15, "the v3 worker's restart")
    code, err = await run_tool("snmptrap", *ALICE, "-e", SENDER_ENGINE_ID, snmp.target, "", LINK_DOWN)
    assert code == 0, err
    (_, event) = await snmp.sink.wait_for(2)  # the good v2c trap, then alice's
    assert event.metadata["snmp"]["user"] == "alice"


async def test_v3_auth_priv_trap(snmp: Harness) -> None:
    code, err = await run_tool(
        "snmptrap", *ALICE, "-e", SENDER_ENGINE_ID, snmp.target, "", LINK_DOWN, *IF_VARBINDS
    )
    assert code == 0, err
    (event,) = await snmp.sink.wait_for(1)
    assert_link_down(event, "3")
    assert event.metadata["ifDescr"] == "eth0"
    meta = event.metadata["snmp"]
    assert (meta["user"], meta["security_level"]) == ("alice", "authPriv")
    assert meta["security_engine_id"] == SENDER_ENGINE_ID.removeprefix("0x")
    assert "alice-auth-pass" not in repr(event)


async def test_v3_inform(snmp: Harness) -> None:
    code, err = await run_tool(
        "snmpinform", *ALICE, "-t", "5", "-r", "0", snmp.target, "", LINK_DOWN, *IF_VARBINDS
    )
    assert code == 0, err
    (event,) = await snmp.sink.wait_for(1)
    assert_link_down(event, "3")
    assert event.metadata["snmp"]["inform"] is True
    assert snmp.metric("opsresponder_snmp_informs_acknowledged_total", version="3") == 1
    assert snmp.metric("opsresponder_snmp_engine_discoveries_total") == 1


@pytest.mark.parametrize(
    ("auth", "priv"),
    [
        ("md5", "des"),
        ("sha224", "aes128"),
        ("sha256", "aes192"),
        ("sha384", "aes256"),
        ("sha512", "aes256"),
        ("sha", None),
    ],
)
async def test_v3_protocols(make_receiver: Callable[..., Harness], auth: str, priv: str | None) -> None:
    from opsresponder.config import SnmpV3UserConfig

    user = SnmpV3UserConfig(
        name="carol",
        auth_protocol=auth,  # type: ignore[arg-type]
        auth_key="carol-auth-pass",
        priv_protocol=priv,  # type: ignore[arg-type]
        priv_key="carol-priv-pass" if priv else None,
        engine_ids=[SENDER_ENGINE_ID],
    )
    harness = make_receiver(v3_users=[user])
    await harness.receiver.start()
    try:
        net_snmp_auth = {"sha": "SHA", "md5": "MD5"}.get(auth, auth.upper().replace("SHA", "SHA-"))
        net_snmp_priv = {"des": "DES", "aes128": "AES", "aes192": "AES192", "aes256": "AES256"}
        args = v3_args(
            "carol",
            "authPriv" if priv else "authNoPriv",
            (net_snmp_auth, "carol-auth-pass"),
            (net_snmp_priv[priv], "carol-priv-pass") if priv else None,
        )
        code, err = await run_tool("snmptrap", *args, "-e", SENDER_ENGINE_ID, harness.target, "", LINK_DOWN)
        assert code == 0, err
        code, err = await run_tool("snmpinform", *args, "-t", "5", "-r", "0", harness.target, "", LINK_DOWN)
        assert code == 0, err
        events = await harness.sink.wait_for(2)
        assert [e.metadata["snmp"]["inform"] for e in events] == [False, True]
    finally:
        await harness.receiver.stop()


# Refusals --------------------------------------------------------------------------------------------


async def _refused(snmp: Harness, reason: str, *argv: str) -> None:
    """Send with `argv`, then a good trap: only the good one becomes an event, the first is counted."""
    events_before, dropped_before = len(snmp.sink.events), snmp.dropped(reason)
    code, err = await run_tool(*argv)
    assert code == 0, err
    event = await snmp.good_trap()
    assert len(snmp.sink.events) == events_before + 1, [e.title for e in snmp.sink.events]
    assert event.metadata["snmp"]["version"] == "2c"
    assert snmp.dropped(reason) == dropped_before + 1, reason


async def test_wrong_community(snmp: Harness) -> None:
    await _refused(snmp, "bad_community", "snmptrap", "-v2c", "-c", "guess", snmp.target, "", LINK_DOWN)
    await _refused(snmp, "bad_community", "snmptrap", "-v1", "-c", "guess", snmp.target, "", "", "0", "0", "")


async def test_unknown_v3_user(snmp: Harness) -> None:
    mallory = v3_args("mallory", "authPriv", ("SHA", "alice-auth-pass"), ("AES", "alice-priv-pass"))
    await _refused(
        snmp, "unknown_user", "snmptrap", *mallory, "-e", SENDER_ENGINE_ID, snmp.target, "", LINK_DOWN
    )


async def test_wrong_auth_key(snmp: Harness) -> None:
    wrong = v3_args("alice", "authPriv", ("SHA", "not-alices-pass"), ("AES", "alice-priv-pass"))
    await _refused(
        snmp, "wrong_digest", "snmptrap", *wrong, "-e", SENDER_ENGINE_ID, snmp.target, "", LINK_DOWN
    )


async def test_wrong_priv_key(snmp: Harness) -> None:
    wrong = v3_args("alice", "authPriv", ("SHA", "alice-auth-pass"), ("AES", "not-alices-priv"))
    await _refused(
        snmp, "decryption_failure", "snmptrap", *wrong, "-e", SENDER_ENGINE_ID, snmp.target, "", LINK_DOWN
    )


async def test_unknown_engine_id(snmp: Harness) -> None:
    await _refused(
        snmp, "unknown_engine_id", "snmptrap", *ALICE, "-e", "0x80000000090909", snmp.target, "", LINK_DOWN
    )


async def test_security_level_downgrade(snmp: Harness) -> None:
    # A noAuthNoPriv trap naming a user that has keys: pysnmp accepts it for traps, we must not.
    anonymous = v3_args("alice", "noAuthNoPriv", None, None)
    await _refused(
        snmp,
        "unsupported_security_level",
        "snmptrap",
        *anonymous,
        "-e",
        SENDER_ENGINE_ID,
        snmp.target,
        "",
        LINK_DOWN,
    )


async def _capture_v3_trap(args: list[str]) -> bytes:
    """One v3 trap as snmptrap sends it, caught on a plain socket."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        port = sock.getsockname()[1]
        code, err = await run_tool(
            "snmptrap", *args, "-e", SENDER_ENGINE_ID, f"127.0.0.1:{port}", "", LINK_DOWN
        )
        assert code == 0, err
        async with asyncio.timeout(10):
            data, _ = await loop.sock_recvfrom(sock, 65535)
    return data


def _with_digest(data: bytes, digest: bytes) -> bytes:
    msg, _ = decoder.decode(data, asn1Spec=SNMPv3Message())
    params, _ = decoder.decode(bytes(msg["msgSecurityParameters"]), asn1Spec=UsmSecurityParameters())
    params["msgAuthenticationParameters"] = digest
    msg["msgSecurityParameters"] = encoder.encode(params)
    return bytes(encoder.encode(msg))


@pytest.mark.parametrize("digest", [b"", b"\x00" * 6, b"\x00" * 12], ids=["empty", "truncated", "zeroed"])
async def test_forged_digest_is_refused(snmp: Harness, digest: bytes) -> None:
    valid = await _capture_v3_trap(BOB)
    snmp.send_raw(_with_digest(valid, digest))
    await snmp.good_trap()
    assert len(snmp.sink.events) == 1
    assert snmp.dropped("wrong_digest") == 1
    # The captured message itself is genuine: replayed as is, it is accepted.
    snmp.send_raw(valid)
    (_, replayed) = await snmp.sink.wait_for(2)
    assert replayed.metadata["snmp"]["user"] == "bob"


# Malformed input -------------------------------------------------------------------------------------


def _huge_varbind_trap(count: int) -> bytes:
    def tlv(tag: int, content: bytes) -> bytes:
        size = len(content)
        length = bytes([size]) if size < 0x80 else bytes([0x82]) + size.to_bytes(2, "big")
        return bytes([tag]) + length + content

    vb = tlv(TAG_SEQUENCE, tlv(0x06, bytes([0x2B, 6, 1, 4, 1, 1])) + tlv(0x02, b"\x01"))
    pdu = tlv(0xA7, b"\x02\x01\x01\x02\x01\x00\x02\x01\x00" + tlv(TAG_SEQUENCE, vb * count))
    return tlv(TAG_SEQUENCE, b"\x02\x01\x01" + tlv(TAG_OCTET_STRING, b"public") + pdu)


async def test_malformed_datagrams_are_counted_and_the_receiver_keeps_working(snmp: Harness) -> None:
    rng = random.Random(1234)
    valid = (await snmp.good_trap()).metadata["snmp"]
    assert valid["version"] == "2c"
    cases: list[tuple[bytes, str]] = [
        (b"", "malformed_packet"),
        (b"\x30\x82\x01\x00\x02\x01\x01", "malformed_packet"),  # truncated BER
        (_huge_varbind_trap(4000)[:-3], "malformed_packet"),
        (bytes(rng.getrandbits(8) for _ in range(300)), "malformed_packet"),
        (_huge_varbind_trap(4000), "too_many_varbinds"),
    ]
    for data, reason in cases:
        before = snmp.dropped(reason)
        snmp.send_raw(data)
        await snmp.good_trap()
        assert snmp.dropped(reason) == before + 1, reason
    assert len(snmp.sink.events) == 1 + len(cases)
    assert snmp.dropped("internal_error") == 0


async def test_received_equals_events_plus_drops_plus_discoveries(snmp: Harness) -> None:
    await run_tool("snmpinform", *ALICE, "-t", "2", "-r", "0", snmp.target, "", LINK_DOWN)
    snmp.send_raw(b"\x00")
    await run_tool("snmptrap", "-v2c", "-c", "guess", snmp.target, "", LINK_DOWN)
    await snmp.good_trap()
    families = {f.name: f for f in snmp.registry.collect()}

    def total(name: str) -> float:
        return sum(s.value for s in families[name].samples if s.name.endswith("_total"))

    received = total("opsresponder_snmp_traps_received")
    accounted = (
        total("opsresponder_snmp_events") + total("opsresponder_snmp_traps_dropped")
        + total("opsresponder_snmp_engine_discoveries")
    )  # fmt: skip
    assert received == accounted == 5


# Lifecycle -------------------------------------------------------------------------------------------


async def test_taken_port_is_a_clear_error(snmp: Harness, make_receiver: Callable[..., Any]) -> None:
    _, port = snmp.receiver.address
    other = make_receiver(port=port)
    with pytest.raises(SnmpReceiverError, match=rf"127\.0\.0\.1:{port}"):
        await other.receiver.start()


async def test_stop_is_idempotent_and_frees_the_port(make_receiver: Callable[..., Harness]) -> None:
    harness = make_receiver()
    await harness.receiver.start()
    port = harness.receiver.address[1]
    await harness.receiver.stop()
    await harness.receiver.stop()
    again = make_receiver(port=port)
    await again.receiver.start()
    await again.receiver.stop()
