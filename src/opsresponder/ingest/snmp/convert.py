"""From a decoded notification to an `Event`: trap OID, named varbinds, host, title, fingerprint.

Metadata layout (documented in ``docs/snmp.md``):

- one key per varbind, named where the object is known (``ifDescr``), else its dotted OID; a second
  instance of the same object gets ``name.index`` (``ifDescr.3``);
- ``snmp``: version, PDU kind, peer, trap OID and name, request id, v1 fields, community index or v3
  user/security level/engine IDs/context, and ``varbinds``: the full list with OID, name, index, SNMP
  type and value, so nothing about the types is lost.

The community string and v3 keys are never stored: the community is recorded as its index in
``snmp.communities``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from opsresponder.core.event import Event, EventState, compute_fingerprint
from opsresponder.ingest.snmp.decode import (
    PDU_INFORM,
    PDU_NAMES,
    PDU_V1_TRAP,
    BerError,
    Pdu,
    VarBind,
    oid_str,
)
from opsresponder.ingest.snmp.mapping import TrapMapping
from opsresponder.ingest.snmp.mib_names import (
    ENUM_LABELS,
    SNMP_TRAP_ADDRESS_INSTANCE,
    SNMP_TRAP_OID_INSTANCE,
    SNMP_TRAPS,
    SYS_UP_TIME_INSTANCE,
    notification_name,
    object_name,
)

SOURCE: Final = "snmp"
LINK_DOWN: Final = (*SNMP_TRAPS, 3)
LINK_UP: Final = (*SNMP_TRAPS, 4)
# linkDown and linkUp of one interface share this identity, so a linkUp resolves its linkDown.
_LINK_FINGERPRINT_TYPE: Final = "snmp_link"
# Varbinds shown in the human-readable description; the metadata keeps them all.
_DESCRIPTION_VARBINDS: Final = 12
_GENERIC_TRAP_MAX: Final = 5


@dataclass(frozen=True, slots=True)
class Notification:
    """A notification that passed the security checks, with what is known about its sender."""

    version: str
    pdu: Pdu
    peer: tuple[str, int]
    community_index: int | None = None
    user: str | None = None
    security_level: str | None = None
    security_engine_id: bytes | None = None
    context_engine_id: bytes | None = None
    context_name: str | None = None

    @property
    def inform(self) -> bool:
        return self.pdu.tag == PDU_INFORM


def trap_oid(pdu: Pdu) -> tuple[int, ...]:
    """The SNMPv2 notification OID: ``snmpTrapOID.0``, or the RFC 3584 translation of a v1 trap.

    Raises:
        BerError: an SNMPv2 notification without an OID-valued ``snmpTrapOID.0``.
    """
    if pdu.tag == PDU_V1_TRAP:
        generic = pdu.generic_trap if pdu.generic_trap is not None else -1
        if 0 <= generic <= _GENERIC_TRAP_MAX:
            return (*SNMP_TRAPS, generic + 1)
        enterprise = pdu.enterprise or ()
        return (*enterprise, 0, pdu.specific_trap or 0)
    for vb in pdu.varbinds:
        if vb.oid == SNMP_TRAP_OID_INSTANCE and vb.type == "oid" and isinstance(vb.value, str):
            return tuple(int(arc) for arc in vb.value.split("."))
    raise BerError("notification without snmpTrapOID.0")


def json_value(vb: VarBind) -> int | str | None:
    """A varbind value as JSON: octet strings as text when they are printable UTF-8, else colon hex."""
    value = vb.value
    if isinstance(value, bytes):
        return octets_text(value)
    return value


def octets_text(value: bytes) -> str:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return value.hex(":")
    if text.isprintable() or all(c.isprintable() or c in "\t\r\n" for c in text):
        return text
    return value.hex(":")


def agent_address(n: Notification) -> str:
    """The agent the notification is about: v1 agent-addr, a proxy's snmpTrapAddress.0, else the sender."""
    if n.pdu.agent_addr and n.pdu.agent_addr != "0.0.0.0":  # noqa: S104 - 0.0.0.0 means "not filled in"
        return n.pdu.agent_addr
    for vb in n.pdu.varbinds:
        if vb.oid == SNMP_TRAP_ADDRESS_INSTANCE and isinstance(vb.value, str) and vb.value != "0.0.0.0":  # noqa: S104
            return vb.value
    return n.peer[0]


@dataclass(frozen=True, slots=True)
class _Named:
    key: str
    name: str | None
    index: str | None
    vb: VarBind
    value: int | str | None


def _named_varbinds(varbinds: tuple[VarBind, ...]) -> list[_Named]:
    out: list[_Named] = []
    used: set[str] = set()
    for vb in varbinds:
        found = object_name(vb.oid)
        value = json_value(vb)
        if found is None:
            key = oid_str(vb.oid)
            name = index = None
        else:
            name, index = found
            key = name if name not in used else f"{name}.{index}"
        used.add(key)
        out.append(_Named(key, name, index, vb, value))
    return out


def _display(item: _Named) -> str:
    labels = ENUM_LABELS.get(item.name or "")
    if labels is not None and isinstance(item.value, int) and item.value in labels:
        return f"{labels[item.value]}({item.value})"
    return str(item.value)


def _if_index(items: list[_Named]) -> int | None:
    for item in items:
        if item.name == "ifIndex" and isinstance(item.value, int):
            return item.value
    # Without an ifIndex varbind, the instance index of an ifTable/ifXTable column is the ifIndex.
    for item in items:
        if item.name and item.name.startswith("if") and item.index and item.index.isdigit():
            return int(item.index)
    return None


