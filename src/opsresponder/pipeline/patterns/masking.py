"""Masking: the variable parts of a message (numbers, addresses, ids, paths) replaced by typed tokens.

``mask("Failed password for root from 10.0.0.5 port 4242 ssh2")`` is
``"Failed password for root from <IP> port <NUM> ssh2"``. Masking runs before the template miner, so that
messages differing only in such values are one template from their first occurrence, and the miner is
left with the variables no rule recognises (user names, host names...).

The rules are ours, fixed and anchored on non-word boundaries, and run on Python's `re`: none of them
backtracks more than linearly (no nested quantifiers over the same characters), which the property tests
exercise on arbitrary text. They run in this order, each on the output of the previous one, so that an
address is masked before its digits could be taken for numbers:

========  =====================================================================================
URL       ``scheme://...`` up to the next white space
EMAIL     ``local@domain.tld``
UUID      8-4-4-4-12 hexadecimal
MAC       six pairs of hexadecimal digits joined by ``:`` or ``-``
IP        IPv4 (four dotted numbers of 1-3 digits), IPv6 (eight groups, or compressed with ``::``)
TIME      ``hh:mm`` or ``hh:mm:ss``, with optional fraction
PATH      ``/a/b`` (one or more segments; not inside a word) and ``C:\\a\\b``
HEX       ``0x...``, and bare hexadecimal runs of 8+ characters holding a digit and a letter
NUM       integers and decimals, with a sign, not glued to a preceding letter or digit (``ssh2`` stays)
========  =====================================================================================

Masking is idempotent (``mask(mask(s)) == mask(s)``): a mask token matches no rule.
"""

from __future__ import annotations

import re
from typing import Final

# Each rule: (compiled pattern, replacement). Lookbehinds keep a rule from starting inside a word.
_H: Final = "[0-9A-Fa-f]"
_RULES: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]{1,15}://[^\s<>\"']+"), "<URL>"),
    (re.compile(r"(?<![\w.+\-])[\w.+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+\b"), "<EMAIL>"),
    (re.compile(rf"(?<![\w\-]){_H}{{8}}-{_H}{{4}}-{_H}{{4}}-{_H}{{4}}-{_H}{{12}}(?![\w\-])"), "<UUID>"),
    (re.compile(rf"(?<![\w:\-]){_H}{{2}}(?:[:\-]{_H}{{2}}){{5}}(?![\w:\-])"), "<MAC>"),
    (re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)"), "<IP>"),
    (
        re.compile(
            rf"(?<![\w:])(?:(?:{_H}{{1,4}}:){{7}}{_H}{{1,4}}"
            rf"|(?:{_H}{{1,4}}:){{1,7}}:(?:{_H}{{1,4}}(?::{_H}{{1,4}}){{0,6}})?"
            rf"|::{_H}{{1,4}}(?::{_H}{{1,4}}){{0,6}})(?![\w:])"
        ),
        "<IP>",
    ),
    (re.compile(r"(?<![\w:])\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?(?![\w:])"), "<TIME>"),
    (re.compile(r"(?<![\w.~\-/<>])(?:/[\w.~%+@\-]+)+/?|\b[A-Za-z]:\\[^\s]+"), "<PATH>"),
    (re.compile(r"\b0[xX][0-9A-Fa-f]+\b"), "<HEX>"),
    (
        re.compile(r"(?<![\w\-])(?=[0-9A-Fa-f]*[0-9])(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{8,}(?![\w\-])"),
        "<HEX>",
    ),
    (re.compile(r"(?<![A-Za-z0-9])-?\d+(?:\.\d+)?(?![A-Za-z0-9])"), "<NUM>"),
)

# A message with none of these characters has nothing to mask: the common case of a fixed text costs one
# scan instead of eleven.
_MAY_HAVE_VARIABLES: Final = re.compile(r"[0-9/@:\\]")

MASK_TOKENS: Final = frozenset(
    ("<URL>", "<EMAIL>", "<UUID>", "<MAC>", "<IP>", "<TIME>", "<PATH>", "<HEX>", "<NUM>")
)
"""The typed tokens `mask` writes."""


def mask(text: str) -> str:
    """`text` with its variable parts replaced by typed tokens (see the module docstring). Never raises."""
    if _MAY_HAVE_VARIABLES.search(text) is None:
        return text
    for pattern, token in _RULES:
        text = pattern.sub(token, text)
    return text
