"""Analysis (``POST /api/v1/autonomous/analyze``): which playbook applies to an event, how risky each of
its actions is in the event's context, what history says about them, and what to do: a stored decision
(`Analyzer.analyze`) and the spec's answer made from it (`decision_answer`). docs/response.md "Analysis
and risk"."""

from __future__ import annotations

from opsresponder.response.analysis.analyzer import Analyzer, EventNotFound
from opsresponder.response.analysis.answer import decision_answer
from opsresponder.response.analysis.request import (
    AnalysisContext,
    AnalysisOptions,
    AnalyzeRequest,
    UserPreferences,
)

__all__ = [
    "AnalysisContext",
    "AnalysisOptions",
    "AnalyzeRequest",
    "Analyzer",
    "EventNotFound",
    "UserPreferences",
    "decision_answer",
]
