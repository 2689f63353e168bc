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

Those messages (approval_requested, approval_expired) are delivered at least once: each is marked sent
only after it went out, and the sweep (`resend_unnotified`, run by the expiry job) sends again whatever is
still unsent `NOTIFY_GRACE` after it became owed: the process died after the commit, or every channel
failed. A process that dies after sending but before marking sends it twice; nothing is lost.
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
from prometheus_client import CollectorRegistry, Counter

from opsresponder.config import ROLE_PREFIX, ApprovalsConfig
from opsresponder.core.clock import Clock, utcnow
from opsresponder.core.errors import OpsResponderError
from opsresponder.response.notify.base import Notification, Notifier
from opsresponder.store.approvals import (
    ApprovalRecord,
    ApprovalRepository,
    ApprovalStatus,
    NewApproval,
    UnnotifiedApproval,
)
from opsresponder.store.pool import Connection

log = structlog.get_logger(__name__)

NOTIFY_TIMEOUT_SECONDS: Final = 10.0
"""A message about a request (asked, expired) holds its caller up at most this long: a hanging mail server
never keeps the expiry job from its next requests."""
EXPIRY_BATCH: Final = 20
"""Requests the expiry job settles per run (one transaction); the rest wait for its next run. With
`NOTIFY_TIMEOUT_SECONDS`, its messages and the sweep's (`RESEND_BATCH`) fit within the job's 5-minute
timeout even when all hang: (20 + 8) x 10 s = 280 s."""
NOTIFY_GRACE: Final = timedelta(seconds=60)
"""The sweep re-sends a message only this long after it became owed. The path that made it owed sends it
right after its commit, within `NOTIFY_TIMEOUT_SECONDS`; the margin over that keeps the sweep from racing
a live send (a slow commit, a slow mark) into a duplicate."""
RESEND_BATCH: Final = 8
"""Messages the sweep takes per run; the rest wait for its next run (see `EXPIRY_BATCH` for the budget)."""
RESEND_LEASE: Final = timedelta(minutes=2)
"""How long a sweep holds the messages it took from other replicas' sweeps: longer than it can take to send
them all (`RESEND_BATCH` x `NOTIFY_TIMEOUT_SECONDS` = 80 s). A sweep that dies leaves them due again
after it."""
RESEND_ATTEMPTS: Final = 5
"""Sweep tries of a message whose every channel fails (after the first send's), then it is given up."""
RESEND_BACKOFF: Final = timedelta(minutes=1)
"""The wait after the sweep's first failed try, doubled after each next one: with `NOTIFY_GRACE`, tries
at about 1, 2, 4, 8 and 16 minutes after the first send; given up after ~16 minutes, within the default
30-minute approval timeout, so an outage of Slack or the mail server of up to a quarter of an hour
still reaches the approvers."""
MESSAGE_OF_STATUS: Final[dict[ApprovalStatus, str]] = {
    "pending": "approval_requested",
    "expired": "approval_expired",
}
"""The message each status owes; approved and rejected owe none."""


