"""`Analyzer`: one event in, one stored decision out (service-spec.md "Request Autonomous Analysis").

It reads top to bottom: the event, the rules that fired for it and the templates that apply, the risk
context, the history of the chosen template's actions; then each action's risk, approval and estimates,
the recommendation and its reasons; then everything, inputs included, is stored as one decision.
docs/response.md "Analysis and risk" has every rule and formula used here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal, Protocol

import msgspec

from opsresponder.config import AnalysisConfig
from opsresponder.core.clock import Clock, utcnow
from opsresponder.core.errors import OpsResponderError
from opsresponder.core.event import Event, EventState
from opsresponder.core.severity import Severity
from opsresponder.pipeline.noise.matcher import CompiledSilence, SilenceSpecError, compile_silence
from opsresponder.response.analysis.context import ResolvedContext, resolve_context
from opsresponder.response.analysis.estimates import (
    backing,
    business_impact,
    confidence,
    critical_path_minutes,
    success_probability,
)
from opsresponder.response.analysis.request import AnalyzeRequest
from opsresponder.response.analysis.templates import (
    ResolvedAction,
    ResolvedTemplate,
    Unresolvable,
    candidates,
    resolve,
)
from opsresponder.response.risk import RiskAssessment, RiskMatrix, higher
from opsresponder.rules.templates import ScriptCatalog
from opsresponder.store.correlations import CorrelationRepository
from opsresponder.store.decisions import DecisionAction, DecisionRepository, StoredDecision
from opsresponder.store.events import EventRepository
from opsresponder.store.firings import FiringRepository
from opsresponder.store.outcomes import OutcomeRepository, OutcomeStats
from opsresponder.store.response_templates import ResponseTemplateRepository
from opsresponder.store.silences import SilenceRepository

RecommendedAction = Literal["investigate", "remediate", "escalate", "ignore"]

ESCALATE_BELOW: Final = 0.5
"""A required action whose success probability is below this: a person should take over (the prior is
0.8, so only recorded failures get an action there)."""
NOTIFICATION_TIMEOUT_SECONDS: Final = 60.0
"""A notification or escalation action without ``timeout_minutes``: what sending may take at most."""
NO_TEMPLATE_CONFIDENCE: Final = 0.5
"""A recommendation made from the severity alone: as likely right as not."""
QUIET_CONFIDENCE: Final = 0.9
"""Ignoring a resolved or suppressed event: the event itself says nothing needs doing."""
# Script action types that do not change the target: a plan of only these investigates.
_LOOKING: Final = frozenset({"diagnostic", "notification"})


class ActionPolicies(Protocol):
    """Learning's demotions (response/learning/policies.py `PolicyBook`): the template actions among
    `action_keys` demoted to "approval required", each with the reason."""

    async def demotions(self, template_id: str, action_keys: Sequence[str]) -> dict[str, str]: ...


class EventNotFound(OpsResponderError):
    """No event has the requested id (404)."""

    def __init__(self, event_id: int) -> None:
        super().__init__(f"no event has id {event_id}")
        self.event_id = event_id


class _Planned(msgspec.Struct, kw_only=True):
    """One action with what was worked out for it, before the store gives it an id."""

    resolved: ResolvedAction
    matrix_type: str
    risk: RiskAssessment
    approval_reasons: list[str]
    stats: OutcomeStats
    action: DecisionAction


class Analyzer:
    """Decides about one event and stores the decision.

    Args:
        silences: the maintenance windows; None: not consulted (the request's ``maintenance_window`` or
            the default then decides).
        policies: learning's demotions; a demoted action requires approval. None: not consulted.
    """

    def __init__(
        self,
        *,
        events: EventRepository,
        templates: ResponseTemplateRepository,
        firings: FiringRepository,
        correlations: CorrelationRepository,
        decisions: DecisionRepository,
        outcomes: OutcomeRepository,
        catalog: ScriptCatalog,
        risk: RiskMatrix,
        config: AnalysisConfig,
        clock: Clock = utcnow,
        silences: SilenceRepository | None = None,
        policies: ActionPolicies | None = None,
    ) -> None:
        self._events = events
        self._templates = templates
        self._firings = firings
        self._correlations = correlations
        self._decisions = decisions
        self._outcomes = outcomes
        self._catalog = catalog
        self._risk = risk
        self._config = config
        self._clock = clock
        self._silences = silences
        self._policies = policies

    async def analyze(
        self, request: AnalyzeRequest, *, requested_by: str, trusted_context: bool = False
    ) -> StoredDecision:
        """Analyze the event `request` names and store the decision. The request's context may only raise
        risk (`resolve_context`) unless `trusted_context` (the loop's, from the operator's configuration).

        Raises:
            EventNotFound: no event has ``request.event_id``.
            DatabaseUnavailableError: PostgreSQL cannot be reached; nothing was stored.
        """
        now = self._clock()
        event = await self._events.get(request.event_id)
        if event is None or event.id is None:
            raise EventNotFound(request.event_id)
        fired = await self._firings.rules_fired_for(event.id)
        found = candidates(await self._templates.list_current(), fired, event)
        context = resolve_context(
            request.context, event, now, await self._current_silences(now), trusted=trusted_context
        )
        group_size = await self._group_size(event.id)

        chosen: ResolvedTemplate | None = None
        alternatives: list[dict[str, Any]] = []
        for candidate in found:
            outcome = resolve(candidate, self._catalog) if chosen is None else None
            if isinstance(outcome, ResolvedTemplate):
                chosen = outcome
                continue
            entry = _template_entry(candidate.stored.key, candidate.stored.template.version, candidate.why)
            if isinstance(outcome, Unresolvable):
                entry["not_applicable"] = outcome.reason
            alternatives.append(entry)
        unusable = [a for a in alternatives if "not_applicable" in a]

        since = now - timedelta(days=self._config.history_days)
        stats: dict[str, OutcomeStats] = {}
        demoted: dict[str, str] = {}
        if chosen is not None:
            keys = [a.action.id for a in chosen.actions]
            stats = await self._outcomes.stats_for_template(
                chosen.candidate.template.id, keys, event.pattern_id, event.event_type, since
            )
            if self._policies is not None:
                demoted = await self._policies.demotions(chosen.candidate.template.id, keys)
        planned = (
            [
                self._plan(a, chosen, context, request, stats[a.action.id], demoted.get(a.action.id))
                for a in chosen.actions
            ]
            if chosen is not None
            else []
        )

        quiet = event.state is EventState.RESOLVED or event.suppressed_reason is not None
        recommended, why = _recommend(event, chosen, planned, quiet)
        probabilities = [p.action.success_probability for p in _required(planned)]
        backings = [backing(p.stats, self._config.prior_weight) for p in _required(planned)]
        if chosen is None:
            score = QUIET_CONFIDENCE if quiet else NO_TEMPLATE_CONFIDENCE
        else:
            score = confidence(probabilities, backings)
        approval = self._approval(planned)
        criticality = str(context.criticality.value)
        analysis = {
            "recommended_action": recommended,
            "confidence_score": score,
            "risk_level": higher(*(p.action.risk_level for p in planned)),
            "business_impact": business_impact(criticality, group_size, quiet),
            "reasoning": _reasoning(why, chosen, planned, context, unusable, approval),
            "estimated_resolution_time_minutes": math.ceil(
                round(
                    critical_path_minutes(
                        {p.action.key: p.action.estimated_duration_minutes for p in planned},
                        {p.action.key: p.action.depends_on for p in planned},
                    ),
                    6,
                )
            ),
        }
        inputs = {
            "event": {
                "id": event.id,
                "event_type": event.event_type,
                "severity": event.severity.value,
                "state": event.state.value,
                "host": event.host,
                "suppressed_reason": event.suppressed_reason,
                "correlation_id": str(event.correlation_id) if event.correlation_id else None,
            },
            "context": {"given": msgspec.to_builtins(request.context), **context.as_inputs()},
            "options": msgspec.to_builtins(request.analysis_options),
            "correlation_group_size": group_size,
            "fired_rules": fired,
            "template": (
                None
                if chosen is None
                else _template_entry(
                    chosen.candidate.stored.key, chosen.candidate.template.version, chosen.candidate.why
                )
            ),
            "alternatives": alternatives,
            "history": {
                "since": since.isoformat(),
                "actions": {key: msgspec.to_builtins(s) for key, s in stats.items()},
            },
            "risk": {
                p.action.key: {
                    "matrix_action_type": p.matrix_type,
                    "score": p.risk.score,
                    "matrix_level": p.risk.level,
                    "factors": p.risk.factors,
                    "script_level": p.resolved.script.risk_level if p.resolved.script else None,
                    "action_level": p.resolved.action.risk_level,
                    "approval_reasons": p.approval_reasons,
                }
                for p in planned
            },
            "config": {
                "approval_threshold": self._risk.config.approval_threshold,
                "prior_success_probability": self._config.prior_success_probability,
                "prior_weight": self._config.prior_weight,
                "history_days": self._config.history_days,
                "escalate_below": ESCALATE_BELOW,
            },
        }
        return await self._decisions.create(
            event_id=event.id,
            created_at=now,
            requested_by=requested_by,
            target=event.host,
            fingerprint=event.fingerprint or None,
            pattern_id=event.pattern_id,
            template_id=chosen.candidate.template.id if chosen else None,
            template_version=chosen.candidate.template.version if chosen else None,
            variables=chosen.variables if chosen else {},
            inputs=inputs,
            analysis=analysis,
            actions=[p.action for p in planned],
            approval=approval,
        )

    def _plan(
        self,
        resolved: ResolvedAction,
        chosen: ResolvedTemplate,
        context: ResolvedContext,
        request: AnalyzeRequest,
        stats: OutcomeStats,
        demotion: str | None = None,
    ) -> _Planned:
        action, script = resolved.action, resolved.script
        # Notification and escalation actions run no script: the matrix weighs them as notifications.
        matrix_type = script.action_type if script is not None else "notification"
        risk = self._risk.score(
            str(context.criticality.value),
            matrix_type,
            bool(context.business_hours.value),
            bool(context.maintenance_window.value),
        )
        # The catalog's and the template's levels are their authors' judgement of what the step can do
        # whatever the context; the matrix's is the context's. A step is as risky as the worst of them: a
        # script marked critical does not become low risk because it runs after hours.
        level = higher(risk.level, script.risk_level if script else None, action.risk_level)
        reasons: list[str] = []
        threshold = self._risk.config.approval_threshold
        if self._risk.requires_approval(risk.score):
            reasons.append(f"risk score {risk.score:g} is over {threshold:g}")
        if action.approval_required:
            reasons.append("the template action requires approval")
        if script is not None and script.approval_required:
            reasons.append(f"script {script.name} requires approval")
        if chosen.candidate.template.approval_required:
            reasons.append("the template requires approval")
        if script is not None and request.context.user_preferences.auto_approve_low_risk is False:
            reasons.append("the request does not auto-approve low-risk actions")
        if demotion is not None:
            reasons.append(f"learning demoted it to approval required ({demotion})")
        timeouts = [float(action.timeout_minutes * 60)] if action.timeout_minutes else []
        if script is not None:
            timeouts.append(script.timeout_seconds)
        timeout = min(timeouts) if timeouts else NOTIFICATION_TIMEOUT_SECONDS
        seconds = stats.p50_seconds if stats.p50_seconds is not None else timeout
        decided = DecisionAction(
            action_id=0,
            key=action.id,
            name=action.name,
            description=script.description if script is not None and script.description else "",
            action_type=action.type,
            script=script.name if script is not None else None,
            parameters=resolved.parameters,
            channels=list(action.channels),
            message_template=action.template,
            depends_on=list(action.depends_on),
            required=action.required,
            timeout_seconds=timeout,
            risk_level=level,
            risk_score=risk.score,
            approval_required=bool(reasons),
            rollback_script=script.rollback if script is not None else None,
            estimated_duration_minutes=round(seconds / 60, 2),
            success_probability=success_probability(
                stats, self._config.prior_success_probability, self._config.prior_weight
            ),
        )
        return _Planned(
            resolved=resolved,
            matrix_type=matrix_type,
            risk=risk,
            approval_reasons=reasons,
            stats=stats,
            action=decided,
        )

    def _approval(self, planned: Sequence[_Planned]) -> dict[str, Any]:
        needing = [p for p in planned if p.action.approval_required]
        threshold = self._risk.config.approval_threshold
        if not needing:
            top = max((p.risk.score for p in planned), default=0.0)
            reason = (
                f"Low risk actions within approved parameters (highest risk score {top:g}, not over "
                f"{threshold:g})."
                if planned
                else "No actions to approve."
            )
            return {"required": False, "reason": reason, "approvers": []}
        parts = [f"{p.action.key}: {', '.join(p.approval_reasons)}" for p in needing]
        return {
            "required": True,
            "reason": "Approval required (" + "; ".join(parts) + ").",
            "approvers": list(self._config.approvers),
        }

    async def _current_silences(self, now: datetime) -> list[CompiledSilence] | None:
        if self._silences is None:
            return None
        compiled: list[CompiledSilence] = []
        for silence in await self._silences.load_current(now):
            try:
                compiled.append(compile_silence(silence.id, silence))
            except SilenceSpecError:
                continue  # the noise stage logs an unusable silence; it mutes nothing, here neither
        return compiled

    async def _group_size(self, event_id: int) -> int:
        """The event and the events correlated with it (both directions), read through the indexes the
        correlations API uses; a group's members correlated only with each other are not counted."""
        rows = await self._correlations.rows_of([event_id])
        return 1 + len({r.other_event_id for r in rows if r.other_event_id != event_id})


