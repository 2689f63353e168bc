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
from opsresponder.pipeline.scoring.explain import MAX_SCORE, sentence

Inputs = tuple[str, str | None, str | None, int | None, int, bool | None]
"""The values a score was read from: severity, criticality, environment, group size, earlier arrivals,
inside business hours (None where missing)."""
Assessment = tuple[int, float, dict[str, float], list[str], Inputs]
"""(score, total, factors, missing, inputs): `ScoreModel.assess`."""


class Scored:
    """One event's score: the clamped score, each factor's contribution, the inputs that were missing, and
    the values the factors were read from (for `explain`)."""

    __slots__ = (
        "criticality",
        "environment",
        "factors",
        "group_size",
        "inside",
        "missing",
        "repeats",
        "score",
        "severity",
        "total",
    )

    def __init__(
        self,
        score: int,
        total: float,
        factors: dict[str, float],
        missing: list[str],
        inputs: Inputs,
    ) -> None:
        self.score = score
        self.total = total
        """The sum of the contributions (one decimal) before rounding and clamping."""
        self.factors = factors
        self.missing = missing
        # The values read, None where missing; formatted only when a trace asks.
        self.severity, self.criticality, self.environment, self.group_size, self.repeats, self.inside = inputs

    @property
    def inputs(self) -> Inputs:
        """The values read: with the model, they decide the whole result."""
        return (self.severity, self.criticality, self.environment, self.group_size, self.repeats, self.inside)

    def explain(self) -> str:
        """``score 73: severity high +30, criticality critical +25, ...; missing: business_hours``."""
        return sentence(self.score, self.total, self.factors, self.missing, self.inputs)


class ScoreModel:
    """`ScoringConfig` made ready for scoring many events: every contribution a table gives is computed
    once, as are those of the counts below saturation, so scoring an event is lookups and one sum."""

    __slots__ = ("_business", "_correlation", "_criticality", "_environment", "_repetition", "_severity")

    def __init__(self, config: ScoringConfig) -> None:
        w = config.weights
        levels = config.levels
        severity: dict[str, float] = {str(name): level for name, level in levels.severity.items()}
        self._severity = {s: _contribution(w.severity, severity.get(s.value, 0.0)) for s in Severity}
        self._criticality = {
            str(name): _contribution(w.criticality, level) for name, level in levels.criticality.items()
        }
        self._environment = {
            name: _contribution(w.environment, level) for name, level in levels.environment.items()
        }
        bh = levels.business_hours
        self._business = (
            _contribution(w.business_hours, bh.outside),
            _contribution(w.business_hours, bh.inside),
        )
        # Index n: the contribution of a group of n events / of n earlier arrivals, up to saturation.
        full = config.correlation.full_at
        self._correlation = [0.0] + [
            _contribution(w.correlation, math.log(n) / math.log(full)) for n in range(1, full + 1)
        ]
        full = config.repetition.full_at
        self._repetition = [
            _contribution(w.repetition, math.log1p(n) / math.log1p(full)) for n in range(full + 1)
        ]

    def score(self, event: Event, earlier: int) -> Scored:
        """Score `event`, seen `earlier` times before (its fingerprint's earlier arrivals).

        Never raises: an input of the wrong type (a sender's own ``metadata.asset``) counts as missing.
        """
        score, total, factors, missing, inputs = self.assess(event, earlier)
        return Scored(score, total, factors, missing, inputs)

    def assess(self, event: Event, earlier: int) -> Assessment:
        """What `score` returns, as a plain tuple (the stage's hot path: no object per event);
        ``inputs[4]`` is the count of earlier arrivals the trace keeps."""
        missing: list[str] = []
        sev = self._severity[event.severity]
        crit = env = corr = bh = 0.0
        criticality = environment = None
        size: Any = None
        inside: Any = None

        metadata = event.metadata
        asset: Any = metadata.get("asset")
        if type(asset) is dict:
            criticality = asset.get("criticality")
            if type(criticality) is str:
                crit = self._criticality.get(criticality, 0.0)
            else:
                criticality = None
                missing.append("criticality")
            environment = asset.get("environment")
            if type(environment) is str:
                env = self._environment.get(environment, 0.0)
            else:
                environment = None
                missing.append("environment")
        else:
            missing += ("criticality", "environment")

        correlation: Any = metadata.get("correlation")
        if type(correlation) is dict:
            size = correlation.get("group_size")
        if type(size) is int and size >= 1:
            table = self._correlation
            corr = table[size] if size < len(table) else table[-1]
        else:
            size = None
            missing.append("correlation")

        repeats = event.duplicate_count
        if earlier > repeats:
            repeats = earlier
        table = self._repetition
        rep = table[repeats] if repeats < len(table) else table[-1]

        if type(asset) is dict:
            inside = asset.get("in_business_hours")
        if type(inside) is bool:
            bh = self._business[inside]
        else:
            inside = None
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
        # round(total, 1) without its decimal conversion when no tie is near: n / 10 is then the same
        # float (both are the double nearest to n tenths).
        total = sev + crit + env + corr + rep + bh
        t = total * 10.0 + 0.5
        n = int(t)
        t -= n
        total = n / 10.0 if _NOT_NEAR < t < _FAR else round(total, 1)
        score = math.floor(total + 0.5)
        if score > MAX_SCORE:
            score = MAX_SCORE
        return (
            score,
            total,
            factors,
            missing,
            (event.severity, criticality, environment, size, repeats, inside),
        )


# How far from a rounding tie (in tenths) a sum must be for ``int(x + 0.5)`` to round as ``round`` does
# (it rounds the exact binary value, half to even); nearer, `round` itself decides.
_NOT_NEAR: Final = 1e-6
_FAR: Final = 1.0 - _NOT_NEAR


def _contribution(weight: float, level: float) -> float:
    return round(weight * level, 1)
