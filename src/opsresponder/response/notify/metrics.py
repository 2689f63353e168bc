"""Metrics of notifications: past-tense facts, labelled by channel and outcome.

Notifications are a few per execution, so prometheus_client's own counters are cheap enough here (the
lock-free `counters.FastCounter` is for per-event paths). ``channel`` is one of the known channel names
or ``other`` (a name nobody configured, counted without echoing it as a label value); ``template`` is a
loaded template's name (a bounded set, from config files).
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter

KNOWN_CHANNELS: Final = ("email", "slack", "webhook")
OTHER_CHANNEL: Final = "other"


class NotificationMetrics:
    """Metric families of the notification service, registered on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.notifications = Counter(
            "opsresponder_notifications_total",
            "Notifications by channel and outcome (sent, failed, timeout, not_allowed, not_configured, "
            "unknown_template, unknown_channel).",
            ["channel", "outcome"],
            registry=registry,
        )
        self.render_failures = Counter(
            "opsresponder_notification_render_failures_total",
            "Notifications whose message template failed to render (a plain message was sent instead).",
            ["template"],
            registry=registry,
        )

    def count(self, channel: str, outcome: str) -> None:
        label = channel if channel in KNOWN_CHANNELS else OTHER_CHANNEL
        self.notifications.labels(label, outcome).inc()
