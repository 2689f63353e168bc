"""Approval requests (``autonomous.approvals``): one per execution that needs a person.

Every state change is one conditional UPDATE, so concurrent approvers, the expiry job on several replicas
and a token presented twice each win at most once: the row that comes back is the one this call changed.

A change that also changes the execution (create, decide, expire) takes ``conn``: the caller's
transaction, in which it changes the execution too, so the two tables never disagree. Every such
transaction locks the approval row before the execution row (`lock_request` for a cancel), so two of them
never deadlock.

Messages are delivered at least once (migration 019): a status that owes one (``pending``:
approval_requested, ``expired``: approval_expired) is written with ``notified_at`` null, and the message
is marked sent (`mark_notified`) only after it went out. `take_unnotified` finds what a dead process left
unsent, leasing each row as the verifications' checker does (``FOR UPDATE SKIP LOCKED``, its
``notify_due_at`` moved ahead in the same statement), so two replicas' sweeps never send one at once.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import asyncpg
import msgspec

from opsresponder.store.pool import Connection, transaction, using

ApprovalStatus = Literal["pending", "approved", "rejected", "expired"]
NotificationState = Literal["sending", "sent", "retrying", "given_up"]

# Where the message the current status owes stands (none for approved and rejected): `sending` until the
# first try ends (the live send; after a dead process, the sweep's first try), `retrying` after a try
# whose every channel failed, `given_up` after the last, `sent` once a channel took it.
_NOTIFICATION_STATE: Final = """(CASE WHEN status NOT IN ('pending', 'expired') THEN NULL
      WHEN notified_at IS NOT NULL THEN 'sent'
      WHEN notify_due_at = 'infinity' THEN 'given_up'
      WHEN notify_attempts = 0 THEN 'sending'
      ELSE 'retrying' END)"""

_COLUMNS: Final = (
    "id, execution_id, plan_hash, status, requested_by, approvers, risk_level, business_impact, reason, "
    "actions, created_at, expires_at, decided_by, decided_at, comment, token_expires_at, token_used_at, "
    f"{_NOTIFICATION_STATE} AS notification_state, notify_attempts AS notification_attempts, "
    "notified_at AS notification_sent_at, "
    "CASE WHEN notified_at IS NULL AND notify_attempts > 0 AND notify_due_at < 'infinity' "
    "THEN notify_due_at END AS notification_next_at"
)

# A message owed by the current status, due (`notify_due_at`: not leased, not backing off), and older than
# the grace ($3) that the path which made it owed has to send it itself. A pending request past its deadline
# is left to the expiry job, which owes the expiry message instead.
_TAKE_UNNOTIFIED: Final = f"""
UPDATE autonomous.approvals AS a
SET notify_due_at = $2::timestamptz + $4::interval, notify_attempts = a.notify_attempts + 1
WHERE a.id IN (SELECT id FROM autonomous.approvals
               WHERE notified_at IS NULL AND status IN ('pending', 'expired') AND notify_due_at <= $2
                 AND (CASE WHEN status = 'pending' THEN created_at ELSE decided_at END)
                     <= $2::timestamptz - $3::interval
                 AND NOT (status = 'pending' AND expires_at <= $2)
               ORDER BY notify_due_at LIMIT $1
               FOR UPDATE SKIP LOCKED)
RETURNING {_COLUMNS}, notify_context
"""


class ApprovalRecord(msgspec.Struct, kw_only=True, frozen=True):
    """An approval request as stored (never its token, which is kept only as a hash)."""

    id: int
    execution_id: int
    plan_hash: str
    status: ApprovalStatus
    requested_by: str
    approvers: list[str]
    risk_level: str
    business_impact: str
    reason: str
    actions: list[dict[str, Any]]
    created_at: datetime
    expires_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    comment: str = ""
    token_expires_at: datetime | None = None
    token_used_at: datetime | None = None
    notification_state: NotificationState | None = None
    """Where the message of the current status stands (`_NOTIFICATION_STATE`); None: it owes none."""
    notification_attempts: int = 0
    """The sweep's tries of that message (the live send not counted)."""
    notification_sent_at: datetime | None = None
    notification_next_at: datetime | None = None
    """When the sweep tries it next, while `retrying`."""


