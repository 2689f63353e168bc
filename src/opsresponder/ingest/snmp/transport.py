"""pysnmp's asyncio UDP transports, fed by our own handler (the receiver's socket, the v3 worker)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp, udp6  # type: ignore[import-untyped]


class _Direct:
    """Datagrams go straight to `handler`, not through pysnmp's call_soon; `closed` says the socket is."""

    def __init__(self, handler: Callable[[bytes, Any], None]) -> None:
        super().__init__()
        self._handler = handler
        self.closed = asyncio.Event()

    def datagram_received(self, datagram: bytes, transportAddress: Any) -> None:  # pysnmp's parameter name
        self._handler(datagram, transportAddress)

    def connection_lost(self, exc: Exception | None) -> None:
        # asyncio closes the socket only now, one loop iteration after close(); stop() waits for it.
        super().connection_lost(exc)  # type: ignore[misc]  # pysnmp's transport, next in the MRO
        self.closed.set()


class Udp4(_Direct, udp.UdpAsyncioTransport):  # type: ignore[misc]  # pysnmp is untyped
    pass


class Udp6(_Direct, udp6.Udp6AsyncioTransport):  # type: ignore[misc]  # pysnmp is untyped
    pass
