"""Pipeline metrics: past-tense facts, every drop counted by reason."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from opsresponder.counters import FastCounter

_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PipelineMetrics:
    """Metric families of the intake and the batch worker, registered on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events_received = FastCounter(
            "opsresponder_events_received_total",
            "Events handed to the intake, by source type.",
            ["source"],
            registry=registry,
        )
        self.events_accepted = FastCounter(
            "opsresponder_events_accepted_total",
            "Events committed as new rows, by source type.",
            ["source"],
            registry=registry,
        )
        self.events_deduplicated = FastCounter(
            "opsresponder_events_deduplicated_total",
            "Events folded into an existing event as duplicates, by source type.",
            ["source"],
            registry=registry,
        )
        self.events_rejected = FastCounter(
            "opsresponder_events_rejected_total",
            "Events refused before the intake (invalid input), by source type.",
            ["source"],
            registry=registry,
        )
        self.events_dropped = FastCounter(
            "opsresponder_events_dropped_total",
            "Events lost, by stage and reason.",
            ["stage", "reason"],
            registry=registry,
        )
        self.intake_depth = Gauge(
            "opsresponder_intake_depth", "Events waiting in the intake.", registry=registry
        )
        self.batch_size = Histogram(
            "opsresponder_pipeline_batch_size",
            "Events per processed batch.",
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.pipeline_latency = Histogram(
            "opsresponder_pipeline_latency_seconds",
            "Time from intake to commit, per event.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.received_by_source = self.events_received.labels
        self.accepted_by_source = self.events_accepted.labels
        self.deduplicated_by_source = self.events_deduplicated.labels
        self.rejected_by_source = self.events_rejected.labels
        self.db_write_errors = Counter(
            "opsresponder_db_write_errors_total",
            "Batches whose transaction failed, by error kind.",
            ["kind"],
            registry=registry,
        )