def _if_label(items: list[_Named]) -> str | None:
    for wanted in ("ifDescr", "ifName", "ifAlias"):
        for item in items:
            if item.name == wanted and isinstance(item.value, str) and item.value:
                return item.value
    return None


def to_event(
    n: Notification,
    mapping: TrapMapping,
    *,
    host: str,
    address: str,
    received_at: datetime,
) -> Event:
    """Build the event of a notification.

    Args:
        n: the authenticated, decoded notification.
        mapping: the trap mapping (config over defaults).
        host: the agent's host name (or its address when no name is known).
        address: the agent's address, see `agent_address`.
        received_at: when the datagram arrived; also ``occurred_at`` (SNMP carries no wall-clock time).

    Raises:
        BerError: an SNMPv2 notification without snmpTrapOID.0.
    """
    oid = trap_oid(n.pdu)
    trap_oid_text = oid_str(oid)
    name = notification_name(oid)
    label = name or trap_oid_text
    rule = mapping.lookup(oid)
    items = _named_varbinds(n.pdu.varbinds)

    metadata: dict[str, Any] = {}
    if n.pdu.tag == PDU_V1_TRAP:
        # RFC 3584: a v1 trap's time-stamp and translated OID play the parts of these two varbinds.
        metadata["sysUpTime"] = n.pdu.timestamp
        metadata["snmpTrapOID"] = trap_oid_text
    for item in items:
        metadata[item.key] = item.value
    snmp: dict[str, Any] = {
        "version": n.version,
        "pdu": PDU_NAMES[n.pdu.tag],
        "inform": n.inform,
        "peer": f"{n.peer[0]}:{n.peer[1]}",
        "agent_address": address,
        "trap_oid": trap_oid_text,
        "trap_name": name,
        "request_id": n.pdu.request_id,
    }
    if n.pdu.tag == PDU_V1_TRAP:
        snmp["enterprise"] = oid_str(n.pdu.enterprise or ())
        snmp["agent_addr"] = n.pdu.agent_addr
        snmp["generic_trap"] = n.pdu.generic_trap
        snmp["specific_trap"] = n.pdu.specific_trap
        snmp["timestamp"] = n.pdu.timestamp
    if n.community_index is not None:
        snmp["community_index"] = n.community_index
    if n.user is not None:
        snmp["user"] = n.user
        snmp["security_level"] = n.security_level
        snmp["security_engine_id"] = (n.security_engine_id or b"").hex()
        snmp["context_engine_id"] = (n.context_engine_id or b"").hex()
        snmp["context_name"] = n.context_name
    snmp["varbinds"] = [
        {"oid": oid_str(i.vb.oid), "name": i.name, "index": i.index, "type": i.vb.type, "value": i.value}
        for i in items
    ]
    metadata["snmp"] = snmp

    fingerprint = ""
    state = EventState.PROBLEM
    title = f"SNMP trap {label}" if name is None else label
    if oid in (LINK_DOWN, LINK_UP):
        if_index = _if_index(items)
        if if_index is not None:
            if_label = _if_label(items)
            title = f"{label} on ifIndex {if_index}" + (f" ({if_label})" if if_label else "")
            fingerprint = compute_fingerprint(
                SOURCE, host, None, _LINK_FINGERPRINT_TYPE, f"ifIndex={if_index}"
            )
        if oid == LINK_UP:
            state = EventState.RESOLVED

    shown = [i for i in items if i.vb.oid not in (SYS_UP_TIME_INSTANCE, SNMP_TRAP_OID_INSTANCE)]
    details = ", ".join(f"{i.key}={_display(i)}" for i in shown[:_DESCRIPTION_VARBINDS])
    if len(shown) > _DESCRIPTION_VARBINDS:
        details += f", ... ({len(shown) - _DESCRIPTION_VARBINDS} more)"
    kind = "inform" if n.inform else "trap"
    description = f"SNMPv{n.version} {kind} {label} from {address}" + (f": {details}" if details else "")

    return Event(
        source=SOURCE,
        source_type=SOURCE,
        event_type=rule.event_type,
        severity=rule.severity,
        title=title,
        description=description,
        host=host,
        occurred_at=received_at,
        received_at=received_at,
        metadata=metadata,
        state=state,
        fingerprint=fingerprint,
        raw=dump(n, trap_oid_text, label, items),
    )


def dump(n: Notification, trap_oid_text: str, label: str, items: list[_Named]) -> str:
    """A readable rendering of the PDU, like snmptrapd's log lines; never the community or keys."""
    pdu = n.pdu
    head = f"SNMPv{n.version} {PDU_NAMES[pdu.tag]} from {n.peer[0]}:{n.peer[1]}"
    if pdu.request_id is not None:
        head += f" request-id {pdu.request_id}"
    if n.user is not None:
        head += f" user {n.user} ({n.security_level})"
    lines = [head, f"  trap {label} ({trap_oid_text})"]
    if pdu.tag == PDU_V1_TRAP:
        lines.append(
            f"  enterprise {oid_str(pdu.enterprise or ())} agent-addr {pdu.agent_addr} "
            f"generic-trap {pdu.generic_trap} specific-trap {pdu.specific_trap} time-stamp {pdu.timestamp}"
        )
    for i in items:
        shown = f"{i.name}.{i.index}" if i.name is not None else oid_str(i.vb.oid)
        lines.append(f"  {shown} = {i.vb.type}: {_display(i)}")
    return "\n".join(lines)
