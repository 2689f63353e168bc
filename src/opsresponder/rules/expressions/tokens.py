"""The tokenizer of the expression language: the only characters and words an expression may hold.

Whatever this does not recognise (``;``, ``+``, ``@``, a backquote, ``{`` outside a placeholder...) is
refused here, before any parsing, so the parser only ever sees a short, closed list of token kinds.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

from opsresponder.rules.expressions.errors import ExpressionError

MAX_LENGTH: Final = 2000
"""Characters in one expression: criteria are one-liners; this keeps parsing cheap whatever is sent."""


class Kind(enum.Enum):
    NUMBER = "number"
    STRING = "string"
    NAME = "name"
    PLACEHOLDER = "placeholder"
    OPERATOR = "operator"
    END = "end"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    text: str
    column: int
    """1-based column of the token's first character."""
    value: object = None
    """The decoded value of a NUMBER or STRING, the variable name of a PLACEHOLDER."""


# Longest first, so that "<=" is never read as "<" then "=".
OPERATORS: Final = ("==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")", "[", "]", ",", ".", "-")
_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER_RE: Final = re.compile(r"(?:\d+\.\d+|\d+)(?:[eE][+-]?\d+)?")
_PLACEHOLDER_RE: Final = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_SPACE_RE: Final = re.compile(r"[ \t\r\n]+")
_ESCAPES: Final = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r"}


def tokenize(text: str) -> list[Token]:
    """The tokens of `text`, ending with an END token.

    Raises:
        ExpressionError: an empty or too long expression, a character outside the language, an
            unterminated string, a malformed placeholder.
    """
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"longer than {MAX_LENGTH} characters")
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        space = _SPACE_RE.match(text, i)
        if space is not None:
            i = space.end()
            continue
        column = i + 1
        ch = text[i]
        if ch in "'\"":
            value, i = _string(text, i)
            tokens.append(Token(Kind.STRING, text[column - 1 : i], column, value))
            continue
        if text.startswith("{{", i):
            placeholder = _PLACEHOLDER_RE.match(text, i)
            if placeholder is None:
                raise ExpressionError("a placeholder is written {{ variable_name }}", column)
            tokens.append(Token(Kind.PLACEHOLDER, placeholder.group(0), column, placeholder.group(1)))
            i = placeholder.end()
            continue
        number = _NUMBER_RE.match(text, i)
        if number is not None:
            tokens.append(_number(number.group(0), column))
            i = number.end()
            continue
        name = _NAME_RE.match(text, i)
        if name is not None:
            tokens.append(Token(Kind.NAME, name.group(0), column))
            i = name.end()
            continue
        operator = next((op for op in OPERATORS if text.startswith(op, i)), None)
        if operator is None:
            raise ExpressionError(f"{ch!r} is not part of the expression language", column)
        tokens.append(Token(Kind.OPERATOR, operator, column))
        i += len(operator)
    if not tokens:
        raise ExpressionError("the expression is empty")
    tokens.append(Token(Kind.END, "", len(text) + 1))
    return tokens


def _string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\\":
            escaped = _ESCAPES.get(text[i + 1 : i + 2])
            if escaped is None:
                raise ExpressionError("unknown escape in a string (only \\\\ \\' \\\" \\n \\t \\r)", i + 1)
            out.append(escaped)
            i += 2
            continue
        if ch in "\r\n":
            break
        out.append(ch)
        i += 1
    raise ExpressionError("unterminated string", start + 1)


def _number(text: str, column: int) -> Token:
    if "." in text or "e" in text or "E" in text:
        value: object = float(text)
        if value in (float("inf"), float("-inf")):
            raise ExpressionError(f"{text} is out of range", column)
    else:
        value = int(text)
    return Token(Kind.NUMBER, text, column, value)
