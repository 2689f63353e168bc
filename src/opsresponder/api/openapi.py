"""The OpenAPI documents of both APIs: Litestar's, completed with what it cannot see.

Litestar derives paths, operations and parameters (with their bounds, api/filters.py) from the route
handlers. It cannot see request bodies or answer shapes: the handlers read raw bytes and answer prepared
JSON for speed. Each handler states those in its ``opt`` with `documented` (``body=`` and ``answers=``,
msgspec types); `complete` adds them to Litestar's document, and adds what every operation shares:
401 and 403 for every operation that needs a token (with the bearer security scheme), 400 where there are
parameters, 413 where there is a body, 500 everywhere. Every error answer is an `ErrorBody` unless the
handler documents another shape (the webhook's spec-fixed ``status: rejected``).

Served at ``GET /schema/openapi.json`` (and ``/schema``) on each port, built once on first request.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, get_origin

import msgspec
from litestar import Litestar, Request
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.routes import HTTPRoute

from opsresponder.api.auth import DEFAULT_SCOPE, PUBLIC, SCOPE_OPT
from opsresponder.api.errors import ErrorBody

OPENAPI_OPT: Final = "opsresponder.openapi"
SECURITY_SCHEME: Final = "bearer"
_REF: Final = "#/components/schemas/{name}"


@dataclass(frozen=True, slots=True)
class AnyOf:
    """A body that is one of several shapes (msgspec types, or other `AnyOf` / raw JSON schemas)."""

    options: tuple[Any, ...]

    def __init__(self, *options: Any) -> None:
        object.__setattr__(self, "options", options)


@dataclass(frozen=True, slots=True)
class WithProperties:
    """A msgspec Struct whose listed properties have shapes msgspec cannot state (a list of untagged
    Structs): property name -> body."""

    base: type
    properties: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Answer:
    """One documented answer: when it is given and its body (a msgspec type, `AnyOf`, a JSON schema dict,
    or None for no body)."""

    description: str
    body: Any = None
    media_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    """Response header name -> description."""


@dataclass(frozen=True, slots=True)
class OperationDoc:
    body: Any = None
    body_description: str = ""
    body_example: Any = None
    answers: Mapping[int, Answer] = field(default_factory=dict)
    body_media_types: tuple[str, ...] = ("application/json",)
    body_required: bool = True


def documented(
    *,
    answers: Mapping[int, Answer],
    body: Any = None,
    body_description: str = "",
    body_example: Any = None,
    body_media_types: tuple[str, ...] = ("application/json",),
    body_required: bool = True,
) -> dict[str, Any]:
    """The ``opt`` entry that documents a handler's request body (with an example that it accepts, in
    each of `body_media_types`; `body_required` false: it may be left out) and answers (merge it into
    ``opt``)."""
    return {
        OPENAPI_OPT: OperationDoc(
            body, body_description, body_example, answers, body_media_types, body_required
        )
    }


def error(description: str, headers: Mapping[str, str] | None = None) -> Answer:
    """An answer in the common error shape."""
    return Answer(description, ErrorBody, headers=headers or {})


NOT_FOUND: Final = error("No such resource (the id is valid but nothing has it).")
RETRY_AFTER: Final = {"Retry-After": "Seconds to wait before trying again."}
DATABASE_DOWN: Final = error("PostgreSQL is unavailable; retry after ``Retry-After`` seconds.", RETRY_AFTER)

_UNAUTHORIZED: Final = error("No valid bearer token.", {"WWW-Authenticate": 'Bearer realm="opsresponder"'})
_FORBIDDEN: Final = error("The token lacks the scope this operation needs.")
_BAD_PARAMETER: Final = error("A parameter is invalid; ``field`` names it.")
_TOO_LARGE: Final = error("The request body exceeds the configured limit (api.max_body_bytes).")
_INTERNAL: Final = error("An unexpected error; it was logged with the ``request_id`` of this answer.")


class _Components:
    """Collects the JSON schemas of msgspec types into ``components/schemas``."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def schema(self, body: Any) -> dict[str, Any]:
        if isinstance(body, AnyOf):
            return {"anyOf": [self.schema(option) for option in body.options]}
        if isinstance(body, dict):
            return {key: self._nested(value) for key, value in body.items()}
        if isinstance(body, WithProperties):
            schema = self.schema(body.base)
            properties = self.schemas[body.base.__name__]["properties"]
            for name, shape in body.properties.items():
                properties[name] = self.schema(shape)
            return schema
        (schema,), components = msgspec.json.schema_components([body], ref_template=_REF)
        for name, component in components.items():
            self.schemas.setdefault(name, component)  # keeps the properties a WithProperties stated
        return dict(schema)

    def _nested(self, value: Any) -> Any:
        """A value inside a raw JSON schema: bodies (types and markers) become schemas, the rest stays."""
        if isinstance(value, (AnyOf, WithProperties, dict, type)) or get_origin(value):
            return self.schema(value)
        if isinstance(value, list):
            return [self._nested(item) for item in value]
        return value


