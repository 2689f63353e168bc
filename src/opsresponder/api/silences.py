"""Silences (maintenance windows): ``/api/v1/silences`` (served on port 3009).

Changes need the ``write`` scope, reads ``read``; ``created_by`` is the name of the token that created the
silence. A body is checked completely before it is stored: an invalid one is answered 422 naming the
field (``matchers[0].value`` with RE2's message for a bad regex, ``ends_at``, ``windows[0].time_zone``),
malformed JSON 400. See docs/silences.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

import msgspec
from litestar import Request, delete, get, post, put
from litestar.exceptions import NotFoundException, ServiceUnavailableException
from litestar.response.base import ASGIResponse

from opsresponder.api.auth import principal_of, scope_opt
from opsresponder.api.bodies import SilenceList
from opsresponder.api.common import json_response
from opsresponder.api.context import EventsApiContext, context_of
from opsresponder.api.filters import ResourceId
from opsresponder.api.json_body import MALFORMED_JSON, BodyError, decode_json_body, refuse
from opsresponder.api.openapi import DATABASE_DOWN, NOT_FOUND, Answer, documented, error
from opsresponder.core.clock import as_utc, utcnow
from opsresponder.core.silence import BoundedText, RecurringWindow, Silence, SilenceMatcher, SilenceSpec
from opsresponder.pipeline.noise.matcher import SilenceSpecError, compile_silence
from opsresponder.store.silences import SilenceRepository

_AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]


class SilenceBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The body of POST and PUT (PUT replaces every field; an absent ``starts_at`` is now, as on POST)."""

    matchers: Annotated[list[SilenceMatcher], msgspec.Meta(min_length=1, max_length=64)]
    starts_at: _AwareTime | None = None
    ends_at: _AwareTime | None = None
    windows: Annotated[list[RecurringWindow], msgspec.Meta(max_length=32)] = msgspec.field(
        default_factory=list
    )
    comment: BoundedText = ""


_INVALID_BODY: Final = error(
    "The body is not valid: ``field`` names the wrong field (a regex RE2 refuses, an unknown time zone, "
    "``ends_at`` not after ``starts_at``, an unknown field)."
)
_BODY: Final = (
    "Every matcher must hold (``equal``, or ``regex``: an RE2 pattern matched against the whole value); "
    "the silence applies from ``starts_at`` (default now) until ``ends_at`` (absent: no end) and, when "
    "``windows`` are given, only inside one of them (local times in an IANA time zone)."
)
_EXAMPLE: Final = {
    "matchers": [
        {"field": "host", "value": "db-1"},
        {"field": "title", "op": "regex", "value": "disk .* full"},
    ],
    "starts_at": "2030-01-01T00:00:00Z",
    "ends_at": "2030-01-02T00:00:00Z",
    "windows": [
        {"weekdays": ["saturday", "sunday"], "start": "22:00", "end": "02:00", "time_zone": "Europe/Berlin"}
    ],
    "comment": "weekend night maintenance of db-1",
}


def _doc(answers: dict[int, Answer], body: bool = False) -> dict[str, Any]:
    return documented(
        body=SilenceBody if body else None,
        body_description=_BODY if body else "",
        body_example=_EXAMPLE if body else None,
        answers={
            **answers,
            503: DATABASE_DOWN,
            **({400: MALFORMED_JSON, 422: _INVALID_BODY} if body else {}),
        },
    )


@post(
    "/api/v1/silences",
    opt={**scope_opt("write"), **_doc({201: Answer("Created.", Silence)}, body=True)},
    summary="Create a silence (a maintenance window)",
)
async def create_silence(request: Request[Any, Any, Any]) -> ASGIResponse:
    repository = _repository(request)
    try:
        spec = await _read_spec(request)
    except BodyError as e:
        return refuse(e)
    created = await repository.create(spec, principal_of(request).name)
    return json_response(created, status_code=201)


@get(
    "/api/v1/silences",
    opt={**scope_opt("read"), **_doc({200: Answer("Every silence, ended ones too.", SilenceList)})},
    summary="List silences",
)
async def list_silences(request: Request[Any, Any, Any]) -> ASGIResponse:
    return json_response(SilenceList(await _repository(request).list_all()))


@get(
    "/api/v1/silences/{silence_id:int}",
    opt={**scope_opt("read"), **_doc({200: Answer("The silence.", Silence), 404: NOT_FOUND})},
    summary="One silence",
)
async def get_silence(request: Request[Any, Any, Any], silence_id: ResourceId) -> ASGIResponse:
    silence = await _repository(request).get(silence_id)
    if silence is None:
        raise NotFoundException(f"silence {silence_id} does not exist")
    return json_response(silence)


@put(
    "/api/v1/silences/{silence_id:int}",
    opt={**scope_opt("write"), **_doc({200: Answer("Replaced.", Silence), 404: NOT_FOUND}, body=True)},
    summary="Replace a silence",
)
async def replace_silence(request: Request[Any, Any, Any], silence_id: ResourceId) -> ASGIResponse:
    repository = _repository(request)
    try:
        spec = await _read_spec(request)
    except BodyError as e:
        return refuse(e)
    updated = await repository.update(silence_id, spec)
    if updated is None:
        raise NotFoundException(f"silence {silence_id} does not exist")
    return json_response(updated)


@delete(
    "/api/v1/silences/{silence_id:int}",
    opt={**scope_opt("write"), **_doc({204: Answer("Deleted."), 404: NOT_FOUND})},
    summary="Delete a silence (events it already suppressed stay suppressed)",
    status_code=204,
)
async def delete_silence(request: Request[Any, Any, Any], silence_id: ResourceId) -> None:
    if not await _repository(request).delete(silence_id):
        raise NotFoundException(f"silence {silence_id} does not exist")


SILENCE_HANDLERS: Final = (create_silence, list_silences, get_silence, replace_silence, delete_silence)
"""The route handlers to add to the events app (port 3009)."""


def _repository(request: Request[Any, Any, Any]) -> SilenceRepository:
    repository = context_of(request, EventsApiContext).silences
    if repository is None:
        raise ServiceUnavailableException("silences are not served by this process")
    return repository


async def _read_spec(request: Request[Any, Any, Any]) -> SilenceSpec:
    """The body as a checked `SilenceSpec` (its regexes compile, its time zones exist).

    Raises:
        BodyError: 400 for malformed JSON, 422 naming the field for anything else.
    """
    body = decode_json_body(await request.body(), SilenceBody)
    spec = SilenceSpec(
        matchers=body.matchers,
        starts_at=utcnow() if body.starts_at is None else _utc(body.starts_at, "starts_at"),
        ends_at=None if body.ends_at is None else _utc(body.ends_at, "ends_at"),
        windows=body.windows,
        comment=body.comment,
    )
    try:
        compile_silence(0, spec)
    except SilenceSpecError as e:
        raise BodyError(422, str(e), e.field) from e
    return spec


def _utc(value: datetime, field: str) -> datetime:
    try:
        return as_utc(value)
    except OverflowError:  # year 1 at +05:00, year 9999 at -05:00
        raise BodyError(422, f"{field}: out of range once converted to UTC", field) from None
