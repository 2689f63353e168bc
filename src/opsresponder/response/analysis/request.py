"""The body of ``POST /api/v1/autonomous/analyze`` (service-spec.md "Request Autonomous Analysis").

Every field but ``event_id`` may be left out; an unknown field is refused, so a misspelt option is an
error instead of a silently ignored wish.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Criticality = Literal["critical", "high", "medium", "low"]


class UserPreferences(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``auto_approve_low_risk``: false asks for a person's approval of every script action, also those
    the matrix scores as low risk (None and true: the matrix and the flags decide).
    ``notification_channels``: recorded with the decision for the execution's notifications."""

    auto_approve_low_risk: bool | None = None
    notification_channels: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1, max_length=64)]], msgspec.Meta(max_length=16)
    ] = msgspec.field(default_factory=list)


class AnalysisContext(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What the caller knows better than the inventory; each left out is resolved from the event's asset,
    then a default (docs/response.md "Context resolution")."""

    business_hours: bool | None = None
    maintenance_window: bool | None = None
    system_criticality: Criticality | None = None
    user_preferences: UserPreferences = msgspec.field(default_factory=UserPreferences)


class AnalysisOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which sections the answer carries (`answer.decision_answer`); the decision stored is always whole."""

    include_recommendations: bool = True
    include_risk_assessment: bool = True
    include_impact_analysis: bool = True


class AnalyzeRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    event_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
    context: AnalysisContext = msgspec.field(default_factory=AnalysisContext)
    analysis_options: AnalysisOptions = msgspec.field(default_factory=AnalysisOptions)
