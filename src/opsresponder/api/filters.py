"""Query parameters of the event endpoints (list, stream) into one `EventFilter`."""

from __future__ import annotations

import math

from litestar.exceptions import ValidationException

from opsresponder.core.severity import SEVERITY_VALUES
from opsresponder.rules.filter import EventFilter


def parse_severities(value: str | None) -> list[str] | None:
    """``severity=high`` or ``severity=critical,high``: the levels asked for, or None for any.

    Raises:
        ValidationException: an unknown level, or nothing but commas (answered 400).
    """
    if value is None:
        return None
    severities = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in severities if s not in SEVERITY_VALUES]
    if unknown or not severities:
        raise ValidationException(
            f"severity: expected one or more of {', '.join(SEVERITY_VALUES)} (comma-separated), got {value!r}"
        )
    return severities


def event_filter_from_query(
    *,
    severity: str | None,
    event_type: str | None,
    host: str | None,
    service: str | None,
    min_score: float | None,
    include_suppressed: bool,
) -> EventFilter:
    """The `EventFilter` of the query parameters both event endpoints share.

    Raises:
        ValidationException: a bad ``severity`` list, or a ``min_score`` that is not a finite number.
    """
    if min_score is not None and not math.isfinite(min_score):
        raise ValidationException(f"min_score: expected a finite number, got {min_score!r}")
    severities = parse_severities(severity)
    return EventFilter(
        severity=None if severities is None else tuple(severities),
        event_type=event_type,
        host=host,
        service=service,
        min_score=min_score,
        include_suppressed=include_suppressed,
    )
