"""The ``validation_result`` of an accepted trigger rule: warnings and the estimated trigger rate.

Warnings are real concerns about a rule that is valid: parts of its conditions that can never be true
or check nothing (the condition language's own `warnings`), a field none of the latest stored events has,
and overlap with another active rule (rules/overlap.py). The rate comes from replaying the rule over the
stored events (store/rule_history.py).
"""

from __future__ import annotations

import asyncio

import structlog

from opsresponder.core.clock import Clock
from opsresponder.rules.conditions import ConditionError, compile_conditions
from opsresponder.rules.overlap import OtherRule, RuleShape, overlap_warnings
from opsresponder.rules.triggers import CompiledTriggerRule, ValidationResult, referenced_paths
from opsresponder.store.rule_history import RuleHistory
from opsresponder.store.trigger_rules import TriggerRuleRepository

log = structlog.get_logger(__name__)


class TriggerRuleChecks:
    def __init__(self, repository: TriggerRuleRepository, history: RuleHistory, clock: Clock) -> None:
        self._repository = repository
        self._history = history
        self._clock = clock

    async def validation_result(self, rule: CompiledTriggerRule, rule_id: int | None) -> ValidationResult:
        """Warnings and the rate for `rule` (saved as `rule_id`, which overlap leaves out; None: unsaved).

        Raises:
            DatabaseUnavailableError: PostgreSQL cannot be reached.
        """
        try:
            async with asyncio.TaskGroup() as tasks:
                missing = tasks.create_task(self._history.missing_fields(referenced_paths(rule)))
                overlaps = tasks.create_task(self._overlaps(rule, rule_id))
                estimate = tasks.create_task(self._history.estimate(rule, self._clock()))
        except ExceptionGroup as group:
            # The caller answers one error (PostgreSQL unavailable: 503), not a group of them.
            raise group.exceptions[0] from None
        warnings = [*_language_warnings(rule), *_semantics_warnings(rule)]
        warnings += [
            f"{path}: none of the latest stored events has this field" for path in missing.result() or ()
        ]
        warnings += overlaps.result()
        return ValidationResult(valid=True, warnings=warnings, estimated_trigger_rate=estimate.result().text)

    async def _overlaps(self, rule: CompiledTriggerRule, rule_id: int | None) -> list[str]:
        if rule.body.absence is not None:
            # An absence rule fires on what does not arrive: sharing conditions with another is no overlap.
            return []
        others: list[OtherRule] = []
        for stored in await self._repository.active_rules():
            if stored.rule_id == rule_id or stored.absence is not None:
                continue
            try:
                condition = compile_conditions(stored.conditions)
            except ConditionError as e:
                # Stored rules were valid when saved; a rule the language now refuses is skipped, not fatal.
                log.warning("A stored trigger rule no longer compiles.", rule_id=stored.rule_id, error=str(e))
                continue
            others.append(OtherRule(stored.rule_id, stored.name, RuleShape.of(stored.conditions, condition)))
        return overlap_warnings(RuleShape.of(rule.body.conditions, rule.condition), others)


def _language_warnings(rule: CompiledTriggerRule) -> list[str]:
    out = rule.condition.warnings()
    if rule.after is not None:
        # The language names paths from "conditions"; these are under absence.after.
        out += [
            "absence.after" + w.removeprefix("conditions")
            if w.startswith("conditions")
            else f"absence.after: {w}"
            for w in rule.after.warnings()
        ]
    return out


def _semantics_warnings(rule: CompiledTriggerRule) -> list[str]:
    body = rule.body
    out: list[str] = []
    if body.absence is not None and body.time_window_minutes is not None:
        out.append("time_window_minutes: has no effect on an absence rule (absence.within_minutes decides)")
    if not body.active:
        out.append("active: false, so the rule is never evaluated")
    return out
