"""Approvals and their executions change together or not at all: a failure between the two tables
(forced by a PostgreSQL trigger) leaves neither behind, a cancel settles the request, an approval racing a
cancel gets no token, and a hanging mail server does not strand expired requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from opsresponder.config import ApprovalsConfig
from opsresponder.response.approvals import ApprovalRefused, ApprovalWorkflow
from opsresponder.response.executor.options import ExecutionOptions
from opsresponder.response.executor.service import ExecutionService
from opsresponder.response.notify.base import ChannelResult, Notification
from opsresponder.store.approvals import ApprovalRecord, ApprovalRepository
from opsresponder.store.executions import parse_execution_id
from opsresponder.store.pool import Connection
from tests.integration.response.executor.harness import Notes, Rig, action, decision, make_rig


@dataclass
class HangingMail(Notes):
    """Expiry messages never finish (an SMTP server that accepts the connection and stalls)."""

    async def send(self, notification: Notification) -> list[ChannelResult]:
        if notification.template == "approval_expired":
            await asyncio.Event().wait()
        return await super().send(notification)


def wired(pool: asyncpg.Pool, tmp_path: Path, notes: Notes | None = None) -> tuple[Rig, ApprovalWorkflow]:
    rig = make_rig(pool, tmp_path, notifier=notes)
    flow = ApprovalWorkflow(
        ApprovalRepository(pool), rig.service, rig.notes, ApprovalsConfig(), ["alice"], rig.clock,
        notify_timeout=0.2,
    )  # fmt: skip
    rig.service.attach_approvals(flow)
    return rig, flow


async def pending(rig: Rig) -> int:
    view = await rig.service.submit(
        decision(action("fix", script="fix", action_type="remediation", approval_required=True)),
        None,
        ExecutionOptions(),
        requested_by="bob",
        approved=False,
    )
    assert view.status == "pending_approval"
    row_id = parse_execution_id(view.execution_id)
    assert row_id is not None
    return row_id


async def states(pool: asyncpg.Pool, row_id: int) -> tuple[str, str | None]:
    row = await pool.fetchrow(
        """SELECT e.status, a.status AS approval FROM autonomous.executions AS e
           LEFT JOIN autonomous.approvals AS a ON a.execution_id = e.id WHERE e.id = $1""",
        row_id,
    )
    assert row is not None
    return str(row["status"]), row["approval"]


@asynccontextmanager
async def failing(pool: asyncpg.Pool, table: str, event: str, when: str = "true") -> AsyncIterator[None]:
    """PostgreSQL refuses `event` on `table` while inside (a failure between the two tables' changes)."""
    await pool.execute(
        f"""CREATE FUNCTION pg_temp_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF {when} THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$;
            CREATE TRIGGER refuse BEFORE {event} ON {table} FOR EACH ROW EXECUTE FUNCTION pg_temp_refuse()"""
    )
    try:
        yield
    finally:
        await pool.execute(f"DROP TRIGGER refuse ON {table}; DROP FUNCTION pg_temp_refuse()")


async def test_an_execution_is_never_left_pending_without_its_approval_request(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig, _ = wired(db_pool, tmp_path)
    async with failing(db_pool, "autonomous.approvals", "INSERT"):
        with pytest.raises(asyncpg.RaiseError):
            await pending(rig)
    assert await db_pool.fetchval("SELECT count(*) FROM autonomous.executions") == 0


async def test_a_failed_approval_leaves_the_request_pending_not_approved(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig, flow = wired(db_pool, tmp_path)
    row_id = await pending(rig)
    async with failing(db_pool, "autonomous.executions", "UPDATE", "NEW.status = 'queued'"):
        with pytest.raises(asyncpg.RaiseError):
            await flow.approve(row_id, approver="alice")
    assert await states(db_pool, row_id) == ("pending_approval", "pending")
    await flow.approve(row_id, approver="alice")  # once it can, it is approved and queued together
    assert await states(db_pool, row_id) == ("queued", "approved")


async def test_a_failed_rejection_and_a_failed_expiry_leave_both_pending_for_a_retry(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig, flow = wired(db_pool, tmp_path)
    rejected, expiring = await pending(rig), await pending(rig)
    async with failing(db_pool, "autonomous.executions", "UPDATE", "NEW.status = 'cancelled'"):
        with pytest.raises(asyncpg.RaiseError):
            await flow.reject(rejected, approver="alice")
        rig.clock.advance(timedelta(minutes=31))
        with pytest.raises(asyncpg.RaiseError):
            await flow.expire_due()
        rig.clock.advance(-timedelta(minutes=31))
    assert await states(db_pool, rejected) == ("pending_approval", "pending")
    assert await states(db_pool, expiring) == ("pending_approval", "pending")
    await flow.reject(rejected, approver="alice")
    assert await states(db_pool, rejected) == ("cancelled", "rejected")
    rig.clock.advance(timedelta(minutes=31))
    assert await flow.expire_due() == 1
    assert await states(db_pool, expiring) == ("cancelled", "expired")


async def test_cancelling_a_pending_execution_settles_its_request(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig, flow = wired(db_pool, tmp_path)
    row_id = await pending(rig)
    await rig.service.cancel(f"exec_{row_id}", by="carol")
    assert await states(db_pool, row_id) == ("cancelled", "rejected")
    record = await ApprovalRepository(db_pool).get(row_id)
    assert record is not None and record.decided_by == "carol" and record.comment == "cancelled"
    with pytest.raises(ApprovalRefused) as refused:
        await flow.approve(row_id, approver="alice")
    assert refused.value.status == 409 and "already rejected by carol" in refused.value.reason
    listed, total = await ApprovalRepository(db_pool).list(
        status="pending", approver=None, requested_by=None, limit=10, offset=0
    )
    assert (listed, total) == ([], 0)


class CancelledMeanwhile:
    """The executor as the workflow sees it, with an operator's cancel landing just after approve read
    the execution (between its checks and its decision)."""

    def __init__(self, service: ExecutionService) -> None:
        self.service = service

    async def current_plan_hash(self, execution_id: int) -> str | None:
        current = await self.service.current_plan_hash(execution_id)
        await self.service.cancel(f"exec_{execution_id}", by="carol")
        return current

    async def start_approved(self, execution_id: int, *, by: str, conn: Connection) -> bool:
        return await self.service.start_approved(execution_id, by=by, conn=conn)

    async def reject_pending(self, execution_id: int, *, by: str, reason: str, conn: Connection) -> None:
        await self.service.reject_pending(execution_id, by=by, reason=reason, conn=conn)

    def wake(self) -> None:
        self.service.wake()


async def test_an_approval_racing_a_cancel_issues_no_token(db_pool: asyncpg.Pool, tmp_path: Path) -> None:
    rig, _ = wired(db_pool, tmp_path)
    row_id = await pending(rig)
    racing = ApprovalWorkflow(
        ApprovalRepository(db_pool), CancelledMeanwhile(rig.service), rig.notes, ApprovalsConfig(),
        ["alice"], rig.clock,
    )  # fmt: skip
    with pytest.raises(ApprovalRefused) as refused:
        await racing.approve(row_id, approver="alice")
    assert refused.value.status == 409
    assert await states(db_pool, row_id) == ("cancelled", "rejected")
    assert await db_pool.fetchval("SELECT token_sha256 FROM autonomous.approvals") is None


async def test_a_hanging_mail_server_does_not_strand_expired_requests(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rig, flow = wired(db_pool, tmp_path, HangingMail())
    rows = [await pending(rig) for _ in range(3)]
    rig.clock.advance(timedelta(minutes=31))
    async with asyncio.timeout(5):  # each message gives up after notify_timeout
        assert await flow.expire_due() == 3
    for row_id in rows:
        assert await states(db_pool, row_id) == ("cancelled", "expired")
    records: list[ApprovalRecord | None] = [await ApprovalRepository(db_pool).get(r) for r in rows]
    assert all(r is not None and r.decided_by == "expiry" for r in records)
