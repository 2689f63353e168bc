"""`RuleSpec`: one trigger rule as the evaluation engine takes it, built from the rule's JSON shape.

The JSON shape is service-spec.md's ``POST /api/v1/rules/triggers`` body plus ``threshold``, ``group_by``
and ``absence`` (docs/rules-evaluation.md). Conditions are compiled here, once per load; the pipeline then
calls only the compiled predicates.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from opsresponder.core.event import Event
from opsresponder.rules.conditions import Condition, ConditionError, compile_conditions
from opsresponder.rules.conditions.fields import MISSING, Kind, parse_path

# Group keys join the group_by values with this; a rule without group_by has the one group "".
GROUP_SEPARATOR: Final = "|"
MAX_GROUP_BY: Final = 5
MAX_EXPECTED_GROUPS: Final = 1000


class RuleSpecError(ConditionError):
    """The rule's JSON cannot be evaluated; ``path`` names the field (``threshold``, ``absence.after``)."""


@dataclass(frozen=True, slots=True)
class AbsenceSpec:
    """An absence rule: fire when no event matching the rule's conditions arrived in time, per group.

    Without `after` (a heartbeat): every group seen, and every one of `expected_groups`, must see a
    matching event at least every `within_minutes`. With `after`: an event matching `after` opens a
    deadline for its group, a matching event of that group before the deadline closes it.
    """

    within_minutes: int
    after: Condition | None
    expected_groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One rule, validated and compiled. ``threshold`` matching events within ``time_window_minutes``
    (per ``group_by`` group) fire it, unless the group is in ``cooldown_minutes`` or reached
    ``max_triggers_per_hour``; an absence rule fires from the absence checker instead."""

    rule_id: int
    name: str
    condition: Condition
    time_window_minutes: int | None = None
    threshold: int = 1
    group_by: tuple[str, ...] = ()
    cooldown_minutes: int = 0
    max_triggers_per_hour: int | None = None
    absence: AbsenceSpec | None = None
    active: bool = True

    @classmethod
    def from_json(cls, rule_id: int, body: Mapping[str, Any]) -> RuleSpec:
        """Validate and compile a trigger rule's JSON body.

        Raises:
            RuleSpecError: a field is missing, of the wrong type or out of range (``path`` names it).
            ConditionError: the conditions (or ``absence.after``) do not compile.
        """
        if not isinstance(body, Mapping):
            raise RuleSpecError("<body>", "a trigger rule is a JSON object")
        name = body.get("name", f"rule {rule_id}")
        if not isinstance(name, str):
            raise RuleSpecError("name", "must be a string")
        conditions = body.get("conditions")
        if not isinstance(conditions, Mapping):
            raise RuleSpecError("conditions", "required, a JSON object")
        window = _optional_int(body, "time_window_minutes", minimum=1)
        threshold = _optional_int(body, "threshold", minimum=1)
        threshold = 1 if threshold is None else threshold
        if threshold > 1 and window is None:
            raise RuleSpecError("threshold", "a threshold above 1 needs time_window_minutes")
        cooldown = _optional_int(body, "cooldown_minutes", minimum=0)
        active = body.get("active", True)
        if not isinstance(active, bool):
            raise RuleSpecError("active", "must be true or false")
        return cls(
            rule_id=rule_id,
            name=name,
            condition=compile_conditions(conditions),
            time_window_minutes=window,
            threshold=threshold,
            group_by=_group_by(body.get("group_by")),
            cooldown_minutes=0 if cooldown is None else cooldown,
            max_triggers_per_hour=_optional_int(body, "max_triggers_per_hour", minimum=1),
            absence=_absence(body.get("absence")),
            active=active,
        )

    def group_key_of(self) -> Callable[[Event], str]:
        """A function from an event to its group key: the group_by values as text, joined by ``|``."""
        paths = [path for path in (parse_path(p) for p in self.group_by) if path is not None]
        if not paths:
            return _no_group
        if len(paths) == 1 and paths[0].kind is Kind.TEXT:
            # The common `group_by: [host]`: a text field holds text or None, whose group is "".
            read = operator.attrgetter(paths[0].field)
            return lambda event: read(event) or ""
        getters = [path.getter() for path in paths]
        if len(getters) == 1:
            get = getters[0]
            return lambda event: _text(get(event))
        return lambda event: GROUP_SEPARATOR.join(_text(get(event)) for get in getters)


def _no_group(event: Event) -> str:
    return ""


def _text(value: Any) -> str:
    """A group_by value as text: a missing value is the empty text (one group of events without it)."""
    if value is MISSING:
        return ""
    return value if isinstance(value, str) else str(value)


def _optional_int(body: Mapping[str, Any], key: str, *, minimum: int, at: str = "") -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleSpecError(at + key, "must be an integer")
    if value < minimum:
        raise RuleSpecError(at + key, f"must be at least {minimum}")
    return value


def _group_by(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise RuleSpecError("group_by", 'a list of field paths, e.g. ["host"]')
    if len(value) > MAX_GROUP_BY:
        raise RuleSpecError("group_by", f"at most {MAX_GROUP_BY} fields")
    for i, path in enumerate(value):
        if not isinstance(path, str) or parse_path(path) is None:
            raise RuleSpecError(f"group_by[{i}]", f"{path!r} names no event field (host, metadata.x, ...)")
    return tuple(value)


def _absence(value: Any) -> AbsenceSpec | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise RuleSpecError("absence", "null or an object with within_minutes")
    within = _optional_int(value, "within_minutes", minimum=1, at="absence.")
    if within is None:
        raise RuleSpecError("absence.within_minutes", "required, an integer of at least 1")
    after_doc = value.get("after")
    after = None
    if after_doc is not None:
        if not isinstance(after_doc, Mapping):
            raise RuleSpecError("absence.after", "null or a conditions object")
        try:
            after = compile_conditions(after_doc)
        except ConditionError as e:
            raise RuleSpecError("absence.after" + e.path.removeprefix("conditions"), e.reason) from e
    groups = value.get("expected_groups") or []
    if isinstance(groups, str) or not isinstance(groups, Sequence):
        raise RuleSpecError("absence.expected_groups", "a list of group keys")
    if len(groups) > MAX_EXPECTED_GROUPS:
        raise RuleSpecError("absence.expected_groups", f"at most {MAX_EXPECTED_GROUPS} groups")
    for i, group in enumerate(groups):
        if not isinstance(group, str):
            raise RuleSpecError(f"absence.expected_groups[{i}]", "must be a string")
    return AbsenceSpec(within_minutes=within, after=after, expected_groups=tuple(groups))
