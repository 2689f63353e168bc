"""The ``rules`` stage (pipeline stage 6): evaluate the batch's events against the trigger rules.

Each evaluated event gets one trace entry listing every rule evaluated with its outcome (not matched and
why, held by threshold, cooldown or max_triggers_per_hour, fired); the firings go under `FIRINGS` to the
store, which writes them in the batch's transaction (the outbox the response side claims from).

The windows, cooldowns and hourly counts live in the state backend and are written during evaluation,
before the batch commits. For an event that is then never stored (answered 503 in an outage, refused),
its hits are taken back (`Batch.when_not_stored`): its client sends it again, and the re-sent event must
count once and not be held by the cooldown of a firing that was never stored.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Final

import structlog

from opsresponder.core.batch import Batch, TraceEntry
from opsresponder.core.clock import Clock
from opsresponder.core.event import Event
from opsresponder.pipeline.rules.book import RuleBook
from opsresponder.pipeline.rules.metrics import RuleMetrics
from opsresponder.rules.evaluation import FIRINGS
from opsresponder.state.base import StateBackend
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
        recorded: list[tuple[int, str, float]] = []
        try:
            evaluation = await engine.evaluate(events, self._clock(), recorded)
        except StateError as e:
            # Storing the events matters more than this batch's firings: degrade, count and say so.
            self._metrics.failures.labels("evaluate").inc()
            log.error("Rule evaluation failed: the state backend is unavailable.", error=str(e))
            detail = f"not evaluated: the state backend failed ({e})"
            batch.trace.extend(TraceEntry(event, STAGE, detail) for event in events)
            return
        finally:
            if recorded:  # also the hits written before a failure: taken back if their events are lost
                batch.when_not_stored(functools.partial(self._take_back, engine.state, events, recorded))
        batch.trace.extend(TraceEntry(events[i], STAGE, text) for i, text in evaluation.traces.items())
        if evaluation.firings:
            batch.add(FIRINGS, evaluation.firings)
            self._metrics.fired.labels("trigger").inc(len(evaluation.firings))

    async def _take_back(
        self,
        state: StateBackend,
        events: Sequence[Event],
        recorded: Sequence[tuple[int, str, float]],
        lost: Sequence[Event],
    ) -> None:
        """Remove the window hits written for the `lost` events (the batch's `events` by index)."""
        lost_ids = {id(event) for event in lost}
        hits = [(key, at) for i, key, at in recorded if id(events[i]) in lost_ids]
        if not hits:
            return
        try:
            removed = await state.window_take_back_many(hits)
        except StateError as e:
            self._metrics.failures.labels("take_back").inc()
            log.warning(
                "Taking back the rule window hits of events that were not stored failed; they count until "
                "their windows end.",
                hits=len(hits),
                error=str(e),
            )
            return
        self._metrics.taken_back.inc(removed)
