"""Approval messages are delivered at least once (real PostgreSQL): a message a dead process owed is sent by
the expiry job's sweep after the grace, never twice by two sweeps, and a message whose every channel fails
is retried with a growing delay, then given up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from opsresponder.config import ApprovalsConfig
from opsresponder.response.approvals import ApprovalNotifyMetrics, ApprovalRequest, ApprovalWorkflow
from opsresponder.response.notify.base import ChannelResult, Notification
from opsresponder.store.approvals import ApprovalRepository, UnnotifiedApproval
from opsresponder.store.pool import create_pool
from tests.integration.response.test_approvals import T0, Clock, Executions

CONTEXT = {"event": {"id": 41, "host": "web-1"}, "decision": {"id": 5, "template": "cpu"}}


class Outbox:
    """A Notifier that keeps what it was asked to send; while `down`, every channel fails."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sent: list[Notification] = []
        self.tried_at: list[timedelta] = []
        self.down = False

    async def send(self, notification: Notification) -> list[ChannelResult]:
        self.tried_at.append(self.clock.now - T0)
        await asyncio.sleep(0.01)  # two sweeps' sends overlap
        if self.down:
            return [
                ChannelResult(channel="slack", success=False, error="503"),
                ChannelResult(channel="email", success=False, error="connection refused"),
            ]
        self.sent.append(notification)
        return [ChannelResult(channel="slack", success=True)]

    def sent_for(self, template: str) -> list[str]:
        return [n.context["execution"]["id"] for n in self.sent if n.template == template]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbox(clock: Clock) -> Outbox:
    return Outbox(clock)


@pytest.fixture
async def other_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A second process's pool on the same database."""
    pool = await create_pool(database_url, min_size=1, max_size=4, connect_timeout=5, command_timeout=30)
    yield pool
    await pool.close()


def workflow(
    pool: asyncpg.Pool,
    outbox: Outbox,
    clock: Clock,
    metrics: ApprovalNotifyMetrics | None = None,
    repository: type[ApprovalRepository] = ApprovalRepository,
) -> ApprovalWorkflow:
    return ApprovalWorkflow(
        repository(pool), Executions(), outbox, ApprovalsConfig(), ["alice"], clock, metrics=metrics
    )


def request(execution_id: int) -> ApprovalRequest:
    return ApprovalRequest(
        execution_id=execution_id,
        plan_hash="hash-a",
        requested_by="rules",
        risk_level="medium",
        business_impact="high",
        reason="approval required",
        actions=[{"key": "kill", "script": "kill_high_cpu_processes", "parameters": {}}],
        context=CONTEXT,
    )


async def died_before_announcing(flow: ApprovalWorkflow, execution_id: int = 7) -> None:
    """The request is committed with its execution, and the process dies before `announce`."""
    await flow.record_request(request(execution_id))


async def test_a_request_never_announced_is_sent_by_the_sweep_after_the_grace_only(
    db_pool: asyncpg.Pool, outbox: Outbox, clock: Clock
) -> None:
    flow = workflow(db_pool, outbox, clock)
    await died_before_announcing(flow)

    clock.now = T0 + timedelta(seconds=59)  # the live path may still be sending it
    assert await flow.resend_unnotified() == 0
    assert outbox.sent == []

    clock.now = T0 + timedelta(seconds=61)
    assert await flow.resend_unnotified() == 1
    [note] = outbox.sent
    assert note.template == "approval_requested"
    assert note.context["event"] == CONTEXT["event"]  # the context kept with the request
    assert note.context["link"] == "/api/v1/autonomous/executions/exec_7"
    notified = await db_pool.fetchval("SELECT notified_at FROM autonomous.approvals WHERE execution_id = 7")
    assert notified == clock.now

    clock.now += timedelta(minutes=10)  # long after the sweep's lease: it was marked sent
    assert await flow.resend_unnotified() == 0
    assert len(outbox.sent) == 1


