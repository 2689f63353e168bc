"""Trap mapping and notification -> Event conversion: names, typed values, host, title, link pairing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from opsresponder.config import TrapMappingConfig
from opsresponder.core.errors import ConfigError
from opsresponder.core.event import Event, EventState
from opsresponder.core.severity import Severity
from opsresponder.ingest.snmp.convert import Notification, agent_address, to_event, trap_oid
from opsresponder.ingest.snmp.decode import PDU_INFORM, PDU_V1_TRAP, PDU_V2_TRAP, BerError, Pdu, VarBind
from opsresponder.ingest.snmp.mapping import UNMAPPED, TrapMapping, TrapRule, parse_trap_key
from opsresponder.ingest.snmp.mib_names import object_name

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
UPTIME = VarBind((1, 3, 6, 1, 2, 1, 1, 3, 0), "timeticks", 500)


def trap_oid_vb(dotted: str) -> VarBind:
    return VarBind((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0), "oid", dotted)


def v2_pdu(trap: str, *varbinds: VarBind, tag: int = PDU_V2_TRAP) -> Pdu:
    return Pdu(tag, 7, 0, 0, (UPTIME, trap_oid_vb(trap), *varbinds))


def link(trap: str, index: int = 2) -> Pdu:
    return v2_pdu(
        trap,
        VarBind((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, index), "integer", index),
        VarBind((1, 3, 6, 1, 2, 1, 2, 2, 1, 2, index), "octet_string", b"eth0"),
        VarBind((1, 3, 6, 1, 2, 1, 2, 2, 1, 7, index), "integer", 1),
        VarBind((1, 3, 6, 1, 2, 1, 2, 2, 1, 8, index), "integer", 2),
    )


def event_of(pdu: Pdu, mapping: TrapMapping | None = None, version: str = "2c") -> Event:
    n = Notification(version, pdu, ("192.0.2.9", 40000), community_index=0)
    return to_event(n, mapping or TrapMapping({}), host="sw1", address=agent_address(n), received_at=NOW)


# Mapping ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("oid", "event_type", "severity"),
    [
        ((1, 3, 6, 1, 6, 3, 1, 1, 5, 3), "connectivity_issue", Severity.HIGH),
        ((1, 3, 6, 1, 6, 3, 1, 1, 5, 4), "connectivity_restored", Severity.INFO),
        ((1, 3, 6, 1, 6, 3, 1, 1, 5, 1), "system_restart", Severity.MEDIUM),
        ((1, 3, 6, 1, 6, 3, 1, 1, 5, 2), "system_restart", Severity.LOW),
        ((1, 3, 6, 1, 6, 3, 1, 1, 5, 5), "authentication_failure", Severity.MEDIUM),
        ((1, 3, 6, 1, 4, 1, 9, 0, 1), "snmp_trap", Severity.LOW),
    ],
)
def test_default_mapping(oid: tuple[int, ...], event_type: str, severity: Severity) -> None:
    assert TrapMapping({}).lookup(oid) == TrapRule(event_type, severity)


def test_config_overrides_by_name_module_name_and_oid() -> None:
    mapping = TrapMapping(
        {
            "IF-MIB::linkDown": TrapMappingConfig(event_type="port_down", severity="critical"),
            ".1.3.6.1.4.1.9.9.41.2.0.1": TrapMappingConfig(event_type="syslog_message", severity="low"),
            "coldStart": TrapMappingConfig(event_type="reboot", severity="high"),
        }
    )
    assert mapping.lookup((1, 3, 6, 1, 6, 3, 1, 1, 5, 3)) == TrapRule("port_down", Severity.CRITICAL)
    assert mapping.lookup((1, 3, 6, 1, 4, 1, 9, 9, 41, 2, 0, 1)) == TrapRule("syslog_message", Severity.LOW)
    assert mapping.lookup((1, 3, 6, 1, 6, 3, 1, 1, 5, 1)) == TrapRule("reboot", Severity.HIGH)
    # Entries not overridden keep their default.
    assert mapping.lookup((1, 3, 6, 1, 6, 3, 1, 1, 5, 4)).event_type == "connectivity_restored"


def test_bad_mapping_keys_and_event_types_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"snmp\.trap_mapping\.ciscoThing"):
        TrapMapping({"ciscoThing": TrapMappingConfig(event_type="x", severity="low")})
    with pytest.raises(ConfigError, match="event_type"):
        TrapMapping({"linkDown": TrapMappingConfig(event_type="Not Valid", severity="low")})
    with pytest.raises(ValueError, match="too short"):
        parse_trap_key("1")


# Names -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("oid", "expected"),
    [
        ((1, 3, 6, 1, 2, 1, 2, 2, 1, 2, 2), ("ifDescr", "2")),
        ((1, 3, 6, 1, 2, 1, 1, 3, 0), ("sysUpTime", "0")),
        ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 18, 10101), ("ifAlias", "10101")),
        ((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0), ("snmpTrapOID", "0")),
        ((1, 3, 6, 1, 2, 1, 2, 2, 1, 8), ("ifOperStatus", "")),
        ((1, 3, 6, 1, 4, 1, 9, 2, 1), None),
    ],
)
def test_object_names(oid: tuple[int, ...], expected: tuple[str, str] | None) -> None:
    assert object_name(oid) == expected


# Events ----------------------------------------------------------------------------------------------


def test_link_down_event() -> None:
    event = event_of(link("1.3.6.1.6.3.1.1.5.3"))
    assert event.event_type == "connectivity_issue"
    assert event.severity == Severity.HIGH
    assert event.title == "linkDown on ifIndex 2 (eth0)"
    assert event.host == "sw1"
    assert (event.source, event.source_type) == ("snmp", "snmp")
    assert event.occurred_at == NOW == event.received_at
    meta = event.metadata
    assert meta["ifIndex"] == 2
    assert meta["ifDescr"] == "eth0"
    assert meta["ifAdminStatus"] == 1
    assert meta["ifOperStatus"] == 2
    assert meta["sysUpTime"] == 500
    assert meta["snmpTrapOID"] == "1.3.6.1.6.3.1.1.5.3"
    snmp = meta["snmp"]
    assert snmp["trap_name"] == "linkDown"
    assert snmp["community_index"] == 0
    assert "community" not in snmp
    assert snmp["varbinds"][3] == {
        "oid": "1.3.6.1.2.1.2.2.1.2.2",
        "name": "ifDescr",
        "index": "2",
        "type": "octet_string",
        "value": "eth0",
    }
    assert "ifOperStatus=down(2)" in (event.description or "")
    assert "ifDescr.2 = octet_string: eth0" in (event.raw or "")


def test_link_up_resolves_link_down_of_the_same_interface() -> None:
    down = event_of(link("1.3.6.1.6.3.1.1.5.3"))
    up = event_of(link("1.3.6.1.6.3.1.1.5.4"))
    other = event_of(link("1.3.6.1.6.3.1.1.5.3", index=3))
    assert up.state == EventState.RESOLVED
    assert down.state == EventState.PROBLEM
    assert up.fingerprint == down.fingerprint != ""
    assert other.fingerprint != down.fingerprint


def test_unknown_oids_typed_values_and_duplicates() -> None:
    pdu = v2_pdu(
        "1.3.6.1.4.1.9999.0.1",
        VarBind((1, 3, 6, 1, 4, 1, 9999, 1, 0), "counter64", 2**40),
        VarBind((1, 3, 6, 1, 4, 1, 9999, 2, 0), "octet_string", b"\x00\x1a\xff"),
        VarBind((1, 3, 6, 1, 4, 1, 9999, 3, 0), "ip_address", "10.1.1.1"),
        VarBind((1, 3, 6, 1, 4, 1, 9999, 4, 0), "null", None),
        VarBind((1, 3, 6, 1, 2, 1, 2, 2, 1, 2, 5), "octet_string", b"ge-0/0/5"),
        VarBind((1, 3, 6, 1, 2, 1, 2, 2, 1, 2, 6), "octet_string", b"ge-0/0/6"),
    )
    event = event_of(pdu)
    meta = event.metadata
    assert event.event_type == UNMAPPED.event_type
    assert event.title == "SNMP trap 1.3.6.1.4.1.9999.0.1"
    assert meta["snmp"]["trap_oid"] == "1.3.6.1.4.1.9999.0.1"
    assert meta["1.3.6.1.4.1.9999.1.0"] == 2**40
    assert meta["1.3.6.1.4.1.9999.2.0"] == "00:1a:ff"
    assert meta["1.3.6.1.4.1.9999.3.0"] == "10.1.1.1"
    assert meta["1.3.6.1.4.1.9999.4.0"] is None
    assert (meta["ifDescr"], meta["ifDescr.6"]) == ("ge-0/0/5", "ge-0/0/6")
    types = [vb["type"] for vb in meta["snmp"]["varbinds"]]
    assert types[2:6] == ["counter64", "octet_string", "ip_address", "null"]


def test_v1_enterprise_specific_trap_and_agent_addr() -> None:
    pdu = Pdu(
        PDU_V1_TRAP,
        None,
        0,
        0,
        (VarBind((1, 3, 6, 1, 4, 1, 9999, 5, 0), "integer", 1),),
        enterprise=(1, 3, 6, 1, 4, 1, 9999),
        agent_addr="10.9.8.7",
        generic_trap=6,
        specific_trap=42,
        timestamp=777,
    )
    assert trap_oid(pdu) == (1, 3, 6, 1, 4, 1, 9999, 0, 42)
    event = event_of(pdu, version="1")
    snmp = event.metadata["snmp"]
    assert (snmp["enterprise"], snmp["agent_addr"], snmp["generic_trap"], snmp["specific_trap"]) == (
        "1.3.6.1.4.1.9999",
        "10.9.8.7",
        6,
        42,
    )
    assert snmp["agent_address"] == "10.9.8.7"
    assert event.metadata["snmpTrapOID"] == "1.3.6.1.4.1.9999.0.42"
    assert event.metadata["sysUpTime"] == 777


def test_generic_v1_traps_translate_to_snmp_traps() -> None:
    pdu = Pdu(PDU_V1_TRAP, None, 0, 0, (), enterprise=(1, 3, 6, 1, 4, 1, 8072), agent_addr="0.0.0.0",
              generic_trap=0, specific_trap=0, timestamp=1)  # fmt: skip
    assert trap_oid(pdu) == (1, 3, 6, 1, 6, 3, 1, 1, 5, 1)
    # agent-addr 0.0.0.0 means "not filled in": the sender's address is the agent.
    assert agent_address(Notification("1", pdu, ("192.0.2.1", 162))) == "192.0.2.1"


def test_snmp_trap_address_varbind_names_the_agent_behind_a_proxy() -> None:
    pdu = v2_pdu("1.3.6.1.6.3.1.1.5.1", VarBind((1, 3, 6, 1, 6, 3, 18, 1, 3, 0), "ip_address", "10.2.2.2"))
    assert agent_address(Notification("2c", pdu, ("192.0.2.1", 162))) == "10.2.2.2"


def test_notification_without_trap_oid_is_malformed() -> None:
    with pytest.raises(BerError):
        trap_oid(Pdu(PDU_INFORM, 1, 0, 0, (UPTIME,)))
