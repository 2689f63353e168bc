"""The safe expression language of response templates: comparisons, boolean logic, ``in``, literals,
dotted names, and ``{{ variable }}`` placeholders; nothing else (docs/templates.md).

``Expression.parse(text, scope, variables)`` checks an expression once (the grammar is ours, `parse`;
names must reach a root of the `Scope`); ``expression.bind(values)`` substitutes the variables as
literals and compiles the result with CEL (``common-expression-language``, a Rust evaluator);
``program.evaluate(activation)`` returns an `Outcome` and never raises. Nothing here calls ``eval``.
"""

from __future__ import annotations

from opsresponder.rules.expressions.activation import event_activation
from opsresponder.rules.expressions.compile import ALLOWED_FUNCTIONS, Expression, Program
from opsresponder.rules.expressions.errors import ExpressionError
from opsresponder.rules.expressions.evaluate import Outcome
from opsresponder.rules.expressions.render import VariableValue
from opsresponder.rules.expressions.scope import (
    ACTION_OUTCOME,
    EVENT_SCOPE,
    EXECUTION_VALUES,
    Root,
    Scope,
    Shape,
    execution_scope,
)

__all__ = [
    "ACTION_OUTCOME",
    "ALLOWED_FUNCTIONS",
    "EVENT_SCOPE",
    "EXECUTION_VALUES",
    "Expression",
    "ExpressionError",
    "Outcome",
    "Program",
    "Root",
    "Scope",
    "Shape",
    "VariableValue",
    "event_activation",
    "execution_scope",
]
