"""`AbsenceChecker`: fires the absence rules whose deadlines passed, once each across replicas.

Deadlines live in the state backend (`keys.deadlines_key`); the stage opens, moves and closes them as
events arrive. Every ``rules.absence_check_seconds`` the checker lists the due ones and claims each with
a compare-and-remove, so of several replicas only one fires a given deadline, and a deadline moved by a
heartbeat in between is not fired. Its firings have no event, hence no batch transaction: they go to the
`FiringSink` (the store) directly. If that write fails, the claimed deadlines are put back for the next
check: a firing is never lost for a database outage, at worst late.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog

from opsresponder.core.clock import Clock
from opsresponder.pipeline.rules.book import RuleBook
from opsresponder.pipeline.rules.keys import deadlines_key
from opsresponder.pipeline.rules.metrics import RuleMetrics
from opsresponder.rules.evaluation import Firing, FiringSink

log = structlog.get_logger(__name__)


class AbsenceChecker:
    def __init__(
        self, book: RuleBook, sink: FiringSink, clock: Clock, interval_seconds: float, metrics: RuleMetrics
    ) -> None:
        self._book = book
        self._sink = sink
        self._clock = clock
        self._interval = interval_seconds
        self._metrics = metrics

    async def check(self) -> list[Firing]:
        """Fire every deadline due now (that this call claims); returns the firings written.

        Raises:
            StateError: the state backend failed (nothing was claimed, or what was is put back).
            Exception: the sink's failure, after the claimed deadlines were put back.
        """
        await self._book.refresh()
        state = self._book.engine.state
        now = self._clock()
        ts = now.timestamp()
        claimed: list[tuple[str, str, float]] = []
        firings: list[Firing] = []
        for rule in self._book.engine.absence_rules:
            assert rule.absence is not None
            key = deadlines_key(rule.rule_id)
            for group, due in await state.deadlines_due(key, ts):
                if not await state.deadline_remove(key, group, due):
                    continue  # another replica fired it, or an event moved it meanwhile
                claimed.append((key, group, due))
                detail = {
                    "rule_name": rule.name,
                    "deadline": datetime.fromtimestamp(due, UTC).isoformat(),
                    "within_minutes": rule.absence.within_minutes,
                    "variant": "heartbeat" if rule.absence.after is None else "after",
                }
                firings.append(Firing(rule.rule_id, group, "absence", now, (), detail))
        if not firings:
            return firings
        try:
            await self._sink.write_firings(firings)
        except BaseException:
            for key, group, due in claimed:
                await state.deadline_set(key, group, due, only_if_absent=True)
            raise
        self._metrics.fired.labels("absence").inc(len(firings))
        return firings

    async def run(self) -> None:
        """Check every interval until cancelled; a failed check is logged, counted, and tried again."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.check()
            except Exception:
                self._metrics.failures.labels("absence_check").inc()
                log.exception("The absence check failed; it runs again next interval.")