class NewApproval(msgspec.Struct, kw_only=True, frozen=True):
    execution_id: int
    plan_hash: str
    requested_by: str
    approvers: list[str]
    risk_level: str
    business_impact: str
    reason: str
    actions: list[dict[str, Any]]
    created_at: datetime
    expires_at: datetime
    notify_context: dict[str, Any] = msgspec.field(default_factory=dict)
    """What the request's messages render besides the request (the event, the decision): kept for a
    re-send. JSON values only, never a secret."""


class UnnotifiedApproval(msgspec.Struct, kw_only=True, frozen=True):
    """A request whose message of its current status is owed: as `take_unnotified` leased it, or as
    `expire_due` expired it."""

    record: ApprovalRecord
    context: dict[str, Any]
    """The request's `NewApproval.notify_context`."""
    attempts: int
    """The sweep's tries of this message, this one included (0 from `expire_due`)."""


class ApprovalRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A transaction for a change spanning the approval and its execution (pass it as ``conn``)."""
        return transaction(self.pool)

    async def create(self, new: NewApproval, conn: Connection | None = None) -> ApprovalRecord:
        async with using(self.pool, conn) as conn:
            row = await conn.fetchrow(
                f"""INSERT INTO autonomous.approvals (execution_id, plan_hash, requested_by, approvers,
                        risk_level, business_impact, reason, actions, created_at, expires_at,
                        notify_context, notify_due_at, notified_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $9, NULL) RETURNING {_COLUMNS}""",
                new.execution_id,
                new.plan_hash,
                new.requested_by,
                new.approvers,
                new.risk_level,
                new.business_impact,
                new.reason,
                new.actions,
                new.created_at,
                new.expires_at,
                new.notify_context,
            )
        assert row is not None
        return _record(row)

    async def get(self, execution_id: int) -> ApprovalRecord | None:
        async with using(self.pool, None) as conn:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM autonomous.approvals WHERE execution_id = $1", execution_id
            )
        return None if row is None else _record(row)

    async def decide(
        self,
        execution_id: int,
        *,
        status: Literal["approved", "rejected"],
        by: str,
        at: datetime,
        comment: str,
        token_sha256: str | None = None,
        token_expires_at: datetime | None = None,
        conn: Connection | None = None,
    ) -> ApprovalRecord | None:
        """Approve or reject a request still pending and not yet expired at `at`; None when it was not."""
        async with using(self.pool, conn) as conn:
            row = await conn.fetchrow(
                f"""UPDATE autonomous.approvals
                    SET status = $2, decided_by = $3, decided_at = $4, comment = $5, token_sha256 = $6,
                        token_expires_at = $7
                    WHERE execution_id = $1 AND status = 'pending' AND expires_at > $4
                    RETURNING {_COLUMNS}""",
                execution_id,
                status,
                by,
                at,
                comment,
                token_sha256,
                token_expires_at,
            )
        return None if row is None else _record(row)

    async def expire_due(
        self, now: datetime, limit: int = 500, conn: Connection | None = None
    ) -> list[UnnotifiedApproval]:
        """Mark up to `limit` pending requests past their deadline expired (oldest deadline first); each is
        returned by exactly one call, with the context kept for its messages, and owes its expiry message
        from now on."""
        async with using(self.pool, conn) as conn:
            rows = await conn.fetch(
                f"""UPDATE autonomous.approvals
                    SET status = 'expired', decided_by = 'expiry', decided_at = $1, notified_at = NULL,
                        notify_due_at = $1, notify_attempts = 0
                    WHERE id IN (SELECT id FROM autonomous.approvals
                                 WHERE status = 'pending' AND expires_at <= $1
                                 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
                      AND status = 'pending'
                    RETURNING {_COLUMNS}, notify_context""",
                now,
                limit,
            )
        return [_unnotified(r) for r in rows]

    async def take_unnotified(
        self, now: datetime, grace: timedelta, lease: timedelta, limit: int
    ) -> list[UnnotifiedApproval]:
        """Up to `limit` requests whose message of their current status is still unsent though it was owed
        more than `grace` before `now` (oldest due first), each held for `lease` from other sweeps and
        counted as a try. A pending request past its deadline is not among them: it owes the expiry message
        once the expiry job took it."""
        async with using(self.pool, None) as conn:
            rows = await conn.fetch(_TAKE_UNNOTIFIED, limit, now, grace, lease)
        return [_unnotified(r) for r in rows]

    async def mark_notified(self, execution_id: int, status: ApprovalStatus, at: datetime) -> None:
        """The message of `status` was sent at `at`; nothing when the request has moved on to another status
        since (which owes its own message, or none)."""
        async with using(self.pool, None) as conn:
            await conn.execute(
                "UPDATE autonomous.approvals SET notified_at = $3 WHERE execution_id = $1 AND status = $2",
                execution_id,
                status,
                at,
            )

    async def postpone_notification(
        self, execution_id: int, status: ApprovalStatus, until: datetime | None
    ) -> None:
        """A try of the message of `status` failed: the sweep takes it again at `until`; None: never (given
        up). Nothing when it was sent meanwhile or the request moved on to another status."""
        async with using(self.pool, None) as conn:
            await conn.execute(
                """UPDATE autonomous.approvals SET notify_due_at = coalesce($3::timestamptz, 'infinity')
                   WHERE execution_id = $1 AND status = $2 AND notified_at IS NULL""",
                execution_id,
                status,
                until,
            )

    async def redeem(self, token_sha256: str, plan_hash: str, now: datetime) -> ApprovalRecord | None:
        """Use an approval token once: it must be unused, unexpired and bound to exactly `plan_hash`."""
        async with using(self.pool, None) as conn:
            row = await conn.fetchrow(
                f"""UPDATE autonomous.approvals SET token_used_at = $3
                    WHERE token_sha256 = $1 AND plan_hash = $2 AND status = 'approved'
                      AND token_used_at IS NULL AND token_expires_at > $3
                    RETURNING {_COLUMNS}""",
                token_sha256,
                plan_hash,
                now,
            )
        return None if row is None else _record(row)

    async def list(
        self,
        *,
        status: ApprovalStatus | None,
        approver: str | None,
        requested_by: str | None,
        limit: int,
        offset: int,
        notification: NotificationState | None = None,
    ) -> tuple[list[ApprovalRecord], int]:
        conditions: list[str] = []
        args: list[object] = []
        for column, value in (
            ("status", status),
            ("requested_by", requested_by),
            (_NOTIFICATION_STATE, notification),
        ):
            if value is not None:
                args.append(value)
                conditions.append(f"{column} = ${len(args)}")
        if approver is not None:
            args.append(approver)
            conditions.append(f"${len(args)} = ANY (approvers)")
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        async with using(self.pool, None) as conn:
            total = await conn.fetchval(f"SELECT count(*) FROM autonomous.approvals {where}", *args)
            rows = await conn.fetch(
                f"""SELECT {_COLUMNS} FROM autonomous.approvals {where}
                    ORDER BY created_at DESC, id DESC LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}""",
                *args,
                limit,
                offset,
            )
        return [_record(r) for r in rows], int(total)


async def lock_request(conn: Connection, execution_id: int) -> None:
    """Lock the execution's approval request, if it has one, for the rest of `conn`'s transaction: taken
    before the execution row by a change of both that starts from the execution (a cancel)."""
    await conn.execute("SELECT 1 FROM autonomous.approvals WHERE execution_id = $1 FOR UPDATE", execution_id)


async def settle_cancelled(conn: Connection, execution_id: int, *, by: str, at: datetime) -> None:
    """A pending request of an execution cancelled while it waited: rejected, comment ``cancelled``, so it
    leaves the pending list and can no longer be approved."""
    await conn.execute(
        """UPDATE autonomous.approvals SET status = 'rejected', decided_by = $2, decided_at = $3,
               comment = 'cancelled'
           WHERE execution_id = $1 AND status = 'pending'""",
        execution_id,
        by,
        at,
    )


def _unnotified(row: asyncpg.Record) -> UnnotifiedApproval:
    """A row read with ``notify_context`` after `_COLUMNS`."""
    return UnnotifiedApproval(
        record=_record(row), context=row["notify_context"], attempts=row["notification_attempts"]
    )


def _record(row: asyncpg.Record) -> ApprovalRecord:
    return msgspec.convert(dict(row), ApprovalRecord)
