"""pysnmp's asyncio UDP transports, fed by our own handler (the receiver's socket, the v3 worker)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp, udp6  # type: ignore[import-untyped]


class Udp4(udp.UdpAsyncioTransport):  # type: ignore[misc]  # pysnmp is untyped
    """pysnmp's asyncio UDP transport, but datagrams go straight to the receiver, not via call_soon."""

    def __init__(self, handler: Callable[[bytes, Any], None]) -> None:
        super().__init__()
        self._handler = handler
        self.closed = asyncio.Event()

    def datagram_received(self, datagram: bytes, transportAddress: Any) -> None:  # pysnmp's parameter name
        self._handler(datagram, transportAddress)

    def connection_lost(self, exc: Exception | None) -> None:
        # asyncio closes the socket only now, one loop iteration after close(); stop() waits for it.
        super().connection_lost(exc)
        self.closed.set()


class Udp6(udp6.Udp6AsyncioTransport):  # type: ignore[misc]  # pysnmp is untyped
    def __init__(self, handler: Callable[[bytes, Any], None]) -> None:
        super().__init__()
        self._handler = handler
        self.closed = asyncio.Event()

    def datagram_received(self, datagram: bytes, transportAddress: Any) -> None:
        self._handler(datagram, transportAddress)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.closed.set()