async def test_an_announced_request_is_not_sent_again(
    db_pool: asyncpg.Pool, outbox: Outbox, clock: Clock
) -> None:
    flow = workflow(db_pool, outbox, clock)
    await flow.request(request(7))
    assert outbox.sent_for("approval_requested") == ["exec_7"]
    for minutes in (1, 5, 29):
        clock.now = T0 + timedelta(minutes=minutes)
        assert await flow.resend_unnotified() == 0
    assert len(outbox.sent) == 1


async def test_two_sweeps_at_once_send_each_message_once(
    db_pool: asyncpg.Pool, other_pool: asyncpg.Pool, outbox: Outbox, clock: Clock
) -> None:
    flow, other = workflow(db_pool, outbox, clock), workflow(other_pool, outbox, clock)
    for execution_id in range(1, 13):
        await died_before_announcing(flow, execution_id)
    clock.now = T0 + timedelta(minutes=2)

    sweeps = (flow.resend_unnotified(), other.resend_unnotified(), flow.resend_unnotified())
    taken = list(await asyncio.gather(*sweeps))
    while sum(taken) < 12:  # at most 8 a run: the rest go on the next
        taken.append(await other.resend_unnotified())
    assert sum(taken) == 12
    assert sorted(outbox.sent_for("approval_requested")) == sorted(f"exec_{i}" for i in range(1, 13))

    clock.now += timedelta(minutes=10)
    assert await flow.resend_unnotified() == 0


async def test_an_expiry_message_lost_with_its_process_is_sent_again(
    db_pool: asyncpg.Pool, outbox: Outbox, clock: Clock
) -> None:
    flow = workflow(db_pool, outbox, clock)
    await flow.request(request(7))
    clock.now = T0 + timedelta(minutes=30)
    # The expiry job's transaction commits, and the process dies before telling the requester.
    [expired] = await ApprovalRepository(db_pool).expire_due(clock.now, 20)
    assert expired.record.status == "expired" and expired.context == CONTEXT

    clock.now += timedelta(seconds=30)
    assert await flow.resend_unnotified() == 0
    clock.now += timedelta(seconds=31)
    assert await flow.resend_unnotified() == 1
    assert outbox.sent_for("approval_expired") == ["exec_7"]
    [notice] = [n for n in outbox.sent if n.template == "approval_expired"]
    assert notice.context["event"] == CONTEXT["event"]  # which event's execution was not run
    assert outbox.sent_for("approval_requested") == ["exec_7"]  # the request's own message only once
    clock.now += timedelta(minutes=10)
    assert await flow.resend_unnotified() == 0


async def test_a_request_past_its_deadline_gets_the_expiry_message_not_the_request_again(
    db_pool: asyncpg.Pool, outbox: Outbox, clock: Clock
) -> None:
    flow = workflow(db_pool, outbox, clock)
    await died_before_announcing(flow)
    clock.now = T0 + timedelta(minutes=30)  # no sweep ran meanwhile (every process was down)
    assert await flow.resend_unnotified() == 0
    assert await flow.expire_due() == 1
    clock.now += timedelta(minutes=5)
    assert await flow.resend_unnotified() == 0
    assert [n.template for n in outbox.sent] == ["approval_expired"]


async def test_a_message_every_channel_refuses_is_retried_with_backoff_then_given_up(
    db_pool: asyncpg.Pool, outbox: Outbox, clock: Clock
) -> None:
    registry = CollectorRegistry()
    flow = workflow(db_pool, outbox, clock, ApprovalNotifyMetrics(registry))
    outbox.down = True
    await flow.request(request(7))
    # The expiry job's cadence (15 s) until just before the request's deadline.
    for step in range(1, 120):
        clock.now = T0 + timedelta(seconds=15 * step)
        await flow.resend_unnotified()

    # The first send, then the sweep after the grace and 1, 2, 4, 8 minutes after each failed try.
    assert outbox.tried_at == [timedelta(seconds=s) for s in (0, 60, 120, 240, 480, 960)]
    assert outbox.sent == []

    def count(outcome: str) -> float | None:
        labels = {"template": "approval_requested", "outcome": outcome}
        return registry.get_sample_value("opsresponder_approval_notifications_total", labels)

    assert count("failed") == 6 and count("given_up") == 1
    # Given up is not forgotten for good: the expiry still owes (and sends) its own message.
    outbox.down = False
    clock.now = T0 + timedelta(minutes=30)
    assert await flow.expire_due() == 1
    assert outbox.sent_for("approval_expired") == ["exec_7"]


