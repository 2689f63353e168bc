"""The approval workflow against real PostgreSQL: every refusal, tokens, expiry exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from opsresponder.config import ApprovalsConfig
from opsresponder.response.approvals import ApprovalRefused, ApprovalRequest, ApprovalWorkflow
from opsresponder.response.notify.base import ChannelResult, Notification
from opsresponder.store.approvals import ApprovalRepository
from opsresponder.store.pool import Connection

T0 = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Executions:
    """The executor's side of the protocol, recording the transitions it is asked for."""

    def __init__(self) -> None:
        self.hashes: dict[int, str] = {}
        self.started: list[tuple[int, str]] = []
        self.rejected: list[tuple[int, str, str]] = []

    async def current_plan_hash(self, execution_id: int) -> str | None:
        return self.hashes.get(execution_id)

    async def start_approved(self, execution_id: int, *, by: str, conn: Connection) -> bool:
        self.started.append((execution_id, by))
        return True

    async def reject_pending(self, execution_id: int, *, by: str, reason: str, conn: Connection) -> None:
        self.rejected.append((execution_id, by, reason))

    def wake(self) -> None:
        pass


class Outbox:
    """A Notifier that keeps what it was asked to send (the channels have their own tests)."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    async def send(self, notification: Notification) -> list[ChannelResult]:
        self.sent.append(notification)
        return [ChannelResult(channel="email", success=True)]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def executions() -> Executions:
    return Executions()


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


def workflow(
    pool: asyncpg.Pool, executions: Executions, outbox: Outbox, clock: Clock, approvers: list[str]
) -> ApprovalWorkflow:
    return ApprovalWorkflow(ApprovalRepository(pool), executions, outbox, ApprovalsConfig(), approvers, clock)


async def ask(flow: ApprovalWorkflow, executions: Executions, execution_id: int = 7) -> None:
    executions.hashes[execution_id] = "hash-a"
    await flow.request(
        ApprovalRequest(
            execution_id=execution_id,
            plan_hash="hash-a",
            requested_by="rules",
            risk_level="medium",
            business_impact="high",
            reason="kill_high_cpu_processes scores 0.5 (over 0.3)",
            actions=[
                {"key": "kill", "script": "kill_high_cpu_processes", "parameters": {"max_processes": 3}}
            ],
        )
    )


async def refused(status: int, call: Awaitable[object]) -> str:
    with pytest.raises(ApprovalRefused) as raised:
        await call
    assert raised.value.status == status
    return raised.value.reason


async def test_a_request_names_everything_and_notifies_the_approvers(
    db_pool: asyncpg.Pool, executions: Executions, outbox: Outbox, clock: Clock
) -> None:
    flow = workflow(db_pool, executions, outbox, clock, ["alice", "bob"])
    await ask(flow, executions)
    record = await ApprovalRepository(db_pool).get(7)
    assert record is not None and record.status == "pending"
    assert record.approvers == ["alice", "bob"] and record.requested_by == "rules"
    assert record.actions[0]["parameters"] == {"max_processes": 3}
    assert record.expires_at == T0 + timedelta(minutes=30)
    [note] = outbox.sent
    assert note.template == "approval_requested"
    assert note.context["link"] == "/api/v1/autonomous/executions/exec_7"
    assert note.context["approvers"] == ["alice", "bob"]


async def test_approval_starts_the_execution_and_every_refusal_holds(
    db_pool: asyncpg.Pool, executions: Executions, outbox: Outbox, clock: Clock
) -> None:
    flow = workflow(db_pool, executions, outbox, clock, ["alice", "rules"])
    assert "has no approval request" in await refused(404, flow.approve(7, approver="alice"))
    await ask(flow, executions)

    assert "own request" in await refused(403, flow.approve(7, approver="rules"))
    assert "mallory is not an approver" in await refused(403, flow.approve(7, approver="mallory"))
    executions.hashes[7] = "hash-b"  # the actions or parameters changed after the request
    assert "changed since approval was requested" in await refused(409, flow.approve(7, approver="alice"))
    executions.hashes[7] = "hash-a"

    approved = await flow.approve(7, approver="alice", comment="go")
    assert approved.record.status == "approved" and approved.record.decided_by == "alice"
    assert executions.started == [(7, "alice")]
    assert "already approved by alice" in await refused(409, flow.approve(7, approver="alice"))
    assert "already approved" in await refused(409, flow.reject(7, approver="alice"))
    stored = await db_pool.fetchval("SELECT token_sha256 FROM autonomous.approvals WHERE execution_id = 7")
    assert stored and approved.token not in stored  # only the hash is kept


async def test_nobody_can_approve_when_the_list_is_empty(
    db_pool: asyncpg.Pool, executions: Executions, outbox: Outbox, clock: Clock
) -> None:
    flow = workflow(db_pool, executions, outbox, clock, [])
    await ask(flow, executions)
    assert "approvers: nobody" in await refused(403, flow.approve(7, approver="admin"))


async def test_rejection_cancels_and_is_final(
    db_pool: asyncpg.Pool, executions: Executions, outbox: Outbox, clock: Clock
) -> None:
    flow = workflow(db_pool, executions, outbox, clock, ["alice", "bob"])
    await ask(flow, executions)
    rejected = await flow.reject(7, approver="bob", comment="not during the sale")
    assert rejected.status == "rejected"
    assert executions.rejected == [(7, "bob", "rejected by bob: not during the sale")]
    assert "already rejected by bob" in await refused(409, flow.approve(7, approver="alice"))


async def test_the_token_is_single_use_bound_to_the_plan_and_expires(
    db_pool: asyncpg.Pool, executions: Executions, outbox: Outbox, clock: Clock
) -> None:
    flow = workflow(db_pool, executions, outbox, clock, ["alice"])
    await ask(flow, executions)
    token = (await flow.approve(7, approver="alice")).token
    assert "not valid" in await refused(403, flow.redeem(token, "hash-other"))
    assert "not valid" in await refused(403, flow.redeem("made-up", "hash-a"))
    assert (await flow.redeem(token, "hash-a")).execution_id == 7
    assert "not valid" in await refused(403, flow.redeem(token, "hash-a"))  # used

    await ask(flow, executions, execution_id=8)
    late = (await flow.approve(8, approver="alice")).token
    clock.now += timedelta(minutes=31)
    assert "not valid" in await refused(403, flow.redeem(late, "hash-a"))


async def test_expiry_rejects_once_across_processes_and_tells_the_requester(
    db_pool: asyncpg.Pool, executions: Executions, outbox: Outbox, clock: Clock
) -> None:
    flow = workflow(db_pool, executions, outbox, clock, ["alice"])
    for execution_id in range(1, 21):
        await ask(flow, executions, execution_id)
    clock.now += timedelta(minutes=29)
    assert await flow.expire_due() == 0
    clock.now += timedelta(minutes=1)  # the deadline itself: expired
    assert "expired at" in await refused(409, flow.approve(1, approver="alice"))

    # Two processes (two workflows, two pools' worth of connections) run the job at the same instant.
    other = workflow(db_pool, executions, outbox, clock, ["alice"])
    counts = await asyncio.gather(flow.expire_due(), other.expire_due(), flow.expire_due())
    assert sum(counts) == 20
    assert sorted(e for e, _, _ in executions.rejected) == list(range(1, 21))
    assert all(by == "expiry" for _, by, _ in executions.rejected)
    assert [n.template for n in outbox.sent].count("approval_expired") == 20
    assert await flow.expire_due() == 0


async def test_an_approver_list_may_name_a_role(
    db_pool: asyncpg.Pool, executions: Executions, outbox: Outbox, clock: Clock
) -> None:
    flow = workflow(db_pool, executions, outbox, clock, ["role:dba", "carol"])
    await ask(flow, executions)
    refusal = await refused(403, flow.approve(7, approver="dave", roles={"oncall"}))
    assert "dave is not an approver" in refusal and "role:dba" in refusal
    approved = await flow.approve(7, approver="erin", roles={"oncall", "dba"})
    assert approved.record.decided_by == "erin"

    await ask(flow, executions, execution_id=8)
    # A role never lets the requester decide their own request.
    assert "own request" in await refused(403, flow.reject(8, approver="rules", roles={"dba"}))
