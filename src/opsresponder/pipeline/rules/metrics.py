"""Metrics of rule evaluation."""

from __future__ import annotations

import weakref
from typing import ClassVar

from prometheus_client import CollectorRegistry

from opsresponder.counters import FastCounter


class RuleMetrics:
    """The rules stage's and the absence checker's counters; `shared` gives both one set per registry."""

    _per_registry: ClassVar[weakref.WeakKeyDictionary[CollectorRegistry, RuleMetrics]] = (
        weakref.WeakKeyDictionary()
    )

    @classmethod
    def shared(cls, registry: CollectorRegistry) -> RuleMetrics:
        """The metrics registered in `registry`, registering them on first use."""
        found = cls._per_registry.get(registry)
        if found is None:
            found = cls._per_registry[registry] = cls(registry)
        return found

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
            "that failed, by what failed (evaluate, absence_check, reload, take_back).",
            ["what"],
            registry=registry,
        )
        self.taken_back = FastCounter(
            "opsresponder_rule_hits_taken_back_total",
            "Window hits (threshold counts, cooldowns, hourly limits) taken back because the event they "
            "were written for was never stored (its caller was answered an error).",
            registry=registry,
        )
