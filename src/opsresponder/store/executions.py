"""Executions in ``autonomous.executions`` (with their actions and logs): the executor's durable state.

Every state change is written as it happens, so the API shows a running execution as it is and a crash
loses nothing but the moment it happened in. The table is also the work queue: `claim` takes queued
executions (and queued rollbacks) with ``FOR UPDATE SKIP LOCKED`` under a lease, like the firings outbox
(store/firings.py), so several processes never run one execution twice; an owner renews its lease while
it runs (`renew`, which also answers whether a cancel was asked meanwhile, from any process). A process
that dies leaves its rows ``running`` with a lease that expires: `recover_interrupted` marks them
``interrupted`` (their running actions too: an action whose end nobody saw is never re-run blindly).

The control changes (`request_cancel`, `request_rollback`, `queue_pending`) are conditional: each reads
the row under ``FOR UPDATE`` and says whether its state allowed the change, so the API can answer 409.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import asyncpg
import msgspec

from opsresponder.core.clock import utcnow
from opsresponder.store.approvals import lock_request, settle_cancelled
from opsresponder.store.pool import Connection, connection, transaction, using

ExecutionStatus = Literal[
    "pending_approval",
    "queued",
    "running",
    "completed",
    "failed",
    "cancelled",
    "interrupted",
    "dry_run",
    "rolling_back",
    "rolled_back",
]
ActionStatus = Literal[
    "queued",
    "running",
    "completed",
    "failed",
    "timed_out",
    "skipped",
    "cancelled",
    "interrupted",
    "would_run",
    "rolled_back",
]
Phase = Literal["action", "rollback"]
LogLevel = Literal["debug", "info", "warning", "error"]

FINISHED: Final = frozenset({"completed", "failed", "cancelled", "interrupted", "rolled_back"})
"""Execution states nothing runs in any more (``dry_run`` never ran)."""
CANCELLABLE: Final = frozenset({"pending_approval", "queued", "running"})
ROLLBACK_FROM: Final = frozenset({"completed", "failed", "cancelled", "interrupted"})

EXECUTION_PREFIX: Final = "exec_"

_EXEC_COLUMNS: Final = (
    "id, decision_id, event_id, target, template_id, template_version, status, dry_run, requested_by, "
    "options, plan, plan_hash, max_minutes, created_at, started_at, completed_at, deadline_at, owner, "
    "lease_until, error, cancel_requested, rollback_requested, rollback_status, criteria"
)
_ACTION_COLUMNS: Final = (
    "execution_id, phase, action_key, action_id, position, status, started_at, completed_at, result, error, "
    "attempt"
)
_LOG_COLUMNS: Final = "id, execution_id, at, level, message, action_id, action_key"

# Queued executions become running; queued rollbacks (asked through the API on a finished execution)
# become the claimer's to run. Oldest first; rows another claimer holds are skipped, not waited for.
_CLAIM: Final = f"""
WITH claimed AS (
    UPDATE autonomous.executions AS e
    SET status = CASE WHEN e.status = 'queued' THEN 'running' ELSE e.status END,
        rollback_status = CASE WHEN e.status = 'rolling_back' THEN 'running' ELSE e.rollback_status END,
        started_at = COALESCE(e.started_at, $3),
        deadline_at = CASE WHEN e.status = 'queued'
                           THEN $3::timestamptz + make_interval(mins => e.max_minutes)
                           ELSE e.deadline_at END,
        owner = $2, lease_until = $3::timestamptz + $4::interval
    WHERE e.id IN (SELECT id FROM autonomous.executions
                   WHERE status = 'queued' OR (status = 'rolling_back' AND rollback_status = 'queued')
                   ORDER BY id LIMIT $1
                   FOR UPDATE SKIP LOCKED)
    RETURNING {_EXEC_COLUMNS}),
