"""One batch on its way through the pipeline: its events and what the stages add to them.

In core because both sides of the pipeline read it: the stages (``pipeline``) fill it, and the store's
batch writers (``store``) write what they added in the batch's transaction, and neither may import the
other's package.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeAlias, TypeVar, cast

import msgspec

from opsresponder.core.event import Event

T = TypeVar("T")

NotStoredHook: TypeAlias = Callable[[Sequence[Event]], Awaitable[None]]
"""Called with events of a batch the store will never write; see `Batch.when_not_stored`."""


class TraceEntry(msgspec.Struct, frozen=True):
    """Why a stage did something to one event (suppressed it, scored it, fired a rule), for its trace.

    It holds the event itself, not its id: ids are taken in the store's transaction, after the stages.
    """

    event: Event
    stage: str
    detail: str


class BatchKey(Generic[T]):
    """Names one kind of addition and its type, as a module constant of the stage that adds it.

    ``CORRELATIONS: BatchKey[list[Correlation]] = BatchKey("correlations")``; `Batch.add` and `Batch.get`
    are then typed by the key, with no dictionary of Any for stages and writers to agree on by convention.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"BatchKey({self.name!r})"


class Batch:
    """The events of one batch, in intake order, and what the stages added for the later ones.

    Stages change events in place and must neither reorder nor remove them: the worker answers callers by
    position. An event that should not go on is marked (``suppressed_reason``), not taken out.

    What a stage adds either goes into ``trace`` or under a `BatchKey`. Whatever refers to events must
    hold the events themselves: the store may write a batch one event at a time (after the database
    refused it), and a writer then picks out what belongs to the events it is given.
    """

    __slots__ = (
        "__weakref__",
        "_additions",
        "_reported_not_stored",
        "events",
        "not_stored_hooks",
        "settled",
        "trace",
        "transaction_events",
    )

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.trace: list[TraceEntry] = []
        self.transaction_events: Sequence[Event] = events
        """The events of the transaction the store is writing now, duplicates included: all of `events`,
        or the one event of a retry when the store writes a refused batch one event at a time. The store
        sets it before its batch writers run; a writer that counts occurrences (duplicates too) reads it."""
        self.settled = False
        """Set by the pipeline's worker once it is done storing the batch for good: each event that was
        stored then has its final ``id``, and the others (duplicates, refused, answered 503) never get one.
        Before, an id is not final: a transaction that fails takes back the ids it gave, and the event is
        stored later (after an outage, or alone after its batch was refused) with another. What keeps an
        event's id beyond the batch (the correlation state) waits for this, or for the batch to be gone:
        the worker holds a batch until it is done with it."""
        # Created on the first `add`: most batches carry none, and a batch is allocated per write.
        self._additions: dict[BatchKey[object], object] | None = None
        self.not_stored_hooks: tuple[NotStoredHook, ...] = ()
        """See `when_not_stored`."""
        self._reported_not_stored: set[int] | None = None  # id() of the events `report_not_stored` took

    def when_not_stored(self, hook: NotStoredHook) -> None:
        """Have `hook` called with the events of this batch that will never be stored after all (their
        HTTP callers were answered 503 in an outage, the database refused them, or a later stage failed),
        so that a stage takes back what it recorded outside the batch for them: the rules stage's window
        hits, which would otherwise count an event twice once its client sends it again, and hold the
        re-sent event by a cooldown that no stored firing began. The pipeline's worker calls it, in the
        background; a hook deals with its own failures."""
        self.not_stored_hooks = (*self.not_stored_hooks, hook)

    def report_not_stored(self, events: Sequence[Event]) -> list[Event]:
        """Those of `events` not reported before: the ones the hooks are to be called with now. Each
        event is reported at most once, so a hook never takes back twice what it recorded once."""
        if self._reported_not_stored is None:
            self._reported_not_stored = set()
        reported = self._reported_not_stored
        fresh = [event for event in events if id(event) not in reported]
        reported.update(id(event) for event in fresh)
        return fresh

    def add(self, key: BatchKey[T], value: T) -> None:
        """Attach `value` under `key`; one value per key and batch (make it a list to collect several).

        Raises:
            KeyError: `key` already has a value in this batch (two stages claiming one key is a bug).
        """
        if self._additions is None:
            self._additions = {}
        elif key in self._additions:
            raise KeyError(f"{key.name!r} was already added to this batch")
        self._additions[cast("BatchKey[object]", key)] = value

    def get(self, key: BatchKey[T]) -> T | None:
        """The value added under `key`, or None when no stage added one."""
        if self._additions is None:
            return None
        return cast("T | None", self._additions.get(cast("BatchKey[object]", key)))
