"""The ``noise`` stage: silences, flapping and per-source rate limits mark events suppressed; nothing
is dropped.

A suppressed event is stored like any other, with ``suppressed_reason`` (``silenced:<id>``, ``flapping``
or ``rate_limited``); the event list, the stream and subscriptions leave it out unless asked to include
suppressed events (`rules.filter.EventFilter`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Final, Protocol

import structlog

from opsresponder.config import NoiseConfig
from opsresponder.core.batch import Batch, TraceEntry
from opsresponder.core.clock import Clock
from opsresponder.core.errors import OpsResponderError
from opsresponder.core.event import Event
from opsresponder.core.silence import Silence
from opsresponder.pipeline.noise.flapping import FlapDetector
from opsresponder.pipeline.noise.matcher import CompiledSilence, SilenceSpecError, compile_silence
from opsresponder.pipeline.noise.metrics import NoiseMetrics
from opsresponder.pipeline.noise.rate_limit import SourceRateLimiter

log = structlog.get_logger(__name__)

FLAPPING: Final = "flapping"
RATE_LIMITED: Final = "rate_limited"


class SilenceSource(Protocol):
    """Where the stage reads silences from (`store.silences.SilenceRepository` in the service)."""

    @property
    def generation(self) -> int:
        """Changes whenever a silence is changed through this source, so the stage reloads at once."""
        ...

    async def load_current(self, now: datetime) -> list[Silence]:
        """Every silence that has not ended at `now` (future ones too).

        Raises:
            OpsResponderError: the silences cannot be read (the database is unavailable).
        """
        ...


class NoSilences:
    """A source with no silences, for a process that builds its stages without a database."""

    generation: Final = 0

    async def load_current(self, now: datetime) -> list[Silence]:
        return []


class Noise:
    """Marks silenced and flapping events suppressed, and says why in the batch's trace.

    Per batch: at most one read of the silences (when the copy is older than
    ``noise.silence_refresh_seconds`` or the source changed), then CPU only.
    """

    name: Final = "noise"

    def __init__(
        self,
        source: SilenceSource,
        config: NoiseConfig,
        clock: Clock,
        metrics: NoiseMetrics,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._clock = clock
        self._metrics = metrics
        self._refresh = timedelta(seconds=config.silence_refresh_seconds)
        self._silences: list[CompiledSilence] = []
        self._loaded_at: datetime | None = None
        self._generation = source.generation
        flapping = config.flapping
        self._flaps = FlapDetector(
            flapping.max_changes, timedelta(minutes=flapping.window_minutes), flapping.max_fingerprints
        )
        limits = config.rate_limit
        self._rate_limiter = SourceRateLimiter(limits.default_per_minute, limits.sources, limits.max_sources)
        self._monotonic = monotonic
        self._suppressed = {
            FLAPPING: metrics.suppressed.labels(FLAPPING),
            "silenced": metrics.suppressed.labels("silenced"),
            RATE_LIMITED: metrics.suppressed.labels(RATE_LIMITED),
        }

    async def run(self, batch: Batch) -> None:
        now = self._clock()
        silences = [s for s in await self._current(now) if s.active(now)]
        limiting = self._rate_limiter.enabled
        ticks = self._monotonic()
        # What an event that goes on was checked against: one string per batch, shared by its entries.
        passed = (
            f"passed: none of {len(silences)} active silences matched, not flapping"
            if silences
            else "passed: no active silence, not flapping"
        ) + (", within its source's rate limit" if limiting else "")
        trace = batch.trace
        spent: list[Event] = []  # events that took a token from their source's bucket
        for event in batch.events:
            # Every event counts towards flapping, a silenced one too: silencing hides a flap, not ends it.
            flapping, changes = self._flaps.observe(event.fingerprint, event.state, now)
            if event.suppressed_reason is not None:
                continue
            for silence in silences:
                if silence.matches(event):
                    event.suppressed_reason = silence.reason
                    trace.append(TraceEntry(event, self.name, f"{silence.reason}: matched the silence"))
                    self._suppressed["silenced"].inc()
                    break
            else:
                if flapping:
                    event.suppressed_reason = FLAPPING
                    trace.append(
                        TraceEntry(event, self.name, f"{FLAPPING}: {changes} state changes within the window")
                    )
                    self._suppressed[FLAPPING].inc()
                elif limiting and not self._rate_limiter.allow(event.source, ticks):
                    # Only events that would otherwise go on take from the budget: a silenced or flapping
                    # event is quiet already.
                    event.suppressed_reason = RATE_LIMITED
                    trace.append(
                        TraceEntry(
                            event, self.name, f"{RATE_LIMITED}: source {event.source!r} over its limit"
                        )
                    )
                    self._suppressed[RATE_LIMITED].inc()
                else:
                    if limiting:
                        spent.append(event)
                    trace.append(TraceEntry(event, self.name, passed))
        if spent:
            batch.when_not_stored(functools.partial(self._refund, spent))

    async def _refund(self, spent: list[Event], lost: Sequence[Event]) -> None:
        """Give back the tokens of `lost` events (never stored): their senders send them again, and the
        re-sent copy must not find its own first try in the budget (flapping needs no such care: a
        re-sent state is no new change)."""
        lost_ids = {id(event) for event in lost}
        for event in spent:
            if id(event) in lost_ids:
                self._rate_limiter.refund(event.source)

    async def _current(self, now: datetime) -> list[CompiledSilence]:
        generation = self._source.generation
        if (
            self._loaded_at is not None
            and generation == self._generation
            and self._loaded_at <= now < self._loaded_at + self._refresh
        ):
            return self._silences
        try:
            stored = await self._source.load_current(now)
        except OpsResponderError as e:
            # Degrade rather than lose the batch: keep the silences we had, try again after the interval.
            log.warning("silences_reload_failed", error=str(e))
            self._metrics.silence_load_failures.inc()
            self._loaded_at = now
            return self._silences
        self._silences = [c for c in map(_compile_stored, stored) if c is not None]
        self._loaded_at = now
        self._generation = generation
        return self._silences


def _compile_stored(silence: Silence) -> CompiledSilence | None:
    try:
        return compile_silence(silence.id, silence)
    except SilenceSpecError as e:
        # The API checked it when it was written; a time zone can still leave the system's tz database.
        log.error("silence_unusable", silence_id=silence.id, error=str(e))
        return None
