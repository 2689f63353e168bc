"""An online log-template miner: a Drain-like fixed-depth tree over masked messages, with a size cap.

Drain (He et al., ICWS 2017) groups a stream of messages in one pass: messages of the same length that
start with the same words land in one leaf of a shallow tree, and within a leaf a message joins the
template it shares the most positions with, when that share reaches a threshold; otherwise it starts a
template of its own. When a message joins, the positions where it differs become ``<*>``.

What this one changes, each measured on labeled Loghub samples (bench/patterns.py, docs/patterns.md):

- Messages are masked first (`masking.mask`): typed tokens (``<IP>``, ``<NUM>``...) make most variable
  positions equal from the first message on, so templates rarely need to generalise at all, and a
  message that starts with a number or an address is routed by its mask token.
- A ``<*>`` position of a template counts as shared with anything (Drain counts it as a difference, so
  the more a template generalised, the harder it becomes to join). Typed masks count only when equal.
- The templates are capped (`max_templates`); the least recently matched one is evicted first (LRU), so
  memory stays bounded however many distinct shapes arrive. An evicted shape that comes back starts a
  new template with the same text, hence the same id.
- Exact repeats of a masked message skip the tree: a bounded dictionary maps the masked text to its
  template (storms repeat one message).

Template ids (`template_id`) are a hash of the template text: the same text has the same id on every
replica and after every restart. When a template generalises, its text and so its id change; see
docs/patterns.md for why this converges across replicas, and `TemplateMiner.seed` for restarts.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, Final

from opsresponder.config import PatternsConfig
from opsresponder.pipeline.patterns.masking import mask

WILDCARD: Final = "<*>"
_ROUTE_WILDCARD: Final = "<*>"
_LEAF: Final = ""  # the key of a node's leaf (the templates); no word is empty, so it names no child

_Key = int | str
# A tree node: children by word (and the root by length), and its leaf under _LEAF.
_Node = dict[_Key, Any]


def template_id(template: str) -> str:
    """The stable id of a template: 16 hex digits of BLAKE2b over its text (UTF-8)."""
    return hashlib.blake2b(template.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


class Template:
    """One template (a cluster of messages): its tokens, text and id, and how many messages joined it.

    ``text`` and ``id`` change when the template generalises (a token becomes ``<*>``); ``seq`` is a
    process-local serial that never changes, for grouping within a process.
    """

    __slots__ = ("_id", "alive", "route", "seq", "size", "text", "tokens")

    def __init__(self, tokens: list[str], seq: int, route: tuple[_Key, ...]) -> None:
        self.tokens = tokens
        self.text = " ".join(tokens)
        self._id: str | None = None
        self.seq = seq
        self.size = 0
        self.route = route  # the keys from the root to the node holding its leaf, to prune on eviction
        self.alive = True

    @property
    def id(self) -> str:
        if self._id is None:
            self._id = template_id(self.text)
        return self._id

    def absorb(self, tokens: list[str]) -> bool:
        """Generalise the positions where `tokens` differ; True when the text changed."""
        own = self.tokens
        changed = False
        for i, token in enumerate(tokens):
            if own[i] != token and own[i] != WILDCARD:
                own[i] = WILDCARD
                changed = True
        if changed:
            self.text = " ".join(own)
            self._id = None
        return changed


def _is_variable(token: str) -> bool:
    """A token that should not route (Drain: one holding a digit; here also one holding a mask)."""
    return "<" in token or any(c.isdigit() for c in token)


class TemplateMiner:
    """Groups messages into templates online; see the module docstring.

    Not thread-safe; one per pipeline (the stage owns it). Every method is CPU only.

    Args:
        similarity_threshold: the share of positions a message must share with a template to join it.
        depth: tree depth as in Drain: the message length, then ``depth - 2`` leading tokens, route.
        max_children: children per tree node; beyond it, further tokens share the ``<*>`` child.
        max_templates: templates kept; the least recently matched is evicted beyond it.
        max_chars: characters of a message considered (a longer one is cut there before masking).
    """

    def __init__(
        self,
        *,
        similarity_threshold: float,
        depth: int,
        max_children: int,
        max_templates: int,
        max_chars: int,
    ) -> None:
        if depth < 3:
            raise ValueError("depth must be at least 3")
        self._threshold = similarity_threshold
        self._route_tokens = depth - 2
        self._max_children = max_children
        self._max_templates = max_templates
        self._max_chars = max_chars
        self._root: _Node = {}
        self._lru: OrderedDict[int, Template] = OrderedDict()
        self._exact: dict[str, Template] = {}
        self._exact_limit = max(1024, 2 * max_templates)
        self._seq = 0
        self.evicted = 0
        """Templates evicted by the cap since start (a counter for metrics)."""

    @classmethod
    def from_config(cls, config: PatternsConfig) -> TemplateMiner:
        """The miner ``patterns`` configures (the defaults live in `config.PatternsConfig`)."""
        return cls(
            similarity_threshold=config.similarity_threshold,
            depth=config.depth,
            max_children=config.max_children,
            max_templates=config.max_templates,
            max_chars=config.max_title_chars,
        )

    def __len__(self) -> int:
        return len(self._lru)

    def templates(self) -> list[Template]:
        """The live templates, least recently matched first."""
        return list(self._lru.values())

    def add(self, message: str) -> Template:
        """The template `message` belongs to, after adding it (creating or generalising a template)."""
        masked = mask(message[: self._max_chars])
        template = self._exact.get(masked)
        if template is not None and template.alive:
            template.size += 1
            self._lru.move_to_end(template.seq)
            return template
        tokens = masked.split()
        template = self._match(tokens)
        if template is None:
            template = self._create(tokens)
        else:
            template.absorb(tokens)
            self._lru.move_to_end(template.seq)
        template.size += 1
        if len(self._exact) >= self._exact_limit:
            self._exact.clear()  # cheaper than an LRU per entry; repeats refill it within a batch
        self._exact[masked] = template
        return template

    def seed(self, template_text: str) -> Template:
        """Add a known template (from storage) as is, so that its messages get its id from the first one.

        A template already present (same text routes to it with every position shared) is returned as is.
        """
        tokens = template_text.split()
        existing = self._match(tokens)
        if existing is not None and existing.text == " ".join(tokens):
            return existing
        return self._create(tokens)

    def _find_leaf(self, tokens: list[str]) -> list[Template] | None:
        """The leaf `tokens` route to, or None; a word with no branch of its own takes the wildcard one."""
        node: _Node | None = self._root.get(len(tokens))
        for token in tokens[: self._route_tokens]:
            if node is None:
                return None
            child = None if _is_variable(token) else node.get(token)
            node = node.get(_ROUTE_WILDCARD) if child is None else child
        return None if node is None else node.get(_LEAF)

    def _make_leaf(self, tokens: list[str]) -> tuple[list[Template], tuple[_Key, ...]]:
        """The leaf `tokens` route to, created as needed, and the keys of its route."""
        route: list[_Key] = [len(tokens)]
        node: _Node = self._root.setdefault(len(tokens), {})
        for token in tokens[: self._route_tokens]:
            key = _ROUTE_WILDCARD if _is_variable(token) else token
            if key not in node and len(node) >= self._max_children:
                key = _ROUTE_WILDCARD
            node = node.setdefault(key, {})
            route.append(key)
        leaf: list[Template] = node.setdefault(_LEAF, [])
        return leaf, tuple(route)

    def _evict(self, template: Template) -> None:
        """Take `template` out of the tree, and the nodes it leaves empty, so the tree stays bounded too."""
        template.alive = False
        nodes: list[_Node] = [self._root]
        for key in template.route:
            nodes.append(nodes[-1][key])
        leaf: list[Template] = nodes[-1][_LEAF]
        leaf.remove(template)
        if leaf:
            return
        del nodes[-1][_LEAF]
        for depth in range(len(template.route) - 1, -1, -1):
            if nodes[depth + 1]:
                return
            del nodes[depth][template.route[depth]]

    def _match(self, tokens: list[str]) -> Template | None:
        leaf = self._find_leaf(tokens)
        if not leaf:
            return None
        n = len(tokens)
        if n == 0:
            return leaf[0]
        best: Template | None = None
        best_score = -1.0
        for template in leaf:
            shared = sum(
                1 for own, token in zip(template.tokens, tokens, strict=True) if own in (token, WILDCARD)
            )
            score = shared / n
            if score > best_score or (score == best_score and best is not None and template.size > best.size):
                best, best_score = template, score
        if best is not None and best_score >= self._threshold:
            return best
        return None

    def _create(self, tokens: list[str]) -> Template:
        leaf, route = self._make_leaf(tokens)
        self._seq += 1
        template = Template(list(tokens), self._seq, route)
        leaf.append(template)
        self._lru[template.seq] = template
        if len(self._lru) > self._max_templates:
            _, old = self._lru.popitem(last=False)
            self._evict(old)
            self.evicted += 1
        return template
