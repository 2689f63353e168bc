"""The five severity levels of the spec, ordered from most to least severe."""

from __future__ import annotations

import enum


class Severity(enum.StrEnum):
    """Event severity. Compare with `rank` (higher is more severe), never with the string."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {
    Severity.CRITICAL: 4,
    Severity.HIGH: 3,
    Severity.MEDIUM: 2,
    Severity.LOW: 1,
    Severity.INFO: 0,
}

SEVERITY_VALUES: tuple[str, ...] = tuple(s.value for s in Severity)
