"""The numbers of a decision, each a small pure function with its formula (docs/response.md "Analysis
and risk"): success probability, confidence, the resolution time along the DAG, business impact."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, Literal

from opsresponder.store.outcomes import OutcomeStats

BusinessImpact = Literal["none", "low", "medium", "high", "critical"]
IMPACTS: Final[tuple[BusinessImpact, ...]] = ("none", "low", "medium", "high", "critical")
_CRITICALITY_INDEX: Final = {"low": 1, "medium": 2, "high": 3, "critical": 4}

GROUP_WIDE: Final = 2
"""A group of at least this many correlated events is the criticality's own impact..."""
GROUP_LARGE: Final = 10
"""...and of at least this many, one level more: many symptoms at once mean a wider outage."""


def success_probability(stats: OutcomeStats, prior: float, weight: float) -> float:
    """The Beta-smoothed success ratio ``(successes + prior * weight) / (runs + weight)``: the prior with
    no history, the observed ratio once runs far outnumber `weight`. Feedback counts as its weighted
    pseudo-outcomes (``feedback_runs``, ``feedback_successes``) added to both. Rounded to 4 decimals."""
    successes = stats.successes + stats.feedback_successes
    runs = stats.runs + stats.feedback_runs
    return round((successes + prior * weight) / (runs + weight), 4)


def backing(stats: OutcomeStats, weight: float) -> float:
    """How much of an estimate rests on history rather than on the prior: ``runs / (runs + weight)``,
    feedback's pseudo-runs included."""
    runs = stats.runs + stats.feedback_runs
    return runs / (runs + weight)


def confidence(probabilities: Sequence[float], backings: Sequence[float]) -> float:
    """Confidence that the plan works: the product of its actions' success probabilities (each must
    succeed), scaled by ``0.5 + 0.5 * b`` where b is the least backing among them, so a plan nobody has
    run yet is believed half as much as its prior says. Rounded to 4 decimals; 0 for no actions."""
    if not probabilities:
        return 0.0
    product = 1.0
    for p in probabilities:
        product *= p
    return round(product * (0.5 + 0.5 * min(backings)), 4)


def critical_path_minutes(durations: Mapping[str, float], depends_on: Mapping[str, Sequence[str]]) -> float:
    """The longest sum of durations along a dependency chain (actions without dependencies between them
    run in parallel). Templates are checked acyclic at load; an unknown dependency counts 0."""
    finish: dict[str, float] = {}

    def finish_of(key: str, seen: frozenset[str]) -> float:
        if key in finish:
            return finish[key]
        if key in seen or key not in durations:
            return 0.0
        before = max((finish_of(d, seen | {key}) for d in depends_on.get(key, ())), default=0.0)
        finish[key] = before + durations[key]
        return finish[key]

    return max((finish_of(key, frozenset()) for key in durations), default=0.0)


def business_impact(criticality: str, group_size: int, quiet: bool) -> BusinessImpact:
    """From the asset's criticality and the size of the event's correlation group (docs/response.md):

    ============  =======  ========  ========
    criticality   alone    2-9       10 or more
    ============  =======  ========  ========
    low           none     low       medium
    medium        low      medium    high
    high          medium   high      critical
    critical      high     critical  critical
    ============  =======  ========  ========

    A lone symptom is one level below its asset's criticality, a large group one above; `quiet` (the
    event is resolved or suppressed) is ``none``. An unknown criticality counts as medium.
    """
    if quiet:
        return "none"
    index = _CRITICALITY_INDEX.get(criticality, 2)
    if group_size < GROUP_WIDE:
        index -= 1
    elif group_size >= GROUP_LARGE:
        index += 1
    return IMPACTS[max(0, min(index, len(IMPACTS) - 1))]
