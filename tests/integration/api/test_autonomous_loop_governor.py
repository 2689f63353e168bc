"""The safety governor over the rule-to-response loop, over real sockets with real scripts: the host budget
stops the (N+1)th automatic run (recorded with the decision and in the trace); the pause stops automatic
execution (/ready shows it and stays 200; the firing waits) and the resume continues it; a remediation
looping on one fingerprint is escalated (a notification) and needs approval from then on; a remediation
about no host is refused."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from opsresponder.app import running
from tests.integration.api.autonomous import DONE, auth, wait_for
from tests.integration.api.conftest import base_url
from tests.integration.api.inbox import Inbox
from tests.integration.api.loop_service import executions_of, loop_settings
from tests.integration.api.playbooks import Playbooks
from tests.waiting import eventually


async def post_event(
    events: httpx.AsyncClient, title: str, host: str | None = "web-1", event_type: str = "test_loop"
) -> int:
    body: dict[str, Any] = {"source": "tests", "event_type": event_type, "severity": "high", "title": title}
    if host is not None:
        body["host"] = host
    answer = await events.post("/api/v1/events/webhook", json=body, headers=auth("ingest"))
    assert answer.status_code == 200, answer.text
    event_id: int = answer.json()["event_id"]
    return event_id


async def settled(db_pool: asyncpg.Pool, count: int) -> None:
    """Wait until `count` firings are done (handled by the loop)."""

    async def done() -> bool:
        value = await db_pool.fetchval("SELECT count(*) FROM rules.rule_firings WHERE status = 'done'")
        return int(value) >= count

    await eventually(done, within=15, what=f"{count} firings handled")


async def governor_inputs(db_pool: asyncpg.Pool, event_id: int) -> list[dict[str, Any]]:
    rows = await db_pool.fetch(
        "SELECT inputs -> 'governor' AS g FROM autonomous.decisions WHERE event_id = $1 ORDER BY id", event_id
    )
    return [r["g"] for r in rows if r["g"] is not None]


async def test_budget_pause_and_resume(
    database_url: str, db_pool: asyncpg.Pool, tmp_path: Path, playbooks: Playbooks, inbox: Inbox
) -> None:
    settings = loop_settings(
        database_url, tmp_path / "data", playbooks, inbox, governor={"max_runs_per_host_per_hour": 2}
    )
    async with (
        running(settings) as svc,
        httpx.AsyncClient(base_url=base_url(svc), timeout=10) as events,
        httpx.AsyncClient(base_url=base_url(svc, "autonomous_api"), headers=auth(), timeout=10) as client,
    ):
        ids = []
        for n in range(3):
            ids.append(await post_event(events, f"problem {n}"))
            await settled(db_pool, n + 1)
        automatic = [
            [e for e in await executions_of(client, i) if e["status"] != "pending_approval"] for i in ids
        ]
        assert [len(a) for a in automatic] == [1, 1, 0]  # the third automatic run is over the budget
        (refusal,) = await governor_inputs(db_pool, ids[2])
        assert (
            refusal["allowed"] is False and "host web-1 had 2 automatic executions" in refusal["reasons"][0]
        )
        trace = await events.get(f"/api/v1/events/{ids[2]}/trace", headers=auth("read"))
        assert any("safety governor" in e["detail"] for e in trace.json()["entries"])
        # The part needing approval still asks for it: the budget bounds automatic runs only.
        assert [e["status"] for e in await executions_of(client, ids[2])] == ["pending_approval"]

        # The kill switch: paused is shown on both ports' /ready, which stays 200.
        paused = await client.post("/api/v1/autonomous/pause", json={"reason": "maintenance"})
        assert paused.status_code == 200 and paused.json()["paused"] is True, paused.text
        forbidden = await client.post("/api/v1/autonomous/pause", headers=auth("execute"))
        assert forbidden.status_code == 403  # scope admin
        for port in (base_url(svc), base_url(svc, "autonomous_api")):
            ready = await client.get(f"{port}/ready")
            assert ready.status_code == 200, ready.text
            automation = ready.json()["automation"]
            assert automation["paused"] is True and automation["by"] == "admin"
            assert automation["reason"] == "maintenance" and automation["since"]
        waiting = await post_event(events, "while paused", host="web-2")
        await eventually(lambda: _firing_attempted(db_pool, waiting), within=5, what="the firing stays open")
        await asyncio.sleep(0.5)
        assert await executions_of(client, waiting) == []  # nothing ran, nothing was even planned
        status = await db_pool.fetchval(
            "SELECT status FROM rules.rule_firings WHERE event_ids @> ARRAY[$1::bigint]", waiting
        )
        assert status == "new"

        resumed = await client.post("/api/v1/autonomous/resume", json={"reason": "done"})
        assert resumed.status_code == 200 and resumed.json()["paused"] is False
        ready = await client.get("/ready")
        assert ready.json()["automation"]["paused"] is False

        async def planned() -> bool:
            return len(await executions_of(client, waiting)) == 2

        await eventually(planned, within=10, what="the waiting firing handled after the resume")
        first = (await executions_of(client, waiting))[0]
        assert (await wait_for(client, first["execution_id"], DONE))["status"] == "completed"


async def _firing_attempted(db_pool: asyncpg.Pool, event_id: int) -> bool:
    return bool(
        await db_pool.fetchval(
            "SELECT count(*) FROM rules.rule_firings WHERE event_ids @> ARRAY[$1::bigint]", event_id
        )
    )


async def test_a_loop_is_escalated_then_needs_approval_and_a_hostless_remediation_is_refused(
    database_url: str, db_pool: asyncpg.Pool, tmp_path: Path, playbooks: Playbooks, inbox: Inbox
) -> None:
    # Criticality low: the remediation scores 0.1 + 0.2 = 0.3, not over the threshold: all automatic.
    settings = loop_settings(
        database_url,
        tmp_path / "data",
        playbooks,
        inbox,
        loop={"system_criticality": "low"},
        governor={"loop_max_runs": 2},
    )
    async with (
        running(settings) as svc,
        httpx.AsyncClient(base_url=base_url(svc), timeout=10) as events,
        httpx.AsyncClient(base_url=base_url(svc, "autonomous_api"), headers=auth(), timeout=10) as client,
    ):
        # The same problem again and again (one fingerprint: each repeat is a duplicate of the first).
        event_id = 0
        for n in range(2):
            event_id = await post_event(events, "disk keeps filling")
            await settled(db_pool, n + 1)
        runs = await executions_of(client, event_id)
        assert len(runs) == 2 and all(e["requested_by"] == "rules" for e in runs)
        for run in runs:
            assert (await wait_for(client, run["execution_id"], DONE))["status"] == "completed"
        assert len(playbooks.runs("fix_thing")) == 2

        # The third time is a loop: no automatic run, an escalation, a request for approval.
        assert await post_event(events, "disk keeps filling") == event_id
        await settled(db_pool, 3)
        third = (await executions_of(client, event_id))[2:]
        assert [e["status"] for e in third] == ["pending_approval"]
        await eventually(lambda: "automation_loop_detected" in inbox.templates(), within=5)
        escalation = next(m for m in inbox.received if m["template"] == "automation_loop_detected")
        assert "a loop" in escalation["body"]
        approvals = (await client.get("/api/v1/autonomous/approvals", params={"status": "pending"})).json()
        (request,) = approvals["approvals"]
        assert "Safety governor" in request["reason"] and [a["key"] for a in request["actions"]] == [
            "look",
            "fix",
        ]

        # From then on it needs approval (the hold), and the loop is not escalated twice.
        await post_event(events, "disk keeps filling")
        await settled(db_pool, 4)
        assert [e["status"] for e in (await executions_of(client, event_id))[3:]] == ["pending_approval"]
        assert inbox.templates().count("automation_loop_detected") == 1
        assert len(playbooks.runs("fix_thing")) == 2

        # A remediation about no host: refused, nothing created.
        hostless = await post_event(events, "somewhere", host=None)
        await settled(db_pool, 5)
        assert await executions_of(client, hostless) == []
        (refusal,) = await governor_inputs(db_pool, hostless)
        assert "resolves to no host" in refusal["reasons"][0]
