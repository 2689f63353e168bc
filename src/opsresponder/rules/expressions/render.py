"""A checked tree -> CEL source. Literals are written by this module, never copied from user text, so a
value (a string with quotes, a variable's default) can only ever become one CEL literal."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

from opsresponder.rules.expressions.errors import ExpressionError
from opsresponder.rules.expressions.nodes import (
    And,
    Compare,
    ListLiteral,
    Literal,
    Name,
    Node,
    Not,
    Or,
    Placeholder,
    Scalar,
)

VariableValue = Scalar | list[Scalar]


def render(node: Node, values: Mapping[str, VariableValue]) -> str:
    """CEL source for `node`, with each placeholder replaced by the literal of its value in `values`.

    Raises:
        ExpressionError: a placeholder has no value, or a value no literal can state (a float that is not
            finite, a nested list, an integer beyond 64 bits).
    """
    if isinstance(node, Literal):
        return literal(node.value)
    if isinstance(node, ListLiteral):
        return "[" + ", ".join(render(item, values) for item in node.items) + "]"
    if isinstance(node, Placeholder):
        if node.name not in values:
            raise ExpressionError(f"variable {node.name!r} has no value", node.column)
        return value_literal(values[node.name], node.name)
    if isinstance(node, Name):
        return node.text
    if isinstance(node, Compare):
        left, right = render(node.left, values), render(node.right, values)
        if node.op == "not in":
            return f"!(({left}) in ({right}))"
        return f"({left}) {node.op} ({right})"
    if isinstance(node, Not):
        return f"!({render(node.operand, values)})"
    if isinstance(node, And):
        return " && ".join(f"({render(o, values)})" for o in node.operands)
    assert isinstance(node, Or)
    return " || ".join(f"({render(o, values)})" for o in node.operands)


_ESCAPES: Final = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def literal(value: Scalar) -> str:
    """The CEL literal of one value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not -(2**63) <= value <= 2**63 - 1:
            raise ExpressionError(f"{value} does not fit a 64-bit integer")
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ExpressionError(f"{value} is not a finite number")
        text = repr(value)
        # CEL reads "1e+20" and "1.5" as doubles, but "100" as an int: keep every float a double.
        return text if any(c in text for c in ".eE") else text + ".0"
    # Every other character is written as a \U escape: nothing the user wrote reaches CEL's lexer as is.
    return (
        '"'
        + "".join(
            _ESCAPES.get(c) or (c if c.isalnum() or c in " _-.:/@" else f"\\U{ord(c):08x}") for c in value
        )
        + '"'
    )


def value_literal(value: VariableValue, name: str) -> str:
    if isinstance(value, list):
        items = []
        for item in value:
            if isinstance(item, list):
                raise ExpressionError(f"variable {name!r}: a list of lists cannot be substituted")
            items.append(literal(item))
        return "[" + ", ".join(items) + "]"
    return literal(value)
