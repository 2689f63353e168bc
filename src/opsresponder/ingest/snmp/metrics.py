"""SNMP receiver metrics: past-tense facts, every refused or lost datagram counted by reason."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry

from opsresponder.counters import FastCounter

VERSIONS: Final = ("1", "2c", "3", "unknown")
"""Label values of ``version``: ``unknown`` when not even the version field could be read."""

# Refusals (security) -------------------------------------------------------------------------------
BAD_COMMUNITY: Final = "bad_community"
UNKNOWN_USER: Final = "unknown_user"
UNKNOWN_ENGINE_ID: Final = "unknown_engine_id"
WRONG_DIGEST: Final = "wrong_digest"
DECRYPTION_FAILURE: Final = "decryption_failure"
NOT_IN_TIME_WINDOW: Final = "not_in_time_window"
UNSUPPORTED_SECURITY_LEVEL: Final = "unsupported_security_level"
# Bad input ------------------------------------------------------------------------------------------
MALFORMED_PACKET: Final = "malformed_packet"
TOO_MANY_VARBINDS: Final = "too_many_varbinds"
UNSUPPORTED_PDU: Final = "unsupported_pdu"
# Our side -------------------------------------------------------------------------------------------
INTAKE_FULL: Final = "intake_full"
V3_BACKLOG: Final = "v3_backlog"
"""More SNMPv3 datagrams waiting for the worker process than it may hold (`v3_offload`)."""
INTERNAL_ERROR: Final = "internal_error"

DROP_REASONS: Final = (
    BAD_COMMUNITY,
    UNKNOWN_USER,
    UNKNOWN_ENGINE_ID,
    WRONG_DIGEST,
    DECRYPTION_FAILURE,
    NOT_IN_TIME_WINDOW,
    UNSUPPORTED_SECURITY_LEVEL,
    MALFORMED_PACKET,
    TOO_MANY_VARBINDS,
    UNSUPPORTED_PDU,
    INTAKE_FULL,
    V3_BACKLOG,
    INTERNAL_ERROR,
)


class SnmpMetrics:
    """Metric families of the SNMP trap receiver, registered on one registry.

    Invariant: every datagram increments ``traps_received`` exactly once, and then exactly one of
    ``events`` (an event reached the intake), ``traps_dropped`` (with its reason) or ``engine_discoveries``
    (a v3 engine-ID discovery probe, answered with a Report).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.traps_received = FastCounter(
            "opsresponder_snmp_traps_received_total",
            "Datagrams received on the SNMP trap port, by SNMP version.",
            ["version"],
            registry=registry,
        )
        self.traps_dropped = FastCounter(
            "opsresponder_snmp_traps_dropped_total",
            "Datagrams refused or lost, by reason.",
            ["reason"],
            registry=registry,
        )
        self.events = FastCounter(
            "opsresponder_snmp_events_total",
            "Traps and informs turned into events accepted by the intake, by SNMP version.",
            ["version"],
            registry=registry,
        )
        self.informs_acknowledged = FastCounter(
            "opsresponder_snmp_informs_acknowledged_total",
            "Inform requests acknowledged with a Response-PDU, by SNMP version.",
            ["version"],
            registry=registry,
        )
        self.engine_discoveries = FastCounter(
            "opsresponder_snmp_engine_discoveries_total",
            "SNMPv3 engine-ID discovery probes answered with a Report.",
            registry=registry,
        )
        # Pre-create every child so that a scrape shows zeros rather than missing series.
        for version in VERSIONS:
            self.traps_received.labels(version=version)
        for version in VERSIONS[:3]:
            self.events.labels(version=version)
            self.informs_acknowledged.labels(version=version)
        for reason in DROP_REASONS:
            self.traps_dropped.labels(reason=reason)

    def dropped(self, reason: str) -> None:
        self.traps_dropped.labels(reason=reason).inc()
