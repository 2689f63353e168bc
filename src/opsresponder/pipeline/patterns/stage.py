"""The ``patterns`` stage: each event's title reduced to a template, ``metadata.pattern = {id, template}``.

CPU only, except once at start: the first batch awaits the store for the most recently seen templates
(``patterns.seed_from_store``), so that a restarted process gives known titles their known ids at once.
If the store cannot answer, the stage goes on without them and asks again at most every
`SEED_RETRY_SECONDS`.

Every event gets its template as it stands at the end of its batch: when a later event of the batch makes
a template more general, the earlier events of the batch get the general one too, so a storm that arrives
in one batch has one id. See docs/patterns.md for what a template is and how ids stay stable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Final, Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from opsresponder.config import PatternsConfig
from opsresponder.core.batch import Batch, TraceEntry
from opsresponder.core.errors import OpsResponderError
from opsresponder.core.event import Event
from opsresponder.pipeline.patterns.miner import Template, TemplateMiner

log = structlog.get_logger(__name__)

STAGE: Final = "patterns"
# The stage's trace entry: empty, the template is on the row (``metadata.pattern``); the trace API writes
# ``template <id>: <text>`` from it when a trace is read (`stored_detail`), so the template is neither
# formatted per event nor stored twice.
_ON_THE_ROW: Final = ""
SEED_RETRY_SECONDS: Final = 30.0


def stored_detail(event: Event, entry: str) -> str:
    """The entry as a person reads it: ``template <id>: <text>`` from the stored `event`'s
    ``metadata.pattern``; any other entry (one stored whole, before entries became empty) as it is."""
    if entry != _ON_THE_ROW:
        return entry
    pattern = event.metadata.get("pattern")
    if isinstance(pattern, dict):
        pattern_id, text = pattern.get("id"), pattern.get("template")
        if isinstance(pattern_id, str) and isinstance(text, str):
            return f"template {pattern_id}: {text}"
    return "template unknown (metadata.pattern is missing)"


class PatternSource(Protocol):
    """Where the stage reads known templates at start (`store.patterns.PatternRepository` in the service)."""

    async def recent_templates(self, limit: int) -> Sequence[str]:
        """The texts of the `limit` most recently seen templates, most recent first.

        Raises:
            OpsResponderError: the templates cannot be read (the database is unavailable).
        """
        ...


class NoPatterns:
    """A source with no known templates, for a process that builds its stages without a database."""

    async def recent_templates(self, limit: int) -> Sequence[str]:
        return ()


class PatternMetrics:
    """Metric families of the patterns stage."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.templates = Gauge(
            "opsresponder_pattern_templates",
            "Message templates held in memory by this process.",
            registry=registry,
        )
        self.evicted = Counter(
            "opsresponder_pattern_templates_evicted_total",
            "Templates evicted from memory because patterns.max_templates was reached.",
            registry=registry,
        )


class Patterns:
    """Sets ``metadata.pattern`` on every event of a batch and traces the template it got."""

    __slots__ = ("_config", "_evicted", "_metrics", "_miner", "_monotonic", "_seed_after", "_source")
    name: Final = STAGE

    def __init__(
        self,
        config: PatternsConfig,
        source: PatternSource,
        metrics: PatternMetrics,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._source = source
        self._metrics = metrics
        self._monotonic = monotonic
        self._miner = TemplateMiner.from_config(config)
        self._evicted = 0
        # monotonic time from which to (re)try seeding; None once seeded or when seeding is off.
        self._seed_after: float | None = 0.0 if config.seed_from_store else None

    @property
    def miner(self) -> TemplateMiner:
        return self._miner

    async def run(self, batch: Batch) -> None:
        if self._seed_after is not None and self._monotonic() >= self._seed_after:
            await self._seed()
        miner = self._miner
        events = batch.events
        templates: list[Template] = [miner.add(event.title) for event in events]
        trace = batch.trace
        for event, template in zip(events, templates, strict=True):
            pattern_id, text = template.id, template.text
            event.metadata["pattern"] = {"id": pattern_id, "template": text}
            trace.append(TraceEntry(event, STAGE, _ON_THE_ROW))
        self._metrics.templates.set(len(miner))
        if miner.evicted != self._evicted:
            self._metrics.evicted.inc(miner.evicted - self._evicted)
            self._evicted = miner.evicted

    async def _seed(self) -> None:
        try:
            texts = await self._source.recent_templates(self._config.max_templates)
        except OpsResponderError as e:
            self._seed_after = self._monotonic() + SEED_RETRY_SECONDS
            log.warning(
                "Known templates could not be loaded; going on without them.",
                error=str(e),
                retry_seconds=SEED_RETRY_SECONDS,
            )
            return
        self._seed_after = None
        # Oldest first, so the most recent ones end up the most recently used (the last to be evicted).
        for text in reversed(texts):
            self._miner.seed(text)
        log.info("Known templates loaded.", templates=len(texts))
