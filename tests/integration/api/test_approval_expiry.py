"""Approval expiry as the service runs it (the ``approval_expiry`` scheduled job), with an injected clock:
a request made before a restart expires after it, exactly once although two processes run the job on one
database; the execution is cancelled with the reason and the requester is told once. A request whose
message a dead process never sent is announced by the same job after the grace. And an empty approver list
over HTTP: nobody can approve."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from opsresponder.app import running
from opsresponder.config import Settings
from tests.integration.api.autonomous import auth
from tests.integration.api.conftest import base_url
from tests.integration.api.inbox import Inbox
from tests.integration.api.loop_service import as_person, loop_settings
from tests.integration.api.playbooks import Playbooks
from tests.waiting import eventually


class Clock:
    """The wall clock plus an offset the test advances."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


async def ask_for_approval(svc_url: str, autonomous_url: str) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        stored = await http.post(
            f"{svc_url}/api/v1/events/webhook",
            json={"source": "tests", "event_type": "test_guarded", "severity": "high", "host": "web-1",
                  "title": "guarded"},
            headers=auth("ingest"),
        )  # fmt: skip
        assert stored.status_code == 200, stored.text
        analyzed = await http.post(
            f"{autonomous_url}/api/v1/autonomous/analyze",
            json={"event_id": stored.json()["event_id"]},
            headers=as_person("alice"),
        )
        executed = await http.post(
            f"{autonomous_url}/api/v1/autonomous/execute",
            json={"decision_id": analyzed.json()["decision_id"]},
            headers=as_person("alice"),
        )
        assert executed.json()["status"] == "pending_approval", executed.text
        execution_id: str = executed.json()["execution_id"]
        return execution_id


def expiring_fast(
    database_url: str, tmp_path: Path, playbooks: Playbooks, inbox: Inbox, name: str
) -> Settings:
    """A service's settings (its own data directory, `name`) with the expiry job every 0.2 s."""
    return loop_settings(
        database_url, tmp_path / name, playbooks, inbox, approvals={"expiry_check_seconds": 0.2}
    )


async def requested_by_a_process_now_stopped(settings: Settings, clock: Clock) -> tuple[str, int]:
    """A process asks for approval of a guarded change, then stops: the execution's id and its row id."""
    async with running(settings, clock=clock) as first:
        execution_id = await ask_for_approval(base_url(first), base_url(first, "autonomous_api"))
    return execution_id, int(execution_id.removeprefix("exec_"))


async def test_expiry_after_a_restart_exactly_once_with_two_processes(
    database_url: str, db_pool: asyncpg.Pool, tmp_path: Path, playbooks: Playbooks, inbox: Inbox
) -> None:
    clock = Clock()
    settings = functools.partial(expiring_fast, database_url, tmp_path, playbooks, inbox)
    execution_id, row_id = await requested_by_a_process_now_stopped(settings("first"), clock)
    assert await db_pool.fetchval(
        "SELECT status FROM autonomous.approvals WHERE execution_id = $1", row_id
    ) == ("pending")

    clock.offset = timedelta(minutes=31)  # past the 30-minute deadline, while no process runs
    async with (
        running(settings("second"), clock=clock) as second,
        running(settings("third"), clock=clock),
    ):

        async def expired() -> bool:
            status = await db_pool.fetchval("SELECT status FROM autonomous.executions WHERE id = $1", row_id)
            return bool(status == "cancelled")

        await eventually(expired, within=10, what="the request expired and the execution cancelled")
        await eventually(lambda: "approval_expired" in inbox.templates(), within=5)
        # Several more job periods on both processes: nothing happens twice.
        await eventually(lambda: _job_runs(db_pool, 4), within=10, what="the expiry job ran more periods")
        async with httpx.AsyncClient(
            base_url=base_url(second, "autonomous_api"), headers=as_person("bob"), timeout=10
        ) as client:
            view = (await client.get(f"/api/v1/autonomous/executions/{execution_id}")).json()
            late = await client.post(f"/api/v1/autonomous/executions/{execution_id}/approve")
    assert late.status_code == 409 and "already expired" in late.json()["detail"]
    assert view["status"] == "cancelled" and "no decision within 30 minutes" in view["error"]
    assert [line["message"] for line in view["logs"]].count(f"Not run: {view['error']}.") == 1
    assert inbox.templates().count("approval_expired") == 1
    notice = next(m for m in inbox.received if m["template"] == "approval_expired")
    assert "requested by alice" in notice["body"]
    assert notice["subject"].endswith("on web-1 was not run")  # the event, from the request's context
    record = await db_pool.fetchrow(
        "SELECT status, decided_by FROM autonomous.approvals WHERE execution_id = $1", row_id
    )
    assert record is not None and tuple(record) == ("expired", "expiry")
    assert playbooks.runs("guarded_change") == []


async def test_a_request_announced_by_no_process_is_announced_by_the_next_one(
    database_url: str, db_pool: asyncpg.Pool, tmp_path: Path, playbooks: Playbooks, inbox: Inbox
) -> None:
    clock = Clock()
    settings = functools.partial(expiring_fast, database_url, tmp_path, playbooks, inbox)
    _, row_id = await requested_by_a_process_now_stopped(settings("first"), clock)
    # As if the process had died between the commit and the message.
    await db_pool.execute(
        "UPDATE autonomous.approvals SET notified_at = NULL WHERE execution_id = $1", row_id
    )
    inbox.received.clear()

    # Past the sweep's grace, and past the job's lease if the first process stopped mid-run without
    # releasing it (a loaded machine: its 5-minute timeout plus the margin), long before the deadline.
    clock.offset = timedelta(minutes=10)
    async with running(settings("second"), clock=clock):
        await eventually(lambda: "approval_requested" in inbox.templates(), within=10)
        await eventually(lambda: _job_runs(db_pool, 4), within=10, what="the expiry job ran more periods")
    assert inbox.templates() == ["approval_requested"]
    [notice] = inbox.received
    assert "web-1" in notice["body"]  # the event, from the context kept with the request
    notified = await db_pool.fetchval(
        "SELECT notified_at FROM autonomous.approvals WHERE execution_id = $1", row_id
    )
    assert notified is not None


async def _job_runs(db_pool: asyncpg.Pool, at_least: int) -> bool:
    runs = await db_pool.fetchval("SELECT runs FROM public.opsresponder_jobs WHERE name = 'approval_expiry'")
    return int(runs or 0) >= at_least


async def test_nobody_can_approve_when_the_approver_list_is_empty(
    database_url: str, db_pool: asyncpg.Pool, tmp_path: Path, playbooks: Playbooks, inbox: Inbox
) -> None:
    settings = loop_settings(database_url, tmp_path / "data", playbooks, inbox, approvers=[])
    async with running(settings) as svc:
        execution_id = await ask_for_approval(base_url(svc), base_url(svc, "autonomous_api"))
        async with httpx.AsyncClient(base_url=base_url(svc, "autonomous_api"), timeout=10) as client:
            for who in ("bob", "carol"):
                answer = await client.post(
                    f"/api/v1/autonomous/executions/{execution_id}/approve", headers=as_person(who)
                )
                assert answer.status_code == 403, answer.text
                assert "nobody" in answer.json()["detail"]
            admin = await client.post(f"/api/v1/autonomous/executions/{execution_id}/approve", headers=auth())
            assert admin.status_code == 403  # admin holds every scope, but is not an approver either
    assert playbooks.runs("guarded_change") == []
