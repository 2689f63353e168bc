"""Which `$regex` patterns PostgreSQL matches exactly as RE2 does, and their PostgreSQL spelling.

The two dialects agree only on a small core, so a pattern is pushed down only when it is built from it:
ASCII letters, digits and plain punctuation, backslash-escaped punctuation, ``. * + ? | ^ $``, plain
groups ``( )`` and bracket classes of letters, digits and letter/digit ranges (``[^a-z0-9_]``). Anything
else (``\\d``, ``\\b``, flags, ``{n,m}``, non-ASCII) is left to RE2 in Python: `\\w`, `\\b` and repeat
limits differ between the engines, and a wrong pushdown would silently change the estimated rate.
"""

from __future__ import annotations

# Characters both engines take literally outside brackets (PostgreSQL ARE treats `\` + alphanumeric as an
# escape with its own meaning, hence no escapes of letters or digits).
_LITERAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-:/@,=;%'\"<>!#&~")
_OPERATORS = frozenset("*+?|^$)")
_CLASS_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_ .:/@")
_ESCAPABLE = frozenset("\\.*+?|^$()[]{}-/")
# RE2's `.` does not match a newline; PostgreSQL's does (without the `n` flag, which changes `^ $ [^]`
# too), so `.` becomes "any character but newline", literally.
_DOT = "[^\n]"


def postgres_regex(pattern: str) -> str | None:
    """The pattern for PostgreSQL's ``~`` that matches the same texts as RE2 does, or None if unsure.

    `pattern` must already have compiled on RE2 (so its syntax is valid).
    """
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if i + 1 >= len(pattern) or pattern[i + 1] not in _ESCAPABLE:
                return None
            out.append(pattern[i : i + 2])
            i += 2
        elif char == ".":
            out.append(_DOT)
            i += 1
        elif char == "(":
            if pattern.startswith("(?", i):
                return None
            out.append(char)
            i += 1
        elif char == "[":
            end = _bracket_end(pattern, i)
            if end is None:
                return None
            out.append(pattern[i:end])
            i = end
        elif char in _LITERAL or char in _OPERATORS:
            out.append(char)
            i += 1
        else:
            return None
    return "".join(out)


def _bracket_end(pattern: str, start: int) -> int | None:
    """The index after the class starting at `start`, if it is made of plain characters and ranges."""
    i = start + 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    first = i
    while i < len(pattern) and pattern[i] != "]":
        char = pattern[i]
        if char not in _CLASS_CHARS:
            return None
        if i + 2 < len(pattern) and pattern[i + 1] == "-" and pattern[i + 2] != "]":
            if not _same_kind(char, pattern[i + 2]):
                return None
            i += 3
        else:
            i += 1
    if i >= len(pattern) or i == first:
        return None
    return i + 1


def _same_kind(low: str, high: str) -> bool:
    """A range both engines read the same way: within lowercase, uppercase or digits, in order."""
    for kind in (str.islower, str.isupper, str.isdigit):
        if low.isascii() and high.isascii() and kind(low) and kind(high):
            return low <= high
    return False
