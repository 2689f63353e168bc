"""The score formula: ``event.score`` 0-100 as a sum of explained contributions (docs/scoring.md).

Each factor has a weight (``scoring.weights``) and a level between 0 and 1 taken from the event::

    contribution(f) = round(weight(f) * level(f), 1)
    score           = min(100, round(sum of the contributions))      (weights and levels are >= 0)

- severity:       ``scoring.levels.severity[event.severity]``
- criticality:    ``scoring.levels.criticality[metadata.asset.criticality]``
- environment:    ``scoring.levels.environment[metadata.asset.environment]`` (an unlisted name: 0)
- correlation:    ``log(group_size) / log(full_at)``, at most 1, from ``metadata.correlation.group_size``
- repetition:     ``log(1 + n) / log(1 + full_at)``, at most 1, n = earlier arrivals of the fingerprint
- business_hours: ``scoring.levels.business_hours.inside`` / ``.outside`` from
  ``metadata.asset.in_business_hours``

An input that is absent (no ``metadata.asset``: the event matched no inventory entry or ``enrich`` did not
run; no ``metadata.correlation``; a calendar-less asset) gives level 0 and is named in ``missing``, so a
low score can be told apart from an unknown one. The logarithms make the first repetitions and the first
correlated events count most: the tenth repetition of an alert says less than the second.
"""

from __future__ import annotations

import math
from typing import Any, Final

from opsresponder.config import ScoringConfig
from opsresponder.core.event import Event
from opsresponder.core.severity import Severity

FACTORS: Final = ("severity", "criticality", "environment", "correlation", "repetition", "business_hours")
"""Every factor, in the order of ``metadata.score_factors`` and of the trace's explanation."""
MAX_SCORE: Final = 100


class Scored:
    """One event's score: the clamped score, each factor's contribution, the inputs that were missing, and
    the sentence the trace shows."""

    __slots__ = ("factors", "labels", "missing", "score", "total")

    def __init__(
        self, score: int, total: float, factors: dict[str, float], missing: list[str], labels: dict[str, str]
    ) -> None:
        self.score = score
        self.total = total
        """The sum of the contributions (one decimal) before rounding and clamping."""
        self.factors = factors
        self.missing = missing
        self.labels = labels
        """Per factor whose input was present, the value it was read from (``high``, ``4 events``)."""

    def explain(self) -> str:
        """``score 73: severity high +30, criticality critical +25, ...; missing: business_hours``."""
        labels = self.labels
        parts = [
            f"{name} {labels[name]} +{value:g}" for name, value in self.factors.items() if name in labels
        ]
        head = f"score {self.score}"
        if self.total > MAX_SCORE:
            head += f" (sum {self.total:g}, clamped)"
        text = f"{head}: {', '.join(parts)}"
        if self.missing:
            text += f"; missing: {', '.join(self.missing)}"
        return text


class ScoreModel:
    """`ScoringConfig` made ready for scoring many events: plain dicts and floats, logarithms taken once."""

    __slots__ = (
        "_business",
        "_correlation_log",
        "_criticality",
        "_environment",
        "_repetition_log",
        "_severity",
        "_w",
    )

    def __init__(self, config: ScoringConfig) -> None:
        w = config.weights
        self._w = (w.severity, w.criticality, w.environment, w.correlation, w.repetition, w.business_hours)
        levels = config.levels
        severity: dict[str, float] = {str(name): level for name, level in levels.severity.items()}
        self._severity = {s: severity.get(s.value, 0.0) for s in Severity}
        self._criticality = {str(name): level for name, level in levels.criticality.items()}
        self._environment = dict(levels.environment)
        self._business = (levels.business_hours.outside, levels.business_hours.inside)
        self._correlation_log = math.log(config.correlation.full_at)
        self._repetition_log = math.log1p(config.repetition.full_at)

    def score(self, event: Event, earlier: int) -> Scored:
        """Score `event`, seen `earlier` times before (its fingerprint's earlier arrivals).

        Never raises: an input of the wrong type (a sender's own ``metadata.asset``) counts as missing.
        """
        w_sev, w_crit, w_env, w_corr, w_rep, w_bh = self._w
        labels: dict[str, str] = {"severity": event.severity.value}
        missing: list[str] = []
        sev = round(w_sev * self._severity[event.severity], 1)
        crit = env = corr = bh = 0.0

        asset: Any = event.metadata.get("asset")
        if not isinstance(asset, dict):
            asset = None
            missing += ("criticality", "environment")
        else:
            criticality = asset.get("criticality")
            if isinstance(criticality, str):
                crit = round(w_crit * self._criticality.get(criticality, 0.0), 1)
                labels["criticality"] = criticality
            else:
                missing.append("criticality")
            environment = asset.get("environment")
            if isinstance(environment, str):
                env = round(w_env * self._environment.get(environment, 0.0), 1)
                labels["environment"] = environment
            else:
                missing.append("environment")

        correlation: Any = event.metadata.get("correlation")
        size = correlation.get("group_size") if isinstance(correlation, dict) else None
        if isinstance(size, int) and not isinstance(size, bool) and size >= 1:
            corr = round(w_corr * min(1.0, math.log(size) / self._correlation_log), 1)
            labels["correlation"] = f"{size} events"
        else:
            missing.append("correlation")

        repeats = max(earlier, event.duplicate_count)
        rep = round(w_rep * min(1.0, math.log1p(repeats) / self._repetition_log), 1)
        labels["repetition"] = f"{repeats} earlier"

        inside = asset.get("in_business_hours") if asset is not None else None
        if isinstance(inside, bool):
            bh = round(w_bh * self._business[inside], 1)
            labels["business_hours"] = "inside" if inside else "outside"
        else:
            missing.append("business_hours")

        factors = {
            "severity": sev,
            "criticality": crit,
            "environment": env,
            "correlation": corr,
            "repetition": rep,
            "business_hours": bh,
        }
        # Rounded again: a sum of one-decimal floats can land a hair below a .5 and round the wrong way.
        total = round(sev + crit + env + corr + rep + bh, 1)
        score = min(MAX_SCORE, math.floor(total + 0.5))
        return Scored(score, total, factors, missing, labels)
