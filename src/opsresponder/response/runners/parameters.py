"""Parameter checks: what an action passes to a catalog script, checked against its declared types and
rendered as the text a process receives (an argument or an environment variable).

One function serves the runners (before anything starts) and the executor's dry-run (to say what would
be refused), so both refuse the same values for the same reasons. Types are strict: JSON gives each value
a type, and a template that passes ``"12"`` where an integer is declared is a mistake worth reporting, not
a value to coerce.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from opsresponder.core.errors import OpsResponderError
from opsresponder.rules.templates import Script
from opsresponder.rules.templates.scripts import ScriptParameter

MAX_VALUE_CHARS: Final = 4096
"""A rendered value longer than this is refused: arguments and environment variables are not a channel
for data (the kernel caps one argument at 128 KiB; we stay far below it)."""

_encoder = msgspec.json.Encoder()


class ParameterError(OpsResponderError):
    """A parameter value does not fit the script's declaration.

    Attributes:
        name: the parameter's name.
        reason: why, for people (``is required``, ``must be an integer, not str``...).
    """

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"parameter {name!r} {reason}")
        self.name = name
        self.reason = reason


def check_parameters(script: Script, values: Mapping[str, Any]) -> dict[str, str]:
    """The values as text per declared type, in the script's declaration order.

    Rendering: string as is, integer and float in decimal, boolean ``true``/``false``, list as JSON.

    Raises:
        ParameterError: a name the script does not declare, a required one missing, a value of the
            wrong type (a bool is not an integer; an integer is accepted as a float), a non-finite float,
            a NUL byte in the rendered text, or a rendered text over `MAX_VALUE_CHARS` characters.
    """
    declared = {p.name: p for p in script.parameters}
    for name in values:
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise ParameterError(str(name), f"is not a parameter of {script.name} (known: {known})")
    rendered: dict[str, str] = {}
    for parameter in script.parameters:
        if parameter.name not in values:
            if parameter.required:
                raise ParameterError(parameter.name, "is required")
            continue
        text = _render(parameter, values[parameter.name])
        if "\x00" in text:
            raise ParameterError(parameter.name, "contains a NUL byte")
        if len(text) > MAX_VALUE_CHARS:
            raise ParameterError(parameter.name, f"is longer than {MAX_VALUE_CHARS} characters")
        rendered[parameter.name] = text
    return rendered


def _render(parameter: ScriptParameter, value: Any) -> str:
    kind = parameter.type
    # bool is a subclass of int in Python, so it is excluded explicitly wherever a number is expected.
    if kind == "string" and isinstance(value, str):
        return value
    if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if kind == "float" and isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an integer past 1.8e308
            raise ParameterError(parameter.name, "must be a finite number") from None
        if not math.isfinite(number):
            raise ParameterError(parameter.name, "must be a finite number")
        return repr(number)
    if kind == "boolean" and isinstance(value, bool):
        return "true" if value else "false"
    if kind == "list" and isinstance(value, list | tuple):
        try:
            return _encoder.encode(list(value)).decode()
        except (TypeError, ValueError) as e:
            raise ParameterError(parameter.name, f"is not a list of JSON values: {e}") from None
    article = "an" if kind[0] in "aeiou" else "a"
    raise ParameterError(parameter.name, f"must be {article} {kind}, not {_type_name(value)}")


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "list", dict: "object"}.get(
        type(value), type(value).__name__
    )
