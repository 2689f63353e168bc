"""Reading a JSON request body into a typed struct, and refusing it in the one error shape.

The CRUD endpoints (silences, subscriptions, trigger rules) decode their bodies the same way: malformed
JSON is 400, anything else wrong is 422 with ``field`` naming it, an unknown field included.
"""

from __future__ import annotations

import re
from typing import Final, TypeVar

import msgspec
from litestar.response.base import ASGIResponse

from opsresponder.api.errors import error_response
from opsresponder.api.openapi import error
from opsresponder.core.json_errors import MALFORMED_JSON_ERRORS
from opsresponder.ingest.http.generic import validation_error

B = TypeVar("B")

MALFORMED_JSON: Final = error("The body is not JSON.")
_UNKNOWN_FIELD_RE: Final = re.compile(r"unknown field `([^`]+)`")


class BodyError(Exception):
    """A request body refused: `status` 400 or 422, `field` the path of what is wrong (None: the body)."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


def decode_json_body(raw: bytes, kind: type[B]) -> B:
    """`raw` as a `kind`.

    Raises:
        BodyError: 400 for malformed JSON, 422 naming the field for anything else (for an unknown
            field, the field's own path).
    """
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as e:
        invalid = validation_error(e)
        field = invalid.field
        unknown = _UNKNOWN_FIELD_RE.search(invalid.message)
        if unknown is not None:
            field = f"{field}.{unknown.group(1)}" if field else unknown.group(1)
        raise BodyError(422, invalid.message, field) from e
    except MALFORMED_JSON_ERRORS as e:
        raise BodyError(400, f"malformed JSON: {e}") from e


def refuse(e: BodyError) -> ASGIResponse:
    """The answer to a refused body, in the one error shape."""
    return error_response(e.status, str(e), e.field)