logged AS (
    INSERT INTO autonomous.execution_logs (execution_id, at, level, message)
    SELECT id, $3, 'info',
           CASE WHEN status = 'rolling_back' THEN 'Rollback started by ' ELSE 'Started by ' END || $2 || '.'
    FROM claimed)
SELECT * FROM claimed
"""


class ExecutionRow(msgspec.Struct, kw_only=True):
    """A row of ``autonomous.executions`` (see the migration for each column)."""

    id: int
    decision_id: int
    event_id: int
    target: str | None
    template_id: str | None
    template_version: str | None
    status: str
    dry_run: bool
    requested_by: str
    options: dict[str, Any]
    plan: dict[str, Any]
    plan_hash: str
    max_minutes: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    deadline_at: datetime | None
    owner: str | None
    lease_until: datetime | None
    error: str | None
    cancel_requested: bool
    rollback_requested: bool
    rollback_status: str | None
    criteria: dict[str, Any] | None

    @property
    def execution_id(self) -> str:
        return f"{EXECUTION_PREFIX}{self.id}"


class ActionRow(msgspec.Struct, kw_only=True):
    execution_id: int
    phase: str
    action_key: str
    action_id: int | None
    position: int
    status: str
    started_at: datetime | None = None
    completed_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    attempt: int = 0


class LogRow(msgspec.Struct, kw_only=True):
    id: int
    execution_id: int
    at: datetime
    level: str
    message: str
    action_id: int | None = None
    action_key: str | None = None


class StoredExecution(msgspec.Struct, kw_only=True):
    """An execution with its action rows (action phase first, by position) and its logs (in order)."""

    execution: ExecutionRow
    actions: list[ActionRow]
    logs: list[LogRow]
    verification: dict[str, Any] | None = None
    """Its closed-loop verification (``autonomous.verifications``: status, reason, checked_at), if any."""


class NewExecution(msgspec.Struct, kw_only=True):
    decision_id: int
    event_id: int
    target: str | None
    template_id: str | None
    template_version: str | None
    status: ExecutionStatus
    dry_run: bool
    requested_by: str
    options: dict[str, Any]
    plan: dict[str, Any]
    plan_hash: str
    max_minutes: int
    created_at: datetime
    completed_at: datetime | None = None


class NewAction(msgspec.Struct, kw_only=True):
    phase: Phase
    action_key: str
    action_id: int | None
    position: int
    status: ActionStatus
    result: dict[str, Any] | None = None
    error: str | None = None


class ActionChange(msgspec.Struct, kw_only=True, frozen=True):
    """A new state of one action row; None keeps the stored time, result or error."""

    phase: Phase
    action_key: str
    status: ActionStatus
    started_at: datetime | None = None
    completed_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: str | None = None


class LogEntry(msgspec.Struct, kw_only=True, frozen=True):
    at: datetime
    level: LogLevel
    message: str
    action_id: int | None = None
    action_key: str | None = None


class ControlOutcome(msgspec.Struct, kw_only=True):
    """What a conditional control change found and did.

    Attributes:
        found: the execution exists.
        allowed: its state allowed the change (when found).
        status: its status after the call (before it, when not allowed).
    """

    found: bool
    allowed: bool = False
    status: str | None = None


def parse_execution_id(execution_id: str) -> int | None:
    """The row id of ``exec_<n>`` (None for anything else, which then names no execution)."""
    if not execution_id.startswith(EXECUTION_PREFIX):
        return None
    digits = execution_id[len(EXECUTION_PREFIX) :]
    if not digits.isdigit() or len(digits) > 18:
        return None
    return int(digits)


class ExecutionRepository:
    """The executions' durable state and work queue (see the module docstring).

    Raises (every method):
        DatabaseUnavailableError: PostgreSQL cannot be reached (store/pool.py `connection`).
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A transaction for a change spanning the execution and its approval (pass it as ``conn``)."""
        return transaction(self._pool)

    async def create(
        self,
        new: NewExecution,
        actions: Sequence[NewAction],
        logs: Sequence[LogEntry],
        conn: Connection | None = None,
    ) -> StoredExecution:
        """Store an execution, its action rows and its first logs in one transaction (within `conn`'s,
        when given: with its approval request)."""
        async with using(self._pool, conn) as conn, conn.transaction():
            row = await conn.fetchrow(
                f"""INSERT INTO autonomous.executions
                        (decision_id, event_id, target, template_id, template_version, status, dry_run,
                         requested_by, options, plan, plan_hash, max_minutes, created_at, completed_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                    RETURNING {_EXEC_COLUMNS}""",
                new.decision_id,
                new.event_id,
                new.target,
                new.template_id,
                new.template_version,
                new.status,
                new.dry_run,
                new.requested_by,
                new.options,
                new.plan,
                new.plan_hash,
                new.max_minutes,
                new.created_at,
                new.completed_at,
            )
            assert row is not None
            execution_id = int(row["id"])
            await _insert_actions(conn, execution_id, actions)
            await _insert_logs(conn, execution_id, logs)
            return await _load(conn, execution_id, _execution_from(row))

    async def get(self, execution_id: int) -> StoredExecution | None:
        async with connection(self._pool) as conn:
            row = await conn.fetchrow(
                f"SELECT {_EXEC_COLUMNS} FROM autonomous.executions WHERE id = $1", execution_id
            )
            if row is None:
                return None
            return await _load(conn, execution_id, _execution_from(row))

    async def list(
        self,
        *,
        status: str | None,
        event_id: int | None,
        start_time: datetime | None,
        end_time: datetime | None,
        limit: int,
        offset: int,
    ) -> tuple[builtins.list[StoredExecution], int]:
        """Executions newest first, filtered (times bound ``created_at``: start inclusive, end exclusive),
        with their actions but not their logs, and how many match in all."""
        where = """($1::text IS NULL OR status = $1) AND ($2::bigint IS NULL OR event_id = $2)
                   AND ($3::timestamptz IS NULL OR created_at >= $3)
                   AND ($4::timestamptz IS NULL OR created_at < $4)"""
        async with connection(self._pool) as conn:
            rows = await conn.fetch(
                f"SELECT {_EXEC_COLUMNS} FROM autonomous.executions WHERE {where} "
                "ORDER BY id DESC LIMIT $5 OFFSET $6",
                status,
                event_id,
                start_time,
                end_time,
                limit,
                offset,
            )
            total = await conn.fetchval(
                f"SELECT count(*) FROM autonomous.executions WHERE {where}",
                status,
                event_id,
                start_time,
                end_time,
            )
            ids = [int(r["id"]) for r in rows]
            action_rows = await conn.fetch(
                f"SELECT {_ACTION_COLUMNS} FROM autonomous.execution_actions WHERE execution_id = ANY($1) "
                "ORDER BY execution_id, phase, position",
                ids,
            )
        by_execution: dict[int, list[ActionRow]] = {i: [] for i in ids}
        for a in action_rows:
            by_execution[int(a["execution_id"])].append(_action_from(a))
        return [
            StoredExecution(execution=_execution_from(r), actions=by_execution[int(r["id"])], logs=[])
            for r in rows
        ], int(total)

    async def claim_queued(
        self, owner: str, lease: timedelta, limit: int, now: datetime
    ) -> builtins.list[ExecutionRow]:
        """Take up to `limit` queued executions (now ``running``) and queued rollbacks (their
        ``rollback_status`` now ``running``), oldest first, for `owner` until ``now + lease``.

        Concurrent claims skip each other's rows and never return one row twice. Each claimed row gets its
        log line ("Started by <owner>.") in the same statement.
        """
        if limit <= 0:
            return []
        async with connection(self._pool) as conn:
            rows = await conn.fetch(_CLAIM, limit, owner, now, lease)
        return sorted((_execution_from(r) for r in rows), key=lambda e: e.id)

    async def renew(
        self, execution_ids: Sequence[int], owner: str, lease: timedelta, now: datetime
    ) -> dict[int, bool]:
        """Extend `owner`'s lease on its running executions; returns, for each still `owner`'s, whether a
        cancel was asked. An id missing from the answer is no longer `owner`'s (recovered elsewhere)."""
        if not execution_ids:
            return {}
        async with connection(self._pool) as conn:
            rows = await conn.fetch(
                """UPDATE autonomous.executions SET lease_until = $3::timestamptz + $4::interval
                   WHERE id = ANY($1::bigint[]) AND owner = $2 AND status IN ('running', 'rolling_back')
                   RETURNING id, cancel_requested""",
                list(execution_ids),
                owner,
                now,
                lease,
            )
        return {int(r["id"]): bool(r["cancel_requested"]) for r in rows}

    async def update_action(
        self,
        execution_id: int,
        phase: Phase,
        action_key: str,
        *,
        status: ActionStatus,
        started_at: datetime | None = None,
        completed_at: datetime | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        logs: Sequence[LogEntry] = (),
    ) -> None:
        """`record` of one action's change."""
        change = ActionChange(
            phase=phase,
            action_key=action_key,
            status=status,
            started_at=started_at,
            completed_at=completed_at,
            result=result,
            error=error,
        )
        await self.record(execution_id, [change], logs)

    async def record(
        self, execution_id: int, changes: Sequence[ActionChange], logs: Sequence[LogEntry] = ()
    ) -> None:
        """Apply action changes (a start counts an attempt) and append `logs`, in one statement: one
        round trip for what happened at one moment (an action's end and its dependant's start), which is
        most of the executor's cost per step. A time, result or error given as None keeps its stored value."""
        if not changes and not logs:
            return
        async with connection(self._pool) as conn:
            await conn.execute(
                f"""WITH changed AS (
                        UPDATE autonomous.execution_actions AS a
                        SET status = c.status, started_at = COALESCE(c.started_at, a.started_at),
                            completed_at = COALESCE(c.completed_at, a.completed_at),
                            result = COALESCE(c.result::jsonb, a.result), error = COALESCE(c.error, a.error),
                            attempt = a.attempt + CASE WHEN c.status = 'running' THEN 1 ELSE 0 END
                        FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[],
                                    $7::text[], $8::text[])
                             AS c(phase, action_key, status, started_at, completed_at, result, error)
                        WHERE a.execution_id = $1 AND a.phase = c.phase AND a.action_key = c.action_key)
                    {_logs_insert("SELECT $1::bigint AS id", 9)}""",
                execution_id,
                [c.phase for c in changes],
                [c.action_key for c in changes],
                [c.status for c in changes],
                [c.started_at for c in changes],
                [c.completed_at for c in changes],
                [None if c.result is None else _json_text(c.result) for c in changes],
                [c.error for c in changes],
                *_log_arrays(logs),
            )

    async def add_actions(
        self, execution_id: int, actions: Sequence[NewAction], logs: Sequence[LogEntry] = ()
    ) -> None:
        """Add action rows (a rollback's steps) and logs; a row already there is reset to the new state."""
        async with connection(self._pool) as conn, conn.transaction():
            await _insert_actions(conn, execution_id, actions)
            await _insert_logs(conn, execution_id, logs)

    async def append_logs(self, execution_id: int, logs: Sequence[LogEntry]) -> None:
        if not logs:
            return
        async with connection(self._pool) as conn:
            await _insert_logs(conn, execution_id, logs)

    async def set_status(
        self,
        execution_id: int,
        owner: str,
        status: ExecutionStatus,
        *,
        rollback_status: str | None = None,
        error: str | None = None,
        logs: Sequence[LogEntry] = (),
    ) -> bool:
        """Change a running execution's status (``rolling_back``) while `owner` holds it; False when it
        no longer does."""
        async with connection(self._pool) as conn:
            changed = await conn.fetchval(
                f"""WITH changed AS (
                        UPDATE autonomous.executions
                        SET status = $3, rollback_status = COALESCE($4, rollback_status),
                            error = COALESCE($5, error)
                        WHERE id = $1 AND owner = $2 RETURNING id),
                    logged AS ({_logs_insert("SELECT id FROM changed", 6)})
                    SELECT count(*) FROM changed""",
                execution_id,
                owner,
                status,
                rollback_status,
                error,
                *_log_arrays(logs),
            )
        return int(changed) == 1

    async def finish(
        self,
        execution_id: int,
        owner: str,
        status: ExecutionStatus,
        at: datetime,
        *,
        error: str | None = None,
        criteria: dict[str, Any] | None = None,
        rollback_status: str | None = None,
        logs: Sequence[LogEntry] = (),
    ) -> bool:
        """End `owner`'s run of an execution: final status, end time, error, criteria outcomes; the claim
        is released. Actions still queued or running are marked cancelled (they will never run). One
        statement. False when `owner` no longer holds it (recovered elsewhere: that verdict stands)."""
        async with connection(self._pool) as conn:
            changed = await conn.fetchval(
                f"""WITH finished AS (
                        UPDATE autonomous.executions
                        SET status = $3, completed_at = $4, error = COALESCE($5, error),
                            criteria = COALESCE($6, criteria),
                            rollback_status = COALESCE($7, rollback_status), owner = NULL, lease_until = NULL
                        WHERE id = $1 AND owner = $2 RETURNING id),
                    closed AS (
                        UPDATE autonomous.execution_actions SET status = 'cancelled', completed_at = $4
                        WHERE execution_id IN (SELECT id FROM finished) AND status IN ('queued', 'running')),
                    logged AS ({_logs_insert("SELECT id FROM finished", 8)})
                    SELECT count(*) FROM finished""",
                execution_id,
                owner,
                status,
                at,
                error,
                criteria,
                rollback_status,
                *_log_arrays(logs),
            )
        return int(changed) == 1

    async def request_cancel(self, execution_id: int, now: datetime, by: str) -> ControlOutcome:
        """Cancel a pending or queued execution at once (nothing ran), or flag a running one for its
        owner, who stops it (`renew` tells it). Any other state: not allowed. A pending one's approval
        request is settled in the same transaction (rejected, comment ``cancelled``)."""
        async with connection(self._pool) as conn, conn.transaction():
            await lock_request(conn, execution_id)  # the approval row first, as every such change does
            status = await _lock_status(conn, execution_id)
            if status is None:
                return ControlOutcome(found=False)
            if status not in CANCELLABLE:
                return ControlOutcome(found=True, allowed=False, status=status)
            if status == "running":
                await conn.execute(
                    "UPDATE autonomous.executions SET cancel_requested = true WHERE id = $1", execution_id
                )
                message = f"Cancel requested by {by}."
            else:
                if status == "pending_approval":
                    await settle_cancelled(conn, execution_id, by=by, at=now)
                status = "cancelled"
                await conn.execute(
                    """UPDATE autonomous.executions SET status = 'cancelled', cancel_requested = true,
                           completed_at = $2, error = $3
                       WHERE id = $1""",
                    execution_id,
                    now,
                    f"cancelled by {by} before it started",
                )
                await conn.execute(
                    """UPDATE autonomous.execution_actions SET status = 'cancelled', completed_at = $2
                       WHERE execution_id = $1 AND status = 'queued'""",
                    execution_id,
                    now,
                )
                message = f"Cancelled by {by} before it started."
            await _insert_logs(conn, execution_id, [LogEntry(at=now, level="info", message=message)])
        return ControlOutcome(found=True, allowed=True, status=status)

    async def request_rollback(self, execution_id: int, now: datetime, by: str) -> ControlOutcome:
        """Queue the rollback of a finished execution: allowed when it is completed, failed, cancelled or
        interrupted, no rollback was asked yet, and a completed action has a rollback script. The row
        becomes ``rolling_back`` with ``rollback_status`` queued, for any process's claim."""
        async with connection(self._pool) as conn, conn.transaction():
            row = await conn.fetchrow(
                """SELECT status, rollback_status, rollback_requested FROM autonomous.executions
                   WHERE id = $1 FOR UPDATE""",
                execution_id,
            )
            if row is None:
                return ControlOutcome(found=False)
            status = str(row["status"])
            if status not in ROLLBACK_FROM or row["rollback_status"] is not None or row["rollback_requested"]:
                return ControlOutcome(found=True, allowed=False, status=status)
            if not await _has_rollback_capable(conn, execution_id):
                return ControlOutcome(found=True, allowed=False, status=status)
            await conn.execute(
                """UPDATE autonomous.executions SET status = 'rolling_back', rollback_status = 'queued',
                       rollback_requested = true, cancel_requested = false, owner = NULL, lease_until = NULL
                   WHERE id = $1""",
                execution_id,
            )
            await _insert_logs(
                conn, execution_id, [LogEntry(at=now, level="info", message=f"Rollback requested by {by}.")]
            )
        return ControlOutcome(found=True, allowed=True, status="rolling_back")

    async def queue_pending(
        self,
        execution_id: int,
        *,
        now: datetime | None = None,
        by: str = "an approval",
        conn: Connection | None = None,
    ) -> ControlOutcome:
        """``pending_approval`` -> ``queued`` (the approval workflow, once a person approved, in the
        transaction `conn` that records the approval); not allowed from any other state. The local worker
        is not woken: it finds the row at its next poll."""
        now = now or utcnow()
        async with using(self._pool, conn) as conn, conn.transaction():
            status = await _lock_status(conn, execution_id)
            if status is None:
                return ControlOutcome(found=False)
            if status != "pending_approval":
                return ControlOutcome(found=True, allowed=False, status=status)
            await conn.execute(
                "UPDATE autonomous.executions SET status = 'queued' WHERE id = $1", execution_id
            )
            await _insert_logs(
                conn, execution_id, [LogEntry(at=now, level="info", message=f"Approved by {by}; queued.")]
            )
        return ControlOutcome(found=True, allowed=True, status="queued")

    async def cancel_pending(
        self, execution_id: int, *, now: datetime, reason: str, conn: Connection | None = None
    ) -> ControlOutcome:
        """``pending_approval`` -> ``cancelled`` with `reason` as its error and log line (a rejected or
        expired approval, in the transaction `conn` that records it); not allowed from any other state."""
        async with using(self._pool, conn) as conn, conn.transaction():
            status = await _lock_status(conn, execution_id)
            if status is None:
                return ControlOutcome(found=False)
            if status != "pending_approval":
                return ControlOutcome(found=True, allowed=False, status=status)
            await conn.execute(
                """UPDATE autonomous.executions SET status = 'cancelled', completed_at = $2, error = $3
                   WHERE id = $1""",
                execution_id,
                now,
                reason,
            )
            await conn.execute(
                """UPDATE autonomous.execution_actions SET status = 'cancelled', completed_at = $2
                   WHERE execution_id = $1 AND status IN ('queued', 'would_run')""",
                execution_id,
                now,
            )
            await _insert_logs(
                conn, execution_id, [LogEntry(at=now, level="warning", message=f"Not run: {reason}.")]
            )
        return ControlOutcome(found=True, allowed=True, status="cancelled")

    async def pending_plan_hash(self, execution_id: int) -> str | None:
        """The plan hash of an execution still ``pending_approval``; None when there is none (also when
        it was cancelled while it waited: approving it then must not succeed)."""
        async with connection(self._pool) as conn:
            value = await conn.fetchval(
                "SELECT plan_hash FROM autonomous.executions WHERE id = $1 AND status = 'pending_approval'",
                execution_id,
            )
        return None if value is None else str(value)

    async def recover_interrupted(
        self, now: datetime, owner: str | None = None
    ) -> builtins.list[ExecutionRow]:
        """Mark ``interrupted`` every execution left running (or rolling back) by a dead process: its
        lease expired, or it is `owner`'s (this process's own earlier life). A running one whose cancel was
        asked ends ``cancelled`` instead (what the operator asked; no rollback follows by itself). Their
        running actions become ``interrupted`` too, never re-run: whether such an action did its work is
        unknown. Returns the rows as they are now (``rollback_status`` interrupted for a rollback that
        was running)."""
        async with connection(self._pool) as conn, conn.transaction():
            rows = await conn.fetch(
                f"""UPDATE autonomous.executions AS e
                    SET status = CASE WHEN e.status = 'running' AND e.cancel_requested THEN 'cancelled'
                                      ELSE 'interrupted' END,
                        completed_at = $1, owner = NULL, lease_until = NULL,
                        rollback_status = CASE WHEN e.status = 'rolling_back' THEN 'interrupted'
                                               ELSE e.rollback_status END,
                        error = COALESCE(e.error,
                                         CASE WHEN e.status = 'running' AND e.cancel_requested
                                              THEN 'cancelled on request; ' ELSE '' END ||
                                         'the process running it stopped (owner ' ||
                                         COALESCE(e.owner, '?') || ', lease expired)')
                    WHERE e.id IN (SELECT id FROM autonomous.executions
                                   WHERE (status = 'running'
                                          OR (status = 'rolling_back' AND rollback_status = 'running'))
                                     AND (lease_until <= $1 OR ($2::text IS NOT NULL AND owner = $2))
                                   FOR UPDATE SKIP LOCKED)
                    RETURNING {_EXEC_COLUMNS}""",
                now,
                owner,
            )
            ids = [int(r["id"]) for r in rows]
            if not ids:
                return []
            cancelled = {int(r["id"]) for r in rows if r["status"] == "cancelled"}
            running = await conn.fetch(
                """UPDATE autonomous.execution_actions SET status = 'interrupted', completed_at = $2,
                       error = 'interrupted: the process running it stopped; not re-run'
                   WHERE execution_id = ANY($1::bigint[]) AND status = 'running'
                   RETURNING execution_id, action_key, action_id""",
                ids,
                now,
            )
            await conn.execute(
                """UPDATE autonomous.execution_actions SET status = 'cancelled', completed_at = $2
                   WHERE execution_id = ANY($1::bigint[]) AND status = 'queued'""",
                ids,
                now,
            )
            for execution_id in ids:
                entries = [
                    LogEntry(
                        at=now,
                        level="error",
                        message="Interrupted: the process running it stopped; the action is not re-run.",
                        action_id=a["action_id"],
                        action_key=a["action_key"],
                    )
                    for a in running
                    if int(a["execution_id"]) == execution_id
                ]
                entries.append(
                    LogEntry(
                        at=now,
                        level="warning",
                        message="Cancelled: the process running this execution stopped after a cancel was "
                        "asked; nothing is rolled back by itself.",
                    )
                    if execution_id in cancelled
                    else LogEntry(
                        at=now,
                        level="error",
                        message="Interrupted: the process running this execution stopped before it ended.",
                    )
                )
                await _insert_logs(conn, execution_id, entries)
        return sorted((_execution_from(r) for r in rows), key=lambda e: e.id)


async def _lock_status(conn: asyncpg.Connection, execution_id: int) -> str | None:
    status = await conn.fetchval(
        "SELECT status FROM autonomous.executions WHERE id = $1 FOR UPDATE", execution_id
    )
    return None if status is None else str(status)


async def _has_rollback_capable(conn: asyncpg.Connection, execution_id: int) -> bool:
    """A completed action of the plan has a rollback script (the plan names it per action key)."""
    return bool(
        await conn.fetchval(
            """SELECT EXISTS (
                   SELECT 1 FROM autonomous.execution_actions AS a
                   JOIN autonomous.executions AS e ON e.id = a.execution_id
                   WHERE a.execution_id = $1 AND a.phase = 'action' AND a.status = 'completed'
                     AND e.plan -> 'rollback_scripts' ? a.action_key)""",
            execution_id,
        )
    )


async def _insert_actions(conn: asyncpg.Connection, execution_id: int, actions: Sequence[NewAction]) -> None:
    if not actions:
        return
    await conn.execute(
        """INSERT INTO autonomous.execution_actions
               (execution_id, phase, action_key, action_id, position, status, result, error)
           SELECT $1, a.phase, a.action_key, a.action_id, a.position, a.status, a.result::jsonb, a.error
           FROM unnest($2::text[], $3::text[], $4::bigint[], $5::int[], $6::text[], $7::text[], $8::text[])
                AS a(phase, action_key, action_id, position, status, result, error)
           ON CONFLICT (execution_id, phase, action_key) DO UPDATE
           SET status = excluded.status, position = excluded.position, result = excluded.result,
               error = excluded.error, started_at = NULL, completed_at = NULL""",
        execution_id,
        [a.phase for a in actions],
        [a.action_key for a in actions],
        [a.action_id for a in actions],
        [a.position for a in actions],
        [a.status for a in actions],
        [None if a.result is None else _json_text(a.result) for a in actions],
        [a.error for a in actions],
    )


def _json_text(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _logs_insert(execution: str, first: int) -> str:
    """An INSERT of log lines given as five arrays from parameter `first` on (see `_log_arrays`), for the
    executions `execution` selects (a query with one column: the id), so it can ride in a CTE."""
    a, b, c, d, e = range(first, first + 5)
    return f"""INSERT INTO autonomous.execution_logs (execution_id, at, level, message, action_id, action_key)
               SELECT x.id, l.at, l.level, l.message, l.action_id, l.action_key
               FROM ({execution}) AS x(id),
                    unnest(${a}::timestamptz[], ${b}::text[], ${c}::text[], ${d}::bigint[], ${e}::text[])
                    AS l(at, level, message, action_id, action_key)"""


def _log_arrays(logs: Sequence[LogEntry]) -> tuple[list[Any], ...]:
    return (
        [entry.at for entry in logs],
        [entry.level for entry in logs],
        [entry.message for entry in logs],
        [entry.action_id for entry in logs],
        [entry.action_key for entry in logs],
    )


async def _insert_logs(conn: asyncpg.Connection, execution_id: int, logs: Sequence[LogEntry]) -> None:
    if logs:
        await conn.execute(_logs_insert("SELECT $1::bigint", 2), execution_id, *_log_arrays(logs))


async def _load(conn: asyncpg.Connection, execution_id: int, execution: ExecutionRow) -> StoredExecution:
    actions = await conn.fetch(
        f"SELECT {_ACTION_COLUMNS} FROM autonomous.execution_actions WHERE execution_id = $1 "
        "ORDER BY phase, position",
        execution_id,
    )
    logs = await conn.fetch(
        f"SELECT {_LOG_COLUMNS} FROM autonomous.execution_logs WHERE execution_id = $1 ORDER BY id",
        execution_id,
    )
    verification = await conn.fetchrow(
        "SELECT status, reason, checked_at, due_at FROM autonomous.verifications WHERE execution_id = $1",
        execution_id,
    )
    return StoredExecution(
        execution=execution,
        actions=[_action_from(a) for a in actions],
        logs=[msgspec.convert(dict(r), LogRow) for r in logs],
        verification=None if verification is None else dict(verification.items()),
    )


def _execution_from(row: asyncpg.Record) -> ExecutionRow:
    return ExecutionRow(**dict(row.items()))


def _action_from(row: asyncpg.Record) -> ActionRow:
    return ActionRow(**dict(row.items()))


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[1])
