"""What the ``correlate`` stage hands to the store: the correlations it found in one batch.

In core because the stage (``pipeline``) fills these and the store's batch writer writes them, and neither
may import the other's package. The stage refers to events by the `Event` objects themselves: ids are taken
in the store's transaction, after the stages. An event of an earlier batch that is already stored is
referred to by its id (the stage keeps no `Event` object for long).
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

from opsresponder.core.batch import BatchKey
from opsresponder.core.event import Event

CorrelationType = Literal["time_based", "host_based", "pattern_based", "causal"]
CORRELATION_TYPES: Final[tuple[CorrelationType, ...]] = (
    "causal",
    "pattern_based",
    "host_based",
    "time_based",
)


class CorrelationLink(msgspec.Struct, frozen=True):
    """One correlation of a batch's event with one related event.

    A struct rather than a plain class: the stage makes a few per event, and a struct's constructor runs
    in C (a Python ``__init__`` was a tenth of the stage's cost).

    Attributes:
        event: the event of this batch that was correlated.
        related: the related event: an `Event` (of this batch, or of an earlier one not known to be stored
            when the stage ran: the writer takes its id then, and skips it if it has none: a duplicate),
            or the id of a stored event.
        correlation_type: the kind.
        score: 0-1.
        reason: for a person, e.g. "Events occurred within 1 hour on the same host db-1".
    """

    event: Event
    related: Event | int
    correlation_type: CorrelationType
    score: float
    reason: str

    def __repr__(self) -> str:
        return f"CorrelationLink({self.correlation_type}, {self.score:.2f}, {self.reason!r})"


CORRELATIONS: Final[BatchKey[list[CorrelationLink]]] = BatchKey("correlations")
"""The correlations found for the batch's events (`store.correlations.CorrelationWriter` writes them)."""

NEW_ROOT_CAUSES: Final[BatchKey[list[Event | int]]] = BatchKey("new_root_causes")
"""Events of earlier batches named root cause by this batch (an event that others turned out to depend
on): the writer sets ``metadata.correlation.root_cause`` on their stored rows. Events of the batch itself
carry it in their metadata already."""
