"""`EventFilter`: the one definition of "which events" for the list, the stream and subscriptions."""

from __future__ import annotations

from typing import Protocol

import msgspec

from opsresponder.rules.sql import WhereClause


class Filterable(Protocol):
    """What a filter looks at: a stored `Event`, or the header the stream hub decodes from a published one."""

    @property
    def severity(self) -> str: ...
    @property
    def event_type(self) -> str: ...
    @property
    def host(self) -> str | None: ...
    @property
    def service(self) -> str | None: ...
    @property
    def score(self) -> float | None: ...
    @property
    def suppressed_reason(self) -> str | None: ...
    @property
    def pattern_id(self) -> str | None:
        """``metadata.pattern.id`` when it is a string (the patterns stage sets it), else None."""
        ...


class EventFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which events: every condition set must hold; None (or False for `include_suppressed`) means "any".

    - ``severity``: the event's level is one of these.
    - ``event_type``, ``host``, ``service``: equal to this (exact, case-sensitive).
    - ``min_score``: the event has a score of at least this; an unscored event never matches a minimum.
    - ``pattern``: the event's message template id (``metadata.pattern.id``) is this.
    - ``include_suppressed``: suppressed events (``suppressed_reason`` set) match only when it is true.

    `matches` and `to_sql` must agree on every event (a property test checks it against PostgreSQL).
    """

    severity: tuple[str, ...] | None = None
    event_type: str | None = None
    host: str | None = None
    service: str | None = None
    min_score: float | None = None
    pattern: str | None = None
    include_suppressed: bool = False

    @property
    def has_conditions(self) -> bool:
        """True when a condition on the event's fields is set (beyond the treatment of suppressed events)."""
        return not (
            self.severity is None
            and self.event_type is None
            and self.host is None
            and self.service is None
            and self.min_score is None
            and self.pattern is None
        )

    def matches(self, event: Filterable) -> bool:
        if event.suppressed_reason is not None and not self.include_suppressed:
            return False
        if self.severity is not None and event.severity not in self.severity:
            return False
        if self.event_type is not None and event.event_type != self.event_type:
            return False
        if self.host is not None and event.host != self.host:
            return False
        if self.service is not None and event.service != self.service:
            return False
        if self.pattern is not None and event.pattern_id != self.pattern:
            return False
        return self.min_score is None or (event.score is not None and event.score >= self.min_score)

    def to_sql(self, where: WhereClause) -> None:
        """Add this filter's conditions on ``events.events`` to `where`."""
        if not self.include_suppressed:
            where.add_condition("suppressed_reason IS NULL")
        if self.severity is not None:
            where.add("severity = ANY({}::text[])", sorted(self.severity))
        if self.event_type is not None:
            where.add("event_type = {}", self.event_type)
        if self.host is not None:
            where.add("host = {}", self.host)
        if self.service is not None:
            where.add("service = {}", self.service)
        if self.min_score is not None:
            # NULL >= x is NULL: unscored events never match, as in `matches`.
            where.add("score >= {}", self.min_score)
        if self.pattern is not None:
            # The expression of the index events_pattern_idx (006_patterns.sql); a non-string id (a number
            # a sender put there) is text to ->> but no id to `matches`, hence the type check.
            where.add("metadata -> 'pattern' ->> 'id' = {}", self.pattern)
            where.add_condition("jsonb_typeof(metadata -> 'pattern' -> 'id') = 'string'")
