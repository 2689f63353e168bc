"""The score's sentence in a trace: ``score 73: severity high +30, criticality critical +25, ...``.

Written when a trace is read, not when the event is scored: everything it says is stored on the event row
(``score``, ``severity``, ``metadata.score_factors``, ``metadata.score_missing``, the asset's criticality,
environment and calendar, ``metadata.correlation.group_size``) except the count of earlier arrivals, which
is all the score stage's trace entry holds (`compact_entry`). Building the sentence per event was most of
the stage's cost, and nobody reads the trace of most events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from opsresponder.core.event import Event

MAX_SCORE: Final = 100
FACTORS: Final = ("severity", "criticality", "environment", "correlation", "repetition", "business_hours")
"""Every factor, in the order of ``metadata.score_factors`` and of the trace's explanation."""
# The stored entries of the common counts, made once (an entry is the decimal count and nothing else).
COUNT_ENTRIES: Final = tuple(str(n) for n in range(1024))


def compact_entry(repeats: int) -> str:
    """The score stage's stored trace entry: the earlier arrivals counted (``"3"``)."""
    return COUNT_ENTRIES[repeats] if repeats < len(COUNT_ENTRIES) else str(repeats)


def sentence(
    score: int,
    total: float,
    factors: Mapping[str, float],
    missing: list[str],
    inputs: tuple[str, str | None, str | None, int | None, int, bool | None],
) -> str:
    """The sentence of one score: `inputs` are the values read (severity, criticality, environment, group
    size, earlier arrivals, inside business hours), None where missing."""
    severity, criticality, environment, group_size, repeats, inside = inputs
    f = factors
    parts = [f"severity {severity} +{f['severity']:g}"]
    if criticality is not None:
        parts.append(f"criticality {criticality} +{f['criticality']:g}")
    if environment is not None:
        parts.append(f"environment {environment} +{f['environment']:g}")
    if group_size is not None:
        events = "event" if group_size == 1 else "events"
        parts.append(f"correlation {group_size} {events} +{f['correlation']:g}")
    parts.append(f"repetition {repeats} earlier +{f['repetition']:g}")
    if inside is not None:
        parts.append(f"business_hours {'inside' if inside else 'outside'} +{f['business_hours']:g}")
    head = f"score {score}"
    if total > MAX_SCORE:
        head += f" (sum {total:g}, clamped)"
    text = f"{head}: {', '.join(parts)}"
    if missing:
        text += f"; missing: {', '.join(missing)}"
    return text


def stored_sentence(event: Event, entry: str) -> str:
    """The sentence for a stored `event` whose score entry is `entry`.

    An entry that is not a count (a sentence stored before entries became compact) is returned as it is,
    and so is one whose event lacks what the sentence needs (``score_factors`` edited away).
    """
    if not entry.isdigit():
        return entry
    metadata = event.metadata
    factors: Any = metadata.get("score_factors")
    if event.score is None or not isinstance(factors, dict):
        return entry
    values: dict[str, float] = {}
    for name in FACTORS:
        value = factors.get(name)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return entry
        values[name] = float(value)
    missing_value: Any = metadata.get("score_missing")
    missing = [m for m in missing_value if isinstance(m, str)] if isinstance(missing_value, list) else []
    asset: Any = metadata.get("asset")
    criticality = environment = inside = None
    if isinstance(asset, dict) and "criticality" not in missing:
        criticality = asset.get("criticality")
    if isinstance(asset, dict) and "environment" not in missing:
        environment = asset.get("environment")
    if isinstance(asset, dict) and "business_hours" not in missing:
        inside = asset.get("in_business_hours")
    group_size = None
    correlation: Any = metadata.get("correlation")
    if isinstance(correlation, dict) and "correlation" not in missing:
        group_size = correlation.get("group_size")
    # The same sum as the model's, in the same order.
    total = round(sum(values[name] for name in FACTORS), 1)
    inputs = (
        event.severity.value,
        criticality if isinstance(criticality, str) else None,
        environment if isinstance(environment, str) else None,
        group_size if isinstance(group_size, int) and not isinstance(group_size, bool) else None,
        int(entry),
        inside if isinstance(inside, bool) else None,
    )
    return sentence(int(event.score), total, values, missing, inputs)