def _required(planned: Sequence[_Planned]) -> list[_Planned]:
    """The actions whose failure fails the plan; a template marking none required: all of them."""
    required = [p for p in planned if p.action.required]
    return required or list(planned)


def _recommend(
    event: Event, chosen: ResolvedTemplate | None, planned: Sequence[_Planned], quiet: bool
) -> tuple[RecommendedAction, str]:
    """The recommended action and the sentence saying why (docs/response.md, in this order)."""
    if event.state is EventState.RESOLVED:
        return "ignore", "the event is a resolve"
    if event.suppressed_reason is not None:
        return "ignore", f"the event was suppressed ({event.suppressed_reason})"
    if chosen is None:
        if event.severity.rank >= Severity.HIGH.rank:
            return "escalate", f"no response template applies to this {event.severity.value} event"
        if event.severity is Severity.MEDIUM:
            return "investigate", "no response template applies to this medium event; a person should look"
        return "ignore", f"no response template applies and the severity is {event.severity.value}"
    weak = [p for p in _required(planned) if p.action.success_probability < ESCALATE_BELOW]
    if weak:
        names = ", ".join(f"{p.action.key} ({p.action.success_probability:.2f})" for p in weak)
        return "escalate", f"success probability below {ESCALATE_BELOW:g}: {names}"
    changing = [p for p in planned if p.matrix_type not in _LOOKING or p.action.action_type == "remediation"]
    if changing:
        waiting = sum(1 for p in changing if p.action.approval_required)
        state = f", {waiting} awaiting approval" if waiting else ", none needing approval"
        return "remediate", f"{len(changing)} remediation step{'s' if len(changing) > 1 else ''}{state}"
    return "investigate", "diagnostics only"


