"""`RuleBook`: the engine's rules kept in step with a `RuleSource`, polled at most every interval."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from opsresponder.core.clock import Clock
from opsresponder.pipeline.rules.engine import RuleEngine
from opsresponder.rules.evaluation import RuleSource

log = structlog.get_logger(__name__)

_UNLOADED = object()


class RuleBook:
    """Reloads `engine` from `source` when the source's `version` moved, checking at most every
    `reload_seconds`; a source that fails keeps the rules loaded before (and the failure is counted)."""

    def __init__(
        self,
        source: RuleSource,
        engine: RuleEngine,
        clock: Clock,
        reload_seconds: float,
        *,
        on_failure: Callable[[], None] = lambda: None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.engine = engine
        self._clock = clock
        self._interval = reload_seconds
        self._on_failure = on_failure
        self._monotonic = monotonic
        self._version: object = _UNLOADED
        self._next_check = 0.0

    def reload_soon(self) -> None:
        """Check the source before the next batch (a change through this process's API)."""
        self._next_check = 0.0

    async def refresh(self) -> None:
        now = self._monotonic()
        if now < self._next_check:
            return
        self._next_check = now + self._interval
        try:
            version = await self.source.version()
            if version == self._version and version is not _UNLOADED:
                return
            rules = await self.source.active_rules()
            self.engine.load(rules)
            await self.engine.arm(self._clock())
            self._version = version
            log.info("Rules loaded.", active=self.engine.rule_count)
        except Exception:
            # Evaluating with the previous rules beats losing the batch; the next interval tries again.
            self._on_failure()
            log.exception("Reloading the rules failed; keeping the rules loaded before.")
