"""The one internal model of a response template, and the body both spec forms are read through.

`TemplateBody` is what the API and the files accept: the union of service-spec.md's two forms, the
"Response Template Management" API body (``automation_script_id``, ``response_type``,
``trigger_rule_id``, actions without ids) and the "Response Template System" YAML template (``id``,
``version``, ``triggers``, ``variables``, action ids, ``automation_script``, ``parameters``,
``depends_on``, ``rollback_actions``, criteria). `forms.normalize` maps a body onto `ResponseTemplate`,
the one model stored, served and (later) executed; docs/templates.md lists the mapping field by field.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec

ActionType = Literal["diagnostic", "remediation", "verification", "notification", "escalation"]
RiskLevel = Literal["low", "medium", "high", "critical"]
ResponseType = Literal["investigation", "remediation", "escalation"]
VariableType = Literal["string", "integer", "float", "boolean", "list"]

SCRIPT_ACTION_TYPES: Final = frozenset({"diagnostic", "remediation", "verification"})
"""Action types that run an automation script; the others (notification, escalation) notify channels."""

MAX_ACTIONS: Final = 64
MAX_EXPRESSIONS: Final = 32
_Text = Annotated[str, msgspec.Meta(max_length=2000)]
_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_Minutes = Annotated[int, msgspec.Meta(ge=1, le=10080)]
_Expressions = Annotated[list[_Text], msgspec.Meta(max_length=MAX_EXPRESSIONS)]
_Channels = Annotated[
    list[Annotated[str, msgspec.Meta(min_length=1, max_length=64)]], msgspec.Meta(max_length=16)
]
_Parameters = Annotated[dict[str, Any], msgspec.Meta(max_length=64)]


class TemplateTrigger(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """When a template applies: an event type and expressions on the event that must all hold."""

    event_type: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    conditions: _Expressions = msgspec.field(default_factory=list)


class TemplateVariable(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A typed value the template's parameters and criteria use as ``{{ name }}``."""

    name: _Id
    type: VariableType
    default: Any = None
    """Of `type` (an integer is accepted for a float); null: the execution must supply a value."""
    description: _Text = ""


class TemplateAction(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One step. Script actions (diagnostic, remediation, verification) name an automation script;
    notification and escalation actions name channels."""

    id: _Id
    name: _Name
    type: ActionType
    automation_script: _Id | None = None
    automation_script_id: int | None = None
    parameters: _Parameters = msgspec.field(default_factory=dict)
    timeout_minutes: _Minutes | None = None
    required: bool = False
    approval_required: bool = False
    risk_level: RiskLevel | None = None
    rollback_supported: bool = False
    channels: _Channels = msgspec.field(default_factory=list)
    template: _Id | None = None
    """A notification's message template name."""
    depends_on: Annotated[list[_Id], msgspec.Meta(max_length=MAX_ACTIONS)] = msgspec.field(
        default_factory=list
    )


class RollbackAction(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Run when its ``condition`` (an expression over the actions' outcomes) holds after a failure."""

    id: _Id
    name: _Name
    automation_script: _Id | None = None
    automation_script_id: int | None = None
    parameters: _Parameters = msgspec.field(default_factory=dict)
    timeout_minutes: _Minutes | None = None
    condition: _Text | None = None


class ResponseTemplate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A checked template: what is stored (``body``), served and handed to the executor."""

    id: _Id
    name: _Name
    version: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    description: _Text = ""
    response_type: ResponseType | None = None
    trigger_rule_id: int | None = None
    triggers: Annotated[list[TemplateTrigger], msgspec.Meta(max_length=16)] = msgspec.field(
        default_factory=list
    )
    variables: Annotated[list[TemplateVariable], msgspec.Meta(max_length=64)] = msgspec.field(
        default_factory=list
    )
    actions: Annotated[list[TemplateAction], msgspec.Meta(min_length=1, max_length=MAX_ACTIONS)]
    rollback_actions: Annotated[list[RollbackAction], msgspec.Meta(max_length=MAX_ACTIONS)] = msgspec.field(
        default_factory=list
    )
    success_criteria: _Expressions = msgspec.field(default_factory=list)
    failure_criteria: _Expressions = msgspec.field(default_factory=list)
    approval_required: bool = False
    max_execution_time_minutes: _Minutes | None = None


class ActionBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An action as either form writes it: ``id`` may be left out (the API form), then it is made from
    the name; a script is named by ``automation_script`` (the YAML form) or ``automation_script_id``."""

    id: _Id | None = None
    name: _Name
    type: ActionType
    automation_script: _Id | None = None
    automation_script_id: int | None = None
    parameters: _Parameters = msgspec.field(default_factory=dict)
    timeout_minutes: _Minutes | None = None
    required: bool = False
    approval_required: bool = False
    risk_level: RiskLevel | None = None
    rollback_supported: bool = False
    channels: _Channels = msgspec.field(default_factory=list)
    template: _Id | None = None
    depends_on: Annotated[list[_Id], msgspec.Meta(max_length=MAX_ACTIONS)] | None = None


class TemplateBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The body of POST and PUT, and the content of a template file (optionally under a top-level
    ``response_template`` key, as in the spec's YAML), in JSON or YAML."""

    id: _Id | None = None
    """The template's key; absent: made from ``name`` (``CPU Investigation`` -> ``cpu_investigation``)."""
    name: _Name
    version: Annotated[str, msgspec.Meta(min_length=1, max_length=32)] = "1"
    description: _Text = ""
    response_type: ResponseType | None = None
    trigger_rule_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)] | None = None
    triggers: Annotated[list[TemplateTrigger], msgspec.Meta(max_length=16)] = msgspec.field(
        default_factory=list
    )
    variables: Annotated[list[TemplateVariable], msgspec.Meta(max_length=64)] = msgspec.field(
        default_factory=list
    )
    actions: Annotated[list[ActionBody], msgspec.Meta(min_length=1, max_length=MAX_ACTIONS)]
    rollback_actions: Annotated[list[RollbackAction], msgspec.Meta(max_length=MAX_ACTIONS)] = msgspec.field(
        default_factory=list
    )
    success_criteria: _Expressions = msgspec.field(default_factory=list)
    failure_criteria: _Expressions = msgspec.field(default_factory=list)
    approval_required: bool = False
    max_execution_time_minutes: _Minutes | None = None
