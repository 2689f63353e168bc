"""The values of the event roots (`scope.EVENT_FIELDS`) for one event: what trigger conditions, and
``event.`` in criteria, read. Absent fields are left out, so a condition on one is false with the reason
"missing", as any missing name."""

from __future__ import annotations

import enum
import uuid
from typing import Any

from opsresponder.core.event import Event
from opsresponder.rules.expressions.scope import EVENT_FIELDS


def event_activation(event: Event) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in EVENT_FIELDS:
        value = getattr(event, name)
        if value is None:
            continue
        # CEL takes text, numbers, booleans, lists and maps: severity and state go as their text, ids too.
        if isinstance(value, enum.Enum):
            value = value.value
        elif isinstance(value, uuid.UUID):
            value = str(value)
        values[name] = value
    return values
