"""Query filters and input bounds shared by the endpoints (events, stream, subscriptions).

The event endpoints' filter parameters become one `EventFilter` (`event_filter_from_query`).

Everything a client sends is held to what the database can store before it reaches a query: ids, offsets
and cursors fit PostgreSQL's ``bigint``, text holds no NUL (PostgreSQL text cannot), times are RFC 3339
strings. The bounds are declared on the parameters, so the OpenAPI schema states them and Litestar answers
400 naming the parameter when one is broken.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Final

import msgspec
from litestar.di import Provide
from litestar.exceptions import ValidationException
from litestar.params import PathParameter, QueryParameter

from opsresponder.core.clock import as_utc
from opsresponder.core.severity import SEVERITY_VALUES
from opsresponder.rules.conditions import Condition, ConditionError, compile_conditions
from opsresponder.rules.filter import EventFilter

_LEVEL = "(" + "|".join(SEVERITY_VALUES) + ")"
SEVERITIES_PATTERN: Final = rf"^(\s*,)*\s*{_LEVEL}\s*(,\s*({_LEVEL}\s*)?)*$"
"""One or more severity levels, comma-separated (what `parse_severities` accepts)."""

MAX_BIGINT: Final = 2**63 - 1
"""The largest value of PostgreSQL's ``bigint`` (ids, offsets, cursors)."""

NO_NUL_PATTERN: Final = r"^[^\x00]*$"
"""Text PostgreSQL can store: anything but NUL."""

# Litestar writes bounds into the schema as floats, and a float cannot hold 2^63-1: state it exactly.
BIGINT_MAXIMUM: Final = {"maximum": MAX_BIGINT}
# For an optional parameter Litestar leaves the bounds out of the schema altogether.
CURSOR_BOUNDS: Final = {"minimum": 0, "maximum": MAX_BIGINT}

ResourceId = Annotated[
    int,
    PathParameter(
        ge=1,
        le=MAX_BIGINT,
        schema_extra=BIGINT_MAXIMUM,
        description="A stored id (1 to 2^63-1, PostgreSQL bigint).",
    ),
]
"""A path id of an event or a subscription."""

Offset = Annotated[
    int,
    QueryParameter(ge=0, le=MAX_BIGINT, schema_extra=BIGINT_MAXIMUM, description="Matching events to skip."),
]

SeverityFilter = Annotated[
    str | None,
    QueryParameter(
        pattern=SEVERITIES_PATTERN,
        description=f"One or more of {', '.join(SEVERITY_VALUES)}, comma-separated (any of them matches).",
    ),
]

TextFilter = Annotated[
    str | None, QueryParameter(pattern=NO_NUL_PATTERN, description="Exact match; NUL is not allowed.")
]

MinScore = Annotated[
    float | None,
    QueryParameter(description="Only scored events with a score of at least this (a finite number)."),
]

PatternFilter = Annotated[
    str | None,
    QueryParameter(
        pattern=NO_NUL_PATTERN,
        max_length=64,
        description="A message template id (``metadata.pattern.id``, as listed by GET /api/v1/patterns).",
    ),
]

IncludeSuppressed = Annotated[
    bool,
    QueryParameter(
        description="Also events a silence, flapping or maintenance suppressed (``suppressed_reason`` set)."
    ),
]

TimeFilter = Annotated[
    str | None,
    QueryParameter(
        format="date-time",
        description="RFC 3339 date-time, e.g. 2024-12-20T10:30:00Z (a time without offset is UTC).",
    ),
]


class InvalidParameterError(ValidationException):
    """A parameter the schema cannot fully describe is wrong; answered 400 with ``field`` naming it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(detail=f"{field}: {message}")
        self.field = field


def parse_severities(value: str | None) -> list[str] | None:
    """``severity=high`` or ``severity=critical,high``: the levels asked for, or None for any.

    Raises:
        InvalidParameterError: an unknown level, or nothing but commas (answered 400).
    """
    if value is None:
        return None
    severities = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in severities if s not in SEVERITY_VALUES]
    if unknown or not severities:
        raise InvalidParameterError(
            "severity",
            f"expected one or more of {', '.join(SEVERITY_VALUES)} (comma-separated), got {value!r}",
        )
    return severities


def parse_time(value: str | None, field: str) -> datetime | None:
    """An RFC 3339 date-time query value in UTC (a naive one is UTC already), or None when absent.

    Strict on purpose: numbers such as ``0.5`` or ``1e10`` are not taken as Unix times.

    Raises:
        InvalidParameterError: `value` is not an RFC 3339 date-time.
    """
    if value is None:
        return None
    try:
        return as_utc(msgspec.convert(value, datetime, strict=True))
    except msgspec.ValidationError:
        raise InvalidParameterError(
            field, f"expected an RFC 3339 date-time such as 2024-12-20T10:30:00Z, got {value!r}"
        ) from None
    except OverflowError:  # year 1 at +05:00, year 9999 at -05:00
        raise InvalidParameterError(field, f"out of range once converted to UTC: {value!r}") from None


def event_filter_from_query(
    severity: SeverityFilter = None,
    event_type: TextFilter = None,
    host: TextFilter = None,
    service: TextFilter = None,
    min_score: MinScore = None,
    pattern: PatternFilter = None,
    include_suppressed: IncludeSuppressed = False,
) -> EventFilter:
    """The `EventFilter` of the query parameters the event endpoints share, declared once here.

    A Litestar dependency (`EVENT_FILTER`): a handler that takes ``event_filter: EventFilter`` gets these
    parameters, and its schema documents them, without repeating them.

    Raises:
        InvalidParameterError: a bad ``severity`` list, or a ``min_score`` that is not a finite number.
    """
    if min_score is not None and not math.isfinite(min_score):
        raise InvalidParameterError("min_score", f"expected a finite number, got {min_score!r}")
    severities = parse_severities(severity)
    return EventFilter(
        severity=None if severities is None else tuple(severities),
        event_type=event_type,
        host=host,
        service=service,
        min_score=min_score,
        pattern=pattern,
        include_suppressed=include_suppressed,
    )


EVENT_FILTER: Final = {"event_filter": Provide(event_filter_from_query, sync_to_thread=False)}
"""The ``dependencies`` of a handler that filters events."""


WhereFilter = Annotated[
    str | None,
    QueryParameter(
        pattern=NO_NUL_PATTERN,
        max_length=8192,
        description=(
            "A condition in the trigger rules' condition language (docs/conditions.md), as a JSON object: "
            'e.g. {"metadata.asset.criticality": "critical", "metadata.cpu_usage": {"$gt": 90}}. Only '
            "conditions the database answers exactly are accepted (a regex RE2 alone understands is not)."
        ),
    ),
]


def parse_where(value: str | None) -> Condition | None:
    """``where={...}``: the compiled condition, or None when absent.

    Raises:
        InvalidParameterError: not a JSON object, a condition the language refuses (with its path and
            reason), or one PostgreSQL cannot answer exactly (a page of rows filtered afterwards would
            break ``limit``, ``offset`` and ``total_count``); answered 400.
    """
    if value is None:
        return None
    try:
        doc = msgspec.json.decode(value)
    except msgspec.DecodeError as e:
        raise InvalidParameterError("where", f"is not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise InvalidParameterError("where", "must be a JSON object of conditions")
    try:
        condition = compile_conditions(doc)
    except ConditionError as e:
        raise InvalidParameterError("where", f"{e.path}: {e.reason}") from e
    if not condition.sql_exact:
        raise InvalidParameterError(
            "where", "the database cannot answer this condition exactly (a regex only RE2 understands?)"
        )
    return condition
