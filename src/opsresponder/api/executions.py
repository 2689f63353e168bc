"""Execute Autonomous Action, Execution Status Tracking and Execution Control (port 3011).

- ``POST /api/v1/autonomous/execute`` (scope ``execute``): runs a stored decision's actions (all, or
  ``action_ids``). 202 when the execution is queued (or waits for approval: ``pending_approval``), 200 for a
  dry run (nothing runs; the answer says what would). 404 for an unknown decision, 422 naming the field for
  anything the plan cannot hold (``action_ids[1]``: not an action of the decision).
- ``GET /api/v1/autonomous/executions/{execution_id}`` and ``GET /api/v1/autonomous/executions`` (scope
  ``read``): status, progress, actions with timings and results, logs; the list filters on status, event,
  time range, and pages.
- ``POST .../{execution_id}/cancel`` and ``.../rollback`` (scope ``write``): 404 unknown, 409 when the
  execution's state does not allow it.

An execution that needs approval is created ``pending_approval`` with an approval request
(api/approvals.py). ``approval_token`` (issued by approve) is redeemed once for exactly the plan this
request would create: the approved execution bound to it is answered, no second one is created; any other
token is 403 and nothing runs (docs/response.md "Approvals").
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec
from litestar import Request, get, post
from litestar.exceptions import NotFoundException, ServiceUnavailableException
from litestar.params import PathParameter, QueryParameter
from litestar.response.base import ASGIResponse

from opsresponder.api.analysis import DISABLED, UNAVAILABLE
from opsresponder.api.auth import principal_of, scope_opt
from opsresponder.api.common import json_response
from opsresponder.api.context import AutonomousApiContext, context_of
from opsresponder.api.errors import error_response
from opsresponder.api.filters import (
    BIGINT_MAXIMUM,
    MAX_BIGINT,
    NO_NUL_PATTERN,
    InvalidParameterError,
    Offset,
    TimeFilter,
    parse_time,
)
from opsresponder.api.json_body import MALFORMED_JSON, BodyError, decode_json_body, refuse
from opsresponder.api.openapi import Answer, documented, error
from opsresponder.response.approvals import ApprovalRefused
from opsresponder.response.executor.service import (
    ExecutionNotFound,
    ExecutionOptions,
    ExecutionService,
    ExecutionStateError,
    ExecutionView,
    PlanError,
)
from opsresponder.store.decisions import DecisionRepository, StoredDecision
from opsresponder.store.executions import ExecutionStatus

MAX_LIMIT: Final = 1000

ExecutionId = Annotated[
    str,
    PathParameter(
        pattern=r"^exec_[0-9]{1,19}$",
        max_length=24,
        description="An execution's id as answered by execute (``exec_12345``).",
    ),
]

_DecisionId = Annotated[int, msgspec.Meta(ge=1, le=MAX_BIGINT)]
_ActionId = Annotated[int, msgspec.Meta(ge=1, le=MAX_BIGINT)]


class ExecuteBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The spec's Execute Autonomous Action body.

    Attributes:
        decision_id: a decision answered by ``POST /api/v1/autonomous/analyze``.
        action_ids: the decision's actions to run (its ``recommended_actions[].action_id``); absent or
            null: all of them. The actions they depend on must be chosen too.
        execution_options: dry run, rollback on failure, time limit, notifications.
        approval_token: the token an approval answered: redeemed once for exactly these actions (their
            plan hash); the answer is the approved execution (no second one is created). Any other token
            is 403 and nothing runs.
    """

    decision_id: _DecisionId
    action_ids: Annotated[list[_ActionId], msgspec.Meta(min_length=1, max_length=64)] | None = None
    execution_options: ExecutionOptions = msgspec.field(default_factory=ExecutionOptions)
    approval_token: Annotated[str, msgspec.Meta(max_length=512, pattern=NO_NUL_PATTERN)] | None = None


class ExecutionList(msgspec.Struct, kw_only=True):
    """``GET /api/v1/autonomous/executions``: one page, newest first."""

    executions: list[ExecutionView]
    total_count: int
    has_more: bool


_EXAMPLE: Final = {
    "decision_id": 67890,
    "action_ids": [789, 790],
    "execution_options": {
        "dry_run": False,
        "rollback_on_failure": True,
        "max_execution_time_minutes": 30,
        "notification_preferences": {
            "notify_on_start": True,
            "notify_on_completion": True,
            "notify_on_failure": True,
        },
    },
}
"""The spec's example body (service-spec.md), without its approval token (none is valid yet)."""

_NOT_FOUND: Final = error("No execution has this id.")
_CONFLICT: Final = error("The execution's status does not allow this (``detail`` says which it is).")


@post(
    "/api/v1/autonomous/execute",
    opt={
        **scope_opt("execute"),
        **documented(
            body=ExecuteBody,
            body_description=(
                "The decision to run and which of its actions. An execution that needs approval is created "
                "``pending_approval`` with an approval request and runs nothing until approved; with an "
                "``approval_token`` the approved execution of exactly these actions is answered."
            ),
            body_example=_EXAMPLE,
            answers={
                200: Answer("A dry run: what would run, nothing ran (status ``dry_run``).", ExecutionView),
                202: Answer(
                    "Accepted: ``queued`` (it runs as soon as a slot is free) or ``pending_approval``.",
                    ExecutionView,
                ),
                400: MALFORMED_JSON,
                403: error("The approval token is unknown, used, expired or bound to other actions."),
                404: error("No decision has this ``decision_id``."),
                422: error(
                    "The body is not valid, or the plan cannot hold (an action id that is not the "
                    "decision's, a dependency left out): ``field`` names it (``action_ids[1]``)."
                ),
                503: UNAVAILABLE,
            },
        ),
    },
    summary="Run a decision's actions (or dry-run them)",
    status_code=202,
)
async def execute(request: Request[Any, Any, Any]) -> ASGIResponse:
    executions, decisions = _services(request)
    try:
        body = decode_json_body(await request.body(), ExecuteBody)
    except BodyError as e:
        return refuse(e)
    decision = await decisions.get(body.decision_id)
    if decision is None:
        raise NotFoundException(f"decision {body.decision_id} does not exist")
    try:
        if body.approval_token is not None:
            return await _redeem(request, executions, decision, body.action_ids, body.approval_token)
        view = await executions.submit(
            decision,
            body.action_ids,
            body.execution_options,
            requested_by=principal_of(request).name,
            approved=False,
        )
    except PlanError as e:
        return error_response(422, f"{e.field}: {e.reason}", e.field)
    return json_response(view, status_code=200 if view.status == "dry_run" else 202)


