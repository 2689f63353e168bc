"""The formulas of docs/response.md "Analysis and risk", one by one."""

from __future__ import annotations

import pytest

from opsresponder.response.analysis.estimates import (
    backing,
    business_impact,
    confidence,
    critical_path_minutes,
    success_probability,
)
from opsresponder.store.outcomes import OutcomeStats


def test_success_probability_is_the_prior_without_history_and_moves_with_it() -> None:
    assert success_probability(OutcomeStats(), 0.8, 4) == 0.8
    assert success_probability(OutcomeStats(runs=6, successes=6), 0.8, 4) == 0.92
    assert success_probability(OutcomeStats(runs=6, successes=0), 0.8, 4) == 0.32
    assert success_probability(OutcomeStats(runs=1000, successes=500), 0.8, 4) == 0.5012


def test_confidence_multiplies_and_is_scaled_by_the_least_backing() -> None:
    assert confidence([], []) == 0.0
    assert confidence([0.8], [0.0]) == 0.4
    assert confidence([0.9, 0.8], [1.0, 0.5]) == round(0.72 * 0.75, 4)
    assert backing(OutcomeStats(runs=6, successes=6), 4) == 0.6


def test_the_critical_path_follows_the_longest_chain() -> None:
    durations = {"a": 1.0, "b": 5.0, "c": 2.0, "d": 1.5}
    # a -> b -> d and a -> c: 1 + 5 + 1.5.
    assert critical_path_minutes(durations, {"b": ["a"], "c": ["a"], "d": ["b", "c"]}) == 7.5
    assert critical_path_minutes(durations, {}) == 5.0
    assert critical_path_minutes({}, {}) == 0.0
    assert critical_path_minutes({"a": 1.0}, {"a": ["gone"]}) == 1.0


@pytest.mark.parametrize(
    ("criticality", "sizes", "impacts"),
    [
        ("low", (1, 2, 9, 10), ("none", "low", "low", "medium")),
        ("medium", (1, 2, 9, 10), ("low", "medium", "medium", "high")),
        ("high", (1, 2, 9, 10), ("medium", "high", "high", "critical")),
        ("critical", (1, 2, 9, 50), ("high", "critical", "critical", "critical")),
        ("unknown", (1, 2, 10, 10), ("low", "medium", "high", "high")),
    ],
)
def test_business_impact_table(criticality: str, sizes: tuple[int, ...], impacts: tuple[str, ...]) -> None:
    assert tuple(business_impact(criticality, n, quiet=False) for n in sizes) == impacts
    assert business_impact(criticality, 50, quiet=True) == "none"
