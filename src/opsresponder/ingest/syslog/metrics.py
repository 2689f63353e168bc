"""Syslog listener metrics: past-tense facts per listener, every drop and every refusal counted by reason."""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge

from opsresponder.counters import FastCounter

ListenerName = Literal["udp", "tcp", "tls"]


class SyslogMetrics:
    """Metric families of the syslog listeners, registered on one registry.

    Create one per registry and share it between the listeners: each listener labels its samples with its
    name (``udp``, ``tcp`` or ``tls``) through `for_listener`.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages_received = FastCounter(
            "opsresponder_syslog_messages_received_total",
            "Syslog messages received (datagrams, or frames cut from a stream), by listener.",
            ["listener"],
            registry=registry,
        )
        self.messages_parsed = FastCounter(
            "opsresponder_syslog_messages_parsed_total",
            "Syslog messages decoded into an event without a parse error, by listener.",
            ["listener"],
            registry=registry,
        )
        self.messages_parse_failed = FastCounter(
            "opsresponder_syslog_messages_parse_failed_total",
            "Syslog messages kept as raw events because they could not be parsed, by listener.",
            ["listener"],
            registry=registry,
        )
        self.messages_truncated = FastCounter(
            "opsresponder_syslog_messages_truncated_total",
            "Syslog messages longer than max_message_bytes, kept truncated, by listener.",
            ["listener"],
            registry=registry,
        )
        self.messages_dropped = FastCounter(
            "opsresponder_syslog_messages_dropped_total",
            "Syslog messages lost, by listener and reason.",
            ["listener", "reason"],
            registry=registry,
        )
        self.tls_handshakes_refused = Counter(
            "opsresponder_syslog_tls_handshakes_refused_total",
            "TLS connections refused during or right after the handshake, by reason.",
            ["reason"],
            registry=registry,
        )
        self.connections_active = Gauge(
            "opsresponder_syslog_connections_active",
            "Open syslog stream connections (TLS ones from accept, handshake included), by listener.",
            ["listener"],
            registry=registry,
        )
        self.connections_refused = Counter(
            "opsresponder_syslog_connections_refused_total",
            "Stream connections closed at accept (before any data was read), by listener and reason.",
            ["listener", "reason"],
            registry=registry,
        )
        self.reads_paused = Counter(
            "opsresponder_syslog_reads_paused_total",
            "Times a stream connection stopped reading because the intake was full (backpressure).",
            ["listener"],
            registry=registry,
        )

    def for_listener(self, listener: ListenerName) -> ListenerMetrics:
        """The children of every family for one listener, resolved once (``labels()`` is not free)."""
        return ListenerMetrics(self, listener)


class ListenerMetrics:
    """The metric children of one listener; the hot path increments these without label lookups."""

    __slots__ = (
        "_family",
        "_listener",
        "connections_active",
        "parse_failed",
        "parsed",
        "reads_paused",
        "received",
        "truncated",
    )

    def __init__(self, family: SyslogMetrics, listener: ListenerName) -> None:
        self._family = family
        self._listener = listener
        self.received = family.messages_received.labels(listener)
        self.parsed = family.messages_parsed.labels(listener)
        self.parse_failed = family.messages_parse_failed.labels(listener)
        self.truncated = family.messages_truncated.labels(listener)
        self.connections_active: Gauge = family.connections_active.labels(listener)
        self.reads_paused: Counter = family.reads_paused.labels(listener)

    def dropped(self, reason: str, count: int = 1) -> None:
        if count:
            self._family.messages_dropped.labels(self._listener, reason).inc(count)

    def connection_refused(self, reason: str) -> None:
        self._family.connections_refused.labels(self._listener, reason).inc()

    def handshake_refused(self, reason: str) -> None:
        self._family.tls_handshakes_refused.labels(reason).inc()
