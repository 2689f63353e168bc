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

# Each rule: (compiled pattern, replacement). Lookbehinds keep a rule from starting inside a word. No rule
# crosses white space, so they run on each word that may hold a variable rather than on the whole text.
_H: Final = "[0-9A-Fa-f]"
_URL: Final = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]{1,15}://[^\s<>\"']+")
_EMAIL: Final = re.compile(r"(?<![\w.+\-])[\w.+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+\b")
_UUID: Final = re.compile(rf"(?<![\w\-]){_H}{{8}}-{_H}{{4}}-{_H}{{4}}-{_H}{{4}}-{_H}{{12}}(?![\w\-])")
_MAC: Final = re.compile(rf"(?<![\w:\-]){_H}{{2}}(?:[:\-]{_H}{{2}}){{5}}(?![\w:\-])")
_IPV4: Final = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6: Final = re.compile(
    rf"(?<![\w:])(?:(?:{_H}{{1,4}}:){{7}}{_H}{{1,4}}"
    rf"|(?:{_H}{{1,4}}:){{1,7}}:(?:{_H}{{1,4}}(?::{_H}{{1,4}}){{0,6}})?"
    rf"|::{_H}{{1,4}}(?::{_H}{{1,4}}){{0,6}})(?![\w:])"
)
_TIME: Final = re.compile(r"(?<![\w:])\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?(?![\w:])")
_PATH: Final = re.compile(r"(?<![\w.~\-/<>])(?:/[\w.~%+@\-]+)+/?|\b[A-Za-z]:\\[^\s]+")
_HEX_PREFIXED: Final = re.compile(r"\b0[xX][0-9A-Fa-f]+\b")
_HEX_BARE: Final = re.compile(
    r"(?<![\w\-])(?=[0-9A-Fa-f]*[0-9])(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{8,}(?![\w\-])"
)
_NUM: Final = re.compile(r"(?<![A-Za-z0-9])-?\d+(?:\.\d+)?(?![A-Za-z0-9])")
_HAS_HEX_RUN: Final = re.compile(r"[0-9A-Fa-f]{8}")

# A word with none of these characters has nothing to mask; a text with none of them is returned as is.
_MAY_HAVE_VARIABLES: Final = re.compile(r"[0-9/@:\\]")
_CANDIDATE_WORD: Final = re.compile(r"[^\s]*[0-9/@:\\][^\s]*")

MASK_TOKENS: Final = frozenset(
    ("<URL>", "<EMAIL>", "<UUID>", "<MAC>", "<IP>", "<TIME>", "<PATH>", "<HEX>", "<NUM>")
)
"""The typed tokens `mask` writes."""

# Masked words by word: storms repeat the same addresses and paths. Cleared when full (cheaper than an
# LRU per entry; it refills within a batch). Plain numbers skip it: they are quick and rarely repeat.
_CACHE_LIMIT: Final = 16_384
_cache: dict[str, str] = {}


def mask(text: str) -> str:
    """`text` with its variable parts replaced by typed tokens (see the module docstring). Never raises."""
    if _MAY_HAVE_VARIABLES.search(text) is None:
        return text
    return _CANDIDATE_WORD.sub(_mask_match, text)


def _mask_match(match: re.Match[str]) -> str:
    return mask_word(match.group())


def mask_word(word: str) -> str:
    """One word (no white space) masked; the rules that cannot apply are skipped by a character test."""
    if word.isdigit():
        return "<NUM>"
    cached = _cache.get(word)
    if cached is not None:
        return cached
    out = word
    if "://" in out:
        out = _URL.sub("<URL>", out)
    if "@" in out:
        out = _EMAIL.sub("<EMAIL>", out)
    if "-" in out or ":" in out:
        if out.count("-") >= 4:
            out = _UUID.sub("<UUID>", out)
        out = _MAC.sub("<MAC>", out)
    if "." in out:
        out = _IPV4.sub("<IP>", out)
    if ":" in out:
        out = _IPV6.sub("<IP>", out)
        out = _TIME.sub("<TIME>", out)
    if "/" in out or "\\" in out:
        out = _PATH.sub("<PATH>", out)
    if "0x" in out or "0X" in out:
        out = _HEX_PREFIXED.sub("<HEX>", out)
    if len(out) >= 8 and _HAS_HEX_RUN.search(out) is not None:
        out = _HEX_BARE.sub("<HEX>", out)
    out = _NUM.sub("<NUM>", out)
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[word] = out
    return out
