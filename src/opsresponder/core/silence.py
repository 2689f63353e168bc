"""A silence (a maintenance window): which events it mutes and when. Data only.

In core because three layers share it: the store keeps silences, the API writes them and the pipeline's
noise stage matches events against them (`pipeline.noise.matcher` compiles them), and none of those may
import another's package.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

import msgspec

Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: Final[tuple[Weekday, ...]] = (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"
)  # fmt: skip
"""In `datetime.weekday` order (Monday is 0)."""

MatchOperator = Literal["equal", "regex"]

MATCHER_FIELD_PATTERN: Final = (
    r"^(source|source_type|event_type|severity|host|service|title|fingerprint|tags"
    r"|metadata(\.[^.\x00]+)+)$"
)
"""The event fields a matcher may name, or a dotted path into ``metadata`` (``metadata.k8s.namespace``)."""
TIME_OF_DAY_PATTERN: Final = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"

# PostgreSQL text holds no NUL; the lengths keep one silence small enough to hold in every process.
BoundedText = Annotated[str, msgspec.Meta(max_length=1024, pattern=r"^[^\x00]*$")]
_TimeOfDay = Annotated[str, msgspec.Meta(pattern=TIME_OF_DAY_PATTERN)]


class SilenceMatcher(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One condition on an event: ``field`` (an event field or ``metadata.a.b``) equals, or fully matches
    the RE2 regex, ``value``. On ``tags`` it holds when any tag does."""

    field: Annotated[str, msgspec.Meta(max_length=255, pattern=MATCHER_FIELD_PATTERN)]
    op: MatchOperator = "equal"
    value: BoundedText


class RecurringWindow(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Local times of day on some weekdays, in an IANA time zone. ``start``/``end`` are ``HH:MM``; an
    ``end`` at or before ``start`` runs past midnight into the next day (it belongs to the start's day)."""

    weekdays: Annotated[list[Weekday], msgspec.Meta(min_length=1, max_length=7)] = msgspec.field(
        default_factory=lambda: list(WEEKDAYS)
    )
    start: _TimeOfDay
    end: _TimeOfDay
    time_zone: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\x00]*$")] = "UTC"


class SilenceSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What a client defines: every matcher must hold, between ``starts_at`` and ``ends_at`` (None: no
    end), and, when ``windows`` are given, inside one of them."""

    matchers: list[SilenceMatcher]
    starts_at: datetime
    ends_at: datetime | None = None
    windows: list[RecurringWindow] = msgspec.field(default_factory=list)
    comment: BoundedText = ""


class Silence(SilenceSpec, frozen=True, kw_only=True):
    """A stored silence; ``created_by`` is the name of the token that created it."""

    id: int
    created_by: str
    created_at: datetime
    updated_at: datetime
