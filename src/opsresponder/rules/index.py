"""`RuleIndex`: which rules can match an event, found without evaluating the ones that cannot.

A rule's conditions may require, at their top level (under the implicit AND), that ``event_type``,
``source`` or ``severity`` take one of a few values (``$eq``, ``$in``, a severity range). An event can
only match the rules whose requirements its own three values meet; the index evaluates only those.

The candidates depend on nothing but the event's (event_type, source, severity), so they are worked out
once per such combination, by checking every rule's requirements, and kept: events repeat a small set of
combinations, and each later event with the same three values gets its candidates from one dict lookup.
The cache is bounded (`max_combinations`); when full it is cleared, and refills as events arrive.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Generic, TypeVar

from opsresponder.core.event import Event
from opsresponder.rules.conditions import Condition
from opsresponder.rules.conditions.fields import SEVERITY_RANK
from opsresponder.rules.conditions.nodes import And, Leaf, Node, Predicate
from opsresponder.rules.conditions.operators import ORDER_OPERATORS

T = TypeVar("T")
INDEXED_FIELDS: Final = ("event_type", "source", "severity")
DEFAULT_MAX_COMBINATIONS: Final = 10_000

# Per indexed field, the values it must take, or None for "any".
Requirements = tuple[frozenset[str] | None, ...]


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

    `candidates` and `matching` keep the order the rules were given in, so the index never changes which
    rule is evaluated first.
    """

    def __init__(
        self, rules: Iterable[tuple[T, Condition]], *, max_combinations: int = DEFAULT_MAX_COMBINATIONS
    ) -> None:
        self._rules: list[tuple[T, Predicate, Requirements]] = [
            (rule, condition.matches, tuple(required_values(condition.root, f) for f in INDEXED_FIELDS))
            for rule, condition in rules
        ]
        self._max_combinations = max_combinations
        self._combinations: dict[tuple[str, str, str], list[tuple[T, Predicate]]] = {}

    @property
    def size(self) -> int:
        return len(self._rules)

    @property
    def cached_combinations(self) -> int:
        """How many (event_type, source, severity) combinations have their candidates kept."""
        return len(self._combinations)

    def candidates(self, event: Event) -> list[tuple[T, Predicate]]:
        """The rules (with their predicate) that may match `event`; no other rule can."""
        key = (event.event_type, event.source, event.severity)
        found = self._combinations.get(key)
        if found is None:
            if len(self._combinations) >= self._max_combinations:
                self._combinations.clear()
            found = self._combinations[key] = [
                (rule, matches)
                for rule, matches, required in self._rules
                if all(values is None or value in values for value, values in zip(key, required, strict=True))
            ]
        return found

    def matching(self, event: Event) -> list[T]:
        """The rules whose conditions match `event`, in the order they were given."""
        return [rule for rule, matches in self.candidates(event) if matches(event)]