async def _redeem(
    request: Request[Any, Any, Any],
    executions: ExecutionService,
    decision: StoredDecision,
    action_ids: list[int] | None,
    token: str,
) -> ASGIResponse:
    """An approval token is used once, for the plan this request would create (its hash): the approved
    execution it is bound to is the answer, so approving and then executing never runs anything twice."""
    ctx = context_of(request, AutonomousApiContext)
    if ctx.approvals is None:
        raise ServiceUnavailableException(DISABLED)
    try:
        record = await ctx.approvals.redeem(token, await executions.plan_hash_for(decision, action_ids))
    except ApprovalRefused as e:
        return error_response(403, e.reason, "approval_token")
    view = await executions.get(f"exec_{record.execution_id}")
    if view is None or view.decision_id != decision.decision_id:
        return error_response(403, "the approval token is not valid for these actions", "approval_token")
    return json_response(view, status_code=202)


@get(
    "/api/v1/autonomous/executions/{execution_id:str}",
    opt={
        **scope_opt("read"),
        **documented(
            answers={
                200: Answer("Status, progress, actions with timings and results, logs.", ExecutionView),
                404: _NOT_FOUND,
                503: UNAVAILABLE,
            }
        ),
    },
    summary="One execution: status, progress, actions, logs",
)
async def get_execution(request: Request[Any, Any, Any], execution_id: ExecutionId) -> ASGIResponse:
    executions, _ = _services(request)
    view = await executions.get(execution_id)
    if view is None:
        raise NotFoundException(f"no execution has id {execution_id!r}")
    return json_response(view)


StatusFilter = Annotated[
    ExecutionStatus | None, QueryParameter(description="Only executions in this status.")
]
EventFilter = Annotated[
    int | None,
    QueryParameter(ge=1, le=MAX_BIGINT, schema_extra=BIGINT_MAXIMUM, description="Only this event's."),
]


@get(
    "/api/v1/autonomous/executions",
    opt={
        **scope_opt("read"),
        **documented(
            answers={200: Answer("A page of executions, newest first.", ExecutionList), 503: UNAVAILABLE}
        ),
    },
    summary="Executions, newest first, filtered",
)
async def list_executions(
    request: Request[Any, Any, Any],
    status: StatusFilter = None,
    event_id: EventFilter = None,
    start_time: TimeFilter = None,
    end_time: TimeFilter = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="Executions per page.")] = 100,
    offset: Offset = 0,
) -> ASGIResponse:
    executions, _ = _services(request)
    start, end = parse_time(start_time, "start_time"), parse_time(end_time, "end_time")
    if start and end and start > end:
        raise InvalidParameterError("start_time", "is after end_time")
    page, total = await executions.list(
        status=status, event_id=event_id, start_time=start, end_time=end, limit=limit, offset=offset
    )
    return json_response(
        ExecutionList(executions=page, total_count=total, has_more=offset + len(page) < total)
    )


def _control(action: Literal["cancel", "rollback"], summary: str, done: str) -> Any:
    @post(
        f"/api/v1/autonomous/executions/{{execution_id:str}}/{action}",
        opt={
            **scope_opt("write"),
            **documented(
                answers={200: Answer(done, ExecutionView), 404: _NOT_FOUND, 409: _CONFLICT, 503: UNAVAILABLE}
            ),
        },
        summary=summary,
        status_code=200,
        name=f"{action}_execution",
    )
    async def handler(request: Request[Any, Any, Any], execution_id: ExecutionId) -> ASGIResponse:
        executions, _ = _services(request)
        by = principal_of(request).name
        try:
            if action == "cancel":
                view = await executions.cancel(execution_id, by=by)
            else:
                view = await executions.rollback(execution_id, by=by)
        except ExecutionNotFound as e:
            raise NotFoundException(str(e)) from e
        except ExecutionStateError as e:
            return error_response(409, str(e), "status")
        return json_response(view)

    return handler


cancel_execution = _control(
    "cancel",
    "Cancel an execution: running actions are stopped (process groups killed), no new one starts",
    "Cancelled (``cancelled``); what was running is stopped.",
)
rollback_execution = _control(
    "rollback",
    "Roll back an execution: undo its completed rollback-capable actions, in reverse order",
    "The rollback is under way (``rolling_back``); the status and logs show its progress.",
)


def _services(request: Request[Any, Any, Any]) -> tuple[ExecutionService, DecisionRepository]:
    ctx = context_of(request, AutonomousApiContext)
    if ctx.executions is None or ctx.decisions is None:
        raise ServiceUnavailableException(DISABLED)
    return ctx.executions, ctx.decisions


EXECUTION_HANDLERS: Final = (execute, list_executions, get_execution, cancel_execution, rollback_execution)
"""The route handlers to add to the autonomous app (port 3011)."""
