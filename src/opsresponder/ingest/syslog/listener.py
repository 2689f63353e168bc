"""What the syslog listeners share: their shape, their error, and the step from message bytes to an Event."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final, Protocol

import structlog

from opsresponder.core.errors import OpsResponderError
from opsresponder.core.event import Event
from opsresponder.core.severity import Severity
from opsresponder.ingest.syslog.metrics import ListenerMetrics

log = structlog.get_logger(__name__)

DecodeFn = Callable[[bytes, str | None, datetime, str], Event]
"""``decode(data, peer, received_at, transport) -> Event``, ``peer`` as ``host:port`` (``[v6]:port``); the
composition root passes ``SyslogDecoder(...).decode``. By contract it never raises: what it cannot parse comes
back as an event with ``metadata["parse_error"]`` set."""

_TRAILER: Final = b"\r\n\x00"
_TITLE_MAX_CHARS: Final = 120

STOP_GRACE_SECONDS: Final = 5.0
"""How long `stop` lets connections hand their last complete messages to the intake before giving up."""


class IngestError(OpsResponderError):
    """A listener cannot run: its address is taken, or its TLS material is unusable.

    The message names the protocol, the host and the port (or the file), so an operator can act on it.
    """


class SyslogListener(Protocol):
    """The shape every syslog listener has; the composition root starts and stops them all alike."""

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)``; after binding port 0, the port the kernel chose."""
        ...

    async def start(self) -> None:
        """Bind and start receiving. Raises `IngestError` when the address cannot be bound."""
        ...

    async def stop(self) -> None:
        """Stop receiving, hand what was already received to the sink, release the socket(s)."""
        ...


def bind_error(protocol: str, host: str, port: int, error: OSError) -> IngestError:
    reason = error.strerror or str(error)
    return IngestError(f"cannot listen for syslog over {protocol} on {host}:{port}: {reason}")


def format_peer(peername: Any) -> str | None:
    """A socket's peer name as the decoder expects it: ``10.0.0.5:514``, ``[::1]:514``; None when unknown."""
    if not isinstance(peername, tuple) or len(peername) < 2:
        return None
    host, port = str(peername[0]), peername[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _peer_address(peer: str | None) -> str | None:
    """``10.0.0.5:514`` -> ``10.0.0.5``, ``[::1]:514`` -> ``::1``: the host of a raw event."""
    if peer is None:
        return None
    host = peer.rpartition(":")[0]
    return host.strip("[]") or peer


class MessageDecoder:
    """Turns the bytes of one message into an Event and counts what happened to it.

    Invariants: every message given to it is counted as received, and then as parsed or parse_failed (or,
    when empty, dropped with reason ``empty``); a truncated one is also counted as truncated and carries
    ``metadata["truncated"] = True``. An exception from the decoder never escapes: the message is kept as a
    raw event with a parse error, like any message the decoder could not parse.
    """

    __slots__ = ("_decode", "_decoder_failed", "_metrics", "_transport")

    def __init__(self, decode: DecodeFn, metrics: ListenerMetrics, transport: str) -> None:
        self._decode = decode
        self._metrics = metrics
        self._transport = transport
        self._decoder_failed = False

    def __call__(
        self, data: bytes, peer: str | None, received_at: datetime, truncated: bool = False
    ) -> Event | None:
        metrics = self._metrics
        metrics.received.inc()
        # Senders end datagrams and counted frames with the same trailers LF framing uses; they are never
        # part of the message.
        data = data.rstrip(_TRAILER)
        if not data:
            metrics.dropped("empty")
            return None
        try:
            event = self._decode(data, peer, received_at, self._transport)
        except Exception as exc:  # noqa: BLE001 - a decoder bug must not cost the message or the listener
            event = self._raw_event(data, peer, received_at, exc)
        metadata = event.metadata
        if peer is not None:
            metadata.setdefault("peer", peer)
        if truncated:
            # Set after decoding: the decoder sees bytes, not the framing that cut them.
            metadata["truncated"] = True
            metrics.truncated.inc()
        if metadata.get("parse_error"):
            metrics.parse_failed.inc()
        else:
            metrics.parsed.inc()
        return event

    def _raw_event(self, data: bytes, peer: str | None, received_at: datetime, exc: Exception) -> Event:
        if not self._decoder_failed:
            # Once per listener: a decoder bug repeats on every message, the counter tells how often.
            self._decoder_failed = True
            log.error(
                "The syslog decoder raised; messages are kept as raw events until it is fixed.",
                transport=self._transport,
                exc_info=exc,
            )
        text = data.decode("utf-8", "replace")
        first_line = text.split("\n", 1)[0].strip()
        return Event(
            source="syslog",
            source_type="syslog",
            event_type="syslog",
            severity=Severity.INFO,
            title=first_line[:_TITLE_MAX_CHARS] or "Unparsed syslog message",
            occurred_at=received_at,
            received_at=received_at,
            host=_peer_address(peer),
            description=text,
            raw=text,
            metadata={
                "parse_error": f"decoder error: {type(exc).__name__}: {exc}",
                "transport": self._transport,
            },
        )
