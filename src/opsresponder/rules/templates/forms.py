"""Reading a template: JSON or YAML bytes -> `TemplateBody` -> the one `ResponseTemplate`.

The mapping of the API form (docs/templates.md):
- no ``id``: the key is made from ``name`` (lower case, runs of other characters become ``_``);
- an action without ``id`` gets one made from its name (``_2``, ``_3``... when two names give the same);
- when no action states ``id`` or ``depends_on``, the actions run in the order listed: each depends on
  the one before (a list means an order there); otherwise ``depends_on`` says it all, and an action
  without it starts at once;
- ``automation_script_id`` and ``automation_script`` name the same catalog entry: either may be given
  (both must then agree), and both are filled in.
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal

import msgspec
import yaml

from opsresponder.core.json_errors import MALFORMED_JSON_ERRORS
from opsresponder.rules.templates.errors import TemplateError
from opsresponder.rules.templates.model import (
    SCRIPT_ACTION_TYPES,
    ResponseTemplate,
    RollbackAction,
    TemplateAction,
    TemplateBody,
)
from opsresponder.rules.templates.scripts import ScriptCatalog

BodyFormat = Literal["json", "yaml"]
WRAPPER: Final = "response_template"
_PATH_RE: Final = re.compile(r" - at `\$(.*)`$")
_MISSING_RE: Final = re.compile(r"Object missing required field `([^`]+)`")
_UNKNOWN_RE: Final = re.compile(r"Object contains unknown field `([^`]+)`")
_SLUG_RE: Final = re.compile(r"[^a-z0-9]+")


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors and aliases: a few nested aliases ("billion laughs") expand
    to billions of nodes once the tree is walked, so a small body could cost minutes of CPU."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (*name) are not accepted", event.start_mark
            )
        return super().compose_node(parent, index)


def decode(raw: bytes | str, fmt: BodyFormat) -> Any:
    """The JSON or YAML document in `raw`, unwrapped from ``response_template:`` when it is.

    Raises:
        TemplateError: (``malformed``) not JSON, or not YAML.
    """
    if fmt == "json":
        try:
            tree: Any = msgspec.json.decode(raw)
        except MALFORMED_JSON_ERRORS as e:
            raise TemplateError(None, f"malformed JSON: {e}", malformed=True) from e
    else:
        try:
            tree = yaml.load(raw, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as e:
            raise TemplateError(None, f"malformed YAML: {e}", malformed=True) from e
    if isinstance(tree, dict) and len(tree) == 1 and WRAPPER in tree:
        tree = tree[WRAPPER]
    return tree


def read_body(tree: Any) -> TemplateBody:
    """The body in a decoded document.

    Raises:
        TemplateError: naming the field that is missing, unknown or of the wrong type.
    """
    try:
        return msgspec.convert(tree, TemplateBody)
    except msgspec.ValidationError as e:
        field, reason = _field_of(str(e))
        if field == "version" and "got `float`" in reason:
            reason += " (quote it: YAML reads 1.10 as the number 1.1)"
        raise TemplateError(field, reason) from e


def normalize(body: TemplateBody, catalog: ScriptCatalog) -> ResponseTemplate:
    """`body` mapped onto the internal model (see the module's docstring). Scripts are resolved here;
    every other check is `validate.validate_template`'s.

    Raises:
        TemplateError: an unknown script, or a script id and name that disagree.
    """
    chain = all(a.id is None and a.depends_on is None for a in body.actions)
    taken: set[str] = {a.id for a in body.actions if a.id is not None}
    actions: list[TemplateAction] = []
    for i, action in enumerate(body.actions):
        action_id = action.id if action.id is not None else _fresh(slug(action.name), taken)
        depends_on = action.depends_on or []
        if chain and actions:
            depends_on = [actions[-1].id]
        script, script_id = _script(
            catalog, action.automation_script, action.automation_script_id, f"actions[{i}]"
        )
        actions.append(
            TemplateAction(
                id=action_id,
                name=action.name,
                type=action.type,
                automation_script=script,
                automation_script_id=script_id,
                parameters=action.parameters,
                timeout_minutes=action.timeout_minutes,
                required=action.required,
                approval_required=action.approval_required,
                risk_level=action.risk_level,
                rollback_supported=action.rollback_supported,
                channels=action.channels,
                template=action.template,
                depends_on=depends_on,
            )
        )
        if action.type in SCRIPT_ACTION_TYPES and script is None:
            raise TemplateError(
                f"actions[{i}].automation_script",
                f"a {action.type} action runs an automation script: name it (automation_script or "
                "automation_script_id)",
            )
    rollbacks: list[RollbackAction] = []
    for i, rollback in enumerate(body.rollback_actions):
        script, script_id = _script(
            catalog, rollback.automation_script, rollback.automation_script_id, f"rollback_actions[{i}]"
        )
        if script is None:
            raise TemplateError(f"rollback_actions[{i}].automation_script", "a rollback action runs a script")
        rollbacks.append(
            msgspec.structs.replace(rollback, automation_script=script, automation_script_id=script_id)
        )
    return ResponseTemplate(
        id=body.id if body.id is not None else slug(body.name),
        name=body.name,
        version=body.version,
        description=body.description,
        response_type=body.response_type,
        trigger_rule_id=body.trigger_rule_id,
        triggers=body.triggers,
        variables=body.variables,
        actions=actions,
        rollback_actions=rollbacks,
        success_criteria=body.success_criteria,
        failure_criteria=body.failure_criteria,
        approval_required=body.approval_required,
        max_execution_time_minutes=body.max_execution_time_minutes,
    )


def slug(name: str) -> str:
    """``CPU Investigation Playbook`` -> ``cpu_investigation_playbook`` (``t_`` before a leading digit)."""
    text = _SLUG_RE.sub("_", name.lower()).strip("_")[:64].rstrip("_")
    if not text or text[0].isdigit():
        text = f"t_{text}"[:64].rstrip("_")
    return text


def _fresh(base: str, taken: set[str]) -> str:
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base[:60]}_{n}"
    taken.add(candidate)
    return candidate


def _script(
    catalog: ScriptCatalog, name: str | None, script_id: int | None, at: str
) -> tuple[str | None, int | None]:
    if name is None and script_id is None:
        return None, None
    by_id = None
    if script_id is not None:
        by_id = catalog.by_id.get(script_id)
        if by_id is None:
            raise TemplateError(
                f"{at}.automation_script_id",
                f"unknown automation script {script_id} (catalog {catalog.source}: "
                f"{', '.join(str(i) for i in sorted(catalog.by_id)) or 'empty'})",
            )
    if name is not None:
        by_name = catalog.by_name.get(name)
        if by_name is None:
            raise TemplateError(
                f"{at}.automation_script",
                f"unknown automation script {name!r} (catalog {catalog.source}: {catalog.names()})",
            )
        if by_id is not None and by_id is not by_name:
            raise TemplateError(
                f"{at}.automation_script_id",
                f"script {script_id} is {by_id.name!r}, not {name!r} as automation_script says",
            )
        by_id = by_name
    assert by_id is not None
    return by_id.name, by_id.id


def _field_of(message: str) -> tuple[str | None, str]:
    """msgspec's message -> (the field as a path, the reason)."""
    path = ""
    at = _PATH_RE.search(message)
    if at is not None:
        path = at.group(1)
        message = message[: at.start()]
    for pattern, reason in ((_MISSING_RE, "required field is missing"), (_UNKNOWN_RE, "unknown field")):
        found = pattern.match(message)
        if found is not None:
            path = f"{path}.{found.group(1)}"
            message = reason
    if message.startswith("Expected `object`") and not path:
        message = "a template is an object (a mapping) " + message[len("Expected `object`") :]
    return path.lstrip(".") or None, message
