"""`RuleIndex`: which rules can match an event, found without evaluating the ones that cannot.

A rule whose conditions require (at their top level, under the implicit AND) ``event_type``, ``source``
or ``severity`` to take one of a few values is filed under those values; an event then looks up its own
three values and evaluates only the rules filed there, plus the rules that require none of them. Each rule
is filed under one field only, the most selective it constrains (event_type, then source, then severity),
so no rule is ever returned twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from opsresponder.core.event import Event
from opsresponder.rules.conditions import Condition
from opsresponder.rules.conditions.fields import SEVERITY_RANK
from opsresponder.rules.conditions.nodes import And, Leaf, Node
from opsresponder.rules.conditions.operators import ORDER_OPERATORS

T = TypeVar("T")
# Most selective first: dozens of event types, a handful of sources, five severities.
INDEXED_FIELDS = ("event_type", "source", "severity")


def required_values(root: Node, field: str) -> frozenset[str] | None:
    """The values `field` must take for `root` to match, or None when `root` does not pin it down."""
    leaves = root.children if isinstance(root, And) else (root,)
    allowed: frozenset[str] | None = None
    for leaf in leaves:
        if not isinstance(leaf, Leaf) or leaf.path.text != field:
            continue
        values = _leaf_values(leaf)
        if values is not None:
            allowed = values if allowed is None else allowed & values
    return allowed


def _leaf_values(leaf: Leaf) -> frozenset[str] | None:
    if leaf.operator == "$eq":
        return frozenset({leaf.operand})
    if leaf.operator == "$in":
        return frozenset(leaf.operand)
    if leaf.operator in ORDER_OPERATORS and leaf.path.text == "severity":
        compare = ORDER_OPERATORS[leaf.operator]
        bound = SEVERITY_RANK[leaf.operand]
        return frozenset(level for level, rank in SEVERITY_RANK.items() if compare(rank, bound))
    return None


class RuleIndex(Generic[T]):
    """Rules (any value `T` with its `Condition`), looked up by an event's event_type, source, severity.

    `candidates` keeps the order the rules were given in, so evaluation order does not depend on the index.
    """

    def __init__(self, rules: Iterable[tuple[T, Condition]]) -> None:
        self._buckets: dict[str, dict[str, list[tuple[int, T, Condition]]]] = {f: {} for f in INDEXED_FIELDS}
        self._unindexed: list[tuple[int, T, Condition]] = []
        self.size = 0
        for position, (rule, condition) in enumerate(rules):
            self.size += 1
            entry = (position, rule, condition)
            for field in INDEXED_FIELDS:
                values = required_values(condition.root, field)
                if values is not None:
                    # An empty set (contradictory requirements) files the rule nowhere: it never matches.
                    for value in values:
                        self._buckets[field].setdefault(value, []).append(entry)
                    break
            else:
                self._unindexed.append(entry)

    def candidates(self, event: Event) -> list[tuple[T, Condition]]:
        """The rules that may match `event`, in the order they were given; all others cannot match."""
        by_type = self._buckets["event_type"].get(event.event_type, ())
        by_source = self._buckets["source"].get(event.source, ())
        by_severity = self._buckets["severity"].get(event.severity, ())
        found = [*self._unindexed, *by_type, *by_source, *by_severity]
        if len(found) > 1:
            found.sort(key=_position)
        return [(rule, condition) for _, rule, condition in found]

    def matching(self, event: Event) -> list[T]:
        """The rules whose conditions match `event`, in the order they were given."""
        return [rule for rule, condition in self.candidates(event) if condition.matches(event)]


def _position(entry: tuple[int, object, object]) -> int:
    return entry[0]
