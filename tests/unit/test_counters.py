"""FastCounter: the same exposition as prometheus_client's Counter, without its lock."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from opsresponder.counters import FastCounter


def _samples(registry: CollectorRegistry) -> list[str]:
    # prometheus_client's Counter also exports *_created samples; FastCounter does not keep them.
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def test_exposition_matches_prometheus_client() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    fast = FastCounter("x_events_total", "Events seen, by source.", ["source"], registry=ours)
    slow = Counter("x_events_total", "Events seen, by source.", ["source"], registry=theirs)
    for counter in (fast, slow):
        counter.labels("syslog").inc()
        counter.labels("syslog").inc(2)
        counter.labels(source="snmp").inc()
    assert _samples(ours) == _samples(theirs)
    assert ours.get_sample_value("x_events_total", {"source": "syslog"}) == 3.0


def test_unlabelled_counter_and_label_errors() -> None:
    registry = CollectorRegistry()
    plain = FastCounter("x_runs_total", "Runs.", registry=registry)
    plain.inc()
    assert registry.get_sample_value("x_runs_total") == 1.0
    labelled = FastCounter("x_drops_total", "Drops.", ["stage", "reason"], registry=registry)
    with pytest.raises(ValueError, match="expected labels"):
        labelled.labels("only-one")
    with pytest.raises(ValueError, match="must end in _total"):
        FastCounter("x_drops", "Drops.")
    with pytest.raises(ValueError, match="Duplicated"):
        FastCounter("x_runs_total", "Again.", registry=registry)
