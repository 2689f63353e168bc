"""What an execution will run, fixed when it is submitted: the chosen actions of a decision, checked, in
topological levels, with the rollback plan and what the criteria need.

The plan is stored with the execution (``plan``) and hashed (`plan_hash`): an approval is given to one
plan, and what runs is what was approved even if the template changes in between (the template's
rollback actions and criteria are copied in, not read again at run time).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec

from opsresponder.core.errors import OpsResponderError
from opsresponder.response.runners.parameters import ParameterError, check_parameters
from opsresponder.rules.templates import ResponseTemplate, Script, ScriptCatalog
from opsresponder.store.decisions import DecisionAction, StoredDecision

_PLACEHOLDER_RE: Final = re.compile(r"\{\{\s*([a-z_][a-z0-9_]{0,63})\s*\}\}")
NOTIFYING_TYPES: Final = frozenset({"notification", "escalation"})
"""Template action types that go through the Notifier instead of a runner."""
READ_ONLY_SCRIPT_TYPES: Final = frozenset({"diagnostic", "notification"})
"""Catalog action types that change nothing on the target: they need no per-target lock."""


class PlanError(OpsResponderError):
    """The chosen actions cannot run as asked (the API's 422).

    Attributes:
        field: where in the request (``action_ids[1]``) or the decision (``actions.restart.parameters.x``).
        reason: why, for people.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class RollbackStep(msgspec.Struct, kw_only=True, frozen=True):
    """A template rollback action, resolved: run after a failure when `condition` holds."""

    key: str
    name: str
    script: str
    parameters: dict[str, Any]
    timeout_seconds: float
    condition: str | None = None


class ExecutionPlan(msgspec.Struct, kw_only=True):
    """What one execution runs.

    Attributes:
        actions: the chosen decision actions, in the decision's order.
        levels: their keys by topological level (level 0 depends on nothing chosen).
        rollback_scripts: action key -> the catalog script undoing it (run with the same parameters).
        rollback_actions: the template's rollback actions, resolved.
        template_actions: every action key of the template (the criteria's scope: an action not chosen
            reads as skipped).
        variables: the decision's variable values (criteria and rollback placeholders).
        success_criteria, failure_criteria: the template's, evaluated after the run.
        max_execution_time_minutes: the template's (criteria read it), or None.
    """

    actions: list[DecisionAction]
    levels: list[list[str]]
    rollback_scripts: dict[str, str] = msgspec.field(default_factory=dict)
    rollback_actions: list[RollbackStep] = msgspec.field(default_factory=list)
    template_actions: list[str] = msgspec.field(default_factory=list)
    variables: dict[str, Any] = msgspec.field(default_factory=dict)
    success_criteria: list[str] = msgspec.field(default_factory=list)
    failure_criteria: list[str] = msgspec.field(default_factory=list)
    max_execution_time_minutes: int | None = None

    def action(self, key: str) -> DecisionAction:
        for action in self.actions:
            if action.key == key:
                return action
        raise KeyError(key)


def plan_hash(plan: ExecutionPlan) -> str:
    """sha256 of the plan's canonical JSON (keys sorted): what an approval token is bound to."""
    return hashlib.sha256(msgspec.json.encode(plan, order="sorted")).hexdigest()


def parameter_problem(script: Script, values: Mapping[str, Any]) -> str | None:
    """Why `values` do not fit `script`'s declared parameters, or None: the runners' own check
    (response/runners/parameters.py), so a plan is refused for what a run would refuse."""
    try:
        check_parameters(script, values)
    except ParameterError as e:
        return str(e)
    return None


def substitute(value: Any, variables: Mapping[str, Any]) -> Any:
    """`value` with ``{{ name }}`` placeholders replaced: a whole placeholder by the variable's value
    (keeping its type), placeholders inside text by the value's text; unknown names stay as written."""
    if isinstance(value, str):
        whole = _PLACEHOLDER_RE.fullmatch(value.strip())
        if whole is not None and whole.group(1) in variables:
            return variables[whole.group(1)]
        return _PLACEHOLDER_RE.sub(
            lambda m: str(variables[m.group(1)]) if m.group(1) in variables else m.group(0), value
        )
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    return value


def build_plan(
    decision: StoredDecision,
    action_ids: Sequence[int] | None,
    catalog: ScriptCatalog,
    template: ResponseTemplate | None,
) -> ExecutionPlan:
    """The plan running `action_ids` of `decision` (None: all its actions).

    Raises:
        PlanError: an id is not the decision's (or repeated), none is chosen, a chosen action depends on
            one not chosen, a script is unknown, parameters do not fit the script, the dependencies have
            a cycle, or a template rollback action names an unknown script.
    """
    by_id = {a.action_id: a for a in decision.recommended_actions}
    if action_ids is None:
        chosen_ids = [a.action_id for a in decision.recommended_actions]
    else:
        chosen_ids = []
        for i, action_id in enumerate(action_ids):
            if action_id not in by_id:
                raise PlanError(
                    f"action_ids[{i}]", f"decision {decision.decision_id} has no action {action_id}"
                )
            if action_id in chosen_ids:
                raise PlanError(f"action_ids[{i}]", f"action {action_id} is chosen twice")
            chosen_ids.append(action_id)
    if not chosen_ids:
        raise PlanError("action_ids", f"decision {decision.decision_id} has no action to run")
    chosen = [a for a in decision.recommended_actions if a.action_id in set(chosen_ids)]
    where = {a.key: _where(action_ids, chosen_ids, a.action_id) for a in chosen}
    keys = {a.key for a in chosen}
    rollback_scripts: dict[str, str] = {}
    for action in chosen:
        at = where[action.key]
        for dependency in action.depends_on:
            if dependency not in keys:
                raise PlanError(
                    at, f"action {action.key!r} depends on {dependency!r}, which is not chosen; choose it too"
                )
        _check_action(action, catalog, at)
        if action.rollback_script is not None:
            if action.rollback_script not in catalog.by_name:
                raise PlanError(at, f"rollback script {action.rollback_script!r} is not in the catalog")
            rollback_scripts[action.key] = action.rollback_script
    levels = _levels(chosen, where)
    plan = ExecutionPlan(
        actions=chosen,
        levels=levels,
        rollback_scripts=rollback_scripts,
        variables=dict(decision.variables),
    )
    if template is not None:
        plan.rollback_actions = _rollback_steps(template, catalog, decision.variables)
        plan.template_actions = [a.id for a in template.actions]
        plan.success_criteria = list(template.success_criteria)
        plan.failure_criteria = list(template.failure_criteria)
        plan.max_execution_time_minutes = template.max_execution_time_minutes
    return plan


def needs_target_lock(plan: ExecutionPlan, catalog: ScriptCatalog) -> bool:
    """The plan changes something on its target: a remediation action, or a script whose catalog type is
    not read-only. Diagnostics and notifications run on a host alongside anything."""
    return any(changes_target(action, catalog) for action in plan.actions)


def changes_target(action: DecisionAction, catalog: ScriptCatalog) -> bool:
    """A remediation action, or a script whose catalog type is not read-only (an unknown script counts:
    what it does cannot be known)."""
    if action.action_type in NOTIFYING_TYPES or action.script is None:
        return False
    script = catalog.by_name.get(action.script)
    return (
        action.action_type == "remediation"
        or script is None
        or script.action_type not in READ_ONLY_SCRIPT_TYPES
    )


def _where(requested: Sequence[int] | None, chosen_ids: list[int], action_id: int) -> str:
    return f"action_ids[{chosen_ids.index(action_id)}]" if requested is not None else f"actions[{action_id}]"


def _check_action(action: DecisionAction, catalog: ScriptCatalog, at: str) -> None:
    if action.action_type in NOTIFYING_TYPES and action.script is None:
        if not action.message_template:
            raise PlanError(at, f"notification action {action.key!r} names no message template")
        return
    if action.script is None:
        raise PlanError(at, f"action {action.key!r} names no script")
    script = catalog.by_name.get(action.script)
    if script is None:
        raise PlanError(at, f"script {action.script!r} of action {action.key!r} is not in the catalog")
    problem = parameter_problem(script, action.parameters)
    if problem is not None:
        raise PlanError(at, f"action {action.key!r}: {problem}")


def _levels(chosen: list[DecisionAction], where: Mapping[str, str]) -> list[list[str]]:
    """Kahn's algorithm by rounds: each level holds the actions whose dependencies are all in earlier
    levels, in the decision's order. What is left when no action is ready is a cycle."""
    remaining = {a.key: set(a.depends_on) for a in chosen}
    placed: set[str] = set()
    levels: list[list[str]] = []
    while remaining:
        ready = [key for key, deps in remaining.items() if deps <= placed]
        if not ready:
            cycle = sorted(remaining)
            raise PlanError(where[cycle[0]], f"the dependencies of {', '.join(cycle)} form a cycle")
        levels.append(ready)
        placed.update(ready)
        for key in ready:
            del remaining[key]
    return levels


def _rollback_steps(
    template: ResponseTemplate, catalog: ScriptCatalog, variables: Mapping[str, Any]
) -> list[RollbackStep]:
    steps = []
    for i, action in enumerate(template.rollback_actions):
        script: Script | None = None
        if action.automation_script is not None:
            script = catalog.by_name.get(action.automation_script)
        elif action.automation_script_id is not None:
            script = catalog.by_id.get(action.automation_script_id)
        if script is None:
            named = action.automation_script or action.automation_script_id
            raise PlanError(f"rollback_actions[{i}]", f"script {named!r} is not in the catalog")
        timeout = script.timeout_seconds
        if action.timeout_minutes is not None:
            timeout = min(timeout, action.timeout_minutes * 60.0)
        steps.append(
            RollbackStep(
                key=action.id,
                name=action.name,
                script=script.name,
                parameters=substitute(dict(action.parameters), variables),
                timeout_seconds=timeout,
                condition=action.condition,
            )
        )
    return steps
