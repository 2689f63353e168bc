"""`RuleSource`: where the pipeline reads the rules it evaluates; `NoRules` and `StaticRules`.

The rules' repository (the trigger rules API) and ``rules.file`` implement it. The pipeline polls
`version` (cheap) every ``rules.reload_seconds`` and rereads `active_rules` only when it moved.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import structlog

from opsresponder.rules.evaluation.spec import RuleSpec

log = structlog.get_logger(__name__)


class RuleSource(Protocol):
    async def active_rules(self) -> Sequence[RuleSpec]:
        """The rules to evaluate (inactive ones may be included: the engine skips them)."""
        ...

    async def version(self) -> object:
        """A marker that changes whenever `active_rules` would answer differently (compared with ==)."""
        ...


class StaticRules:
    """A fixed list of rules (bench, tests, and the rules of ``rules.file`` once read)."""

    def __init__(self, rules: Sequence[RuleSpec] = ()) -> None:
        self._rules = tuple(rules)

    async def active_rules(self) -> Sequence[RuleSpec]:
        return self._rules

    async def version(self) -> object:
        return 0


class NoRules(StaticRules):
    """No rule at all: the default until a repository is wired."""


class CombinedRules:
    """Several sources as one (the trigger rules API's and ``rules.file``): the first source wins an id.

    A rule's id names it in its firings, so two rules may not share one: a later source's rule with an id
    already taken is left out and logged, never evaluated under another rule's name.
    """

    def __init__(self, sources: Sequence[RuleSource]) -> None:
        self._sources = tuple(sources)

    async def version(self) -> object:
        return tuple([await source.version() for source in self._sources])

    async def active_rules(self) -> Sequence[RuleSpec]:
        rules: list[RuleSpec] = []
        taken: set[int] = set()
        for source in self._sources:
            for rule in await source.active_rules():
                if rule.rule_id in taken:
                    log.error(
                        "Two rules share one id; the later one is not evaluated.",
                        rule_id=rule.rule_id,
                        name=rule.name,
                    )
                    continue
                taken.add(rule.rule_id)
                rules.append(rule)
        return rules
