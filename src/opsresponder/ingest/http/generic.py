"""The generic webhook body of service-spec.md (``POST /api/v1/events/webhook``).

One event object, or a JSON array of them. Decoding is strict about types and enums and names the wrong
field in its error (``[2].severity``), so a sender can fix its payload from the answer alone. Unknown
fields are ignored, so senders can include their own extras without being refused.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Final

import msgspec

from opsresponder.core.clock import as_utc
from opsresponder.core.errors import InvalidEventError
from opsresponder.core.event import EVENT_TYPE_PATTERN, Event, EventState
from opsresponder.core.json_errors import MALFORMED_JSON_ERRORS
from opsresponder.core.severity import Severity

_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
_OptionalName = Annotated[str, msgspec.Meta(max_length=255)] | None
_Tag = Annotated[str, msgspec.Meta(max_length=128)]


class WebhookEvent(msgspec.Struct, kw_only=True):
    """The generic body. ``state`` and ``fingerprint`` are optional extensions beyond the spec's fields:
    a sender that resolves its own alerts sends ``state: resolved`` with the problem's fingerprint."""

    source: _Name
    event_type: Annotated[str, msgspec.Meta(pattern=EVENT_TYPE_PATTERN)]
    severity: Severity
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    source_type: Annotated[str, msgspec.Meta(pattern=EVENT_TYPE_PATTERN)] = "custom"
    # Naive times are taken as UTC; the schema still says RFC 3339 (with an offset) is what to send.
    timestamp: Annotated[datetime, msgspec.Meta(extra_json_schema={"format": "date-time"})] | None = None
    host: _OptionalName = None
    service: _OptionalName = None
    description: Annotated[str, msgspec.Meta(max_length=65536)] | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    tags: Annotated[list[_Tag], msgspec.Meta(max_length=64)] = msgspec.field(default_factory=list)
    state: EventState = EventState.PROBLEM
    fingerprint: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None


_single_decoder: Final = msgspec.json.Decoder(WebhookEvent | list[WebhookEvent])
_any_decoder: Final = msgspec.json.Decoder()
_PATH_RE: Final = re.compile(r" - at `\$(.*?)`$")
_MISSING_RE: Final = re.compile(r"^Object missing required field `([^`]+)`")


class DecodedBody(msgspec.Struct):
    """A decoded generic body: ``items`` holds an Event or the error for each element, in order."""

    items: list[Event | InvalidEventError]
    is_array: bool


def decode_json(body: bytes) -> Any:
    """Decode any JSON, or raise `InvalidEventError` (no field: the whole body is malformed)."""
    try:
        return _any_decoder.decode(body)
    except MALFORMED_JSON_ERRORS as e:
        raise InvalidEventError(f"malformed JSON: {e}") from e


def decode_generic_fast(body: bytes, received_at: datetime) -> DecodedBody | None:
    """Decode a valid generic body in one pass; None when it does not validate (see `decode_generic`).

    Raises:
        InvalidEventError: malformed JSON.
    """
    try:
        decoded = _single_decoder.decode(body)
    except msgspec.ValidationError:
        return None
    except MALFORMED_JSON_ERRORS as e:
        raise InvalidEventError(f"malformed JSON: {e}") from e
    try:
        if isinstance(decoded, list):
            return DecodedBody([to_event(w, received_at) for w in decoded], is_array=True)
        return DecodedBody([to_event(decoded, received_at)], is_array=False)
    except OverflowError:
        return None  # a timestamp outside what UTC can express: decode_generic names it


def decode_generic(payload: Any, received_at: datetime) -> DecodedBody:
    """Validate an already JSON-decoded generic body; each array element succeeds or fails on its own.

    Raises:
        InvalidEventError: a single object that is invalid, or a body neither object nor array.
    """
    if isinstance(payload, list):
        return DecodedBody(
            [_convert_one(item, f"[{i}]", received_at) for i, item in enumerate(payload)], True
        )
    if isinstance(payload, dict):
        item = _convert_one(payload, "", received_at)
        if isinstance(item, InvalidEventError):
            raise item
        return DecodedBody([item], is_array=False)
    raise InvalidEventError("the body must be a JSON object or an array of objects")


def _convert_one(item: Any, prefix: str, received_at: datetime) -> Event | InvalidEventError:
    try:
        webhook_event = msgspec.convert(item, WebhookEvent)
    except msgspec.ValidationError as e:
        return validation_error(e, prefix)
    try:
        return to_event(webhook_event, received_at)
    except OverflowError:  # year 1 at +05:00, year 9999 at -05:00
        field = f"{prefix}.timestamp".lstrip(".")
        return InvalidEventError(f"{field}: out of range once converted to UTC", field=field)


def to_event(w: WebhookEvent, received_at: datetime) -> Event:
    return Event(
        source=w.source,
        source_type=w.source_type,
        event_type=w.event_type,
        severity=w.severity,
        title=w.title,
        occurred_at=received_at if w.timestamp is None else as_utc(w.timestamp),
        received_at=received_at,
        host=w.host,
        service=w.service,
        description=w.description,
        metadata=w.metadata,
        tags=w.tags,
        state=w.state,
        fingerprint=w.fingerprint or "",
    )


def validation_error(error: msgspec.ValidationError, prefix: str = "") -> InvalidEventError:
    """Turn msgspec's message into one that names the field as a path (``[1].metadata.x``)."""
    text = str(error)
    path = ""
    m = _PATH_RE.search(text)
    if m:
        path = m.group(1)
        text = text[: m.start()]
    missing = _MISSING_RE.match(text)
    if missing:
        path = f"{path}.{missing.group(1)}"
        text = "required field is missing"
    field = (prefix + path).lstrip(".") or None
    return InvalidEventError(f"{field}: {text}" if field else text, field=field)
