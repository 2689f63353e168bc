"""A trigger rule's JSON shape (`TriggerRuleBody`), and its validation into a `CompiledTriggerRule`.

The shape is the body of ``POST /api/v1/rules/triggers`` (service-spec.md) plus ``threshold``,
``group_by`` and ``absence`` (docs/rules.md). It is what the store keeps and what the rules stage's
``RuleSpec.from_json`` reads back (`TriggerRuleBody.to_json`). Type and range errors are msgspec's (the
decoder names the field); what types cannot say is checked by `compile_rule`, which raises `RuleError`
naming the field, e.g. ``conditions.host.$regex`` with RE2's message, or ``group_by[1]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final

import msgspec

from opsresponder.core.errors import OpsResponderError
from opsresponder.rules.conditions import Condition, ConditionError, compile_conditions
from opsresponder.rules.conditions.fields import Kind, Path, parse_path
from opsresponder.rules.conditions.nodes import Leaf, Node, Not

_NoNul = r"^[^\x00]*$"
# Thirty days: longer windows and deadlines are no longer "when an event calls for a response".
MAX_MINUTES: Final = 43_200
MAX_GROUP_BY: Final = 5
MAX_EXPECTED_GROUPS: Final = 1000
# Fields a rule may group by: text-like, one value per event. `tags` (a list) would put one event in
# several groups, `description` is free text of any length; neither makes a group.
_UNGROUPABLE: Final = frozenset({"tags", "description"})

Minutes = Annotated[int, msgspec.Meta(ge=1, le=MAX_MINUTES)]
GroupPath = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=_NoNul)]


class AbsenceBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=False):
    """An absence rule: fire when an expected event has NOT arrived (docs/rules.md, "Absence rules").

    Without ``after`` (a heartbeat): for each group, fire when no event matching ``conditions`` arrived
    for ``within_minutes``. With ``after`` (a resolve that should follow a restart): an event matching
    ``after`` opens a deadline for its group, one matching ``conditions`` closes it.
    """

    within_minutes: Minutes
    after: dict[str, Any] | None = None
    expected_groups: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=255, pattern=_NoNul)]],
        msgspec.Meta(max_length=MAX_EXPECTED_GROUPS),
    ] = msgspec.field(default_factory=list)


class TriggerRuleBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The body of POST and PUT ``/api/v1/rules/triggers`` (PUT replaces every field)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=_NoNul)]
    conditions: dict[str, Any]
    description: Annotated[str, msgspec.Meta(max_length=2000, pattern=_NoNul)] = ""
    time_window_minutes: Minutes | None = None
    threshold: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1
    group_by: Annotated[list[GroupPath], msgspec.Meta(max_length=MAX_GROUP_BY)] = msgspec.field(
        default_factory=list
    )
    max_triggers_per_hour: Annotated[int, msgspec.Meta(ge=1, le=3600)] | None = None
    cooldown_minutes: Annotated[int, msgspec.Meta(ge=0, le=MAX_MINUTES)] = 0
    absence: AbsenceBody | None = None
    active: bool = True

    def to_json(self) -> dict[str, Any]:
        """The rule's JSON shape with every field present (what ``RuleSpec.from_json`` takes)."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


class RuleError(OpsResponderError):
    """A rule that cannot be accepted; ``field`` is the JSON path of the problem (``conditions.host``)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CompiledTriggerRule:
    """A checked rule: its body, compiled conditions (and ``absence.after``), and its group_by paths."""

    body: TriggerRuleBody
    condition: Condition
    after: Condition | None
    group_by: tuple[Path, ...]


def compile_rule(body: TriggerRuleBody) -> CompiledTriggerRule:
    """Check what the types cannot say and compile the conditions.

    Raises:
        RuleError: naming the field (``conditions...`` with the condition language's reason,
            ``group_by[0]``, ``threshold``, ``absence.after...``, ``absence.expected_groups``).
    """
    condition = _conditions(body.conditions, "conditions")
    group_by = _group_by(body.group_by)
    if body.threshold > 1 and body.absence is not None:
        raise RuleError("threshold", "an absence rule fires on a missing event; threshold must be 1")
    if body.threshold > 1 and body.time_window_minutes is None:
        raise RuleError("threshold", "a threshold above 1 counts events in time_window_minutes; set it")
    after = None
    if body.absence is not None:
        if body.absence.after is not None:
            if not body.absence.after:
                raise RuleError("absence.after", "an empty object is no condition; use null for no 'after'")
            after = _conditions(body.absence.after, "absence.after")
        if body.absence.expected_groups and len(group_by) != 1:
            # An expected group is one value ("web-01"): it names a group of exactly one field.
            need = "exactly one group_by field" if group_by else "group_by"
            raise RuleError("absence.expected_groups", f'expected groups need {need} (e.g. ["host"])')
    return CompiledTriggerRule(body=body, condition=condition, after=after, group_by=group_by)


def _conditions(doc: Mapping[str, Any], root: str) -> Condition:
    try:
        return compile_conditions(doc)
    except ConditionError as e:
        # The language roots its paths at "conditions"; `absence.after` is the same language elsewhere.
        field = root + e.path.removeprefix("conditions")
        raise RuleError(field, e.reason) from None


def _group_by(paths: list[str]) -> tuple[Path, ...]:
    parsed: list[Path] = []
    for i, text in enumerate(paths):
        at = f"group_by[{i}]"
        path = parse_path(text)
        if path is None:
            raise RuleError(at, f"unknown field {text!r} (an event field such as host, or metadata.<key>...)")
        if path.field in _UNGROUPABLE:
            raise RuleError(at, f"{text} cannot group events (one value per event is needed)")
        if text in paths[:i]:
            raise RuleError(at, f"{text} is listed twice")
        parsed.append(path)
    return tuple(parsed)


def referenced_paths(rule: CompiledTriggerRule) -> list[str]:
    """The metadata and optional paths the rule reads, in first-seen order (for the "no event has it"
    warning)."""
    seen: dict[str, None] = {}

    def walk(node: Node) -> None:
        if isinstance(node, Leaf):
            seen.setdefault(node.path.text, None)
        elif isinstance(node, Not):
            walk(node.child)
        else:
            for child in node.children:
                walk(child)

    walk(rule.condition.root)
    if rule.after is not None:
        walk(rule.after.root)
    for path in rule.group_by:
        seen.setdefault(path.text, None)
    return [p for p in seen if _optional(p)]


def _optional(text: str) -> bool:
    path = parse_path(text)
    return path is not None and (
        path.kind is Kind.METADATA or path.field in ("host", "service", "description", "score", "tags")
    )


class StoredTriggerRule(TriggerRuleBody, kw_only=True, forbid_unknown_fields=False):
    """A rule as stored and as ``GET /api/v1/rules/triggers/{rule_id}`` shows it: its body, who created it
    (the token's name), when, and ``version`` (1 on creation, one more on every PUT)."""

    rule_id: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    version: int

    def body(self) -> TriggerRuleBody:
        fields = {f: getattr(self, f) for f in TriggerRuleBody.__struct_fields__}
        return TriggerRuleBody(**fields)


class ValidationResult(msgspec.Struct, kw_only=True):
    """What POST and PUT answer about an accepted rule (service-spec.md)."""

    valid: bool
    warnings: list[str]
    estimated_trigger_rate: str