def complete(document: dict[str, Any], app: Litestar) -> dict[str, Any]:
    """A copy of Litestar's `document` with every handler's `documented` bodies and answers, and the
    answers every operation shares."""
    document = copy.deepcopy(document)
    components = _Components()
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        path_item = document.get("paths", {}).get(route.path_format or "/")
        if path_item is None:
            continue
        for method, (handler, _) in route.route_handler_map.items():
            operation = path_item.get(str(method).lower())
            if operation is not None:
                _complete_operation(operation, handler.opt, components)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(components.schemas)
    document["components"]["securitySchemes"] = {
        SECURITY_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "A token of api.tokens; its scopes decide which operations it may call.",
        }
    }
    return document


def _complete_operation(operation: dict[str, Any], opt: Mapping[str, Any], components: _Components) -> None:
    doc = opt.get(OPENAPI_OPT)
    scope = opt.get(SCOPE_OPT, DEFAULT_SCOPE)
    # Not documented by its handler: Litestar's success answer stays; the shared answers are added.
    responses = {code: r for code, r in operation.get("responses", {}).items() if str(code).startswith("2")}
    answers: dict[int, Answer] = {}
    if isinstance(doc, OperationDoc):
        responses = {}
        answers.update(doc.answers)
        if doc.body is not None:
            media: dict[str, Any] = {"schema": components.schema(doc.body)}
            if doc.body_example is not None:
                media["example"] = doc.body_example
            operation["requestBody"] = {
                "required": doc.body_required,
                "description": doc.body_description,
                "content": {media_type: media for media_type in doc.body_media_types},
            }
            answers.setdefault(413, _TOO_LARGE)
    if operation.get("parameters"):
        answers.setdefault(400, _BAD_PARAMETER)
    if scope == PUBLIC:
        operation["security"] = []
    else:
        operation["security"] = [{SECURITY_SCHEME: []}]
        operation["description"] = _join(operation.get("description"), f"Needs a token with scope `{scope}`.")
        answers.setdefault(401, _UNAUTHORIZED)
        answers.setdefault(403, _FORBIDDEN)
    answers.setdefault(500, _INTERNAL)
    responses.update({str(code): _response(answer, components) for code, answer in answers.items()})
    operation["responses"] = dict(sorted(responses.items()))


def _response(answer: Answer, components: _Components) -> dict[str, Any]:
    response: dict[str, Any] = {"description": answer.description}
    if answer.body is not None:
        response["content"] = {answer.media_type: {"schema": components.schema(answer.body)}}
    if answer.headers:
        response["headers"] = {
            name: {"description": text, "schema": {"type": "string"}} for name, text in answer.headers.items()
        }
    return response


def _join(first: str | None, second: str) -> str:
    return f"{first}\n\n{second}" if first else second


class CompletedJsonRenderPlugin(JsonRenderPlugin):
    """Serves the `complete`d document as JSON (at ``/schema/openapi.json`` and ``/schema``)."""

    def __init__(self) -> None:
        super().__init__(path="/openapi.json")
        self._rendered: bytes | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._rendered is None:
            self._rendered = msgspec.json.encode(complete(openapi_schema, request.app))
        return self._rendered
