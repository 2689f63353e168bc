"""Request Autonomous Analysis: ``POST /api/v1/autonomous/analyze`` (port 3011, scope ``execute``).

The body is the spec's (event id, context, analysis options), decoded into the analysis's own
`AnalyzeRequest`: malformed JSON is 400, anything else wrong 422 naming the field. An unknown event is
404. The answer is the spec's, built by `decision_answer` from the stored decision, whose ``decision_id``
``POST /api/v1/autonomous/execute`` then runs. docs/response.md "The API".
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec
from litestar import Request, post
from litestar.exceptions import NotFoundException, ServiceUnavailableException
from litestar.response.base import ASGIResponse

from opsresponder.api.auth import principal_of, scope_opt
from opsresponder.api.common import json_response
from opsresponder.api.context import AutonomousApiContext, context_of
from opsresponder.api.json_body import MALFORMED_JSON, BodyError, decode_json_body, refuse
from opsresponder.api.openapi import Answer, documented, error
from opsresponder.response.analysis import Analyzer, AnalyzeRequest, EventNotFound, decision_answer

DISABLED: Final = "the autonomous response side is disabled in this process (response.enabled: false)"
UNAVAILABLE: Final = error(
    "The autonomous response side is disabled (``response.enabled: false``), or PostgreSQL is "
    "unavailable (with ``Retry-After``).",
    {"Retry-After": "Seconds to wait before trying again (PostgreSQL unavailable)."},
)

RiskLevel = Literal["low", "medium", "high", "critical"]


class AnalysisResult(msgspec.Struct, kw_only=True):
    """The spec's ``analysis_result``: what to do, how sure, how risky, and why (``reasoning`` names the
    factors that decided). ``include_risk_assessment: false`` leaves out ``risk_level``,
    ``include_impact_analysis: false`` ``business_impact`` and ``estimated_resolution_time_minutes``."""

    recommended_action: Literal["investigate", "remediate", "escalate", "ignore"]
    confidence_score: float
    risk_level: RiskLevel | msgspec.UnsetType = msgspec.UNSET
    business_impact: Literal["none", "low", "medium", "high", "critical"] | msgspec.UnsetType = msgspec.UNSET
    reasoning: str
    estimated_resolution_time_minutes: float | msgspec.UnsetType = msgspec.UNSET


class RecommendedAction(msgspec.Struct, kw_only=True):
    """One action of the decision; its ``action_id`` is what ``execute``'s ``action_ids`` names
    (``risk_level`` left out with ``include_risk_assessment: false``)."""

    action_id: int
    action_type: str
    action_name: str
    description: str
    risk_level: RiskLevel | msgspec.UnsetType = msgspec.UNSET
    approval_required: bool
    estimated_duration_minutes: float
    success_probability: float


class ApprovalRequirements(msgspec.Struct, kw_only=True):
    """Whether running the actions needs a person's approval, and why (``approvers``: who may give it).
    An execution that needs one waits as ``pending_approval`` until a listed approver approves it
    (``POST /api/v1/autonomous/executions/{id}/approve``)."""

    required: bool
    reason: str
    approvers: list[str]


class AnalyzeAnswer(msgspec.Struct, kw_only=True):
    """``POST /api/v1/autonomous/analyze`` (service-spec.md "Request Autonomous Analysis");
    ``recommended_actions`` is left out with ``include_recommendations: false``."""

    decision_id: int
    analysis_result: AnalysisResult
    recommended_actions: list[RecommendedAction] | msgspec.UnsetType = msgspec.UNSET
    approval_requirements: ApprovalRequirements


_EXAMPLE: Final = {
    "event_id": 12345,
    "context": {
        "business_hours": True,
        "maintenance_window": False,
        "system_criticality": "high",
        "user_preferences": {"auto_approve_low_risk": True, "notification_channels": ["email", "slack"]},
    },
    "analysis_options": {
        "include_recommendations": True,
        "include_risk_assessment": True,
        "include_impact_analysis": True,
    },
}
"""The spec's example body (service-spec.md)."""


@post(
    "/api/v1/autonomous/analyze",
    opt={
        **scope_opt("execute"),
        **documented(
            body=AnalyzeRequest,
            body_description=(
                "The event to decide about; ``context`` overrides what the asset inventory and the clock "
                "say (criticality, business hours, maintenance window)."
            ),
            body_example=_EXAMPLE,
            answers={
                200: Answer("The decision, stored under ``decision_id``.", AnalyzeAnswer),
                400: MALFORMED_JSON,
                404: error("No event has this ``event_id``."),
                422: error("The body is not valid: ``field`` names the wrong field."),
                503: UNAVAILABLE,
            },
        ),
    },
    summary="Decide what to do about an event, and how risky it is",
    status_code=200,
)
async def analyze(request: Request[Any, Any, Any]) -> ASGIResponse:
    analyzer = _analyzer(request)
    try:
        body = decode_json_body(await request.body(), AnalyzeRequest)
    except BodyError as e:
        return refuse(e)
    try:
        decision = await analyzer.analyze(body, requested_by=principal_of(request).name)
    except EventNotFound as e:
        raise NotFoundException(str(e)) from e
    return json_response(decision_answer(decision, body.analysis_options))


def _analyzer(request: Request[Any, Any, Any]) -> Analyzer:
    analyzer = context_of(request, AutonomousApiContext).analyzer
    if analyzer is None:
        raise ServiceUnavailableException(DISABLED)
    return analyzer


ANALYSIS_HANDLERS: Final = (analyze,)
"""The route handlers to add to the autonomous app (port 3011)."""
