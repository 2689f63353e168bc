"""The trigger rules' condition language: JSON conditions compiled once into predicates and SQL.

``compile_conditions(doc)`` validates a rule's ``conditions`` and returns a `Condition`:
``matches(event)`` (never raises), ``explain(event)`` (each leaf's result), ``to_sql(where)`` (the part
PostgreSQL can evaluate, with ``sql_exact`` saying whether that was all of it) and ``warnings()``.
The language is described in docs/conditions.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from opsresponder.core.event import Event
from opsresponder.rules.conditions.compile import MAX_DEPTH, MAX_NODES, compile_tree
from opsresponder.rules.conditions.errors import ConditionError
from opsresponder.rules.conditions.nodes import LeafResult, Node, Predicate
from opsresponder.rules.conditions.warnings import condition_warnings
from opsresponder.rules.sql import WhereClause

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "Condition",
    "ConditionError",
    "Explanation",
    "LeafResult",
    "compile_conditions",
]


class Explanation(msgspec.Struct, frozen=True, kw_only=True):
    """Whether an event matched, and every leaf's result in the order the conditions are written."""

    matched: bool
    leaves: list[LeafResult]


class Condition:
    """A compiled ``conditions`` document."""

    __slots__ = ("matches", "root", "sql_exact")

    def __init__(self, root: Node) -> None:
        self.root = root
        # The root's own function, not a method wrapping it: rule evaluation calls this per event per rule.
        self.matches: Predicate = root.fn
        scratch = WhereClause()
        _, exact = root.sql(scratch)
        # True when `to_sql` selects exactly the events `matches` accepts; otherwise it selects a superset
        # (possibly everything) and the rows must still go through `matches`.
        self.sql_exact: bool = exact

    def explain(self, event: Event) -> Explanation:
        leaves: list[LeafResult] = []
        matched = self.root.explain(event, leaves)
        return Explanation(matched=matched, leaves=leaves)

    def to_sql(self, where: WhereClause) -> None:
        """Add to `where` a condition on ``events.events`` selecting at least the matching events."""
        text, _ = self.root.sql(where)
        if text is not None:
            where.add_condition(text)

    def warnings(self) -> list[str]:
        return condition_warnings(self.root)


def compile_conditions(doc: Mapping[str, Any]) -> Condition:
    """Compile a rule's ``conditions``; raises `ConditionError` naming the JSON path and the reason."""
    return Condition(compile_tree(doc))
