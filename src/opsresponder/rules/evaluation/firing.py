"""`Firing`: a rule fired for one group; the `FIRINGS` batch key hands a batch's firings to the store.

Here, under both ``pipeline`` (which fires rules) and ``store`` (which writes firings in the batch's
transaction and serves them to the response side), since neither may import the other.
"""

from __future__ import annotations

import itertools
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from opsresponder.core.batch import BatchKey
from opsresponder.core.event import Event

FiringKind = Literal["trigger", "absence"]

# Firing keys: a random 64-bit prefix per process and a counter. As unique as uuid4 in practice, without a
# call into the OS per firing (uuid4 reads os.urandom, a tenth of the rules stage's time in a storm).
_KEY_BASE = secrets.randbits(64) << 64
_KEY_COUNTER = itertools.count()


def new_firing_key() -> uuid.UUID:
    return uuid.UUID(int=_KEY_BASE | next(_KEY_COUNTER))


@dataclass(frozen=True, slots=True)
class Firing:
    """One firing of one rule for one group.

    `events` are the events that made it fire, the completing one last (empty for an absence firing:
    what fired it is the event that did not come). They are the events themselves, not ids: ids are
    taken in the store's transaction, after the stages. `key` identifies the firing wherever it is
    written, so writing it again (a retried transaction) stores it once.
    """

    rule_id: int
    group_key: str
    kind: FiringKind
    fired_at: datetime
    events: tuple[Event, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)
    key: uuid.UUID = field(default_factory=new_firing_key)


# The firings of a batch, in the order they fired.
FIRINGS: BatchKey[list[Firing]] = BatchKey("rule_firings")


class FiringSink(Protocol):
    """Where the absence checker writes the firings it makes (no event, so no batch transaction)."""

    async def write_firings(self, firings: Sequence[Firing]) -> None: ...