async def test_the_request_says_where_its_message_stands(
    db_pool: asyncpg.Pool, outbox: Outbox, clock: Clock
) -> None:
    repository = ApprovalRepository(db_pool)
    flow = workflow(db_pool, outbox, clock)

    async def standing(execution_id: int = 7) -> tuple[object, ...]:
        r = await repository.get(execution_id)
        assert r is not None
        return (r.notification_state, r.notification_attempts, r.notification_next_at, r.notification_sent_at)

    async def given_up() -> list[int]:
        page, _ = await repository.list(
            status=None, approver=None, requested_by=None, limit=10, offset=0, notification="given_up"
        )
        return [r.execution_id for r in page]

    outbox.down = True
    await flow.request(request(7))
    assert await standing() == ("sending", 0, None, None)  # the sweep takes it after the grace
    clock.now = T0 + timedelta(seconds=60)
    await flow.resend_unnotified()
    assert await standing() == ("retrying", 1, T0 + timedelta(seconds=120), None)
    for seconds in (120, 240, 480, 960):
        clock.now = T0 + timedelta(seconds=seconds)
        await flow.resend_unnotified()
    assert await standing() == ("given_up", 5, None, None)
    assert await given_up() == [7]

    # Expired, it owes its own message: sent this time.
    outbox.down = False
    clock.now = T0 + timedelta(minutes=30)
    await flow.expire_due()
    assert await standing() == ("sent", 0, None, clock.now)
    assert await given_up() == []

    # Approved and rejected owe none.
    await flow.request(request(8))
    assert (await standing(8))[0] == "sent"
    await repository.decide(8, status="rejected", by="alice", at=clock.now, comment="")
    assert await standing(8) == (None, 0, None, clock.now)


async def test_a_channel_back_up_ends_the_retries(
    db_pool: asyncpg.Pool, outbox: Outbox, clock: Clock
) -> None:
    flow = workflow(db_pool, outbox, clock)
    outbox.down = True
    await flow.request(request(7))
    clock.now = T0 + timedelta(seconds=60)
    assert await flow.resend_unnotified() == 1
    outbox.down = False
    clock.now = T0 + timedelta(seconds=120)
    assert await flow.resend_unnotified() == 1
    clock.now = T0 + timedelta(minutes=20)
    assert await flow.resend_unnotified() == 0
    assert outbox.tried_at == [timedelta(seconds=s) for s in (0, 60, 120)]
    assert outbox.sent_for("approval_requested") == ["exec_7"]


async def test_a_message_one_channel_took_is_not_retried(db_pool: asyncpg.Pool, clock: Clock) -> None:
    class HalfDown(Outbox):
        async def send(self, notification: Notification) -> list[ChannelResult]:
            self.tried_at.append(self.clock.now - T0)
            return [
                ChannelResult(channel="slack", success=False, error="503"),
                ChannelResult(channel="email", success=True),
            ]

    outbox = HalfDown(clock)
    flow = workflow(db_pool, outbox, clock)
    await flow.request(request(7))
    clock.now = T0 + timedelta(minutes=5)
    assert await flow.resend_unnotified() == 0
    assert outbox.tried_at == [timedelta(0)]


