"""The rule-to-response loop end to end over real sockets, with real scripts: a trigger rule fires on a
webhook event, the low-risk diagnostic runs by itself, the medium-risk remediation waits for approval,
an unlisted approver cannot approve (nobody can hold the requester's name, "rules"), another identity
approves and it runs;
the approval token then answers that execution once and nothing twice; the event's trace shows the chain.
Then every approval refusal over HTTP, and reject."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from opsresponder.api.approvals import ApprovalList, DecisionAnswer
from opsresponder.app import OpsResponder, running
from tests.integration.api.autonomous import DONE, auth, wait_for
from tests.integration.api.conftest import base_url
from tests.integration.api.inbox import Inbox
from tests.integration.api.loop_service import as_person, executions_of, loop_settings
from tests.integration.api.playbooks import Playbooks
from tests.waiting import eventually


@pytest.fixture
async def service(
    database_url: str, db_pool: asyncpg.Pool, tmp_path: Path, playbooks: Playbooks, inbox: Inbox
) -> AsyncIterator[OpsResponder]:
    async with running(loop_settings(database_url, tmp_path / "data", playbooks, inbox)) as svc:
        yield svc


@pytest.fixture
async def events(service: OpsResponder) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url(service), headers=auth("ingest"), timeout=10) as c:
        yield c


@pytest.fixture
async def client(service: OpsResponder) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=base_url(service, "autonomous_api"), headers=auth(), timeout=10
    ) as c:
        yield c


async def post_event(events: httpx.AsyncClient, event_type: str = "test_loop", host: str = "web-1") -> int:
    answer = await events.post(
        "/api/v1/events/webhook",
        json={"source": "tests", "event_type": event_type, "severity": "high", "host": host,
              "title": f"{event_type} on {host}"},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    event_id: int = answer.json()["event_id"]
    return event_id


async def decide(
    client: httpx.AsyncClient, who: str, execution_id: str, verb: str = "approve", **body: Any
) -> httpx.Response:
    answer = await client.post(
        f"/api/v1/autonomous/executions/{execution_id}/{verb}", json=body or None, headers=as_person(who)
    )
    if answer.status_code == 200:
        msgspec.json.decode(answer.content, type=DecisionAnswer)  # the documented shape
    return answer


async def the_two_executions(client: httpx.AsyncClient, event_id: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    async def two() -> bool:
        nonlocal found
        found = await executions_of(client, event_id)
        return len(found) == 2

    await eventually(two, within=15, what="the automatic and the pending execution")
    return found


async def test_the_loop_runs_diagnostics_asks_for_the_remediation_and_runs_it_once_approved(
    client: httpx.AsyncClient, events: httpx.AsyncClient, playbooks: Playbooks, inbox: Inbox
) -> None:
    event_id = await post_event(events)
    automatic, pending = await the_two_executions(client, event_id)

    # The diagnostic ran by itself, as "rules"; the remediation (with the diagnostic it depends on) waits.
    assert automatic["requested_by"] == "rules" and [a["key"] for a in automatic["actions"]] == ["look"]
    done = await wait_for(client, automatic["execution_id"], DONE)
    assert done["status"] == "completed", done
    assert pending["status"] == "pending_approval" and pending["requested_by"] == "rules"
    assert [a["key"] for a in pending["actions"]] == ["look", "fix"]
    assert playbooks.runs("fix_thing") == []

    # The approval request names everything, and the approvers were told (a real webhook POST).
    listed = await client.get("/api/v1/autonomous/approvals", params={"status": "pending", "approver": "bob"})
    assert listed.status_code == 200, listed.text
    page = msgspec.json.decode(listed.content, type=ApprovalList)
    (request,) = [a for a in page.approvals if a.execution_id == pending["execution_id"]]
    assert request.requested_by == "rules" and request.approvers == ["alice", "bob", "rules"]
    assert request.risk_level == "medium" and request.business_impact
    assert "fix: risk score 0.4 is over 0.3" in request.reason
    fix = next(a for a in request.actions if a["key"] == "fix")
    assert fix["script"] == "fix_thing" and fix["approval_required"] is True and "parameters" in fix
    await eventually(lambda: "approval_requested" in inbox.templates(), within=5)
    # ...and the request says so; `notification=given_up` would list the requests nobody was told of.
    told = (await client.get("/api/v1/autonomous/approvals", params={"notification": "sent"})).json()
    (request_view,) = [a for a in told["approvals"] if a["execution_id"] == pending["execution_id"]]
    assert request_view["notification"]["message"] == "approval_requested"
    assert request_view["notification"]["state"] == "sent" and request_view["notification"]["sent_at"]
    nobody_told = await client.get("/api/v1/autonomous/approvals", params={"notification": "given_up"})
    assert nobody_told.json()["total_count"] == 0
    wrong = await client.get("/api/v1/autonomous/approvals", params={"notification": "lost"})
    assert wrong.status_code == 400 and "notification" in wrong.text

    # carol may approve (scope) but is not listed. (The requester, "rules", is no token's name: check-config
    # refuses it, tests/unit/test_config.py; self-approval over HTTP is refused below, for alice.)
    unlisted = await decide(client, "carol", pending["execution_id"])
    assert unlisted.status_code == 403 and "not an approver" in unlisted.json()["detail"]
    assert playbooks.runs("fix_thing") == []

    approved = await decide(client, "bob", pending["execution_id"], comment="go")
    assert approved.status_code == 200, approved.text
    answer = approved.json()
    assert answer["approval"]["status"] == "approved" and answer["approval"]["decided_by"] == "bob"
    assert answer["approval"]["notification"] is None  # approved owes no message
    token = answer["approval_token"]
    assert token
    ran = await wait_for(client, pending["execution_id"], DONE)
    assert ran["status"] == "completed", ran
    assert len(playbooks.runs("fix_thing")) == 1
    assert any("Approved by bob" in line["message"] for line in ran["logs"])

    # Deciding again: 409. The token answers the approved execution once, never a second run.
    again = await decide(client, "alice", pending["execution_id"])
    assert again.status_code == 409 and "already approved" in again.json()["detail"]
    action_ids = [a["action_id"] for a in pending["actions"]]
    body = {"decision_id": pending["decision_id"], "action_ids": action_ids}
    wrong_plan = await client.post(
        "/api/v1/autonomous/execute", json={**body, "action_ids": action_ids[:1], "approval_token": token}
    )
    assert wrong_plan.status_code == 403, wrong_plan.text  # bound to exactly look + fix
    redeemed = await client.post("/api/v1/autonomous/execute", json={**body, "approval_token": token})
    assert redeemed.status_code == 202, redeemed.text
    assert redeemed.json()["execution_id"] == pending["execution_id"]
    used = await client.post("/api/v1/autonomous/execute", json={**body, "approval_token": token})
    assert used.status_code == 403 and used.json()["field"] == "approval_token"
    bad = await client.post("/api/v1/autonomous/execute", json={**body, "approval_token": "x" * 40})
    assert bad.status_code == 403
    assert len(await executions_of(client, event_id)) == 2
    assert len(playbooks.runs("fix_thing")) == 1

    # The event's trace: rule fired -> decision -> executions and the approval request.
    trace = await events.get(f"/api/v1/events/{event_id}/trace", headers=auth("read"))
    assert trace.status_code == 200, trace.text
    chain = [(e["stage"], e["detail"]) for e in trace.json()["entries"] if e["stage"].startswith("response.")]
    assert [stage for stage, _ in chain][:2] == ["response.rule_fired", "response.decision"], chain
    assert "rule 77 fired" in chain[0][1]
    assert "by rules: remediate, template loop_playbook, risk medium, approval required" in chain[1][1]
    executions = [d for s, d in chain if s == "response.execution"]
    assert len(executions) == 2 and all(": completed" in d for d in executions), chain
    (approval,) = [d for s, d in chain if s == "response.approval"]
    assert f"for {pending['execution_id']}: approved by bob" in approval and "alice, bob, rules" in approval


async def test_every_refusal_of_a_decision_over_http(
    client: httpx.AsyncClient, events: httpx.AsyncClient, playbooks: Playbooks, db_pool: asyncpg.Pool
) -> None:
    # A person's request (alice, who is also an approver): she cannot approve it herself.
    event_id = await post_event(events, "test_guarded")
    analyzed = await client.post(
        "/api/v1/autonomous/analyze", json={"event_id": event_id}, headers=as_person("alice")
    )
    assert analyzed.status_code == 200, analyzed.text
    decision_id = analyzed.json()["decision_id"]

    async def submit() -> str:
        answer = await client.post(
            "/api/v1/autonomous/execute", json={"decision_id": decision_id}, headers=as_person("alice")
        )
        assert answer.status_code == 202 and answer.json()["status"] == "pending_approval", answer.text
        execution_id: str = answer.json()["execution_id"]
        return execution_id

    first = await submit()
    own = await decide(client, "alice", first)
    assert own.status_code == 403 and "own request" in own.json()["detail"]

    # The plan changed after the request: 409, nothing runs.
    row_id = int(first.removeprefix("exec_"))
    await db_pool.execute("UPDATE autonomous.executions SET plan_hash = 'changed' WHERE id = $1", row_id)
    changed = await decide(client, "bob", first)
    assert changed.status_code == 409, changed.text

    # Expired: 409.
    second = await submit()
    await db_pool.execute(
        "UPDATE autonomous.approvals SET expires_at = now() - interval '1 minute' WHERE execution_id = $1",
        int(second.removeprefix("exec_")),
    )
    expired = await decide(client, "bob", second)
    assert expired.status_code == 409 and "expired" in expired.json()["detail"]

    # Rejected: cancelled with the reason, and final (409 afterwards).
    third = await submit()
    rejected = await decide(client, "bob", third, "reject", comment="not now")
    assert rejected.status_code == 200, rejected.text
    view = await wait_for(client, third, {"cancelled"})
    assert view["error"] == "rejected by bob: not now"
    late = await decide(client, "bob", third)
    assert late.status_code == 409 and "already rejected" in late.json()["detail"]

    # Cancelled while it waited: the request is settled with it (rejected, "cancelled"), so approving it
    # is refused rather than approving what never runs.
    fourth = await submit()
    cancelled = await client.post(f"/api/v1/autonomous/executions/{fourth}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    gone = await decide(client, "bob", fourth)
    assert gone.status_code == 409 and "already rejected by admin" in gone.json()["detail"], gone.text
    settled = await db_pool.fetchrow(
        "SELECT status, comment FROM autonomous.approvals WHERE execution_id = $1",
        int(fourth.removeprefix("exec_")),
    )
    assert settled is not None and tuple(settled) == ("rejected", "cancelled")

    # No approval request at all, and a token with nothing: 404, 403.
    missing = await decide(client, "bob", "exec_999999999")
    assert missing.status_code == 404
    unscoped = await client.post(f"/api/v1/autonomous/executions/{third}/approve", headers=auth("read"))
    assert unscoped.status_code == 403
    assert playbooks.runs("guarded_change") == []
