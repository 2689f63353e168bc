"""Metrics of outbound subscription deliveries: past-tense facts, labelled by subscription id.

The ``subscription`` label is the id (stable across renames); subscriptions are few, so the label set
stays small.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# `result` of one HTTP delivery (one batch).
RESULT_SUCCESS = "success"
RESULT_HTTP_ERROR = "http_error"
RESULT_TIMEOUT = "timeout"
RESULT_CONNECTION_ERROR = "connection_error"
RESULT_NOT_ALLOWED = "not_allowed"

# `result` of one event of a batch.
EVENT_DELIVERED = "delivered"
EVENT_RETRIED = "retried"
EVENT_DEAD = "dead"
EVENT_EXPIRED = "expired"  # its event was removed (retention) before it could be sent


class SubscriptionMetrics:
    """Metric families of the delivery worker, registered on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "opsresponder_subscription_deliveries_total",
            "HTTP deliveries (one batch each) by subscription and result "
            "(success, http_error, timeout, connection_error, not_allowed).",
            ["subscription", "result"],
            registry=registry,
        )
        self.events = Counter(
            "opsresponder_subscription_events_total",
            "Events of delivery attempts by subscription and outcome (delivered, retried, dead, expired).",
            ["subscription", "result"],
            registry=registry,
        )
        self.delivery_duration = Histogram(
            "opsresponder_subscription_delivery_duration_seconds",
            "Time of one HTTP delivery, from connect to the response status.",
            ["subscription"],
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )
        self.pending = Gauge(
            "opsresponder_subscription_pending",
            "Outbox rows waiting to be delivered, by subscription (refreshed periodically).",
            ["subscription"],
            registry=registry,
        )
        self.dead = Gauge(
            "opsresponder_subscription_dead",
            "Outbox rows in the dead-letter state, by subscription (refreshed periodically).",
            ["subscription"],
            registry=registry,
        )
        self.orphans_removed = Counter(
            "opsresponder_subscription_outbox_removed_total",
            "Outbox rows removed without delivery, by reason (subscription_deleted, dead_expired).",
            ["reason"],
            registry=registry,
        )

    def set_backlog(self, counts: dict[int, tuple[int, int]]) -> None:
        """Set the pending and dead gauges from ``{subscription_id: (pending, dead)}``.

        Subscriptions absent from `counts` (deleted, or with an empty outbox) are reset to zero rather than
        left at their last value.
        """
        known = {labels[0] for labels in _label_values(self.pending)} | {
            labels[0] for labels in _label_values(self.dead)
        }
        for label in known - {str(s) for s in counts}:
            self.pending.labels(label).set(0)
            self.dead.labels(label).set(0)
        for sid, (pending, dead) in counts.items():
            self.pending.labels(str(sid)).set(pending)
            self.dead.labels(str(sid)).set(dead)


def _label_values(metric: Gauge) -> list[tuple[str, ...]]:
    # prometheus_client keeps no public list of a family's children; collect() yields every sample.
    return [(str(sample.labels["subscription"]),) for family in metric.collect() for sample in family.samples]
