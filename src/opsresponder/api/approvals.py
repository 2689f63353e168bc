"""Approval workflow and the global pause (port 3011; docs/response.md "Approvals", "Safety governor").

- ``POST /api/v1/autonomous/executions/{execution_id}/approve`` and ``/reject`` (scope ``approve``; body
  optional ``{"comment"}``): the approver is the token's name. Approve starts the execution and answers
  the single-use ``approval_token`` (shown once); reject cancels it. A refusal answers its status: 403
  (the requester themself, not an approver), 404 (no request), 409 (decided, expired, the plan changed).
- ``GET /api/v1/autonomous/approvals`` (scope ``read``): requests newest first, filtered.
- ``POST /api/v1/autonomous/pause`` and ``/resume`` (scope ``admin``; body ``{"reason"}``): the safety
  governor's kill switch; ``/ready`` shows it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec
from litestar import Request, get, post
from litestar.exceptions import ServiceUnavailableException
from litestar.params import QueryParameter
from litestar.response.base import ASGIResponse

from opsresponder.api.analysis import DISABLED, UNAVAILABLE
from opsresponder.api.auth import principal_of, scope_opt
from opsresponder.api.bodies import AutomationState
from opsresponder.api.common import json_response
from opsresponder.api.context import AutonomousApiContext, context_of
from opsresponder.api.errors import error_response
from opsresponder.api.executions import ExecutionId
from opsresponder.api.filters import NO_NUL_PATTERN, InvalidParameterError, Offset
from opsresponder.api.json_body import MALFORMED_JSON, BodyError, decode_json_body, refuse
from opsresponder.api.openapi import Answer, documented, error
from opsresponder.response.approvals import MESSAGE_OF_STATUS, ApprovalRefused, ApprovalWorkflow
from opsresponder.response.executor.service import ExecutionService, ExecutionView
from opsresponder.response.governor import SafetyGovernor
from opsresponder.store.approvals import (
    ApprovalRecord,
    ApprovalRepository,
    ApprovalStatus,
    NotificationState,
)
from opsresponder.store.executions import parse_execution_id

_Text = Annotated[str, msgspec.Meta(max_length=2000, pattern=NO_NUL_PATTERN)]


class DecisionBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An approver's decision; the body may be left out."""

    comment: _Text = ""


class ReasonBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Why automatic execution is paused or resumed (recorded in the pause log)."""

    reason: _Text = ""


class ApprovalNotification(msgspec.Struct, kw_only=True):
    """The message the request's status owes (`approval_requested` while pending, `approval_expired` once
    expired) and where it stands: `sending` (the first try), `sent` (a channel took it), `retrying`
    (every channel failed; the sweep tries again at `next_attempt_at`), `given_up` (every try failed:
    nobody was told, someone has to act)."""

    message: str
    state: NotificationState
    attempts: int
    sent_at: datetime | None = None
    next_attempt_at: datetime | None = None


class ApprovalView(msgspec.Struct, kw_only=True):
    """An approval request (never its token)."""

    execution_id: str
    status: ApprovalStatus
    requested_by: str
    approvers: list[str]
    risk_level: str
    business_impact: str
    reason: str
    actions: list[dict[str, Any]]
    plan_hash: str
    created_at: datetime
    expires_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    comment: str = ""
    token_expires_at: datetime | None = None
    token_used_at: datetime | None = None
    notification: ApprovalNotification | None = None
    """Null once approved or rejected: those statuses owe no message."""


class DecisionAnswer(msgspec.Struct, kw_only=True):
    """The execution and its approval request after the decision; ``approval_token`` only on approve,
    shown this once (only its hash is stored)."""

    execution: ExecutionView
    approval: ApprovalView
    approval_token: str | None = None


class ApprovalList(msgspec.Struct, kw_only=True):
    approvals: list[ApprovalView]
    total_count: int
    has_more: bool


def approval_view(record: ApprovalRecord) -> ApprovalView:
    fields = msgspec.structs.asdict(record)
    for name in (
        "id",
        "notification_state",
        "notification_attempts",
        "notification_sent_at",
        "notification_next_at",
    ):
        fields.pop(name)
    fields["execution_id"] = f"exec_{record.execution_id}"
    view = msgspec.convert(fields, ApprovalView, from_attributes=True)
    if record.notification_state is not None:
        view.notification = ApprovalNotification(
            message=MESSAGE_OF_STATUS[record.status],
            state=record.notification_state,
            attempts=record.notification_attempts,
            sent_at=record.notification_sent_at,
            next_attempt_at=record.notification_next_at,
        )
    return view


_REFUSED_403: Final = error(
    "Refused: the requester cannot decide their own request, or this token's name is not an approver "
    "(an empty approver list means nobody)."
)
_REFUSED_409: Final = error("The request was already decided, has expired, or its actions changed since.")


def _decide(verb: Literal["approve", "reject"], summary: str, done: str) -> Any:
    @post(
        f"/api/v1/autonomous/executions/{{execution_id:str}}/{verb}",
        opt={
            **scope_opt("approve"),
            **documented(
                body=DecisionBody,
                body_description="Optional: a comment recorded with the decision.",
                body_required=False,
                answers={
                    200: Answer(done, DecisionAnswer),
                    400: MALFORMED_JSON,
                    403: _REFUSED_403,
                    404: error("No execution has this id, or it has no approval request."),
                    409: _REFUSED_409,
                    422: error("The body is not valid: ``field`` names it."),
                    503: UNAVAILABLE,
                },
            ),
        },
        summary=summary,
        status_code=200,
        name=f"{verb}_execution",
    )
    async def handler(request: Request[Any, Any, Any], execution_id: ExecutionId) -> ASGIResponse:
        workflow, executions = _workflow(request)
        raw = await request.body()
        try:
            body = decode_json_body(raw, DecisionBody) if raw.strip() else DecisionBody()
        except BodyError as e:
            return refuse(e)
        row_id = parse_execution_id(execution_id)
        if row_id is None:
            return error_response(404, f"no execution has id {execution_id!r}", "execution_id")
        principal = principal_of(request)
        by, roles = principal.name, principal.roles
        token: str | None = None
        try:
            if verb == "approve":
                approved = await workflow.approve(row_id, approver=by, roles=roles, comment=body.comment)
                record, token = approved.record, approved.token
            else:
                record = await workflow.reject(row_id, approver=by, roles=roles, comment=body.comment)
        except ApprovalRefused as e:
            return error_response(e.status, e.reason, "execution_id" if e.status == 404 else None)
        view = await executions.get(execution_id)
        if view is None:
            return error_response(404, f"no execution has id {execution_id!r}", "execution_id")
        return json_response(
            DecisionAnswer(execution=view, approval=approval_view(record), approval_token=token)
        )

    return handler


approve_execution = _decide(
    "approve",
    "Approve a pending execution: it starts; the answer holds a single-use approval token",
    "Approved: the execution is queued; ``approval_token`` is shown this once.",
)
reject_execution = _decide(
    "reject",
    "Reject a pending execution: it is cancelled and never runs",
    "Rejected: the execution is cancelled.",
)


@get(
    "/api/v1/autonomous/approvals",
    opt={
        **scope_opt("read"),
        **documented(
            answers={
                200: Answer("A page of approval requests, newest first.", ApprovalList),
                503: UNAVAILABLE,
            }
        ),
    },
    summary="Approval requests, newest first, filtered",
)
async def list_approvals(
    request: Request[Any, Any, Any],
    status: Annotated[
        ApprovalStatus | None, QueryParameter(description="Only requests in this status.")
    ] = None,
    approver: Annotated[
        str | None, QueryParameter(max_length=200, description="Only requests this token name may decide.")
    ] = None,
    requested_by: Annotated[
        str | None, QueryParameter(max_length=200, description="Only requests made by this identity.")
    ] = None,
    notification: Annotated[
        NotificationState | None,
        QueryParameter(
            description="Only requests whose owed message stands so (``given_up``: nobody was told of them)."
        ),
    ] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000, description="Requests per page.")] = 100,
    offset: Offset = 0,
) -> ASGIResponse:
    records = _records(request)
    page, total = await records.list(
        status=status,
        approver=_clean(approver, "approver"),
        requested_by=_clean(requested_by, "requested_by"),
        limit=limit,
        offset=offset,
        notification=notification,
    )
    return json_response(
        ApprovalList(
            approvals=[approval_view(r) for r in page],
            total_count=total,
            has_more=offset + len(page) < total,
        )
    )


def _switch(verb: Literal["pause", "resume"], summary: str, done: str) -> Any:
    @post(
        f"/api/v1/autonomous/{verb}",
        opt={
            **scope_opt("admin"),
            **documented(
                body=ReasonBody,
                body_description="Optional: why (recorded in the pause log with the token's name).",
                body_required=False,
                answers={
                    200: Answer(done, AutomationState),
                    400: MALFORMED_JSON,
                    422: error("The body is not valid: ``field`` names it."),
                    503: UNAVAILABLE,
                },
            ),
        },
        summary=summary,
        status_code=200,
        name=f"{verb}_automation",
    )
    async def handler(request: Request[Any, Any, Any]) -> ASGIResponse:
        governor = _governor(request)
        raw = await request.body()
        try:
            body = decode_json_body(raw, ReasonBody) if raw.strip() else ReasonBody()
        except BodyError as e:
            return refuse(e)
        by = principal_of(request).name
        if verb == "pause":
            state, _ = await governor.pause(by, body.reason)
            return json_response(
                AutomationState(paused=True, by=state.paused_by, reason=state.reason, since=state.paused_at)
            )
        await governor.resume(by, body.reason)
        return json_response(AutomationState(paused=False))

    return handler


pause_automation = _switch(
    "pause",
    "Pause all automatic execution (the kill switch): nothing starts without a person until resumed",
    "Paused (a pause already in force is kept as it was).",
)
resume_automation = _switch("resume", "Resume automatic execution", "Automatic execution runs again.")


def _clean(value: str | None, name: str) -> str | None:
    if value is not None and "\x00" in value:
        raise InvalidParameterError(name, "must not contain a NUL character")
    return value


def _workflow(request: Request[Any, Any, Any]) -> tuple[ApprovalWorkflow, ExecutionService]:
    ctx = context_of(request, AutonomousApiContext)
    if ctx.approvals is None or ctx.executions is None:
        raise ServiceUnavailableException(DISABLED)
    return ctx.approvals, ctx.executions


def _records(request: Request[Any, Any, Any]) -> ApprovalRepository:
    ctx = context_of(request, AutonomousApiContext)
    if ctx.approval_records is None:
        raise ServiceUnavailableException(DISABLED)
    return ctx.approval_records


def _governor(request: Request[Any, Any, Any]) -> SafetyGovernor:
    ctx = context_of(request, AutonomousApiContext)
    if ctx.governor is None:
        raise ServiceUnavailableException(DISABLED)
    return ctx.governor


APPROVAL_HANDLERS: Final = (
    approve_execution,
    reject_execution,
    list_approvals,
    pause_automation,
    resume_automation,
)
"""The route handlers to add to the autonomous app (port 3011)."""
