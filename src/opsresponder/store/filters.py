"""WHERE clauses over events.events, built with numbered parameters; shared by every event query."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class WhereClause:
    """Collects ``AND``-ed conditions and their parameters (``$1``, ``$2``... in order)."""

    def __init__(self) -> None:
        self.args: list[Any] = []
        self._clauses: list[str] = []

    def add(self, template: str, value: Any) -> None:
        """Add a condition; ``{}`` in `template` becomes the parameter holding `value`."""
        self.args.append(value)
        self._clauses.append(template.format(f"${len(self.args)}"))

    def add_event_filters(
        self,
        *,
        severities: Iterable[str] | None,
        event_type: str | None,
        host: str | None,
        service: str | None,
    ) -> None:
        """The filters the event list and the live stream share (GET /api/v1/events's)."""
        if severities:
            self.add("severity = ANY({}::text[])", sorted(severities))
        if event_type is not None:
            self.add("event_type = {}", event_type)
        if host is not None:
            self.add("host = {}", host)
        if service is not None:
            self.add("service = {}", service)

    def sql(self) -> str:
        return " WHERE " + " AND ".join(self._clauses) if self._clauses else ""
