"""Stage 1: make every event storable and comparable, whatever listener produced it."""

from __future__ import annotations

from typing import Any, Final

import msgspec

from opsresponder.core.batch import Batch, TraceEntry
from opsresponder.core.clock import as_utc
from opsresponder.core.event import Event, compute_fingerprint

# PostgreSQL text and jsonb cannot hold NUL; a syslog sender can still send one. Replace, never drop.
_NUL = "\x00"
_NUL_JSON = b"\\u0000"  # how msgspec writes NUL inside a JSON string
_encode = msgspec.json.Encoder().encode
_REPLACEMENT = "\ufffd"
MAX_TITLE_CHARS = 1024

# The trace's words for what normalize decided; constants, so a traced event costs one small struct here.
FINGERPRINT_COMPUTED: Final = "fingerprint computed from source, host, service, event_type, title"
FINGERPRINT_GIVEN: Final = "fingerprint given by the sender"
_TITLE_CUT: Final = f"; title cut to {MAX_TITLE_CHARS} characters"


class Normalize:
    """`normalize` as a pipeline stage (CPU only: it never awaits)."""

    __slots__ = ()
    name: Final = "normalize"

    async def run(self, batch: Batch) -> None:
        normalize(batch.events, batch.trace)


def normalize(events: list[Event], trace: list[TraceEntry] | None = None) -> None:
    """Trim host and service (empty becomes None), make datetimes UTC, compute missing fingerprints.

    With a `trace`, appends one entry per event: where its fingerprint came from, and a cut title.
    """
    for event in events:
        # Identifiers too: a webhook may send NUL in its free-form source or its own fingerprint.
        event.source = _scrub(event.source)
        event.source_type = _scrub(event.source_type)
        event.event_type = _scrub(event.event_type)
        event.fingerprint = _scrub(event.fingerprint)
        event.host = _clean_optional(event.host)
        event.service = _clean_optional(event.service)
        title = _scrub(event.title.strip())
        cut = len(title) > MAX_TITLE_CHARS
        event.title = title[:MAX_TITLE_CHARS] if cut else title
        if event.description is not None and _NUL in event.description:
            event.description = _scrub(event.description)
        if event.raw is not None and _NUL in event.raw:
            event.raw = _scrub(event.raw)
        event.occurred_at = as_utc(event.occurred_at)
        event.received_at = as_utc(event.received_at)
        if event.tags:
            event.tags = list(dict.fromkeys(_scrub(t.strip()) for t in event.tags if t.strip()))
        if event.metadata and _NUL_JSON in _encode(event.metadata):
            event.metadata = _scrub_value(event.metadata)
        if event.fingerprint:
            detail = FINGERPRINT_GIVEN
        else:
            detail = FINGERPRINT_COMPUTED
            event.fingerprint = compute_fingerprint(
                event.source, event.host, event.service, event.event_type, event.title
            )
        if trace is not None:
            trace.append(TraceEntry(event, "normalize", detail + _TITLE_CUT if cut else detail))


def _clean_optional(value: str | None) -> str | None:
    if value is None:
        return None
    value = _scrub(value.strip())
    return value or None


def _scrub(text: str) -> str:
    return text.replace(_NUL, _REPLACEMENT) if _NUL in text else text


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return _scrub(value)
    if isinstance(value, dict):
        return {_scrub(str(k)): _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_value(v) for v in value]
    return value
