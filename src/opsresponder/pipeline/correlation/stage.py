"""The ``correlate`` stage: the correlation engine over a batch, its state rebuilt from history once.

CPU only after its first batch: the first `run` awaits the history of the last lookback window (the
store's, through `CorrelationHistory`) and replays it, so a restart correlates new events into the groups
stored before it. If the history cannot be read the stage goes on with an empty state and says so.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Final

import structlog

from opsresponder.config import CorrelationConfig
from opsresponder.core.batch import Batch
from opsresponder.core.clock import Clock, utcnow
from opsresponder.core.errors import OpsResponderError
from opsresponder.pipeline.correlation.engine import STAGE, Correlator
from opsresponder.pipeline.correlation.history import CorrelationHistory, NoHistory
from opsresponder.pipeline.correlation.ids import UuidSupply

log = structlog.get_logger(__name__)


class Correlate:
    """`correlate` as a pipeline stage (see `pipeline.correlation.engine` for what it decides)."""

    __slots__ = ("_clock", "_config", "_history", "_ids", "_loaded", "engine")
    name: Final = STAGE

    def __init__(
        self,
        config: CorrelationConfig | None = None,
        history: CorrelationHistory | None = None,
        *,
        dedup_window_seconds: float = 300.0,
        clock: Clock = utcnow,
    ) -> None:
        self._config = config or CorrelationConfig()
        self._history: CorrelationHistory = history or NoHistory()
        self._clock = clock
        self._loaded = False
        self._ids = UuidSupply()
        self.engine = Correlator(
            self._config, dedup_window_seconds=dedup_window_seconds, clock=clock, new_group_id=self._ids
        )

    async def run(self, batch: Batch) -> None:
        if not self._loaded:
            await self.load_history()
        self._ids.reserve(len(batch.events))
        self.engine.correlate(batch)

    async def load_history(self) -> int:
        """Replay the stored events of the last lookback window into the state (once; the first `run` does
        it). Returns how many were replayed; 0 when the history could not be read (logged)."""
        self._loaded = True
        config = self._config
        span = max(config.lookback_hours * 3600.0, config.window_minutes * 60.0)
        since = self._clock() - timedelta(seconds=span)
        started = time.monotonic()
        replayed = 0
        try:
            async for chunk in self._history.recent_events(since):
                replayed += self.engine.load(chunk)
        except OpsResponderError as e:
            log.warning(
                "The correlation state could not be rebuilt from stored events; starting empty.",
                error=str(e),
                replayed=replayed,
            )
        finally:
            self.engine.end_load()
        log.info(
            "Correlation state rebuilt from stored events.",
            events=replayed,
            since=since.isoformat(),
            seconds=round(time.monotonic() - started, 3),
        )
        return replayed
