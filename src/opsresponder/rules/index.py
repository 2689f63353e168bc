"""`RuleIndex`: which rules can match an event, found without evaluating the ones that cannot.

A rule's conditions may require, at their top level (under the implicit AND), that ``event_type``,
``source`` or ``severity`` take one of a few values (``$eq``, ``$in``, a severity range). An event can
only match the rules whose requirements its own three values meet; the index evaluates only those.

The candidates depend on nothing but the event's (event_type, source, severity), so they are worked out
once per such combination and kept: events repeat a small set of combinations, and each later event with
the same three values gets its candidates from one dict lookup. Working them out is an AND of three
bitsets (one per field: the rules that allow this value, or do not pin the field down), not a pass over
every rule. The cache is bounded (`max_combinations`); when full it is cleared, and refills as events
arrive.

A candidate's top-level conditions on those three fields are already known to hold (the index chose it
for them), so `lookup` hands each candidate with its *residual* predicate: the rest of its conditions, or
None when nothing is left to check (``{"event_type": {"$in": [...]}, "severity": {"$gte": "high"}}``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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


def residual(root: Node) -> Predicate | None:
    """`root`'s predicate without the top-level leaves the index decides, None when none is left.

    Only for events the index chose the rule for: those leaves hold for them by construction.
    """
    children = root.children if isinstance(root, And) else (root,)
    rest = [child for child in children if not _decided(child)]
    if not rest:
        return None
    if len(rest) == 1:
        return rest[0].fn
    return And(rest).fn


def _decided(node: Node) -> bool:
    """Whether the index alone decides `node` (a top-level leaf it reads requirements from)."""
    return isinstance(node, Leaf) and node.path.text in INDEXED_FIELDS and _leaf_values(node) is not None


class Candidates(Generic[T]):
    """The rules that may match one (event_type, source, severity), in the order they were given.

    `checks` pairs each with what is left to check on an event (None: it matches); `full` with its whole
    predicate; `note` is what the index's `describe` made of them, once (the engine's trace text).
    """

    __slots__ = ("checks", "full", "note")

    def __init__(
        self, checks: tuple[tuple[T, Predicate | None], ...], full: list[tuple[T, Predicate]], note: object
    ) -> None:
        self.checks = checks
        self.full = full
        self.note = note


def _no_note(rules: list[T]) -> object:
    return None


class RuleIndex(Generic[T]):
    """Rules (any value `T` with its `Condition`), looked up by an event's event_type, source, severity.

    `candidates`, `lookup` and `matching` keep the order the rules were given in, so the index never
    changes which rule is evaluated first. `describe`, given, is called once per combination with its
    candidate rules; its answer is `Candidates.note`.
    """

    def __init__(
        self,
        rules: Iterable[tuple[T, Condition]],
        *,
        max_combinations: int = DEFAULT_MAX_COMBINATIONS,
        describe: Callable[[list[T]], object] = _no_note,
    ) -> None:
        self._rules: list[tuple[T, Predicate, Predicate | None]] = []
        # Per field: value -> bitset of the rules allowing it; and the bitset of rules allowing any value.
        self._by_value: list[dict[str, int]] = [{} for _ in INDEXED_FIELDS]
        self._free: list[int] = [0 for _ in INDEXED_FIELDS]
        for n, (rule, condition) in enumerate(rules):
            self._rules.append((rule, condition.matches, residual(condition.root)))
            bit = 1 << n
            for f, field in enumerate(INDEXED_FIELDS):
                values = required_values(condition.root, field)
                if values is None:
                    self._free[f] |= bit
                    continue
                by_value = self._by_value[f]
                for value in values:
                    by_value[value] = by_value.get(value, 0) | bit
        self._max_combinations = max_combinations
        self._describe = describe
        self._combinations: dict[tuple[str, str, str], Candidates[T]] = {}

    @property
    def size(self) -> int:
        return len(self._rules)

    @property
    def cached_combinations(self) -> int:
        """How many (event_type, source, severity) combinations have their candidates kept."""
        return len(self._combinations)

    def lookup(self, event: Event) -> Candidates[T]:
        """The rules that may match `event` (no other rule can), each with its residual predicate."""
        key = (event.event_type, event.source, event.severity)
        found = self._combinations.get(key)
        if found is None:
            if len(self._combinations) >= self._max_combinations:
                self._combinations.clear()
            found = self._combinations[key] = self._work_out(key)
        return found

    def _work_out(self, key: tuple[str, str, str]) -> Candidates[T]:
        mask = -1
        for by_value, free, value in zip(self._by_value, self._free, key, strict=True):
            mask &= by_value.get(value, 0) | free
        chosen = []
        while mask:
            low = mask & -mask
            chosen.append(self._rules[low.bit_length() - 1])
            mask ^= low
        rules = [rule for rule, _, _ in chosen]
        return Candidates(
            tuple((rule, rest) for rule, _, rest in chosen),
            [(rule, matches) for rule, matches, _ in chosen],
            self._describe(rules),
        )

    def candidates(self, event: Event) -> list[tuple[T, Predicate]]:
        """The rules (with their whole predicate) that may match `event`; no other rule can."""
        return self.lookup(event).full

    def matching(self, event: Event) -> list[T]:
        """The rules whose conditions match `event`, in the order they were given."""
        return [rule for rule, rest in self.lookup(event).checks if rest is None or rest(event)]
