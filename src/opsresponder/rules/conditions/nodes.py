"""The compiled condition tree: leaves test one path, `And`/`Or`/`Not` combine them.

Each node holds a plain function ``fn(event) -> bool`` built once at compile time (the hot path calls only
that), and keeps what it was built from for `explain`, the SQL pushdown and the warnings.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from opsresponder.core.event import Event
from opsresponder.rules.conditions.fields import MISSING, Path
from opsresponder.rules.conditions.regex import Regex
from opsresponder.rules.sql import WhereClause

Predicate = Callable[[Event], bool]
# A node's SQL: a two-valued (never NULL) expression selecting at least the events the node matches, or
# None for "no constraint"; and whether it selects exactly those.
NodeSql = tuple[str | None, bool]


class LeafResult(msgspec.Struct, frozen=True, kw_only=True):
    """One leaf's outcome on one event, for the trace and the rule test endpoint."""

    # Where the leaf is written in the rule (``conditions.$and[1].metadata.cpu.$gt``).
    at: str
    path: str
    operator: str
    operand: Any
    # The value found at `path`; None when the event has no such value (see `reason`).
    actual: Any
    matched: bool
    # Why the leaf did not match ("missing", "text value, $gt needs a number", ...); None when it matched.
    reason: str | None = None


class Leaf:
    """One operator applied to the value at one path."""

    __slots__ = (
        "at", "cost", "fn", "get", "needs", "operand", "operator", "path", "regex", "sql_builder", "test",
    )  # fmt: skip

    def __init__(
        self,
        path: Path,
        operator: str,
        operand: Any,
        test: Callable[[Any], bool],
        needs: Callable[[Any], str | None],
        sql_builder: Callable[[WhereClause], str | None],
        *,
        regex: Regex | None = None,
        fast: Predicate | None = None,
    ) -> None:
        """`fast`, when given, is the hot-path predicate: the same outcome as ``test(get(event))`` in
        fewer calls, for top-level fields whose Python type the `Event` struct fixes."""
        # Where the leaf is written in the rule (``conditions.$and[0].severity.$gt``), set by the compiler.
        self.at = path.text
        self.path = path
        self.operator = operator
        self.operand = operand
        self.test = test
        self.needs = needs
        self.sql_builder = sql_builder
        self.regex = regex
        get = self.get = path.getter()

        def fn(event: Event) -> bool:
            return test(get(event))

        self.fn: Predicate = fast or fn
        # How dear a call is, for And/Or to try the cheap children first: one fused call, a getter and a
        # test, a regular expression (encoding the text and calling RE2).
        self.cost = 3 if regex is not None else (0 if fast is not None else 1)

    def explain(self, event: Event, out: list[LeafResult]) -> bool:
        value = self.get(event)
        matched = self.test(value)
        reason = None
        if not matched:
            reason = "missing" if value is MISSING else (self.needs(value) or "false")
        actual = None if value is MISSING else value
        out.append(LeafResult(at=self.at, path=self.path.text, operator=self.operator, operand=self.operand,
                              actual=actual, matched=matched, reason=reason))  # fmt: skip
        return matched

    def sql(self, where: WhereClause) -> NodeSql:
        text = self.sql_builder(where)
        return text, text is not None


class _Group(abc.ABC):
    """What `And` and `Or` share: children, tried cheapest first, and explained in the written order."""

    __slots__ = ("children", "fn")
    cost = 2

    def __init__(self, children: Sequence[Node]) -> None:
        self.children = tuple(children)
        # Cheapest first: the outcome is the same in any order, and most rules fail on a cheap equality
        # before a pattern is ever searched. `explain` keeps the written order.
        self.fn: Predicate = self._predicate(tuple(child.fn for child in sorted(self.children, key=_cost)))

    @staticmethod
    @abc.abstractmethod
    def _predicate(fns: tuple[Predicate, ...]) -> Predicate:
        """The group's hot-path function over its children's functions."""

    @staticmethod
    @abc.abstractmethod
    def _outcome(results: list[bool]) -> bool:
        """The group's result from all its children's results."""

    def explain(self, event: Event, out: list[LeafResult]) -> bool:
        # Every child is explained (no short cut): the trace shows each condition's result.
        return self._outcome([child.explain(event, out) for child in self.children])


class And(_Group):
    """Every child holds (an empty `And` is the top level of ``{}``: every event)."""

    __slots__ = ()

    @staticmethod
    def _predicate(fns: tuple[Predicate, ...]) -> Predicate:
        if len(fns) == 1:
            return fns[0]
        if len(fns) == 2:
            # The common pair (a type and a threshold) without the loop: one call fewer per rule.
            first, second = fns

            def pair(event: Event) -> bool:
                return first(event) and second(event)

            return pair

        def fn(event: Event) -> bool:
            # A plain loop: all() over a generator costs about three times as much per call here.
            for child in fns:  # noqa: SIM110
                if not child(event):
                    return False
            return True

        return fn

    @staticmethod
    def _outcome(results: list[bool]) -> bool:
        return all(results)

    def sql(self, where: WhereClause) -> NodeSql:
        # AND of supersets is a superset: push what can be pushed, the rest is checked in Python.
        parts = [child.sql(where) for child in self.children]
        texts = [text for text, _ in parts if text is not None]
        exact = all(is_exact for _, is_exact in parts)
        if not texts:
            return None, exact
        return "(" + " AND ".join(texts) + ")", exact


class Or(_Group):
    """At least one child holds."""

    __slots__ = ()

    @staticmethod
    def _predicate(fns: tuple[Predicate, ...]) -> Predicate:
        if len(fns) == 1:
            return fns[0]
        if len(fns) == 2:
            first, second = fns

            def pair(event: Event) -> bool:
                return first(event) or second(event)

            return pair

        def fn(event: Event) -> bool:
            for child in fns:  # noqa: SIM110 - as in And: a loop is cheaper than any() over a generator
                if child(event):
                    return True
            return False

        return fn

    @staticmethod
    def _outcome(results: list[bool]) -> bool:
        return any(results)

    def sql(self, where: WhereClause) -> NodeSql:
        mark = len(where.args)
        parts = [child.sql(where) for child in self.children]
        texts = [text for text, _ in parts if text is not None]
        if len(texts) < len(parts):
            # One unconstrained branch makes the whole OR unconstrained; its parameters go unused.
            del where.args[mark:]
            return None, False
        return "(" + " OR ".join(texts) + ")", all(is_exact for _, is_exact in parts)


class Not:
    """The child does not hold; a missing value or a type mismatch therefore matches."""

    __slots__ = ("child", "fn")
    cost = 2

    def __init__(self, child: Node) -> None:
        self.child = child
        inner = child.fn

        def fn(event: Event) -> bool:
            return not inner(event)

        self.fn: Predicate = fn

    def explain(self, event: Event, out: list[LeafResult]) -> bool:
        return not self.child.explain(event, out)

    def sql(self, where: WhereClause) -> NodeSql:
        mark = len(where.args)
        text, exact = self.child.sql(where)
        # The complement of a superset is no superset: only an exact child can be negated in SQL.
        if text is None or not exact:
            del where.args[mark:]
            return None, False
        return f"(NOT {text})", True


Node = Leaf | And | Or | Not


def _cost(node: Node) -> int:
    return node.cost
