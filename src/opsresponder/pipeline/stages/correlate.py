"""Stage 4: correlation. The stage and its engine live in `pipeline.correlation` (docs/correlation.md).

`correlate` here only opens a new group for each event without one: what tools and tests use to prepare
events for the store without the engine. A duplicate still reports the correlation of the event it
repeats: the store returns that one.
"""

from __future__ import annotations

from typing import Final

from opsresponder.core.batch import Batch
from opsresponder.core.event import Event
from opsresponder.pipeline.correlation.ids import new_uuids
from opsresponder.pipeline.correlation.stage import Correlate

__all__ = ["Correlate", "OwnGroups", "correlate"]


class OwnGroups:
    """The ``correlate`` stage with ``correlation.enabled: false``: every event a group of its own."""

    __slots__ = ()
    name: Final = "correlate"

    async def run(self, batch: Batch) -> None:
        correlate(batch.events)


def correlate(events: list[Event]) -> None:
    """Give each event without a correlation id a new one (a group of its own)."""
    missing = [e for e in events if e.correlation_id is None]
    for event, group_id in zip(missing, new_uuids(len(missing)), strict=True):
        event.correlation_id = group_id
