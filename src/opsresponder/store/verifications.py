"""Pending closed-loop verifications (``autonomous.verifications``, migration 015).

A checker takes the due ones with ``FOR UPDATE SKIP LOCKED`` and moves their ``due_at`` a lease ahead in
the same statement, so two checkers (two replicas) never look at one row at once and a checker that dies
leaves it due again after the lease. A verdict is written only ``WHERE status = 'pending'`` and answers
whether this call wrote it: whoever wrote it, and only they, acts on it (rollback, failed outcomes). The
verdict's line in the execution's log is written by the same statement. A failed verdict is written as
``acting`` until its rollback is requested (``rollback``) and learning has recorded it (`finish`); an
acting row is taken again when due, so a failure in between (the database) delays the rollback instead
of losing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import asyncpg
import msgspec

from opsresponder.store.pool import connection

VerificationStatus = Literal["pending", "acting", "passed", "failed"]
RollbackStep = Literal["requested", "not_possible"]

_COLUMNS: Final = (
    "execution_id, fingerprint, action_keys, criteria, since, due_at, quiet_until, status, reason, checks, "
    "checked_at, created_at, rollback"
)

_TAKE: Final = f"""
UPDATE autonomous.verifications AS v
SET due_at = $2::timestamptz + $3::interval, checks = v.checks + 1
WHERE v.execution_id IN (SELECT execution_id FROM autonomous.verifications
                         WHERE status IN ('pending', 'acting') AND due_at <= $2
                         ORDER BY due_at LIMIT $1
                         FOR UPDATE SKIP LOCKED)
RETURNING {_COLUMNS}
"""

_DECIDE: Final = """
WITH decided AS (
    UPDATE autonomous.verifications
    SET status = $2, reason = $3, checked_at = $4
    WHERE execution_id = $1 AND status = 'pending'
    RETURNING execution_id),
logged AS (
    INSERT INTO autonomous.execution_logs (execution_id, at, level, message)
    SELECT execution_id, $4, $5, $6 FROM decided)
SELECT count(*) FROM decided
"""


class NewVerification(msgspec.Struct, kw_only=True, frozen=True):
    """A verification to make of a completed execution (row id `execution_id`).

    Attributes:
        fingerprint: the triggering event's; None: only the criteria can be checked.
        action_keys: the remediating actions (their outcomes fail with the verification).
        criteria: the execution's criteria results as the executor stored them (None: the template has none).
        since: when the remediation ended; the condition is looked for after it.
        due_at: the first check; quiet_until: when the quiet period is over.
    """

    execution_id: int
    fingerprint: str | None
    action_keys: list[str]
    criteria: dict[str, Any] | None
    since: datetime
    due_at: datetime
    quiet_until: datetime


class Verification(NewVerification, kw_only=True, frozen=True):
    """A stored verification: what was asked, and how far it got."""

    status: VerificationStatus
    reason: str
    checks: int
    checked_at: datetime | None
    created_at: datetime
    rollback: RollbackStep | None = None


class VerificationRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(self, verification: NewVerification, now: datetime, log_message: str) -> bool:
        """Store a pending verification with its line in the execution's log; False when the execution has
        one already (a retried report counts once)."""
        v = verification
        async with connection(self.pool) as conn, conn.transaction():
            created = await conn.fetchval(
                "INSERT INTO autonomous.verifications (execution_id, fingerprint, action_keys, criteria, "
                "since, due_at, quiet_until, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                "ON CONFLICT (execution_id) DO NOTHING RETURNING true",
                v.execution_id,
                v.fingerprint,
                v.action_keys,
                v.criteria,
                v.since,
                v.due_at,
                v.quiet_until,
                now,
            )
            if created:
                await conn.execute(
                    "INSERT INTO autonomous.execution_logs (execution_id, at, level, message) "
                    "VALUES ($1, $2, 'info', $3)",
                    v.execution_id,
                    now,
                    log_message,
                )
        return bool(created)

    async def take_due(self, now: datetime, lease: timedelta, limit: int) -> list[Verification]:
        """The pending verifications due at `now` (oldest due first), each held for `lease` from other
        checkers (its ``due_at`` moved ahead)."""
        async with connection(self.pool) as conn:
            rows = await conn.fetch(_TAKE, limit, now, lease)
        return [_verification(r) for r in rows]

    async def postpone(self, execution_id: int, due_at: datetime, reason: str, now: datetime) -> None:
        """Not known yet: look again at `due_at`."""
        async with connection(self.pool) as conn:
            await conn.execute(
                "UPDATE autonomous.verifications SET due_at = $2, reason = $3, checked_at = $4 "
                "WHERE execution_id = $1 AND status = 'pending'",
                execution_id,
                due_at,
                reason,
                now,
            )

    async def decide(
        self, execution_id: int, status: VerificationStatus, reason: str, now: datetime, log_message: str
    ) -> bool:
        """Write the verdict (and its log line) if the verification is still pending; True when this call
        wrote it, and so must act on it. A failure is written as ``acting`` (`rollback_done`, `finish`)."""
        level = "info" if status == "passed" else "warning"
        async with connection(self.pool) as conn:
            written = await conn.fetchval(_DECIDE, execution_id, status, reason, now, level, log_message)
        return bool(written)

    async def rollback_done(
        self, execution_id: int, step: RollbackStep, now: datetime, level: str, log_message: str
    ) -> None:
        """Record that an acting verification's rollback step is done (`step`), with its log line."""
        async with connection(self.pool) as conn, conn.transaction():
            updated = await conn.fetchval(
                "UPDATE autonomous.verifications SET rollback = $2 "
                "WHERE execution_id = $1 AND status = 'acting' AND rollback IS NULL RETURNING true",
                execution_id,
                step,
            )
            if updated:
                await conn.execute(
                    "INSERT INTO autonomous.execution_logs (execution_id, at, level, message) "
                    "VALUES ($1, $2, $3, $4)",
                    execution_id,
                    now,
                    level,
                    log_message,
                )

    async def finish(self, execution_id: int) -> bool:
        """An acting verification whose rollback and learning steps are done becomes ``failed``."""
        async with connection(self.pool) as conn:
            done = await conn.fetchval(
                "UPDATE autonomous.verifications SET status = 'failed' "
                "WHERE execution_id = $1 AND status = 'acting' RETURNING true",
                execution_id,
            )
        return bool(done)

    async def log(self, execution_id: int, at: datetime, level: str, message: str) -> None:
        """One line in the execution's log (what verification did about it)."""
        async with connection(self.pool) as conn:
            await conn.execute(
                "INSERT INTO autonomous.execution_logs (execution_id, at, level, message) "
                "VALUES ($1, $2, $3, $4)",
                execution_id,
                at,
                level,
                message,
            )

    async def get(self, execution_id: int) -> Verification | None:
        async with connection(self.pool) as conn:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM autonomous.verifications WHERE execution_id = $1", execution_id
            )
        return None if row is None else _verification(row)

    async def of_executions(self, execution_ids: Sequence[int]) -> dict[int, Verification]:
        async with connection(self.pool) as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM autonomous.verifications WHERE execution_id = ANY($1::bigint[])",
                list(execution_ids),
            )
        return {r["execution_id"]: _verification(r) for r in rows}


def _verification(row: asyncpg.Record) -> Verification:
    return msgspec.convert(dict(row.items()), Verification)
