"""Query filters shared by the event endpoints (list, stream)."""

from __future__ import annotations

from litestar.exceptions import ValidationException

from opsresponder.core.severity import SEVERITY_VALUES


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
