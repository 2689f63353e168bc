"""Pipeline metrics: past-tense facts, every drop counted by reason."""

from __future__ import annotations

from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)

_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PipelineMetrics:
    """Metric families of the intake and the batch worker, registered on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events_received = Counter(
            "opsresponder_events_received_total",
            "Events handed to the intake, by source type.",
            ["source"],
            registry=registry,
        )
        self.events_accepted = Counter(
            "opsresponder_events_accepted_total",
            "Events committed as new rows, by source type.",
            ["source"],
            registry=registry,
        )
        self.events_deduplicated = Counter(
            "opsresponder_events_deduplicated_total",
            "Events folded into an existing event as duplicates, by source type.",
            ["source"],
            registry=registry,
        )
        self.events_rejected = Counter(
            "opsresponder_events_rejected_total",
            "Events refused before the intake (invalid input), by source type.",
            ["source"],
            registry=registry,
        )
        self.events_dropped = Counter(
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
        self.received_by_source = LabelCache(self.events_received)
        self.accepted_by_source = LabelCache(self.events_accepted)
        self.deduplicated_by_source = LabelCache(self.events_deduplicated)
        self.rejected_by_source = LabelCache(self.events_rejected)
        self.db_write_errors = Counter(
            "opsresponder_db_write_errors_total",
            "Batches whose transaction failed, by error kind.",
            ["kind"],
            registry=registry,
        )


class LabelCache(Generic[M]):
    """Remembers the child of a labelled metric per label value.

    ``labels()`` costs a lock and a tuple build on every call, which is a measurable share of the
    per-event CPU when called for every event; label values here are few and stable.
    """

    def __init__(self, metric: M) -> None:
        self._metric = metric
        self._children: dict[str, M] = {}

    def __call__(self, value: str) -> M:
        child = self._children.get(value)
        if child is None:
            child = self._children[value] = self._metric.labels(value)
        return child
