"""`RuleSource`: where the pipeline reads the rules it evaluates; `NoRules` and `StaticRules`.

The rules' repository (the trigger rules API) and ``rules.file`` implement it. The pipeline polls
`version` (cheap) every ``rules.reload_seconds`` and rereads `active_rules` only when it moved.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from opsresponder.rules.evaluation.spec import RuleSpec


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
