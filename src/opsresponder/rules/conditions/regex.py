"""`$regex` on RE2: matching takes time linear in the text, whatever the pattern, so no rule can stall."""

from __future__ import annotations

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

    __slots__ = ("_compiled", "pattern")

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

    def search(self, text: str) -> bool:
        # surrogatepass: event text may hold lone surrogates; RE2 then sees invalid UTF-8, never an error.
        return self._compiled.search(text.encode("utf-8", "surrogatepass")) is not None

    def matches_everything(self) -> bool:
        """True when every probe text matches: the pattern then selects what a check for text would."""
        return all(self._compiled.search(probe) is not None for probe in _PROBES)
