"""Decisions (``autonomous.decisions``): what an analysis concluded about one event, with every input it
used, so it can be audited, executed and learned from. The repository arrives with the analysis."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from opsresponder.rules.templates.model import RiskLevel


class DecisionAction(msgspec.Struct, kw_only=True):
    """One recommended action of a decision, resolved: what the executor runs when it is chosen.

    Attributes:
        action_id: the spec's integer ``action_id``, unique across all decisions.
        key: the template action's id (``diagnostic_cpu``): how ``depends_on``, criteria and rollback
            conditions name it.
        name, description: for people.
        action_type: the template action's type (diagnostic, remediation, verification, notification,
            escalation).
        script: the catalog script's name; None for notification and escalation actions.
        parameters: the resolved values (template variables substituted), still to be type-checked by the
            runner against the script's declared parameters.
        channels, message_template: a notification action's channels and message template name.
        depends_on: keys of actions that must have completed first.
        required: its failure fails the execution; an optional action's failure is logged and skipped over.
        timeout_seconds: the smaller of the action's ``timeout_minutes`` and the script's timeout.
        risk_level, risk_score: the risk matrix's verdict for this action in this decision's context.
        approval_required: the score is over the threshold, or the action or its script demands it.
        rollback_script: the catalog script that undoes it (the script's ``rollback``), or None.
        estimated_duration_minutes, success_probability: from recorded outcomes, or the prior.
    """

    action_id: int
    key: str
    name: str
    description: str = ""
    action_type: str
    script: str | None = None
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    channels: list[str] = msgspec.field(default_factory=list)
    message_template: str | None = None
    depends_on: list[str] = msgspec.field(default_factory=list)
    required: bool = False
    timeout_seconds: float
    risk_level: RiskLevel
    risk_score: float
    approval_required: bool
    rollback_script: str | None = None
    estimated_duration_minutes: float
    success_probability: float


class StoredDecision(msgspec.Struct, kw_only=True):
    """A decision as stored.

    Attributes:
        decision_id: the spec's ``decision_id``.
        event_id, target, fingerprint, pattern_id: the event decided about, its host, fingerprint and
            message template id (``metadata.pattern.id``), what outcomes are grouped by.
        requested_by: the token name that asked (or ``rules`` for the automatic loop).
        template_id, template_version: the response template the actions came from, or None when no
            template applied (then there are no actions).
        variables: the template variables' values the parameters and criteria were resolved with.
        inputs: every input the analysis used (context as given and as resolved: criticality and where
            it came from, business hours, maintenance window, group size, history counts).
        analysis: the spec's ``analysis_result`` as answered.
        recommended_actions: resolved actions, in the template's order.
        approval: the spec's ``approval_requirements`` as answered.
    """

    decision_id: int
    event_id: int
    created_at: datetime
    requested_by: str
    target: str | None = None
    fingerprint: str | None = None
    pattern_id: str | None = None
    template_id: str | None = None
    template_version: str | None = None
    variables: dict[str, Any] = msgspec.field(default_factory=dict)
    inputs: dict[str, Any] = msgspec.field(default_factory=dict)
    analysis: dict[str, Any] = msgspec.field(default_factory=dict)
    recommended_actions: list[DecisionAction] = msgspec.field(default_factory=list)
    approval: dict[str, Any] = msgspec.field(default_factory=dict)
