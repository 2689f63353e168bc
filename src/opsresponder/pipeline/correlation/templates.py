"""Message templates for pattern_based correlation: a cheap masked title when the ``patterns`` stage did
not run, and which templates are similar (``correlation.similarity_threshold``).

The ``patterns`` stage (when configured) sets ``metadata.pattern = {id, template}`` with a stable id; this
module only falls back to masking the title itself, so that the same failure on many hosts still matches
when that stage is off. Similarity is Drain's: templates of the same number of tokens, the share of
positions whose tokens are equal.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

# Most specific first: a UUID or an IP would otherwise be eaten as hex or numbers piece by piece.
_MASKS: Final = (
    (
        re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
        "<UUID>",
    ),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<IP>"),
    (re.compile(r"(?<![\w/])(?:/[\w.\-]+)+/?"), "<PATH>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b|\b[0-9a-fA-F]*\d[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b"), "<HEX>"),
    (re.compile(r"[-+]?\d+(?:[.,]\d+)*"), "<NUM>"),
)
_MAX_TEMPLATE_CHARS: Final = 512
_FALLBACK_PREFIX: Final = "title:"


def mask_text(text: str) -> str:
    """`text` with UUIDs, IPs, paths, hex and numbers replaced by tokens (``<IP>``, ``<NUM>``...)."""
    text = text[:_MAX_TEMPLATE_CHARS]
    for pattern, token in _MASKS:
        text = pattern.sub(token, text)
    return " ".join(text.split())


def pattern_of(metadata: dict[str, Any], title: str) -> tuple[str, str]:
    """The (key, template) of an event: its ``metadata.pattern`` when set, else its masked title.

    Keys of the fallback start with ``title:`` so they never collide with a pattern id.
    """
    pattern = metadata.get("pattern")
    if isinstance(pattern, dict):
        pattern_id, template = pattern.get("id"), pattern.get("template")
        if isinstance(pattern_id, str) and pattern_id and isinstance(template, str):
            return pattern_id, template
    template = mask_text(title)
    return _FALLBACK_PREFIX + template, template


def similarity(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """Drain's sequence similarity: the share of equal tokens by position; 0 for different lengths."""
    if len(a) != len(b) or not a:
        return 0.0
    return sum(1 for x, y in zip(a, b, strict=True) if x == y) / len(a)


class TemplateIndex:
    """The templates seen recently, and for each the other templates at least `threshold` similar.

    A new template is compared once, with the templates of its length (at most `max_per_length` of them);
    the links are kept both ways, so looking up the similar templates of a known one costs a dict read.
    Bounded: past `max_templates`, the oldest template is forgotten (with its links).
    """

    __slots__ = (
        "_by_length",
        "_max",
        "_max_per_length",
        "_max_similar",
        "_similar",
        "_threshold",
        "_tokens",
        "known",
    )

    def __init__(
        self, threshold: float, max_templates: int, max_per_length: int = 2000, max_similar: int = 8
    ) -> None:
        self._threshold = threshold
        self._max = max_templates
        self._max_per_length = max_per_length
        self._max_similar = max_similar
        self._tokens: dict[str, tuple[str, ...]] = {}
        self._by_length: dict[int, dict[str, None]] = {}
        self._similar: dict[str, dict[str, float]] = {}
        # What `similar` answers for a template registered already, else None: the mapping's own get, for
        # the hot path (no Python frame).
        self.known: Callable[[str], dict[str, float] | None] = self._similar.get

    def __len__(self) -> int:
        return len(self._tokens)

    def similar(self, key: str, template: str) -> dict[str, float]:
        """The keys of the known templates similar to `template` (not itself), with their similarity.

        Registers `template` under `key` on first sight.
        """
        known = self._similar.get(key)
        if known is not None:
            return known
        tokens = tuple(template.split())
        found: dict[str, float] = {}
        peers = self._by_length.setdefault(len(tokens), {})
        threshold = self._threshold
        for other in peers:
            sim = similarity(tokens, self._tokens[other])
            if sim >= threshold:
                found[other] = sim
                _keep_best(self._similar[other], key, sim, self._max_similar)
        if len(found) > self._max_similar:
            best = sorted(found.items(), key=lambda item: item[1], reverse=True)[: self._max_similar]
            found = dict(best)
        self._tokens[key] = tokens
        self._similar[key] = found
        peers[key] = None
        if len(peers) > self._max_per_length:
            self._forget(next(iter(peers)))
        if len(self._tokens) > self._max:
            self._forget(next(iter(self._tokens)))
        return found

    def _forget(self, key: str) -> None:
        tokens = self._tokens.pop(key, None)
        if tokens is None:
            return
        self._by_length[len(tokens)].pop(key, None)
        for other in self._similar.pop(key, {}):
            links = self._similar.get(other)
            if links is not None:
                links.pop(key, None)


def _keep_best(links: dict[str, float], key: str, sim: float, limit: int) -> None:
    """Add `key` to `links`, keeping only the `limit` most similar (a family of near-identical templates
    would otherwise make every lookup walk all of them)."""
    if len(links) < limit:
        links[key] = sim
        return
    weakest = min(links, key=links.__getitem__)
    if links[weakest] < sim:
        del links[weakest]
        links[key] = sim
