"""The columns of ``events.events``, derived once from `Event`: every query and the COPY use these."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Final

import asyncpg
import msgspec

from opsresponder.core.event import Event

# The table has one column per Event field, with the same name (migrations keep it so; a test checks).
EVENT_COLUMNS: Final = tuple(field.name for field in msgspec.structs.fields(Event))
# The stream and subscription deliveries do not carry `raw` (it can be large; GET /api/v1/events/{id} has it).
EVENT_COLUMNS_WITHOUT_RAW: Final = tuple(c for c in EVENT_COLUMNS if c != "raw")

SELECT_EVENTS: Final = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events.events"
SELECT_EVENTS_WITHOUT_RAW: Final = f"SELECT {', '.join(EVENT_COLUMNS_WITHOUT_RAW)} FROM events.events"

# A C-level getter: the COPY record of an event, in `EVENT_COLUMNS` order (the enums are str subclasses,
# which asyncpg writes as text).
event_record: Final[Callable[[Event], tuple[Any, ...]]] = operator.attrgetter(*EVENT_COLUMNS)


def row_to_event(row: asyncpg.Record) -> Event:
    return msgspec.convert(dict(row), Event)
