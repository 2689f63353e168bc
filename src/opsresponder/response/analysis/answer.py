"""The answer of ``POST /api/v1/autonomous/analyze`` (service-spec.md "Request Autonomous Analysis"),
made from a stored decision.

The decision is stored whole; the options only shape the answer:
- ``include_recommendations: false`` leaves out ``recommended_actions``;
- ``include_risk_assessment: false`` leaves out ``analysis_result.risk_level`` and each action's
  ``risk_level`` (``approval_requirements`` stays: a client must know before executing);
- ``include_impact_analysis: false`` leaves out ``analysis_result.business_impact`` and
  ``estimated_resolution_time_minutes``.
"""

from __future__ import annotations

from typing import Any, Final

from opsresponder.response.analysis.request import AnalysisOptions
from opsresponder.store.decisions import DecisionAction, StoredDecision

_RESULT_FIELDS: Final = (
    "recommended_action",
    "confidence_score",
    "risk_level",
    "business_impact",
    "reasoning",
    "estimated_resolution_time_minutes",
)
# The spec's action_type is diagnostic|remediation|notification: a verification is a diagnostic (it only
# looks), an escalation a notification (it tells people).
_SPEC_ACTION_TYPES: Final = {"verification": "diagnostic", "escalation": "notification"}


def decision_answer(decision: StoredDecision, options: AnalysisOptions | None = None) -> dict[str, Any]:
    options = options or AnalysisOptions()
    dropped: set[str] = set()
    if not options.include_risk_assessment:
        dropped.add("risk_level")
    if not options.include_impact_analysis:
        dropped |= {"business_impact", "estimated_resolution_time_minutes"}
    answer: dict[str, Any] = {
        "decision_id": decision.decision_id,
        "analysis_result": {k: decision.analysis.get(k) for k in _RESULT_FIELDS if k not in dropped},
    }
    if options.include_recommendations:
        answer["recommended_actions"] = [
            _action(a, options.include_risk_assessment) for a in decision.recommended_actions
        ]
    answer["approval_requirements"] = {
        "required": bool(decision.approval.get("required", False)),
        "reason": decision.approval.get("reason", ""),
        "approvers": list(decision.approval.get("approvers", [])),
    }
    return answer


def _action(action: DecisionAction, with_risk: bool) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "action_id": action.action_id,
        "action_type": _SPEC_ACTION_TYPES.get(action.action_type, action.action_type),
        "action_name": action.name,
        "description": action.description,
        "risk_level": action.risk_level,
        "approval_required": action.approval_required,
        "estimated_duration_minutes": action.estimated_duration_minutes,
        "success_probability": action.success_probability,
    }
    if not with_risk:
        del shown["risk_level"]
    return shown
