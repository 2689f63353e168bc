"""The normalized event that every listener produces and every stage works on."""

from __future__ import annotations

import enum
import hashlib
import re
import uuid
from datetime import datetime
from typing import Any, Final

import msgspec

from opsresponder.core.severity import Severity

EVENT_TYPE_PATTERN: Final = r"^[a-z0-9_.\-]{1,64}$"
_EVENT_TYPE_RE: Final = re.compile(EVENT_TYPE_PATTERN)


class EventState(enum.StrEnum):
    """Whether an event reports a condition (problem) or its end (resolved).

    A resolve carries the fingerprint of the problem it clears; dedup compares fingerprint *and* state,
    so a resolve is never swallowed as a duplicate of its problem.
    """

    PROBLEM = "problem"
    RESOLVED = "resolved"


class Event(msgspec.Struct, kw_only=True):
    """One event, as stored and as returned by the API.

    Listeners fill the descriptive fields; the pipeline fills ``fingerprint``, ``id``, ``correlation_id``,
    ``processed_at`` and the later-stage fields. All datetimes are timezone-aware UTC. Mutable on purpose:
    stages annotate the same object rather than copying it per stage.
    """

    source: str
    source_type: str
    event_type: str
    severity: Severity
    title: str
    occurred_at: datetime
    received_at: datetime
    host: str | None = None
    service: str | None = None
    description: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    tags: list[str] = msgspec.field(default_factory=list)
    state: EventState = EventState.PROBLEM
    raw: str | None = None
    id: int | None = None
    fingerprint: str = ""
    correlation_id: uuid.UUID | None = None
    processed_at: datetime | None = None
    duplicate_count: int = 0
    last_seen_at: datetime | None = None
    score: float | None = None
    suppressed_reason: str | None = None

    @property
    def pattern_id(self) -> str | None:
        """``metadata.pattern.id`` when it is a string (the patterns stage sets it), else None."""
        return _pattern_id(self.metadata)


def _pattern_id(metadata: dict[str, Any]) -> str | None:
    pattern = metadata.get("pattern")
    if isinstance(pattern, dict):
        pattern_id = pattern.get("id")
        if isinstance(pattern_id, str):
            return pattern_id
    return None


def is_event_type(value: str) -> bool:
    """True when `value` is an identifier usable as ``event_type`` (1-64 of ``a-z 0-9 _ . -``)."""
    return _EVENT_TYPE_RE.match(value) is not None


def compute_fingerprint(
    source: str, host: str | None, service: str | None, event_type: str, title: str
) -> str:
    """The dedup identity of an event: what it is about, not when it happened or its state.

    A resolve event must produce the same fingerprint as its problem; adapters whose resolve differs in
    ``event_type`` or ``title`` set ``fingerprint`` themselves from the sender's own alert identity.
    """
    # \x1f (unit separator) between parts keeps ("ab", "c") and ("a", "bc") apart.
    key = f"{source}\x1f{host or ''}\x1f{service or ''}\x1f{event_type}\x1f{title}"
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
