"""The event fields conditions can name, what kind of value each holds, and how to read a path."""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable
from typing import Any, Final

from opsresponder.core.event import Event, EventState
from opsresponder.core.severity import Severity


class Kind(enum.Enum):
    """What a field holds; it decides which operators and operands are valid on it."""

    TEXT = "text"
    SEVERITY = "severity"
    STATE = "state"
    NUMBER = "number"
    TAGS = "tags"
    # Anything JSON: checked per event, so a type mismatch is "no match", never an error.
    METADATA = "metadata"


FIELDS: Final[dict[str, Kind]] = {
    "source": Kind.TEXT,
    "source_type": Kind.TEXT,
    "event_type": Kind.TEXT,
    "severity": Kind.SEVERITY,
    "host": Kind.TEXT,
    "service": Kind.TEXT,
    "title": Kind.TEXT,
    "description": Kind.TEXT,
    "tags": Kind.TAGS,
    "state": Kind.STATE,
    "score": Kind.NUMBER,
    "fingerprint": Kind.TEXT,
}

# The values a field of an enumerated kind can hold; an operand outside them is a mistake in the rule.
ENUM_VALUES: Final[dict[Kind, tuple[str, ...]]] = {
    Kind.SEVERITY: tuple(s.value for s in Severity),
    Kind.STATE: tuple(s.value for s in EventState),
}
SEVERITY_RANK: Final[dict[str, int]] = {s.value: s.rank for s in Severity}


class _Missing:
    """The value of a path the event does not have (an absent metadata key, or a None field)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class Path:
    """A parsed condition path: a top-level field, or ``metadata`` and the keys below it."""

    __slots__ = ("field", "keys", "kind", "text")

    def __init__(self, text: str, field: str, kind: Kind, keys: tuple[str, ...]) -> None:
        self.text = text
        self.field = field
        self.kind = kind
        self.keys = keys

    def getter(self) -> Callable[[Event], Any]:
        """A function from an event to the value at this path, or `MISSING`; it never raises."""
        if self.kind is not Kind.METADATA:
            get = operator.attrgetter(self.field)

            def field_value(event: Event) -> Any:
                value = get(event)
                return MISSING if value is None else value

            return field_value
        keys = self.keys

        def metadata_value(event: Event) -> Any:
            value: Any = event.metadata
            for key in keys:
                # Only a JSON object has keys: a path through a number, text or list is missing.
                if not isinstance(value, dict):
                    return MISSING
                value = value.get(key, MISSING)
                if value is MISSING:
                    return MISSING
            return MISSING if value is None else value

        return metadata_value


def parse_path(text: str) -> Path | None:
    """The `Path` for a condition key, or None when it names no event field."""
    if text in FIELDS:
        return Path(text, text, FIELDS[text], ())
    head, dot, rest = text.partition(".")
    if head != "metadata" or not dot:
        return None
    keys = tuple(rest.split("."))
    if any(not key for key in keys):
        return None
    return Path(text, head, Kind.METADATA, keys)
