"""The risk matrix (service-spec.md "Risk Assessment Matrix"): a score from four context factors, the
approval rule, and the level a score stands for (docs/response.md "Analysis and risk").

Sums are exact: every matrix value is read as the fraction its decimal text states (``0.1`` is 1/10, not
the binary float nearest to it), added as fractions, capped at 1 and only then turned into a float. So
diagnostic (0.1) + business hours (0.2) is exactly 0.3, which is not over the 0.3 threshold, where float
addition would give 0.30000000000000004 and demand an approval the spec does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Final

import msgspec

from opsresponder.config import RiskConfig
from opsresponder.rules.templates.model import RiskLevel

RISK_LEVELS: Final[tuple[RiskLevel, ...]] = ("low", "medium", "high", "critical")

# The level a score stands for: the first whose upper bound (inclusive) the score does not exceed. Low ends
# at the approval threshold of the spec (0.3: "approval required for medium+ risk"); the rest split the
# remaining range in even steps of 0.2.
LEVEL_BOUNDS: Final[tuple[tuple[Fraction, RiskLevel], ...]] = (
    (Fraction(3, 10), "low"),
    (Fraction(5, 10), "medium"),
    (Fraction(7, 10), "high"),
)
_ONE: Final = Fraction(1)


class RiskAssessment(msgspec.Struct, frozen=True, kw_only=True):
    """The matrix's verdict for one action in one context.

    Attributes:
        score: the capped sum, in [0, 1].
        level: `level_of(score)`.
        factors: each factor's contribution (``system_criticality``, ``action_type``, ``business_hours``,
            ``maintenance_window``), an unknown value contributing 0.0.
    """

    score: float
    level: RiskLevel
    factors: dict[str, float]


def exact(value: float) -> Fraction:
    """The fraction `value`'s shortest decimal text states (0.1 -> 1/10)."""
    return Fraction(repr(value))


def level_of(score: float) -> RiskLevel:
    """``low`` up to 0.3, ``medium`` up to 0.5, ``high`` up to 0.7, ``critical`` above (bounds included)."""
    value = exact(score)
    for bound, level in LEVEL_BOUNDS:
        if value <= bound:
            return level
    return "critical"


def higher(*levels: RiskLevel | None) -> RiskLevel:
    """The highest of `levels` (None ignored; ``low`` when none)."""
    return max((lvl for lvl in levels if lvl is not None), key=RISK_LEVELS.index, default="low")


class RiskMatrix:
    """`score` sums the configured matrix values for a context; `requires_approval` applies the threshold.

    A value the matrix does not list (an unknown criticality or action type) contributes 0.0, as the spec's
    ``.get(value, 0.0)`` does.
    """

    def __init__(self, config: RiskConfig) -> None:
        self.config = config
        self._criticality = _exact_map(config.system_criticality)
        self._action_type = _exact_map(config.action_type)
        self._business_hours = exact(config.business_hours)
        self._outside_maintenance = exact(config.outside_maintenance)
        self._threshold = exact(config.approval_threshold)

    def score(
        self, criticality: str, action_type: str, business_hours: bool, in_maintenance: bool
    ) -> RiskAssessment:
        parts = {
            "system_criticality": self._criticality.get(criticality, Fraction(0)),
            "action_type": self._action_type.get(action_type, Fraction(0)),
            "business_hours": self._business_hours if business_hours else Fraction(0),
            "maintenance_window": Fraction(0) if in_maintenance else self._outside_maintenance,
        }
        # Capped at 1 as the spec does; a negative configured value cannot take the score below 0 either.
        total = max(min(sum(parts.values(), Fraction(0)), _ONE), Fraction(0))
        score = float(total)
        return RiskAssessment(
            score=score, level=level_of(score), factors={k: float(v) for k, v in parts.items()}
        )

    def requires_approval(self, score: float) -> bool:
        """Strictly over the threshold: a score of exactly 0.3 needs no approval."""
        return exact(score) > self._threshold


def _exact_map(values: Mapping[str, float]) -> dict[str, Fraction]:
    return {key: exact(value) for key, value in values.items()}
