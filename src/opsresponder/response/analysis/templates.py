"""Which response templates apply to an event, in which order, and each one resolved against its
variables and the script catalog (docs/response.md "Analysis and risk").

A template applies when it is linked to a rule that fired for the event (``trigger_rule_id``), or when
one of its ``triggers`` matches (its ``event_type``, when set, is the event's, and all its conditions
hold). Several may apply; they are tried in order and the first that resolves is chosen:
1. linked templates, in the order their rules first fired for the event: an operator tied that playbook to
   that rule on purpose, which says more than any pattern;
2. trigger-matched templates, the most specific first: the matching trigger with the most conditions,
   an ``event_type`` counting as one more; ties by template id, so the choice is stable.
The others are kept in the decision's inputs as alternatives, each with why it applies or not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from opsresponder.core.event import Event
from opsresponder.response.executor.plan import parameter_problem, substitute
from opsresponder.rules.expressions import EVENT_SCOPE, Expression, ExpressionError, event_activation
from opsresponder.rules.templates import ResponseTemplate, Script, ScriptCatalog
from opsresponder.rules.templates.model import SCRIPT_ACTION_TYPES, TemplateAction, TemplateTrigger
from opsresponder.store.response_templates import StoredTemplate


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """A template that applies to the event, and why."""

    stored: StoredTemplate
    linked_rule: int | None
    specificity: int
    why: str

    @property
    def template(self) -> ResponseTemplate:
        return self.stored.template


class ResolvedAction(msgspec.Struct, frozen=True, kw_only=True):
    action: TemplateAction
    script: Script | None
    parameters: dict[str, Any]


class ResolvedTemplate(msgspec.Struct, frozen=True, kw_only=True):
    candidate: Candidate
    variables: dict[str, Any]
    actions: list[ResolvedAction]


class Unresolvable(msgspec.Struct, frozen=True, kw_only=True):
    """A template that applies but cannot be used as it stands, and why (for the reasoning)."""

    candidate: Candidate
    reason: str


def candidates(
    templates: Sequence[StoredTemplate], fired_rules: Sequence[int], event: Event
) -> list[Candidate]:
    """The templates that apply to `event`, in the order they are tried (module docstring)."""
    rule_order = {rule: i for i, rule in enumerate(fired_rules)}
    activation = event_activation(event)
    linked: list[Candidate] = []
    matched: list[Candidate] = []
    for stored in templates:
        template = stored.template
        rule = template.trigger_rule_id
        if rule is not None and rule in rule_order:
            why = f"linked to trigger rule {rule}, which fired for this event"
            linked.append(Candidate(stored=stored, linked_rule=rule, specificity=0, why=why))
            continue
        best = _best_trigger(template, event, activation)
        if best is not None:
            specificity, why = best
            matched.append(Candidate(stored=stored, linked_rule=None, specificity=specificity, why=why))
    linked.sort(key=lambda c: (rule_order[c.linked_rule or 0], c.template.id))
    matched.sort(key=lambda c: (-c.specificity, c.template.id))
    return linked + matched


def _best_trigger(
    template: ResponseTemplate, event: Event, activation: Mapping[str, Any]
) -> tuple[int, str] | None:
    defaults = {v.name: v.default for v in template.variables if v.default is not None}
    best: tuple[int, str] | None = None
    for trigger in template.triggers:
        if not _matches(trigger, event, activation, defaults):
            continue
        specificity = len(trigger.conditions) + (trigger.event_type is not None)
        if best is None or specificity > best[0]:
            parts = [f"event_type {trigger.event_type}"] if trigger.event_type is not None else []
            if trigger.conditions:
                parts.append(" and ".join(trigger.conditions))
            best = (specificity, "its trigger matched: " + (", ".join(parts) or "any event"))
    return best


def _matches(
    trigger: TemplateTrigger, event: Event, activation: Mapping[str, Any], defaults: Mapping[str, Any]
) -> bool:
    if trigger.event_type is not None and trigger.event_type != event.event_type:
        return False
    for text in trigger.conditions:
        try:
            program = Expression.parse(text, EVENT_SCOPE, frozenset(defaults)).bind(defaults)
        except ExpressionError:
            # A condition naming a variable without a value cannot hold: the trigger does not match.
            return False
        if not program.evaluate(activation).value:
            return False
    return True


def resolve(candidate: Candidate, catalog: ScriptCatalog) -> ResolvedTemplate | Unresolvable:
    """The template's variables (their defaults) and its actions with scripts and parameters resolved;
    `Unresolvable` when a variable has no value, an action's script is not in the catalog, or its
    parameters do not fit the script (the executor's `parameter_problem`, so what analysis recommends
    the executor accepts). Parameters are substituted by the executor's `substitute` too."""
    template = candidate.template
    missing = [v.name for v in template.variables if v.default is None]
    if missing:
        names = ", ".join(missing)
        return Unresolvable(
            candidate=candidate,
            reason=f"variable{'s' if len(missing) > 1 else ''} {names} ha{'ve' if len(missing) > 1 else 's'} "
            "no default and no value",
        )
    variables = {v.name: v.default for v in template.variables}
    actions: list[ResolvedAction] = []
    for action in template.actions:
        script: Script | None = None
        if action.type in SCRIPT_ACTION_TYPES:
            script = _script(action, catalog)
            if script is None:
                named = action.automation_script or f"id {action.automation_script_id}"
                return Unresolvable(
                    candidate=candidate,
                    reason=f"action {action.id}'s script {named} is not in the catalog ({catalog.source})",
                )
        parameters = substitute(dict(action.parameters), variables)
        # The executor refuses a plan whose parameters do not fit the script (the runners' own check):
        # recommending it would promise what cannot run.
        problem = parameter_problem(script, parameters) if script is not None else None
        if problem is not None:
            return Unresolvable(candidate=candidate, reason=f"action {action.id}'s parameters: {problem}")
        actions.append(ResolvedAction(action=action, script=script, parameters=parameters))
    return ResolvedTemplate(candidate=candidate, variables=variables, actions=actions)


def _script(action: TemplateAction, catalog: ScriptCatalog) -> Script | None:
    if action.automation_script is not None:
        return catalog.by_name.get(action.automation_script)
    if action.automation_script_id is not None:
        return catalog.by_id.get(action.automation_script_id)
    return None
