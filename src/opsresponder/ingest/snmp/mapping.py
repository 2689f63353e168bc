"""Trap mapping: which event type and severity a notification becomes.

Keys are notification names known to `mib_names` (``linkDown``, ``IF-MIB::linkDown``) or numeric OIDs
(``1.3.6.1.4.1.9.9.41.2.0.1``, a leading dot allowed). A v1 trap is matched by its SNMPv2 notification
OID (RFC 3584 section 3.1): ``snmpTraps.(generic+1)`` for generic traps, ``enterprise.0.specific`` for
enterprise-specific ones. Config entries override the defaults entry by entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from opsresponder.config import TrapMappingConfig
from opsresponder.core.errors import ConfigError
from opsresponder.core.event import is_event_type
from opsresponder.core.severity import Severity
from opsresponder.ingest.snmp.mib_names import NOTIFICATION_OIDS


@dataclass(frozen=True, slots=True)
class TrapRule:
    """What a notification becomes: its event type and severity."""

    event_type: str
    severity: Severity


DEFAULT_TRAP_MAPPING: Final[Mapping[str, TrapRule]] = {
    "coldStart": TrapRule("system_restart", Severity.MEDIUM),
    "warmStart": TrapRule("system_restart", Severity.LOW),
    "linkDown": TrapRule("connectivity_issue", Severity.HIGH),
    "linkUp": TrapRule("connectivity_restored", Severity.INFO),
    "authenticationFailure": TrapRule("authentication_failure", Severity.MEDIUM),
    "egpNeighborLoss": TrapRule("neighbor_loss", Severity.HIGH),
}
"""The defaults (service-spec ``trap_mapping`` for linkDown, linkUp and coldStart; the rest ours)."""

UNMAPPED: Final = TrapRule("snmp_trap", Severity.LOW)
"""Any other notification: kept, with its OID in ``metadata.snmp.trap_oid``, for an operator to map."""


def parse_trap_key(key: str) -> tuple[int, ...]:
    """The notification OID a ``trap_mapping`` key stands for.

    Raises:
        ValueError: neither a known notification name nor a numeric OID.
    """
    text = key.strip().lstrip(".")
    parts = text.split(".")
    if text and all(p.isdigit() for p in parts):
        if len(parts) < 2:
            raise ValueError(f"{key!r} is too short to be an OID")
        return tuple(int(p) for p in parts)
    name = text.rsplit("::", 1)[-1]
    oid = NOTIFICATION_OIDS.get(name)
    if oid is None:
        known = ", ".join(sorted(NOTIFICATION_OIDS))
        raise ValueError(f"unknown notification name {key!r}; use its numeric OID (names known: {known})")
    return oid


class TrapMapping:
    """Resolves a notification OID to a `TrapRule`: config entries first, then the defaults, else `UNMAPPED`.

    Raises:
        ConfigError: (at construction) a key that is neither a known name nor an OID, or an invalid
            ``event_type``; the message names the ``snmp.trap_mapping`` key.
    """

    def __init__(self, overrides: Mapping[str, TrapMappingConfig]) -> None:
        rules: dict[tuple[int, ...], TrapRule] = {}
        for key, rule in DEFAULT_TRAP_MAPPING.items():
            rules[parse_trap_key(key)] = rule
        for key, entry in overrides.items():
            try:
                oid = parse_trap_key(key)
            except ValueError as e:
                raise ConfigError(f"invalid configuration: snmp.trap_mapping.{key}: {e}") from e
            if not is_event_type(entry.event_type):
                raise ConfigError(
                    f"invalid configuration: snmp.trap_mapping.{key}.event_type: {entry.event_type!r} is not "
                    "1-64 characters of a-z 0-9 _ . -"
                )
            rules[oid] = TrapRule(entry.event_type, Severity(entry.severity))
        self._rules = rules

    def lookup(self, trap_oid: tuple[int, ...]) -> TrapRule:
        return self._rules.get(trap_oid, UNMAPPED)
