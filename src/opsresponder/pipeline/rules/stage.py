"""The ``rules`` stage (pipeline stage 6): evaluate the batch's events against the trigger rules.

Each evaluated event gets one trace entry listing every rule evaluated with its outcome (not matched and
why, held by threshold, cooldown or max_triggers_per_hour, fired); the firings go under `FIRINGS` to the
store, which writes them in the batch's transaction (the outbox the response side claims from).
"""

from __future__ import annotations

from typing import Final

import structlog

from opsresponder.core.batch import Batch, TraceEntry
from opsresponder.core.clock import Clock
from opsresponder.pipeline.rules.book import RuleBook
from opsresponder.pipeline.rules.metrics import RuleMetrics
from opsresponder.rules.evaluation import FIRINGS
from opsresponder.state.errors import StateError

log = structlog.get_logger(__name__)

STAGE: Final = "rules"
_NO_RULES: Final = "no active trigger rule"


class Rules:
    name = STAGE

    def __init__(self, book: RuleBook, clock: Clock, metrics: RuleMetrics) -> None:
        self.book = book
        self._clock = clock
        self._metrics = metrics

    async def run(self, batch: Batch) -> None:
        await self.book.refresh()
        engine = self.book.engine
        events = batch.events
        if engine.rule_count == 0:
            # Said all the same, so a trace never leaves the reader wondering whether rules ran.
            batch.trace.extend(TraceEntry(event, STAGE, _NO_RULES) for event in events)
            return
        try:
            evaluation = await engine.evaluate(events, self._clock())
        except StateError as e:
            # Storing the events matters more than this batch's firings: degrade, count and say so.
            self._metrics.failures.labels("evaluate").inc()
            log.error("Rule evaluation failed: the state backend is unavailable.", error=str(e))
            detail = f"not evaluated: the state backend failed ({e})"
            batch.trace.extend(TraceEntry(event, STAGE, detail) for event in events)
            return
        batch.trace.extend(TraceEntry(events[i], STAGE, text) for i, text in evaluation.traces.items())
        if evaluation.firings:
            batch.add(FIRINGS, evaluation.firings)
            self._metrics.fired.labels("trigger").inc(len(evaluation.firings))
