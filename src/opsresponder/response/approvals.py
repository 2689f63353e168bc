"""The approval workflow: requests for executions that need a person, decisions, tokens and expiry.

service-spec.md "Approval Workflow System" with the guards SPEC.md adds (docs/response.md "Approvals"):
- a request names the execution, its exact actions and resolved parameters, risk and business impact,
  who asked, who may approve (token names; an empty list means nobody, never everybody), and a deadline;
- approving needs the ``approve`` scope (the API checks it) and is refused for the requester themself, for
  anyone not on the list, for a request already decided or expired (409), and when the execution's actions
  or parameters changed since the request (its plan hash moved);
- an approval issues a token bound to the execution's plan hash, valid once and for
  ``response.approvals.token_ttl_minutes``;
- a request past its deadline is rejected by the expiry job, exactly once across replicas, and the
  requester is told.

Each decision changes the request and its execution in one transaction (``conn``, passed to
`PendingExecutions`), so neither is ever left behind by a failure between them; messages go out after the
commit, each within `NOTIFY_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal, Protocol

import msgspec
import structlog

from opsresponder.config import ApprovalsConfig
from opsresponder.core.clock import Clock, utcnow
from opsresponder.core.errors import OpsResponderError
from opsresponder.response.notify.base import Notification, Notifier
from opsresponder.store.approvals import ApprovalRecord, ApprovalRepository, NewApproval
from opsresponder.store.pool import Connection

log = structlog.get_logger(__name__)

ROLE_PREFIX: Final = "role:"
"""An approver list entry ``role:dba`` admits every token whose ``roles`` include ``dba``."""
NOTIFY_TIMEOUT_SECONDS: Final = 10.0
"""A message about a request (asked, expired) holds its caller up at most this long: a hanging mail server
never keeps the expiry job from its next requests."""
EXPIRY_BATCH: Final = 20
"""Requests the expiry job settles per run (one transaction); the rest wait for its next run. With
`NOTIFY_TIMEOUT_SECONDS` a run's messages fit within the job's 5-minute timeout even when all hang."""


class ApprovalRefused(OpsResponderError):
    """The decision is not allowed. `status`: 404 no such request, 403 not this approver, 409 the request's
    state (decided, expired, changed) does not allow it."""

    def __init__(self, status: Literal[403, 404, 409], reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class PendingExecutions(Protocol):
    """What the workflow needs of the executions (the executor's service fills it)."""

    async def current_plan_hash(self, execution_id: int) -> str | None:
        """The hash of the execution's actions and parameters now; None when it does not exist."""
        ...

    async def start_approved(self, execution_id: int, *, by: str, conn: Connection) -> bool:
        """pending_approval -> queued, in the transaction `conn`; False when it no longer waits."""
        ...

    async def reject_pending(self, execution_id: int, *, by: str, reason: str, conn: Connection) -> None:
        """pending_approval -> rejected, in the transaction `conn`: nothing of it will run."""
        ...

    def wake(self) -> None:
        """An approved execution was committed queued: look for work now."""
        ...


class ApprovalRequest(msgspec.Struct, kw_only=True, frozen=True):
    """What `ApprovalWorkflow.request` needs to ask for a decision."""

    execution_id: int
    plan_hash: str
    requested_by: str
    risk_level: str
    business_impact: str
    reason: str
    actions: list[dict[str, Any]]
    context: dict[str, Any] = msgspec.field(default_factory=dict)
    """Extra values for the notification (the event, the decision)."""


class Approved(msgspec.Struct, kw_only=True, frozen=True):
    record: ApprovalRecord
    token: str
    """The approval token, shown once: only its hash is stored."""


class ApprovalWorkflow:
    def __init__(
        self,
        repository: ApprovalRepository,
        executions: PendingExecutions,
        notifier: Notifier,
        config: ApprovalsConfig,
        approvers: Sequence[str],
        clock: Clock = utcnow,
        notify_timeout: float = NOTIFY_TIMEOUT_SECONDS,
    ) -> None:
        self._notify_timeout = notify_timeout
        self._repository = repository
        self._executions = executions
        self._notifier = notifier
        self._config = config
        self._approvers = list(approvers)
        self._clock = clock

    @property
    def approvers(self) -> list[str]:
        return list(self._approvers)

    async def request(self, request: ApprovalRequest) -> ApprovalRecord:
        """Store the request and notify the approvers (a failed notification is logged, never fatal)."""
        record = await self.record_request(request)
        await self.announce(record, request.context)
        return record

    async def record_request(
        self, request: ApprovalRequest, conn: Connection | None = None
    ) -> ApprovalRecord:
        """Store the request (in `conn`'s transaction: the one creating its execution); `announce` it
        after the commit."""
        now = self._clock()
        return await self._repository.create(
            NewApproval(
                execution_id=request.execution_id,
                plan_hash=request.plan_hash,
                requested_by=request.requested_by,
                approvers=self._approvers,
                risk_level=request.risk_level,
                business_impact=request.business_impact,
                reason=request.reason,
                actions=request.actions,
                created_at=now,
                expires_at=now + timedelta(minutes=self._config.timeout_minutes),
            ),
            conn,
        )

    async def announce(self, record: ApprovalRecord, context: dict[str, Any]) -> None:
        """Notify the approvers of a stored request (a failed notification is logged, never fatal)."""
        await self._notify("approval_requested", record, context)

    async def approve(
        self, execution_id: int, *, approver: str, roles: Collection[str] = (), comment: str = ""
    ) -> Approved:
        """Approve and start the execution; returns the single-use token bound to its plan.

        Raises:
            ApprovalRefused: see the module's guards.
        """
        now = self._clock()
        record = await self._pending(execution_id, approver, roles, now)
        current = await self._executions.current_plan_hash(execution_id)
        if current != record.plan_hash:
            raise ApprovalRefused(
                409,
                "the execution's actions or parameters changed since approval was requested, or it no "
                "longer waits for approval",
            )
        token = secrets.token_urlsafe(32)
        async with self._repository.transaction() as conn:
            decided = await self._repository.decide(
                execution_id,
                status="approved",
                by=approver,
                at=now,
                comment=comment,
                token_sha256=token_digest(token),
                token_expires_at=now + timedelta(minutes=self._config.token_ttl_minutes),
                conn=conn,
            )
            if decided is not None and not await self._executions.start_approved(
                execution_id, by=approver, conn=conn
            ):
                # Cancelled meanwhile: the approval is rolled back with the rest; no token is issued.
                raise ApprovalRefused(409, "the execution no longer waits for approval (it was cancelled)")
        if decided is None:
            raise await self._conflict(execution_id, now)
        self._executions.wake()
        log.info("execution approved", execution_id=execution_id, approver=approver)
        return Approved(record=decided, token=token)

    async def reject(
        self, execution_id: int, *, approver: str, roles: Collection[str] = (), comment: str = ""
    ) -> ApprovalRecord:
        """Reject: the execution will never run. The same guards as approving, but for a changed plan."""
        now = self._clock()
        await self._pending(execution_id, approver, roles, now)
        async with self._repository.transaction() as conn:
            decided = await self._repository.decide(
                execution_id, status="rejected", by=approver, at=now, comment=comment, conn=conn
            )
            if decided is not None:
                await self._executions.reject_pending(
                    execution_id,
                    by=approver,
                    reason=f"rejected by {approver}" + (f": {comment}" if comment else ""),
                    conn=conn,
                )
        if decided is None:
            raise await self._conflict(execution_id, now)
        log.info("execution rejected", execution_id=execution_id, approver=approver)
        return decided

    async def redeem(self, token: str, plan_hash: str) -> ApprovalRecord:
        """Use an approval token for the plan it was issued for, once.

        Raises:
            ApprovalRefused: 403 for any token that is unknown, used, expired or bound to other actions.
        """
        record = await self._repository.redeem(token_digest(token), plan_hash, self._clock())
        if record is None:
            # One answer for every reason, so a caller cannot probe which tokens exist.
            raise ApprovalRefused(403, "the approval token is not valid for these actions")
        return record

    async def expire_due(self, now: datetime | None = None) -> int:
        """The expiry job: reject up to `EXPIRY_BATCH` requests past their deadline (exactly once across
        replicas) together with their executions, in one transaction, then tell each requester (each
        message within `NOTIFY_TIMEOUT_SECONDS`). Returns how many expired; the rest wait for the next
        run."""
        reason = f"no decision within {self._config.timeout_minutes} minutes: rejected automatically"
        async with self._repository.transaction() as conn:
            expired = await self._repository.expire_due(now or self._clock(), EXPIRY_BATCH, conn)
            for record in expired:
                await self._executions.reject_pending(
                    record.execution_id, by="expiry", reason=reason, conn=conn
                )
        for record in expired:
            log.info("approval expired", execution_id=record.execution_id)
            await self._notify("approval_expired", record, {})
        return len(expired)

    async def _pending(
        self, execution_id: int, approver: str, roles: Collection[str], now: datetime
    ) -> ApprovalRecord:
        record = await self._repository.get(execution_id)
        if record is None:
            raise ApprovalRefused(404, f"execution exec_{execution_id} has no approval request")
        if record.status != "pending":
            raise ApprovalRefused(409, _decided(record))
        if record.expires_at <= now:
            raise ApprovalRefused(409, f"the approval request expired at {record.expires_at.isoformat()}")
        if approver == record.requested_by:
            raise ApprovalRefused(403, "the requester cannot approve or reject their own request")
        if not may_approve(record.approvers, approver, roles):
            who = ", ".join(record.approvers) or "nobody (response.analysis.approvers is empty)"
            raise ApprovalRefused(403, f"{approver} is not an approver of this request (approvers: {who})")
        return record

    async def _conflict(self, execution_id: int, now: datetime) -> ApprovalRefused:
        """Why a conditional decision found the request no longer pending (another decision won)."""
        record = await self._repository.get(execution_id)
        if record is None:
            return ApprovalRefused(404, f"execution exec_{execution_id} has no approval request")
        if record.status == "pending":
            return ApprovalRefused(409, f"the approval request expired at {record.expires_at.isoformat()}")
        return ApprovalRefused(409, _decided(record))

    async def _notify(self, template: str, record: ApprovalRecord, extra: dict[str, Any]) -> None:
        link = f"/api/v1/autonomous/executions/exec_{record.execution_id}"
        if self._config.link_base_url:
            link = self._config.link_base_url.rstrip("/") + link
        context = {
            **extra,
            "approval": msgspec.to_builtins(record),
            "execution": {"id": f"exec_{record.execution_id}"},
            "link": link,
            "approvers": record.approvers,
            "expires_at": record.expires_at.isoformat(),
            "risk_level": record.risk_level,
            "actions": record.actions,
        }
        try:
            async with asyncio.timeout(self._notify_timeout):
                results = await self._notifier.send(Notification(template=template, context=context))
        except TimeoutError:
            log.warning(
                "approval notification timed out",
                template=template,
                execution_id=record.execution_id,
                seconds=self._notify_timeout,
            )
            return
        failed = [f"{r.channel}: {r.error}" for r in results if not r.success]
        if failed:
            log.warning("approval notification failed", template=template, failures=failed)


def may_approve(approvers: Collection[str], name: str, roles: Collection[str]) -> bool:
    """Whether the token `name` with `roles` is on the list: by its name, or by ``role:<role>``."""
    return name in approvers or any(f"{ROLE_PREFIX}{role}" in approvers for role in roles)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _decided(record: ApprovalRecord) -> str:
    when = record.decided_at.isoformat() if record.decided_at else "?"
    return f"the approval request was already {record.status} by {record.decided_by} at {when}"
