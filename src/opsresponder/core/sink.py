"""What a listener hands its events to.

The pipeline's `Intake` implements it; tests pass a list-backed one.
"""

from __future__ import annotations

from typing import Any, Protocol

from opsresponder.core.event import Event


class EventSink(Protocol):
    """The two doors of the intake.

    `offer` never blocks: it returns False (and the sink counts the drop) when full; datagram listeners use
    it. `put` waits for room: stream listeners pause reading while it waits, so senders feel backpressure.
    """

    def offer(self, event: Event) -> bool: ...

    async def put(self, event: Event) -> Any: ...
