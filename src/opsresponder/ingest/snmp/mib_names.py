"""Names of the standard SNMPv2-MIB and IF-MIB objects and notifications, as a static table.

No MIB is compiled or fetched at run time: the receiver must start offline and fast, and these few hundred
lines cover what standard agents put in traps. Enterprise objects keep their dotted OID (and can be mapped
by OID in ``trap_mapping``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Final


def _oid(dotted: str) -> tuple[int, ...]:
    return tuple(int(arc) for arc in dotted.split("."))


def _table(base: str, columns: Mapping[int, str]) -> dict[tuple[int, ...], str]:
    root = _oid(base)
    return {(*root, sub): name for sub, name in columns.items()}


_SYSTEM: Final = _table(
    "1.3.6.1.2.1.1",
    {
        1: "sysDescr",
        2: "sysObjectID",
        3: "sysUpTime",
        4: "sysContact",
        5: "sysName",
        6: "sysLocation",
        7: "sysServices",
        8: "sysORLastChange",
    },
)
_SYS_OR_ENTRY: Final = _table(
    "1.3.6.1.2.1.1.9.1", {1: "sysORIndex", 2: "sysORID", 3: "sysORDescr", 4: "sysORUpTime"}
)
_SNMP_GROUP: Final = _table(
    "1.3.6.1.2.1.11",
    {
        1: "snmpInPkts",
        2: "snmpOutPkts",
        3: "snmpInBadVersions",
        4: "snmpInBadCommunityNames",
        5: "snmpInBadCommunityUses",
        6: "snmpInASNParseErrs",
        8: "snmpInTooBigs",
        9: "snmpInNoSuchNames",
        10: "snmpInBadValues",
        11: "snmpInReadOnlys",
        12: "snmpInGenErrs",
        13: "snmpInTotalReqVars",
        14: "snmpInTotalSetVars",
        15: "snmpInGetRequests",
        16: "snmpInGetNexts",
        17: "snmpInSetRequests",
        18: "snmpInGetResponses",
        19: "snmpInTraps",
        20: "snmpOutTooBigs",
        21: "snmpOutNoSuchNames",
        22: "snmpOutBadValues",
        24: "snmpOutGenErrs",
        25: "snmpOutGetRequests",
        26: "snmpOutGetNexts",
        27: "snmpOutSetRequests",
        28: "snmpOutGetResponses",
        29: "snmpOutTraps",
        30: "snmpEnableAuthenTraps",
        31: "snmpSilentDrops",
        32: "snmpProxyDrops",
    },
)
_SNMP_TRAP: Final = _table("1.3.6.1.6.3.1.1.4", {1: "snmpTrapOID", 3: "snmpTrapEnterprise"})
_SNMP_SET: Final = _table("1.3.6.1.6.3.1.1.6", {1: "snmpSetSerialNo"})
_SNMP_COMMUNITY_TRAP: Final = _table("1.3.6.1.6.3.18.1", {3: "snmpTrapAddress", 4: "snmpTrapCommunity"})
_SNMP_ENGINE: Final = _table(
    "1.3.6.1.6.3.10.2.1",
    {1: "snmpEngineID", 2: "snmpEngineBoots", 3: "snmpEngineTime", 4: "snmpEngineMaxMessageSize"},
)
_INTERFACES: Final = _table("1.3.6.1.2.1.2", {1: "ifNumber"})
_IF_ENTRY: Final = _table(
    "1.3.6.1.2.1.2.2.1",
    {
        1: "ifIndex",
        2: "ifDescr",
        3: "ifType",
        4: "ifMtu",
        5: "ifSpeed",
        6: "ifPhysAddress",
        7: "ifAdminStatus",
        8: "ifOperStatus",
        9: "ifLastChange",
        10: "ifInOctets",
        11: "ifInUcastPkts",
        12: "ifInNUcastPkts",
        13: "ifInDiscards",
        14: "ifInErrors",
        15: "ifInUnknownProtos",
        16: "ifOutOctets",
        17: "ifOutUcastPkts",
        18: "ifOutNUcastPkts",
        19: "ifOutDiscards",
        20: "ifOutErrors",
        21: "ifOutQLen",
        22: "ifSpecific",
    },
)
_IF_MIB_OBJECTS: Final = _table("1.3.6.1.2.1.31.1", {5: "ifTableLastChange", 6: "ifStackLastChange"})
_IF_X_ENTRY: Final = _table(
    "1.3.6.1.2.1.31.1.1.1",
    {
        1: "ifName",
        2: "ifInMulticastPkts",
        3: "ifInBroadcastPkts",
        4: "ifOutMulticastPkts",
        5: "ifOutBroadcastPkts",
        6: "ifHCInOctets",
        7: "ifHCInUcastPkts",
        8: "ifHCInMulticastPkts",
        9: "ifHCInBroadcastPkts",
        10: "ifHCOutOctets",
        11: "ifHCOutUcastPkts",
        12: "ifHCOutMulticastPkts",
        13: "ifHCOutBroadcastPkts",
        14: "ifLinkUpDownTrapEnable",
        15: "ifHighSpeed",
        16: "ifPromiscuousMode",
        17: "ifConnectorPresent",
        18: "ifAlias",
        19: "ifCounterDiscontinuityTime",
    },
)
_IF_STACK_ENTRY: Final = _table(
    "1.3.6.1.2.1.31.1.2.1", {1: "ifStackHigherLayer", 2: "ifStackLowerLayer", 3: "ifStackStatus"}
)

OBJECT_NAMES: Final[dict[tuple[int, ...], str]] = {
    **_SYSTEM,
    **_SYS_OR_ENTRY,
    **_SNMP_GROUP,
    **_SNMP_TRAP,
    **_SNMP_SET,
    **_SNMP_COMMUNITY_TRAP,
    **_SNMP_ENGINE,
    **_INTERFACES,
    **_IF_ENTRY,
    **_IF_MIB_OBJECTS,
    **_IF_X_ENTRY,
    **_IF_STACK_ENTRY,
}
"""Object (scalar or column) OID -> name; an instance OID is the object OID plus its index."""

SNMP_TRAPS: Final = _oid("1.3.6.1.6.3.1.1.5")
"""snmpTraps: the generic notifications, ``snmpTraps.(generic-trap + 1)`` per RFC 3584 section 3.1."""

NOTIFICATION_NAMES: Final[dict[tuple[int, ...], str]] = _table(
    "1.3.6.1.6.3.1.1.5",
    {
        1: "coldStart",
        2: "warmStart",
        3: "linkDown",
        4: "linkUp",
        5: "authenticationFailure",
        6: "egpNeighborLoss",
    },
)
"""Notification OID -> name (SNMPv2-MIB, IF-MIB and RFC 1213's egpNeighborLoss)."""

NOTIFICATION_OIDS: Final[dict[str, tuple[int, ...]]] = {name: oid for oid, name in NOTIFICATION_NAMES.items()}

SYS_UP_TIME_INSTANCE: Final = _oid("1.3.6.1.2.1.1.3.0")
SNMP_TRAP_OID_INSTANCE: Final = _oid("1.3.6.1.6.3.1.1.4.1.0")
SNMP_TRAP_ENTERPRISE_INSTANCE: Final = _oid("1.3.6.1.6.3.1.1.4.3.0")
SNMP_TRAP_ADDRESS_INSTANCE: Final = _oid("1.3.6.1.6.3.18.1.3.0")

ENUM_LABELS: Final[dict[str, dict[int, str]]] = {
    "ifAdminStatus": {1: "up", 2: "down", 3: "testing"},
    "ifOperStatus": {
        1: "up",
        2: "down",
        3: "testing",
        4: "unknown",
        5: "dormant",
        6: "notPresent",
        7: "lowerLayerDown",
    },
    "ifLinkUpDownTrapEnable": {1: "enabled", 2: "disabled"},
    "ifPromiscuousMode": {1: "true", 2: "false"},
    "ifConnectorPresent": {1: "true", 2: "false"},
    "snmpEnableAuthenTraps": {1: "enabled", 2: "disabled"},
}
"""Labels of enumerated INTEGER objects, used in titles and descriptions (metadata keeps the number)."""

# The longest object OID in the tables; no need to try longer prefixes.
_MAX_OBJECT_LEN: Final = max(len(oid) for oid in OBJECT_NAMES)
_MIN_OBJECT_LEN: Final = min(len(oid) for oid in OBJECT_NAMES)


@functools.lru_cache(maxsize=4096)  # instance OIDs repeat from trap to trap (see decode.oid_str)
def object_name(oid: tuple[int, ...]) -> tuple[str, str] | None:
    """The object name and instance index of an instance OID, or None when the object is unknown.

    ``1.3.6.1.2.1.2.2.1.2.2`` -> ``("ifDescr", "2")``; ``1.3.6.1.2.1.1.3.0`` -> ``("sysUpTime", "0")``.
    """
    for size in range(min(len(oid), _MAX_OBJECT_LEN), _MIN_OBJECT_LEN - 1, -1):
        name = OBJECT_NAMES.get(oid[:size])
        if name is not None:
            return name, ".".join(map(str, oid[size:]))
    return None


def notification_name(oid: tuple[int, ...]) -> str | None:
    return NOTIFICATION_NAMES.get(oid)
