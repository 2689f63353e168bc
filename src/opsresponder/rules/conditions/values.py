"""How condition values compare: strictly by JSON type, so ``true`` never equals ``1`` nor ``"1"``."""

from __future__ import annotations

import math
from typing import Any


def json_type(value: Any) -> str:
    """The JSON type name of a value as conditions see it (``number`` for int and float, not bool)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "missing" if value is None else type(value).__name__


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_scalar(value: Any) -> bool:
    """A value an equality operand may be: text, a finite number or a boolean (not null)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int)


def same(actual: Any, operand: Any) -> bool:
    """Equal and of the same JSON type (Python would say ``True == 1``)."""
    return json_type(actual) == json_type(operand) and actual == operand
