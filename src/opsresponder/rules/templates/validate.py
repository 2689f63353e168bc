"""Every check a template must pass before it is stored or loaded, each refusal naming its field.

The order is the order of the body, so the first problem reported is the first one a reader meets.
Checks that need the database (``trigger_rule_id`` names an existing trigger rule) are the store's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from opsresponder.core.event import is_event_type
from opsresponder.rules.expressions import (
    EVENT_SCOPE,
    EXECUTION_VALUES,
    Expression,
    ExpressionError,
    Scope,
    VariableValue,
    execution_scope,
)
from opsresponder.rules.expressions.parse import KEYWORDS, RESERVED
from opsresponder.rules.templates.errors import TemplateError
from opsresponder.rules.templates.model import (
    SCRIPT_ACTION_TYPES,
    ResponseTemplate,
    TemplateVariable,
)
from opsresponder.rules.templates.scripts import Script, ScriptCatalog

KEY_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")
NAME_RE: Final = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
# CEL reads these as types or functions, not as variables: an action or variable so named could not be
# reached by an expression.
_CEL_NAMES: Final = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type", "dyn", "has"}
)
_PLACEHOLDER_RE: Final = re.compile(r"\{\{(.*?)\}\}")
_SAMPLES: Final[Mapping[str, VariableValue]] = {
    "string": "",
    "integer": 0,
    "float": 0.0,
    "boolean": False,
    "list": [],
}


def validate_template(template: ResponseTemplate, catalog: ScriptCatalog) -> ResponseTemplate:
    """`template` with its variable defaults normalized (an integer default of a float becomes a float).

    Raises:
        TemplateError: the first problem found, naming its field.
    """
    if not KEY_RE.match(template.id):
        raise TemplateError("id", f"{template.id!r} is not a template key (a-z, 0-9, _ . -; at most 64)")
    variables = _variables(template.variables)
    types = {v.name: v.type for v in variables}
    for i, trigger in enumerate(template.triggers):
        if trigger.event_type is not None and not is_event_type(trigger.event_type):
            raise TemplateError(f"triggers[{i}].event_type", f"{trigger.event_type!r} is not an event type")
        for j, text in enumerate(trigger.conditions):
            _expression(text, EVENT_SCOPE, variables, f"triggers[{i}].conditions[{j}]")
    ids = _action_ids(template)
    for i, action in enumerate(template.actions):
        at = f"actions[{i}]"
        if action.type not in SCRIPT_ACTION_TYPES and not action.channels:
            raise TemplateError(f"{at}.channels", f"a {action.type} action needs at least one channel")
        _parameters(action.parameters, types, catalog, action.automation_script, f"{at}.parameters")
        for j, dependency in enumerate(action.depends_on):
            if dependency not in ids.actions:
                raise TemplateError(
                    f"{at}.depends_on[{j}]",
                    f"unknown action {dependency!r} (actions: {', '.join(ids.actions)})",
                )
    _no_cycle(template)
    scope = execution_scope([*ids.actions, *ids.rollbacks])
    for i, rollback in enumerate(template.rollback_actions):
        at = f"rollback_actions[{i}]"
        _parameters(rollback.parameters, types, catalog, rollback.automation_script, f"{at}.parameters")
        if rollback.condition is not None:
            _expression(rollback.condition, scope, variables, f"{at}.condition")
    for key in ("success_criteria", "failure_criteria"):
        for i, text in enumerate(getattr(template, key)):
            _expression(text, scope, variables, f"{key}[{i}]")
    return ResponseTemplate(**{**_fields(template), "variables": variables})


def _fields(template: ResponseTemplate) -> dict[str, Any]:
    return {name: getattr(template, name) for name in template.__struct_fields__}


def _variables(variables: Sequence[TemplateVariable]) -> list[TemplateVariable]:
    seen: set[str] = set()
    checked: list[TemplateVariable] = []
    for i, variable in enumerate(variables):
        at = f"variables[{i}]"
        _check_name(variable.name, f"{at}.name", "a variable")
        if variable.name in seen:
            raise TemplateError(f"{at}.name", f"variable {variable.name!r} is declared twice")
        seen.add(variable.name)
        default = _typed(variable.default, variable.type, f"{at}.default")
        checked.append(
            TemplateVariable(
                name=variable.name, type=variable.type, default=default, description=variable.description
            )
        )
    return checked


def _typed(value: Any, kind: str, at: str) -> Any:
    """`value` as a `kind` value, or a refusal saying why it does not fit."""
    if value is None:
        return None
    fits = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "list": isinstance(value, list)
        and all(isinstance(v, str | int | float | bool) or v is None for v in value),
    }[kind]
    if not fits:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        what = {"list": "a list of plain values (text, numbers, booleans)", "integer": "an integer"}.get(
            kind, f"a {kind}"
        )
        raise TemplateError(at, f"{shown} is not {what}")
    if kind == "integer" and not -(2**63) <= value < 2**63:
        raise TemplateError(at, f"{value} does not fit a 64-bit integer")
    if kind == "float":
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise TemplateError(at, "not a finite number")
    return value


class _Ids:
    def __init__(self) -> None:
        self.actions: list[str] = []
        self.rollbacks: list[str] = []


def _action_ids(template: ResponseTemplate) -> _Ids:
    ids = _Ids()
    where: dict[str, str] = {}
    named: list[tuple[str, str, list[str]]] = [
        *((f"actions[{i}].id", a.id, ids.actions) for i, a in enumerate(template.actions)),
        *(
            (f"rollback_actions[{i}].id", r.id, ids.rollbacks)
            for i, r in enumerate(template.rollback_actions)
        ),
    ]
    for at, action_id, bucket in named:
        _check_name(action_id, at, "an action id")
        if action_id in EXECUTION_VALUES:
            raise TemplateError(at, f"{action_id!r} is an execution value's name in criteria")
        if action_id in where:
            raise TemplateError(at, f"duplicate action id {action_id!r} (also {where[action_id]})")
        where[action_id] = at
        bucket.append(action_id)
    return ids


def _check_name(name: str, at: str, what: str) -> None:
    if not NAME_RE.match(name):
        raise TemplateError(at, f"{name!r} is not {what} (a-z, 0-9 and _, not starting with a digit)")
    if name in KEYWORDS or name in RESERVED or name in _CEL_NAMES:
        raise TemplateError(at, f"{name!r} is a reserved word of the expression language")


def _no_cycle(template: ResponseTemplate) -> None:
    """Refuses the first dependency cycle, naming it (``a -> b -> a``)."""
    edges = {a.id: a.depends_on for a in template.actions}
    index = {a.id: i for i, a in enumerate(template.actions)}
    done: set[str] = set()
    for start in edges:
        if start in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        # Iterative depth-first search: a long chain of actions cannot exhaust the stack.
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(edges[start]))]
        path.append(start)
        on_path.add(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
                continue
            if child in on_path:
                cycle = [*path[path.index(child) :], child]
                raise TemplateError(
                    f"actions[{index[cycle[0]]}].depends_on", f"dependency cycle: {' -> '.join(cycle)}"
                )
            if child not in done:
                stack.append((child, iter(edges[child])))
                path.append(child)
                on_path.add(child)


def _parameters(
    parameters: Mapping[str, Any],
    variables: Mapping[str, str],
    catalog: ScriptCatalog,
    script_name: str | None,
    at: str,
) -> None:
    script: Script | None = catalog.by_name.get(script_name) if script_name is not None else None
    if script is not None:
        declared = {p.name for p in script.parameters}
        for name in parameters:
            if name not in declared:
                raise TemplateError(
                    f"{at}.{name}",
                    f"script {script.name!r} takes no parameter {name!r} "
                    f"(parameters: {', '.join(sorted(declared)) or 'none'})",
                )
        for parameter in script.parameters:
            if parameter.required and parameter.name not in parameters:
                raise TemplateError(
                    f"{at}.{parameter.name}", f"script {script.name!r} requires this parameter"
                )
    for name, value in parameters.items():
        _placeholders(value, frozenset(variables), f"{at}.{name}")
    if script is not None:
        for parameter in script.parameters:
            if parameter.name in parameters:
                _parameter_type(
                    parameters[parameter.name], parameter.type, variables, f"{at}.{parameter.name}"
                )


def _parameter_type(value: Any, wanted: str, variables: Mapping[str, str], at: str) -> None:
    """A parameter's value fits the type the script declares: a whole ``{{ var }}`` by the variable's
    type, text with placeholders inside only a string parameter, anything else as a literal."""
    if isinstance(value, str) and _PLACEHOLDER_RE.search(value):
        whole = _PLACEHOLDER_RE.fullmatch(value.strip())
        if whole is not None:
            kind = variables[whole.group(1).strip()]
            if kind != wanted and not (kind == "integer" and wanted == "float"):
                raise TemplateError(
                    at, f"{value.strip()} is a {kind} variable; the script takes {_a(wanted)}"
                )
        elif wanted != "string":
            raise TemplateError(at, f"text with placeholders is a string; the script takes {_a(wanted)}")
        return
    _typed(value, wanted, at)


def _a(kind: str) -> str:
    return "an integer" if kind == "integer" else f"a {kind}"


def _placeholders(value: Any, variables: frozenset[str], at: str) -> None:
    if isinstance(value, str):
        for found in _PLACEHOLDER_RE.finditer(value):
            name = found.group(1).strip()
            if not NAME_RE.match(name):
                raise TemplateError(at, f"{found.group(0)!r} is not a placeholder ({{{{ variable_name }}}})")
            if name not in variables:
                known = ", ".join(sorted(variables)) or "none declared"
                raise TemplateError(at, f"unknown variable {name!r} (variables: {known})")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _placeholders(item, variables, f"{at}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _placeholders(item, variables, f"{at}.{key}")


def _expression(text: str, scope: Scope, variables: Sequence[TemplateVariable], at: str) -> None:
    """Parses `text` and compiles it with CEL once, each variable bound to a value of its type."""
    try:
        expression = Expression.parse(text, scope, frozenset(v.name for v in variables))
        expression.bind({v.name: _SAMPLES[v.type] for v in variables})
    except ExpressionError as e:
        raise TemplateError(at, f"{e.reason} in {text!r}") from e