class ApprovalNotifyMetrics:
    """Counters of approval messages by template and outcome: ``sent`` (right after the commit),
    ``resent`` (by the sweep), ``failed`` (every channel failed or it timed out: retried), ``given_up``
    (failed on every retry: nobody was told)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "opsresponder_approval_notifications_total",
            "Approval messages by template and outcome (sent, resent, failed, given_up).",
            ["template", "outcome"],
            registry=registry,
        )

    def count(self, template: str, outcome: str) -> None:
        self.messages.labels(template, outcome).inc()


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
        metrics: ApprovalNotifyMetrics | None = None,
    ) -> None:
        """`metrics`: counters on the process registry; None: a private registry (tests).

        Raises:
            ValueError: `notify_timeout` is not shorter than `NOTIFY_GRACE` (the sweep would race live sends).
        """
        if notify_timeout >= NOTIFY_GRACE.total_seconds():
            raise ValueError(f"notify_timeout must be shorter than {NOTIFY_GRACE.total_seconds():g} s")
        self._notify_timeout = notify_timeout
        self._metrics = metrics or ApprovalNotifyMetrics(CollectorRegistry())
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
                notify_context=request.context,
            ),
            conn,
        )

    async def announce(self, record: ApprovalRecord, context: dict[str, Any]) -> None:
        """Notify the approvers of a stored request (a failed notification is logged, never fatal; the
        sweep tries again)."""
        await self._send_owed(record, context, outcome="sent")

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
            for item in expired:
                await self._executions.reject_pending(
                    item.record.execution_id, by="expiry", reason=reason, conn=conn
                )
        for item in expired:
            log.info("approval expired", execution_id=item.record.execution_id)
            # With the request's context: the requester reads which event's execution was not run.
            await self._send_owed(item.record, item.context, outcome="sent")
        return len(expired)

    async def run_expiry_job(self, now: datetime) -> None:
        """The ``approval_expiry`` job: `expire_due`, then the sweep (`resend_unnotified`).

        Expiry first: a request it just expired owes the expiry message, not the request's again. The sweep
        runs even when expiry failed (its error is raised after it), so a stuck expiry does not also strand
        the messages owed. The sweep reads the clock itself: its lease must start when it takes the rows,
        and the expiry's messages may have taken minutes.
        """
        expiry_failure: Exception | None = None
        try:
            await self.expire_due(now)
        except Exception as e:  # noqa: BLE001 - raised again below, after the sweep
            expiry_failure = e
        await self.resend_unnotified()
        if expiry_failure is not None:
            raise expiry_failure

    async def resend_unnotified(self, now: datetime | None = None) -> int:
        """The sweep: send each message still unsent `NOTIFY_GRACE` after it became owed (up to
        `RESEND_BATCH`, each held from other replicas for `RESEND_LEASE`). A try whose every channel failed
        is retried after `RESEND_BACKOFF`, doubled each time, `RESEND_ATTEMPTS` times in all, then given up
        with an error. Returns how many it tried."""
        owed = await self._repository.take_unnotified(
            now or self._clock(), NOTIFY_GRACE, RESEND_LEASE, RESEND_BATCH
        )
        for item in owed:
            log.info(
                "Sending an approval message again.", execution_id=item.record.execution_id,
                status=item.record.status, attempt=item.attempts,
            )  # fmt: skip
            try:
                if not await self._send_owed(item.record, item.context, outcome="resent"):
                    await self._retry_later(item)
            except Exception as e:  # noqa: BLE001 - one message's failure (the database) must not strand the rest
                # Its lease runs out and the next sweep takes it again (one try counted).
                log.warning(
                    "An approval message could not be re-sent or postponed; the next sweep takes it again.",
                    execution_id=item.record.execution_id, error_type=type(e).__name__, error=str(e),
                )  # fmt: skip
        return len(owed)

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

    async def _send_owed(self, record: ApprovalRecord, context: dict[str, Any], *, outcome: str) -> bool:
        """Send the message `record`'s status owes, then mark it sent; whether it was sent. A failure to
        mark is only logged: the sweep sends it again (a duplicate, never a loss)."""
        template = MESSAGE_OF_STATUS[record.status]
        if not await self._notify(template, record, context):
            self._metrics.count(template, "failed")
            return False
        self._metrics.count(template, outcome)
        try:
            await self._repository.mark_notified(record.execution_id, record.status, self._clock())
        except Exception as e:  # noqa: BLE001 - the message went out: a caller (a committed submit) must not fail
            log.warning(
                "An approval message was sent but not marked sent; it will be sent again.",
                execution_id=record.execution_id, template=template, error=str(e),
            )  # fmt: skip
        return True

    async def _retry_later(self, item: UnnotifiedApproval) -> None:
        """Every channel failed on the sweep's try `item.attempts`: back off, or give up after the last."""
        record = item.record
        if item.attempts >= RESEND_ATTEMPTS:
            template = MESSAGE_OF_STATUS[record.status]
            # An operator has to act: the approvers (or the requester) were never told.
            log.error(
                "An approval message was given up: every channel failed on every try.",
                execution_id=record.execution_id, template=template, attempts=item.attempts,
            )  # fmt: skip
            self._metrics.count(template, "given_up")
            await self._repository.postpone_notification(record.execution_id, record.status, None)
            return
        delay = RESEND_BACKOFF * 2 ** (item.attempts - 1)
        await self._repository.postpone_notification(
            record.execution_id, record.status, self._clock() + delay
        )

    async def _notify(self, template: str, record: ApprovalRecord, extra: dict[str, Any]) -> bool:
        """Send one message; whether it is done with: a channel took it, or trying again cannot help (no
        channel, or only failures of the configuration). A failure is logged, never raised."""
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
            return False
        failed = [f"{r.channel}: {r.error}" for r in results if not r.success]
        if failed:
            log.warning("approval notification failed", template=template, failures=failed)
        # Done when a channel took it, or when no failure can mend by itself (the configuration is at
        # fault: retrying would only give up 16 minutes later), or there is no channel at all.
        return any(r.success for r in results) or not any(r.retryable for r in results)


def may_approve(approvers: Collection[str], name: str, roles: Collection[str]) -> bool:
    """Whether the token `name` with `roles` is on the list: by its name, or by ``role:<role>``."""
    return name in approvers or any(f"{ROLE_PREFIX}{role}" in approvers for role in roles)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _decided(record: ApprovalRecord) -> str:
    when = record.decided_at.isoformat() if record.decided_at else "?"
    return f"the approval request was already {record.status} by {record.decided_by} at {when}"
