"""Stage 4: correlation. Until the correlation engine exists, each event opens its own correlation.

A duplicate still reports the correlation of the event it repeats: the store returns that one.
"""

from __future__ import annotations

import os
import uuid

from opsresponder.core.event import Event


def correlate(events: list[Event]) -> None:
    # One urandom call per batch instead of one per event (uuid4 makes a syscall each time).
    missing = [e for e in events if e.correlation_id is None]
    entropy = os.urandom(16 * len(missing))
    for i, event in enumerate(missing):
        event.correlation_id = uuid.UUID(bytes=entropy[16 * i : 16 * i + 16], version=4)
