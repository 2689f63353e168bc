"""The autonomous API over real sockets, with real scripts: analyze, dry run (nothing runs), execute and
watch to the end, cancel a hanging execution (its process is killed; 409 afterwards), roll back, the
approval case, the refusals, and the list's filters."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from opsresponder.app import OpsResponder, running
from tests.integration.api.autonomous import (
    DONE,
    analyze,
    auth,
    autonomous_settings,
    execute,
    store_event,
    wait_for,
)
from tests.integration.api.conftest import base_url
from tests.integration.api.playbooks import Playbooks, write_playbooks
from tests.waiting import eventually


@pytest.fixture
def playbooks(tmp_path: Path) -> Playbooks:
    return write_playbooks(tmp_path / "playbooks")


@pytest.fixture
async def service(
    database_url: str, db_pool: asyncpg.Pool, tmp_path: Path, playbooks: Playbooks
) -> AsyncIterator[OpsResponder]:
    try:
        async with running(autonomous_settings(database_url, tmp_path / "data", playbooks)) as svc:
            yield svc
    finally:
        playbooks.kill_leftovers()


@pytest.fixture
async def events(service: OpsResponder) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url(service), timeout=10) as c:
        yield c


@pytest.fixture
async def client(service: OpsResponder) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=base_url(service, "autonomous_api"), headers=auth(), timeout=10
    ) as c:
        yield c


async def test_analyze_dry_run_execute_and_watch_to_the_end(
    client: httpx.AsyncClient, events: httpx.AsyncClient, playbooks: Playbooks
) -> None:
    event_id = await store_event(events, "test_quick")
    decision = await analyze(client, event_id)
    actions = decision["recommended_actions"]
    assert [a["action_name"] for a in actions] == ["First check", "Second check"]
    assert decision["approval_requirements"]["required"] is False
    assert decision["analysis_result"]["reasoning"]

    dry = await execute(client, decision["decision_id"], execution_options={"dry_run": True})
    assert dry.status_code == 200, dry.text
    assert dry.json()["status"] == "dry_run"
    assert [a["action_id"] for a in dry.json()["actions"]] == [a["action_id"] for a in actions]
    assert playbooks.runs("quick_check") == []  # a dry run runs nothing

    answer = await execute(client, decision["decision_id"])
    assert answer.status_code == 202, answer.text
    queued = answer.json()
    assert queued["status"] in ("queued", "running")
    assert queued["execution_id"].startswith("exec_")

    done = await wait_for(client, queued["execution_id"], DONE)
    assert done["status"] == "completed", done
    assert done["decision_id"] == decision["decision_id"] and done["event_id"] == event_id
    assert done["progress"] == {"current_step": 2, "total_steps": 2, "percentage_complete": 100}
    for action in done["actions"]:
        assert action["status"] == "completed"
        assert action["started_at"] <= action["completed_at"]
        assert action["duration_seconds"] >= 0
        assert action["result"]["success"] is True
        assert action["result"]["metrics"]["cpu_usage"] == 12.5
    first, second = done["actions"]
    assert first["completed_at"] <= second["started_at"]  # depends_on: one after the other
    assert done["logs"] and {"timestamp", "level", "message"} <= set(done["logs"][0])
    assert {log["action_id"] for log in done["logs"]} >= {a["action_id"] for a in actions}
    runs = playbooks.runs("quick_check")
    assert len(runs) == 2 and {r["execution"] for r in runs} == {queued["execution_id"]}

    # Rolled back on request: each completed rollback-capable action's rollback runs, in reverse order.
    rollback = await client.post(f"/api/v1/autonomous/executions/{queued['execution_id']}/rollback")
    assert rollback.status_code == 200, rollback.text
    undone = await wait_for(client, queued["execution_id"], {"rolled_back", "failed"})
    assert undone["status"] == "rolled_back", undone
    assert len(playbooks.runs("undo_check")) == 2
    again = await client.post(f"/api/v1/autonomous/executions/{queued['execution_id']}/rollback")
    assert again.status_code == 409, again.text


async def test_cancel_stops_a_hanging_execution_and_then_conflicts(
    client: httpx.AsyncClient, events: httpx.AsyncClient, playbooks: Playbooks
) -> None:
    decision = await analyze(client, await store_event(events, "test_hang"))
    answer = await execute(client, decision["decision_id"])
    assert answer.status_code == 202, answer.text
    execution_id = answer.json()["execution_id"]
    await eventually(lambda: bool(playbooks.runs("hang_forever")), what="the hanging script to start")
    running_now = await wait_for(client, execution_id, {"running"})
    assert running_now["progress"]["total_steps"] == 2

    cancelled = await client.post(f"/api/v1/autonomous/executions/{execution_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    final = await wait_for(client, execution_id, DONE)
    assert final["status"] == "cancelled"
    pid = playbooks.runs("hang_forever")[0]["pid"]

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    await eventually(gone, what="the hanging script's process to be killed")
    assert (await client.post(f"/api/v1/autonomous/executions/{execution_id}/cancel")).status_code == 409


async def test_an_execution_that_needs_approval_waits_and_runs_nothing(
    client: httpx.AsyncClient, events: httpx.AsyncClient, playbooks: Playbooks
) -> None:
    decision = await analyze(client, await store_event(events, "test_guarded"))
    assert decision["approval_requirements"]["required"] is True
    # A token no approval issued is refused, and nothing is created (tests/.../test_autonomous_loop.py
    # covers the real ones).
    forged = await execute(client, decision["decision_id"], approval_token="human_approved_xyz")
    assert (forged.status_code, forged.json()["field"]) == (403, "approval_token"), forged.text
    assert (await client.get("/api/v1/autonomous/executions")).json()["total_count"] == 0
    answer = await execute(client, decision["decision_id"])
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "pending_approval"
    shown = await client.get(f"/api/v1/autonomous/executions/{answer.json()['execution_id']}")
    assert shown.json()["status"] == "pending_approval"
    assert playbooks.runs("guarded_change") == []


async def test_refusals_name_what_is_wrong(client: httpx.AsyncClient, events: httpx.AsyncClient) -> None:
    unknown_event = await client.post("/api/v1/autonomous/analyze", json={"event_id": 987654321})
    assert unknown_event.status_code == 404, unknown_event.text
    malformed = await client.post(
        "/api/v1/autonomous/analyze", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    wrong = await client.post("/api/v1/autonomous/analyze", json={"event_id": "x"})
    assert (wrong.status_code, wrong.json()["field"]) == (422, "event_id")

    assert (await execute(client, 987654321)).status_code == 404
    decision = await analyze(client, await store_event(events, "test_quick"))
    first = decision["recommended_actions"][0]["action_id"]
    bad = await execute(client, decision["decision_id"], action_ids=[first, 987654321])
    assert (bad.status_code, bad.json()["field"]) == (422, "action_ids[1]"), bad.text
    unknown_field = await execute(client, decision["decision_id"], surprise=True)
    assert (unknown_field.status_code, unknown_field.json()["field"]) == (422, "surprise")

    for path in ("", "/cancel", "/rollback"):
        method = client.get if not path else client.post
        assert (await method(f"/api/v1/autonomous/executions/exec_987654321{path}")).status_code == 404
    assert (await client.get("/api/v1/autonomous/executions/nonsense")).status_code in (400, 404)


async def test_the_list_filters_and_pages(client: httpx.AsyncClient, events: httpx.AsyncClient) -> None:
    quick_event = await store_event(events, "test_quick")
    quick = await analyze(client, quick_event)
    guarded = await analyze(client, await store_event(events, "test_guarded"))
    ran = (await execute(client, quick["decision_id"])).json()["execution_id"]
    dry = (await execute(client, quick["decision_id"], execution_options={"dry_run": True})).json()
    pending = (await execute(client, guarded["decision_id"])).json()["execution_id"]
    await wait_for(client, ran, DONE)

    async def ids(**params: str | int) -> list[str]:
        answer = await client.get("/api/v1/autonomous/executions", params=params)
        assert answer.status_code == 200, answer.text
        return [e["execution_id"] for e in answer.json()["executions"]]

    assert await ids() == [pending, dry["execution_id"], ran]  # newest first
    assert await ids(status="pending_approval") == [pending]
    assert await ids(status="dry_run") == [dry["execution_id"]]
    assert await ids(event_id=quick_event) == [dry["execution_id"], ran]
    assert await ids(limit=1, offset=1) == [dry["execution_id"]]
    page = (await client.get("/api/v1/autonomous/executions", params={"limit": 2})).json()
    assert (page["total_count"], page["has_more"]) == (3, True)
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await ids(start_time=future) == []
    assert await ids(end_time=future) == [pending, dry["execution_id"], ran]

    cases: list[tuple[dict[str, str | int], str]] = [
        ({"status": "sleeping"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"offset": -1}, "offset"),
        ({"event_id": "x"}, "event_id"),
        ({"start_time": "yesterday"}, "start_time"),
        ({"start_time": future, "end_time": "2020-01-01T00:00:00Z"}, "start_time"),
    ]
    for params, field in cases:
        answer = await client.get("/api/v1/autonomous/executions", params=params)
        assert answer.status_code == 400, (params, answer.text)
        assert answer.json()["field"] == field, (params, answer.text)