def _reasoning(
    why: str,
    chosen: ResolvedTemplate | None,
    planned: Sequence[_Planned],
    context: ResolvedContext,
    unusable: Sequence[dict[str, Any]],
    approval: dict[str, Any],
) -> str:
    """One or two sentences: what was decided and why, then the risk factors that weighed most."""
    skipped = "; ".join(f"template {u['id']} cannot apply: {u['not_applicable']}" for u in unusable)
    if chosen is None:
        first = f"No response template was used ({skipped})" if skipped else "No response template applies"
        return f"{first}; {why}."
    template = chosen.candidate.template
    first = f"Template {template.id} v{template.version} applies ({chosen.candidate.why}): {why}"
    if skipped:
        first += f" ({skipped})"
    top = max(planned, key=lambda p: p.risk.score)
    c, b, m = context.criticality, context.business_hours, context.maintenance_window
    second = (
        f"Highest risk {top.risk.score:g} ({top.action.key}, {top.matrix_type}) with {c.value} criticality "
        f"from {c.source}, {'business' if b.value else 'after'} hours from {b.source}, "
        f"{'inside' if m.value else 'outside'} maintenance from {m.source}; "
        f"{'approval required' if approval['required'] else 'no approval required'}."
    )
    return f"{first}. {second}"


def _template_entry(key: str, version: str, why: str) -> dict[str, Any]:
    return {"id": key, "version": version, "why": why}
