"""Concerns about valid conditions that need no database: parts that can never be true, no-op regexes."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from opsresponder.rules.conditions.fields import ENUM_VALUES, MISSING
from opsresponder.rules.conditions.nodes import And, Leaf, Node, Not
from opsresponder.rules.conditions.operators import ORDER_OPERATORS
from opsresponder.rules.conditions.values import is_number


def condition_warnings(root: Node) -> list[str]:
    """Human-readable warnings, each naming where in the conditions it applies."""
    out: list[str] = []
    if isinstance(root, And) and not root.children:
        out.append("conditions: empty, so the rule matches every event")
    _walk(root, out, negated=False)
    return out


def _walk(node: Node, out: list[str], *, negated: bool) -> None:
    if isinstance(node, Leaf):
        if node.regex is not None and node.regex.matches_everything():
            out.append(
                f"{node.at}: the pattern matches any text; it only checks that {node.path.text} is text"
            )
        if node.operator == "$in" and not node.operand and not negated:
            out.append(f"{node.at}: an empty list can never be true")
    elif isinstance(node, Not):
        _walk(node.child, out, negated=not negated)
    else:
        for child in node.children:
            _walk(child, out, negated=negated)
        # Under a $not a contradiction means "always true", which is a different concern left alone.
        if isinstance(node, And) and not negated:
            _contradictions(node, out)


def _contradictions(node: And, out: list[str]) -> None:
    by_path: defaultdict[str, list[Leaf]] = defaultdict(list)
    for child in node.children:
        if isinstance(child, Leaf):
            by_path[child.path.text].append(child)
    for path, leaves in by_path.items():
        if len(leaves) > 1 and not _satisfiable(leaves):
            where = ", ".join(leaf.at for leaf in leaves)
            out.append(f"{path}: can never be true, these conditions exclude each other: {where}")


def _satisfiable(leaves: list[Leaf]) -> bool:
    """Whether some value passes every leaf, decided on a finite set of candidates where there is one."""
    candidates = _candidates(leaves)
    if candidates is not None:
        return any(all(leaf.test(value) for leaf in leaves) for value in candidates)
    low: float = float("-inf")
    high: float = float("inf")
    low_open = high_open = False
    for leaf in leaves:
        if leaf.operator not in ORDER_OPERATORS or not is_number(leaf.operand):
            continue
        bound = float(leaf.operand)
        if leaf.operator in ("$gt", "$gte") and (bound > low or (bound == low and leaf.operator == "$gt")):
            low, low_open = bound, leaf.operator == "$gt"
        if leaf.operator in ("$lt", "$lte") and (bound < high or (bound == high and leaf.operator == "$lt")):
            high, high_open = bound, leaf.operator == "$lt"
    return low < high or (low == high and not low_open and not high_open)


def _candidates(leaves: list[Leaf]) -> list[Any] | None:
    """The only values that could pass: from equality and membership, or a field's enumerated values."""
    found: list[Any] | None = None
    for leaf in leaves:
        if leaf.operator == "$eq":
            values = [leaf.operand]
        elif leaf.operator == "$in":
            values = list(leaf.operand)
        elif leaf.operator == "$exists" and leaf.operand is False:
            values = [MISSING]
        else:
            continue
        found = values if found is None else [v for v in found if v in values]
    if found is None:
        enum = ENUM_VALUES.get(leaves[0].path.kind)
        return [*enum, MISSING] if enum is not None else None
    return found
