"""SNMP trap receiver: v1, v2c and v3 traps and informs in, one `Event` per notification out.

See ``docs/snmp.md`` for the configuration (communities, v3 users, engine IDs, trap mapping) and metrics.
"""

from __future__ import annotations

from opsresponder.ingest.snmp.errors import SnmpReceiverError
from opsresponder.ingest.snmp.mapping import DEFAULT_TRAP_MAPPING, UNMAPPED, TrapMapping, TrapRule
from opsresponder.ingest.snmp.metrics import SnmpMetrics
from opsresponder.ingest.snmp.receiver import HostNames, SnmpTrapReceiver

__all__ = [
    "DEFAULT_TRAP_MAPPING",
    "UNMAPPED",
    "HostNames",
    "SnmpMetrics",
    "SnmpReceiverError",
    "SnmpTrapReceiver",
    "TrapMapping",
    "TrapRule",
]
