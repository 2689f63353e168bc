"""Running a compiled CEL program so that nothing escapes: a failure is a false `Outcome` with its reason."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import msgspec

from opsresponder.rules.expressions.nodes import Name, Node, names_in

if TYPE_CHECKING:
    import cel

_MISSING: Final = object()


class Outcome(msgspec.Struct, frozen=True):
    """The result of one evaluation.

    Attributes:
        value: True only when the expression evaluated to the boolean true.
        reason: None when it evaluated to a boolean; otherwise why it is false (a missing name, a type
            mismatch, a result that is not a boolean), for the trace and the operator.
    """

    value: bool
    reason: str | None = None


def evaluate(program: cel.Program, tree: Node, activation: Mapping[str, Any]) -> Outcome:
    try:
        result = program.execute(dict(activation))
    # What the binding raises for a missing variable (RuntimeError), a missing key (KeyError), no such
    # overload (TypeError), a value it cannot convert (ValueError), an overflow (ArithmeticError).
    except (RuntimeError, KeyError, TypeError, ValueError, ArithmeticError) as e:
        return Outcome(False, _explain(e, tree, activation))
    if isinstance(result, bool):
        return Outcome(result)
    return Outcome(False, f"evaluated to {_short(result)}, not a boolean")


def _explain(error: Exception, tree: Node, activation: Mapping[str, Any]) -> str:
    """The reason of a failed evaluation; a missing name is named by its path, which CEL does not say."""
    for name in names_in(tree):
        missing = _missing_part(name, activation)
        if missing is not None:
            return missing
    message = str(error).split(". ")[0].strip().rstrip(".")
    kind = "type mismatch" if isinstance(error, TypeError) else "cannot evaluate"
    return f"{kind}: {message}"


def _missing_part(name: Name, activation: Mapping[str, Any]) -> str | None:
    value: Any = activation.get(name.parts[0], _MISSING)
    if value is _MISSING:
        return f"{name.parts[0]} is missing"
    for i, part in enumerate(name.parts[1:], start=1):
        if not isinstance(value, Mapping):
            at = ".".join(name.parts[:i])
            return f"{name.text} is missing ({at} is {_short(value)}, which has no fields)"
        value = value.get(part, _MISSING)
        if value is _MISSING:
            return f"{name.text} is missing (no {part!r} in {'.'.join(name.parts[:i])})"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return (text if len(text) <= 60 else text[:57] + "...") + f" ({type(value).__name__})"