def test_a_live_send_may_not_outlast_the_grace(db_pool: asyncpg.Pool, outbox: Outbox, clock: Clock) -> None:
    with pytest.raises(ValueError, match="shorter than 60 s"):
        ApprovalWorkflow(
            ApprovalRepository(db_pool), Executions(), outbox, ApprovalsConfig(), [], clock, notify_timeout=60
        )


class Misconfigured(Outbox):
    """Every channel fails for a reason only an operator can mend (here: not configured)."""

    async def send(self, notification: Notification) -> list[ChannelResult]:
        self.tried_at.append(self.clock.now - T0)
        error = "the slack channel is not configured (response.notifications.slack is null)"
        return [ChannelResult(channel="slack", success=False, error=error, retryable=False)]


async def test_a_failure_of_the_configuration_is_not_retried(db_pool: asyncpg.Pool, clock: Clock) -> None:
    outbox = Misconfigured(clock)
    flow = workflow(db_pool, outbox, clock)
    record = await flow.request(request(7))
    assert len(outbox.tried_at) == 1
    assert await db_pool.fetchval("SELECT notified_at FROM autonomous.approvals WHERE execution_id = 7")
    clock.now = record.created_at + timedelta(minutes=20)
    assert await flow.resend_unnotified() == 0
    assert len(outbox.tried_at) == 1


class FailingMarks(ApprovalRepository):
    """The database refuses every mark and postponement (a failover's read-only transaction, say)."""

    async def mark_notified(self, *args: object, **kwargs: object) -> None:
        raise asyncpg.ReadOnlySQLTransactionError("cannot execute UPDATE in a read-only transaction")

    async def postpone_notification(self, *args: object, **kwargs: object) -> None:
        raise asyncpg.ReadOnlySQLTransactionError("cannot execute UPDATE in a read-only transaction")


async def test_a_sent_message_that_cannot_be_marked_fails_nothing_and_is_sent_again(
    db_pool: asyncpg.Pool, outbox: Outbox, clock: Clock
) -> None:
    flow = workflow(db_pool, outbox, clock, repository=FailingMarks)
    await flow.request(request(7))  # the submit that committed it does not fail
    assert outbox.sent_for("approval_requested") == ["exec_7"]
    clock.now = T0 + timedelta(seconds=61)
    assert await flow.resend_unnotified() == 1
    assert outbox.sent_for("approval_requested") == ["exec_7", "exec_7"]  # a duplicate, never a loss


class FailingExpiry(ApprovalRepository):
    async def expire_due(self, *args: object, **kwargs: object) -> list[UnnotifiedApproval]:
        raise asyncpg.ReadOnlySQLTransactionError("cannot execute UPDATE in a read-only transaction")


async def test_the_expiry_job_sweeps_even_when_the_expiry_fails(
    db_pool: asyncpg.Pool, outbox: Outbox, clock: Clock
) -> None:
    flow = workflow(db_pool, outbox, clock, repository=FailingExpiry)
    await died_before_announcing(flow)
    clock.now = T0 + timedelta(seconds=61)
    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):  # the job's failure is still reported
        await flow.run_expiry_job(clock.now)
    assert outbox.sent_for("approval_requested") == ["exec_7"]


async def test_one_message_the_database_fails_does_not_strand_the_others(
    db_pool: asyncpg.Pool, outbox: Outbox, clock: Clock
) -> None:
    failing = workflow(db_pool, outbox, clock, repository=FailingMarks)
    for execution_id in (7, 8, 9):
        await died_before_announcing(failing, execution_id)
    outbox.down = True  # every try fails, and postponing it fails too
    clock.now = T0 + timedelta(seconds=61)
    assert await failing.resend_unnotified() == 3
    assert len(outbox.tried_at) == 3  # each was tried, none aborted the sweep
    outbox.down = False
    clock.now = T0 + timedelta(seconds=61) + timedelta(minutes=3)  # past the lease
    assert await workflow(db_pool, outbox, clock).resend_unnotified() == 3
    assert sorted(outbox.sent_for("approval_requested")) == ["exec_7", "exec_8", "exec_9"]
