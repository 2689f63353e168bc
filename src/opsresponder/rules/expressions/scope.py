"""What names an expression may reach: its roots, and how far below each a dotted name may go.

Each place that holds expressions has its own `Scope`: trigger conditions read the event's fields;
success and failure criteria and rollback conditions read the actions' outcomes and the execution's
totals. A name outside its scope is refused when the template is validated, not found missing later.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final


class Shape(enum.Enum):
    VALUE = "value"
    """A plain value (number, text, boolean, list): nothing below it."""
    MAP = "map"
    """A JSON object: any dotted keys below it (``metadata.cpu.usage``, ``result.cpu_usage``)."""
    RECORD = "record"
    """Fixed fields, each with its own `Root` (an action's ``status``, ``failed``, ``result``...)."""


@dataclass(frozen=True, slots=True)
class Root:
    shape: Shape
    fields: Mapping[str, Root] = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""


VALUE: Final = Root(Shape.VALUE)
MAP: Final = Root(Shape.MAP)


def record(fields: Mapping[str, Root], description: str = "") -> Root:
    return Root(Shape.RECORD, MappingProxyType(dict(fields)), description)


@dataclass(frozen=True, slots=True)
class Scope:
    """The roots an expression may name, by name; `check` says why a dotted name is out of reach."""

    roots: Mapping[str, Root]
    what: str
    """What the roots are, for messages (``event fields``, ``action ids or execution values``)."""

    def with_roots(self, roots: Mapping[str, Root], what: str | None = None) -> Scope:
        return Scope(MappingProxyType({**self.roots, **roots}), what or self.what)

    def check(self, parts: tuple[str, ...]) -> str | None:
        """None when the dotted name `parts` is reachable, else the reason it is not."""
        root = self.roots.get(parts[0])
        if root is None:
            return f"unknown name {parts[0]!r} (known: {_listing(self.roots)})"
        at = parts[0]
        for part in parts[1:]:
            if root.shape is Shape.MAP:
                return None
            if root.shape is Shape.VALUE:
                return f"{at!r} has no fields, so {at}.{part} cannot be reached"
            child = root.fields.get(part)
            if child is None:
                return f"{at!r} has no field {part!r} (fields: {_listing(root.fields)})"
            root = child
            at = f"{at}.{part}"
        return None


def _listing(names: Iterable[str]) -> str:
    listed = sorted(names)
    return ", ".join(listed[:20]) + (", ..." if len(listed) > 20 else "")


# The event as trigger conditions see it: its fields at the top, metadata open below (the same fields as
# the trigger rules' condition language, rules/conditions/fields.py, plus the ids and counts).
EVENT_FIELDS: Final[Mapping[str, Root]] = MappingProxyType(
    {
        **{
            name: VALUE
            for name in (
                "id",
                "source",
                "source_type",
                "event_type",
                "severity",
                "host",
                "service",
                "title",
                "description",
                "tags",
                "state",
                "score",
                "fingerprint",
                "correlation_id",
                "duplicate_count",
            )
        },
        "metadata": MAP,
    }
)
EVENT_SCOPE: Final = Scope(EVENT_FIELDS, "event fields")

# What the executor (response/executor/run.py) provides for each action when it evaluates criteria: the
# contract, documented in docs/templates.md.
ACTION_OUTCOME: Final = record(
    {
        "status": VALUE,  # pending|running|succeeded|failed|skipped|timed_out|rejected
        "completed": VALUE,  # ran to its end, whatever the outcome
        "succeeded": VALUE,
        "failed": VALUE,  # failed or timed out
        "skipped": VALUE,
        "error": VALUE,  # the failure's message, or null
        "duration_seconds": VALUE,
        "result": MAP,  # what the script reported (its JSON output)
    },
    "an action's outcome",
)

EXECUTION_VALUES: Final[Mapping[str, Root]] = MappingProxyType(
    {
        "all_actions_completed": VALUE,
        "any_action_failed": VALUE,
        "execution_time": VALUE,  # minutes since the execution started
        "max_execution_time": VALUE,  # the template's max_execution_time_minutes
        "event": record(EVENT_FIELDS, "the event that triggered the execution"),
    }
)


def execution_scope(action_ids: Iterable[str]) -> Scope:
    """The scope of success and failure criteria and rollback conditions of a template with these actions."""
    return Scope(
        MappingProxyType({**EXECUTION_VALUES, **dict.fromkeys(action_ids, ACTION_OUTCOME)}),
        "action ids or execution values",
    )
