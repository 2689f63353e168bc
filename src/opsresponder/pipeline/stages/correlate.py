"""Stage 4: correlation. Until the correlation engine exists, each event opens its own correlation.

A duplicate still reports the correlation of the event it repeats: the store returns that one.
"""

from __future__ import annotations

import uuid

from opsresponder.core.event import Event


def correlate(events: list[Event]) -> None:
    for event in events:
        if event.correlation_id is None:
            event.correlation_id = uuid.uuid4()
