"""The syntax tree of an expression: exactly the constructs the language has, nothing else.

A tree is what `parse` returns after every check; `render` turns it into CEL source. There is no node for
a call, an index, arithmetic or a comprehension, so no tree can hold one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeAlias

Scalar: TypeAlias = str | int | float | bool | None

COMPARISONS: Final = frozenset({"==", "!=", "<", "<=", ">", ">=", "in", "not in"})


@dataclass(frozen=True, slots=True)
class Literal:
    value: Scalar


@dataclass(frozen=True, slots=True)
class ListLiteral:
    items: tuple[Literal | Placeholder, ...]


@dataclass(frozen=True, slots=True)
class Placeholder:
    """``{{ name }}``: replaced by the variable's typed value (a literal) before CEL sees the expression."""

    name: str
    column: int


@dataclass(frozen=True, slots=True)
class Name:
    """A dotted name: a known root and the keys below it (``diagnostic_cpu.result.cpu_usage``)."""

    parts: tuple[str, ...]
    column: int

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Operand
    right: Operand


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]


Operand: TypeAlias = "Literal | ListLiteral | Placeholder | Name | Compare | Not | And | Or"
Node: TypeAlias = "Literal | ListLiteral | Placeholder | Name | Compare | Not | And | Or"


def names_in(node: Node) -> list[Name]:
    """Every dotted name of `node`, in reading order."""
    found: list[Name] = []
    _walk(node, found, [])
    return found


def placeholders_in(node: Node) -> list[Placeholder]:
    """Every placeholder of `node`, in reading order."""
    found: list[Placeholder] = []
    _walk(node, [], found)
    return found


def _walk(node: Node, names: list[Name], placeholders: list[Placeholder]) -> None:
    if isinstance(node, Name):
        names.append(node)
    elif isinstance(node, Placeholder):
        placeholders.append(node)
    elif isinstance(node, ListLiteral):
        for item in node.items:
            _walk(item, names, placeholders)
    elif isinstance(node, Compare):
        _walk(node.left, names, placeholders)
        _walk(node.right, names, placeholders)
    elif isinstance(node, Not):
        _walk(node.operand, names, placeholders)
    elif isinstance(node, (And, Or)):
        for operand in node.operands:
            _walk(operand, names, placeholders)
