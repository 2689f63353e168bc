"""Turning a rule's ``conditions`` JSON into a tree of nodes, refusing what is wrong with its JSON path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from opsresponder.rules.conditions.errors import ConditionError
from opsresponder.rules.conditions.fields import FIELDS, Path, parse_path
from opsresponder.rules.conditions.nodes import And, Leaf, Node, Not, Or
from opsresponder.rules.conditions.operators import build_leaf
from opsresponder.rules.conditions.values import json_type

# Bounds on what one rule may hold, so compiling and evaluating a rule stays cheap whatever is sent.
MAX_DEPTH: Final = 32
MAX_NODES: Final = 1000
ROOT: Final = "conditions"
_OPERATOR_HINT: Final = (
    "an object here must hold only operators ($eq, $gt, $in, ...); "
    "to reach into metadata use a dotted path such as metadata.cpu.usage"
)


class _Compiler:
    def __init__(self) -> None:
        self.nodes = 0

    def count(self, at: str, n: int = 1) -> None:
        self.nodes += n
        if self.nodes > MAX_NODES:
            raise ConditionError(at, f"more than {MAX_NODES} conditions in one rule")

    def document(self, doc: Any, at: str, depth: int) -> Node:
        """A condition object: fields and `$and`/`$or`/`$not`, all of which must hold."""
        if depth > MAX_DEPTH:
            raise ConditionError(at, f"nested deeper than {MAX_DEPTH} levels")
        if not isinstance(doc, Mapping):
            raise ConditionError(at, f"a condition is an object, not {json_type(doc)}")
        if not doc:
            # Only the whole `conditions` may be empty ("every event"); inside $and/$or/$not it is a mistake.
            raise ConditionError(at, "an empty object is no condition")
        children: list[Node] = []
        for key, value in doc.items():
            where = f"{at}.{key}"
            if key in ("$and", "$or"):
                children.append(self.logical(key, value, where, depth))
            elif key == "$not":
                if not isinstance(value, Mapping) or not value:
                    raise ConditionError(where, "$not needs a non-empty condition object")
                self.count(where)
                children.append(Not(self.document(value, where, depth + 1)))
            elif isinstance(key, str) and key.startswith("$"):
                raise ConditionError(where, f"unknown operator {key} here (only $and, $or, $not, or a field)")
            else:
                path = parse_path(key) if isinstance(key, str) else None
                if path is None:
                    raise ConditionError(
                        where, f"unknown field {key!r} (fields: {', '.join(FIELDS)}, or metadata.<key>...)"
                    )
                children.append(self.field(path, value, where, depth + 1))
        return children[0] if len(children) == 1 else And(children)

    def logical(self, key: str, value: Any, at: str, depth: int) -> Node:
        if not isinstance(value, list) or not value:
            raise ConditionError(at, f"{key} needs a non-empty list of conditions")
        self.count(at)
        children = [self.document(item, f"{at}[{i}]", depth + 1) for i, item in enumerate(value)]
        return And(children) if key == "$and" else Or(children)

    def field(self, path: Path, value: Any, at: str, depth: int) -> Node:
        """The value of a field key: a scalar (equal), a list (any of) or an object of operators."""
        if depth > MAX_DEPTH:
            raise ConditionError(at, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, list):
            return self.leaf(path, "$in", value, at)
        if not isinstance(value, Mapping):
            return self.leaf(path, "$eq", value, at)
        if not value:
            raise ConditionError(at, "an empty object is no condition; " + _OPERATOR_HINT)
        children: list[Node] = []
        for operator, operand in value.items():
            where = f"{at}.{operator}"
            if not isinstance(operator, str) or not operator.startswith("$"):
                raise ConditionError(where, _OPERATOR_HINT)
            if operator == "$not":
                if not isinstance(operand, Mapping):
                    raise ConditionError(where, "$not on a field needs an object of operators")
                self.count(where)
                children.append(Not(self.field(path, operand, where, depth + 1)))
            else:
                children.append(self.leaf(path, operator, operand, where))
        return children[0] if len(children) == 1 else And(children)

    def leaf(self, path: Path, operator: str, operand: Any, at: str) -> Leaf:
        # A list operand counts per item: `$in` with 100,000 values is 100,000 comparisons to set up.
        self.count(at, 1 + (len(operand) if isinstance(operand, list) else 0))
        leaf = build_leaf(path, operator, operand, at)
        leaf.at = at
        return leaf


def compile_tree(doc: Mapping[str, Any]) -> Node:
    """The node tree of `doc`; raises `ConditionError` naming the JSON path of the first problem."""
    if not isinstance(doc, Mapping):
        raise ConditionError(ROOT, f"conditions are an object, not {json_type(doc)}")
    if not doc:
        return And(())
    return _Compiler().document(doc, ROOT, 1)
