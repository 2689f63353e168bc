"""Metrics of rule evaluation."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from opsresponder.counters import FastCounter


class RuleMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.fired = FastCounter(
            "opsresponder_rule_firings_total",
            "Rules fired, by kind (trigger: by events in the pipeline; absence: by the absence checker).",
            ["kind"],
            registry=registry,
        )
        self.failures = FastCounter(
            "opsresponder_rule_evaluation_failures_total",
            "Batches or absence checks not evaluated because the state backend failed, and rule reloads "
            "that failed, by what failed (evaluate, absence_check, reload).",
            ["what"],
            registry=registry,
        )
