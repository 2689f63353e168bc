"""Provide Feedback: ``POST /api/v1/autonomous/feedback`` (port 3011, scope ``execute``).

The body and answer are the spec's (service-spec.md "Provide Feedback"). Malformed JSON is 400; a wrong
field 422 naming it (``rating`` 1..5, ``feedback_type`` and ``feedback`` only the spec's words, an
execution that is not the decision's: ``execution_id``); an unknown execution or decision 404. The
feedback is stored with the token's name; ``learning_impact`` says what it really changed (docs/response.md
"Feedback and learning").
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from litestar import Request, post
from litestar.exceptions import NotFoundException, ServiceUnavailableException
from litestar.response.base import ASGIResponse

from opsresponder.api.analysis import DISABLED, UNAVAILABLE
from opsresponder.api.auth import principal_of, scope_opt
from opsresponder.api.common import json_response
from opsresponder.api.context import AutonomousApiContext, context_of
from opsresponder.api.errors import error_response
from opsresponder.api.filters import MAX_BIGINT, NO_NUL_PATTERN
from opsresponder.api.json_body import MALFORMED_JSON, BodyError, decode_json_body, refuse
from opsresponder.api.openapi import Answer, documented, error
from opsresponder.response.learning import (
    FeedbackAnswer,
    FeedbackMismatch,
    FeedbackNotFound,
    FeedbackService,
    GivenFeedback,
)
from opsresponder.response.learning.feedback import FeedbackType, FeedbackWord

_Text = Annotated[str, msgspec.Meta(max_length=4000, pattern=NO_NUL_PATTERN)]


class FeedbackBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The spec's Provide Feedback body.

    Attributes:
        execution_id: an execution of the decision (``exec_12345``).
        decision_id: the decision it ran.
        feedback_type: what the feedback is about.
        rating: 1 (poor) to 5 (excellent).
        feedback: the verdict in one word; ``dangerous`` demotes the decision's actions to "approval
            required" at once.
    """

    execution_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_NUL_PATTERN)]
    decision_id: Annotated[int, msgspec.Meta(ge=1, le=MAX_BIGINT)]
    feedback_type: FeedbackType
    rating: Annotated[int, msgspec.Meta(ge=1, le=5)]
    feedback: FeedbackWord | None = None
    comments: _Text = ""
    suggestions: _Text = ""
    would_approve_again: bool | None = None


_EXAMPLE: Final = {
    "execution_id": "exec_12345",
    "decision_id": 67890,
    "feedback_type": "effectiveness",
    "rating": 5,
    "feedback": "helpful",
    "comments": "The action resolved the issue quickly and effectively",
    "suggestions": "Could have provided more detailed progress updates",
    "would_approve_again": True,
}
"""The spec's example body (service-spec.md)."""


@post(
    "/api/v1/autonomous/feedback",
    opt={
        **scope_opt("execute"),
        **documented(
            body=FeedbackBody,
            body_description="Feedback on one execution of a decision.",
            body_example=_EXAMPLE,
            answers={
                201: Answer(
                    "Recorded; ``learning_impact`` is what it changed: the confidence a new analysis of the "
                    "same template on the same pattern shows, and the template and pattern whose "
                    "statistics moved (empty for a neutral feedback).",
                    FeedbackAnswer,
                ),
                400: MALFORMED_JSON,
                404: error("No execution or no decision has this id."),
                422: error(
                    "The body is not valid, or the execution is not the decision's: ``field`` names it."
                ),
                503: UNAVAILABLE,
            },
        ),
    },
    summary="Give feedback on an execution (it moves later confidence; dangerous demotes)",
    status_code=201,
)
async def give_feedback(request: Request[Any, Any, Any]) -> ASGIResponse:
    service = _service(request)
    try:
        body = decode_json_body(await request.body(), FeedbackBody)
    except BodyError as e:
        return refuse(e)
    try:
        answer = await service.give(
            msgspec.convert(msgspec.to_builtins(body), GivenFeedback), by=principal_of(request).name
        )
    except FeedbackNotFound as e:
        raise NotFoundException(str(e)) from e
    except FeedbackMismatch as e:
        return error_response(422, str(e), "execution_id")
    return json_response(answer, status_code=201)


def _service(request: Request[Any, Any, Any]) -> FeedbackService:
    service = context_of(request, AutonomousApiContext).feedback
    if service is None:
        raise ServiceUnavailableException(DISABLED)
    return service


FEEDBACK_HANDLERS: Final = (give_feedback,)
"""The route handlers to add to the autonomous app (port 3011)."""
