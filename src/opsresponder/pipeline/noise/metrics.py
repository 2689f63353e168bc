"""Metrics of the noise stage."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from opsresponder.counters import FastCounter


class NoiseMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.suppressed = FastCounter(
            "opsresponder_events_suppressed_total",
            "Events stored as suppressed by the noise stage, by reason (silenced, flapping, rate_limited).",
            ["reason"],
            registry=registry,
        )
        self.silence_load_failures = FastCounter(
            "opsresponder_silence_load_failures_total",
            "Reloads of the silences that failed; the stage kept the silences it had.",
            registry=registry,
        )
