"""`Expression` (a checked tree, placeholders open) and `Program` (bound to values, compiled by CEL)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from opsresponder.rules.expressions.errors import ExpressionError
from opsresponder.rules.expressions.evaluate import Outcome, evaluate
from opsresponder.rules.expressions.nodes import Node, names_in, placeholders_in
from opsresponder.rules.expressions.parse import parse
from opsresponder.rules.expressions.render import VariableValue, render
from opsresponder.rules.expressions.scope import Scope

if TYPE_CHECKING:
    import cel

# CEL's names for the operators the grammar has. A compiled program referencing any other function means
# the grammar and the renderer let something through: refused, whatever it is (a second lock).
ALLOWED_FUNCTIONS: Final = frozenset(
    {"_==_", "_!=_", "_<_", "_<=_", "_>_", "_>=_", "@in", "_&&_", "_||_", "!_", "-_"}
)


class Expression:
    """A checked expression: `parse`d against its scope and the declared variables, not yet bound.

    Attributes:
        text: the expression as written.
        tree: its syntax tree (`nodes`).
        variables: the variables its placeholders name, in reading order, once each.
        roots: the root names it reads.
    """

    __slots__ = ("roots", "scope", "text", "tree", "variables")

    def __init__(self, text: str, scope: Scope, tree: Node) -> None:
        self.text = text
        self.scope = scope
        self.tree = tree
        self.variables = tuple(dict.fromkeys(p.name for p in placeholders_in(tree)))
        self.roots = tuple(dict.fromkeys(n.parts[0] for n in names_in(tree)))

    @classmethod
    def parse(cls, text: str, scope: Scope, variables: frozenset[str] | None = None) -> Expression:
        """Raises `ExpressionError` (see `parse.parse`)."""
        return cls(text, scope, parse(text, scope, variables))

    def bind(self, values: Mapping[str, VariableValue] | None = None) -> Program:
        """The program with every placeholder replaced by the literal of its variable's value.

        Raises:
            ExpressionError: a placeholder's variable has no value or one no literal states, or CEL
                refuses the rendered source (which would be a bug of the renderer; the message says so).
        """
        source = render(self.tree, values or {})
        # Imported here, not at the top: the package's __init__ also imports its REPL (typer, rich,
        # prompt_toolkit), about 0.2-0.5 s, which processes that never compile an expression (the
        # `healthcheck` command, tools) should not pay.
        import cel

        try:
            program = cel.compile(source)
        except (ValueError, TypeError, RuntimeError) as e:
            raise ExpressionError(f"CEL refused the expression: {e}") from e
        unexpected = set(program.functions()) - ALLOWED_FUNCTIONS
        if unexpected:
            raise ExpressionError(f"functions are not allowed: {', '.join(sorted(unexpected))}")
        return Program(self, source, program)


class Program:
    """A bound expression, ready to evaluate many times; `evaluate` never raises."""

    __slots__ = ("_program", "expression", "source")

    def __init__(self, expression: Expression, source: str, program: cel.Program) -> None:
        self.expression = expression
        self.source = source
        """The CEL source that runs (placeholders replaced), for logs and traces."""
        self._program = program

    def evaluate(self, activation: Mapping[str, Any]) -> Outcome:
        """The value of the expression where each root name has its value in `activation`.

        A missing name, a type mismatch, or a result that is not a boolean is false, with the reason.
        """
        return evaluate(self._program, self.expression.tree, activation)
