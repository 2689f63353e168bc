"""`$regex` on RE2: matching takes time linear in the text, whatever the pattern, so no rule can stall."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import re2

# Compiled once per rule; errors go to the exception (re2 would also log them to stderr) and capture groups
# are never needed to say "matched or not", which makes matching cheaper.
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False
_OPTIONS.never_capture = True

# Texts a pattern that "matches everything" matches: the empty text, a newline, ASCII, digits, non-ASCII.
_PROBES = (b"", b"\n", b"x", b"web-01 disk /var 93%", b"0", "\u00e9\u65e5".encode())


class Regex:
    """A compiled RE2 pattern, searched (unanchored, like `re.search`) in text."""

    __slots__ = ("_compiled", "_search", "pattern")

    def __init__(self, pattern: str) -> None:
        """Compile `pattern`; a pattern RE2 refuses raises `ValueError` with RE2's own message."""
        self.pattern = pattern
        try:
            # Bytes in, bytes searched: the str API re-computes character offsets on every match.
            self._compiled = re2.compile(pattern.encode("utf-8", "surrogatepass"), _OPTIONS)
        except re2.error as exc:
            message = exc.args[0] if exc.args else str(exc)
            text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
            raise ValueError(text) from None
        self._search = _direct_search(self._compiled)

    def search(self, text: str) -> bool:
        # surrogatepass: event text may hold lone surrogates; RE2 then sees invalid UTF-8, never an error.
        return self._search(text.encode("utf-8", "surrogatepass"))

    def matches_everything(self) -> bool:
        """True when every probe text matches: the pattern then selects what a check for text would."""
        return all(self._compiled.search(probe) is not None for probe in _PROBES)


def _direct_search(compiled: Any) -> Callable[[bytes], bool]:
    """Whether RE2 finds the pattern in some bytes, by one call into RE2's own ``Match``.

    `re2`'s Python ``search`` wraps that call in a generator and builds a match object with its spans,
    which costs about as much again as the search, for a yes or no. The binding's ``Match`` is not
    public API: it is used only when it is there and agrees with ``search`` on the probes; otherwise
    ``search`` it is.
    """

    def by_search(data: bytes) -> bool:
        return compiled.search(data) is not None

    try:
        match = compiled._regexp.Match
        anywhere = getattr(re2, "_Anchor").UNANCHORED  # noqa: B009 - private: absent from the stubs

        def direct(data: bytes) -> bool:
            # The spans of the whole match; (-1, -1) when there is none.
            start: int = match(anywhere, data, 0, len(data))[0][0]
            return start >= 0

        if all(direct(probe) is by_search(probe) for probe in (*_PROBES, b"timeout", b"x" * 100)):
            return direct
    except Exception:  # noqa: BLE001 - any change in the binding means: use the public API
        return by_search
    return by_search
