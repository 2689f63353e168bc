"""Response templates (playbooks): ``/api/v1/rules/responses`` (served on port 3009).

Changes need the ``write`` scope, reads ``read``. A body is JSON (``application/json``) or YAML
(``application/yaml``, also ``application/x-yaml``, ``text/yaml``), in either spec form (the API body or
the YAML template, optionally under ``response_template:``); both are read into one model
(rules/templates/), checked completely, and refused with 422 naming the field. An answer is YAML when the
``Accept`` header names a YAML type and no JSON one. Templates loaded from ``templates.directory`` are
listed too, and are read-only here (409). See docs/templates.md.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
import yaml
from litestar import Request, delete, get, post, put
from litestar.exceptions import HTTPException, NotFoundException, ServiceUnavailableException
from litestar.response.base import ASGIResponse

from opsresponder.api.auth import principal_of, scope_opt
from opsresponder.api.bodies import TemplateList
from opsresponder.api.context import EventsApiContext, context_of
from opsresponder.api.errors import error_response
from opsresponder.api.filters import ResourceId
from opsresponder.api.openapi import DATABASE_DOWN, NOT_FOUND, Answer, documented, error
from opsresponder.rules.templates import (
    BodyFormat,
    ResponseTemplate,
    TemplateBody,
    TemplateError,
    read_template,
)
from opsresponder.store.response_templates import (
    ReadOnlyTemplateError,
    ResponseTemplateRepository,
    StoredTemplate,
    TemplateConflictError,
)

PATH: Final = "/api/v1/rules/responses"
JSON_TYPES: Final = ("application/json",)
YAML_TYPES: Final = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
_YAML_ANSWER: Final = "application/yaml"

_INVALID: Final = error(
    "The template is not valid: ``field`` names the wrong field (an unknown action in ``depends_on``, a "
    "dependency cycle, an unknown variable or automation script, a default of the wrong type, a criterion "
    "the expression language refuses, a ``trigger_rule_id`` no trigger rule has)."
)
_MALFORMED: Final = error("The body is not JSON, or not YAML (anchors and aliases are refused).")
_UNSUPPORTED: Final = error("The body is neither JSON nor YAML (Content-Type).")
_CONFLICT: Final = error(
    "The template's id is another current template's, or the template comes from a file (read-only)."
)
_BODY: Final = (
    "A response template in either spec form, as JSON or YAML. The API form (actions without ids, "
    "``automation_script_id``) and the YAML form (``id``, ``version``, ``triggers``, ``variables``, actions "
    "with ids, ``automation_script``, ``parameters`` with ``{{ variable }}``, ``depends_on``, "
    "``rollback_actions``, ``success_criteria``, ``failure_criteria``) map onto one model; see "
    "docs/templates.md. Answers YAML when ``Accept: application/yaml``."
)
_EXAMPLE: Final = {
    "name": "CPU Investigation Playbook",
    "description": "Automated response for high CPU events",
    "response_type": "investigation",
    "actions": [
        {
            "type": "diagnostic",
            "name": "Check Process List",
            "automation_script_id": 123,
            "timeout_minutes": 5,
            "required": True,
        },
        {
            "type": "remediation",
            "name": "Kill High CPU Processes",
            "automation_script_id": 124,
            "approval_required": True,
            "risk_level": "medium",
            "rollback_supported": True,
        },
        {
            "type": "notification",
            "name": "Alert Operations Team",
            "channels": ["email", "slack"],
            "template": "high_cpu_alert",
        },
    ],
    "approval_required": False,
    "max_execution_time_minutes": 30,
}


def _doc(answers: dict[int, Answer], body: bool = False) -> dict[str, Any]:
    refusals = {400: _MALFORMED, 415: _UNSUPPORTED, 422: _INVALID} if body else {}
    return documented(
        body=TemplateBody if body else None,
        body_description=_BODY if body else "",
        body_example=_EXAMPLE if body else None,
        body_media_types=(*JSON_TYPES, _YAML_ANSWER),
        answers={**answers, 503: DATABASE_DOWN, **refusals},
    )


@post(
    PATH,
    opt={
        **scope_opt("write"),
        **_doc({201: Answer("Created.", StoredTemplate), 409: _CONFLICT}, body=True),
    },
    summary="Create a response template (JSON or YAML)",
)
async def create_template(request: Request[Any, Any, Any]) -> ASGIResponse:
    repository = _repository(request)
    try:
        template = await _read(request)
        created = await repository.create(template, principal_of(request).name)
    except TemplateError as e:
        return error_response(_status(e), e.reason, e.field)
    except TemplateConflictError as e:
        return error_response(409, str(e))
    return _answer(request, created, 201)


@get(
    PATH,
    opt={
        **scope_opt("read"),
        **_doc({200: Answer("The current version of every template, files' too.", TemplateList)}),
    },
    summary="List response templates",
)
async def list_templates(request: Request[Any, Any, Any]) -> ASGIResponse:
    return _answer(request, TemplateList(await _repository(request).list_current()))


@get(
    f"{PATH}/{{template_id:int}}",
    opt={**scope_opt("read"), **_doc({200: Answer("The template.", StoredTemplate), 404: NOT_FOUND})},
    summary="One response template (any version)",
)
async def get_template(request: Request[Any, Any, Any], template_id: ResourceId) -> ASGIResponse:
    stored = await _repository(request).get(template_id)
    if stored is None:
        raise NotFoundException(f"response template {template_id} does not exist")
    return _answer(request, stored)


@put(
    f"{PATH}/{{template_id:int}}",
    opt={
        **scope_opt("write"),
        **_doc({200: Answer("Replaced.", StoredTemplate), 404: NOT_FOUND, 409: _CONFLICT}, body=True),
    },
    summary="Replace a response template (not one from a file)",
)
async def replace_template(request: Request[Any, Any, Any], template_id: ResourceId) -> ASGIResponse:
    repository = _repository(request)
    try:
        template = await _read(request)
        replaced = await repository.replace(template_id, template)
    except TemplateError as e:
        return error_response(_status(e), e.reason, e.field)
    except (TemplateConflictError, ReadOnlyTemplateError) as e:
        return error_response(409, str(e))
    if replaced is None:
        raise NotFoundException(f"response template {template_id} does not exist")
    return _answer(request, replaced)


@delete(
    f"{PATH}/{{template_id:int}}",
    opt={
        **scope_opt("write"),
        **_doc({204: Answer("Deleted."), 404: NOT_FOUND, 409: _CONFLICT}),
    },
    summary="Delete a response template (not one from a file)",
    status_code=204,
)
async def delete_template(request: Request[Any, Any, Any], template_id: ResourceId) -> None:
    try:
        deleted = await _repository(request).delete(template_id)
    except ReadOnlyTemplateError as e:
        raise HTTPException(detail=str(e), status_code=409) from e
    if not deleted:
        raise NotFoundException(f"response template {template_id} does not exist")


RESPONSE_TEMPLATE_HANDLERS: Final = (
    create_template,
    list_templates,
    get_template,
    replace_template,
    delete_template,
)
"""The route handlers to add to the events app (port 3009)."""


def _repository(request: Request[Any, Any, Any]) -> ResponseTemplateRepository:
    repository = context_of(request, EventsApiContext).response_templates
    if repository is None:
        raise ServiceUnavailableException("response templates are not served by this process")
    return repository


class _UnsupportedMediaType(TemplateError):
    pass


async def _read(request: Request[Any, Any, Any]) -> ResponseTemplate:
    """The checked template in the body.

    Raises:
        TemplateError: malformed (400), unsupported content type (415), invalid (422).
    """
    fmt = _body_format(request.headers.get("content-type"))
    raw = await request.body()
    return read_template(raw, fmt, context_of(request, EventsApiContext).script_catalog)


def _body_format(content_type: str | None) -> BodyFormat:
    media = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if media in YAML_TYPES:
        return "yaml"
    if media in JSON_TYPES or media.endswith("+json"):
        return "json"
    raise _UnsupportedMediaType(None, f"Content-Type {media!r}: send application/json or application/yaml")


def _status(e: TemplateError) -> int:
    if isinstance(e, _UnsupportedMediaType):
        return 415
    return 400 if e.malformed else 422


def _wants_yaml(request: Request[Any, Any, Any]) -> bool:
    accept = request.headers.get("accept", "").lower()
    return any(t in accept for t in YAML_TYPES) and "json" not in accept


def _answer(request: Request[Any, Any, Any], content: Any, status: int = 200) -> ASGIResponse:
    if _wants_yaml(request):
        text = yaml.safe_dump(msgspec.to_builtins(content), sort_keys=False, allow_unicode=True)
        return ASGIResponse(body=text.encode(), status_code=status, media_type=_YAML_ANSWER)
    return ASGIResponse(body=msgspec.json.encode(content), status_code=status, media_type="application/json")
