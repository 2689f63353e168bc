"""Where the ``correlate`` stage rebuilds its state from at start: the events of the last lookback window.

The store implements `CorrelationHistory` (`store.correlations.CorrelationRepository`); the pipeline never
imports the store, the composition root hands it over through `pipeline.stages.StageDeps`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Protocol

from opsresponder.core.event import Event


class CorrelationHistory(Protocol):
    """Stored events for the correlation state, oldest first."""

    def recent_events(self, since: datetime) -> AsyncIterator[Sequence[Event]]:
        """Chunks of the stored events that occurred at or after `since`, in occurrence order.

        Each event has its ``id``, ``correlation_id``, host, service, tags, fingerprint, state,
        ``occurred_at``, ``received_at`` and the ``asset``, ``pattern`` and ``correlation`` parts of its
        metadata (other fields may be left out).

        Raises:
            OpsResponderError: the history cannot be read (the database is unavailable).
        """
        ...


class NoHistory:
    """No stored events: a process built without a database (``check-config``, unit tests)."""

    async def recent_events(self, since: datetime) -> AsyncIterator[Sequence[Event]]:
        return
        yield
