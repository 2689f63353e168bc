"""Rule evaluation's plain types: `RuleSpec` (one rule, compiled), `Firing`, `RuleSource`.

The engine that applies windows, thresholds, groups and limits over the state backend is the ``rules``
stage (``pipeline.rules``); it sits above ``state``, which this package may not import.
"""

from opsresponder.rules.evaluation.firing import FIRINGS, Firing, FiringKind, FiringSink
from opsresponder.rules.evaluation.source import CombinedRules, NoRules, RuleSource, StaticRules
from opsresponder.rules.evaluation.spec import AbsenceSpec, RuleSpec, RuleSpecError

__all__ = [
    "FIRINGS",
    "AbsenceSpec",
    "CombinedRules",
    "Firing",
    "FiringKind",
    "FiringSink",
    "NoRules",
    "RuleSource",
    "RuleSpec",
    "RuleSpecError",
    "StaticRules",
]
