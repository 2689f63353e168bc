"""An execution outlives a kill -9 of the real service: after the restart it is ``interrupted``, its
running action is not run again, and the rollback it asked for ran (the status then ends ``rolled_back``).

The service runs as its own process on a test catalog of real scripts (tests/integration/api/playbooks.py).
The playbook prepares (a quick script whose rollback is ``undo_check``), then hangs; the execution asks
``rollback_on_failure``. The process is killed (SIGKILL: nothing of it runs after) while the hanging
script runs; the service, restarted at once, finds the execution's lease expired
(``response.executor.lease_seconds``: 2 s here) at start or within a lease period, marks it interrupted
and rolls back what completed. Each script writes one marker line per run, so "not run again" is a
count, not a guess. The orphaned hanging script is killed by the test at the end.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.e2e.process import ServiceProcess
from tests.integration.api.playbooks import LOW_RISK_CONTEXT, Playbooks, response_env, write_playbooks
from tests.waiting import eventually


def service(tmp_path: Path, database_url: str, playbooks: Playbooks) -> ServiceProcess:
    return ServiceProcess(
        tmp_path / "data", {"OPSRESPONDER_DATABASE__URL": database_url, **response_env(playbooks)}
    )


async def _execution(client: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    answer = await client.get(f"/api/v1/autonomous/executions/{execution_id}")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def test_a_killed_execution_is_interrupted_not_rerun_and_rolled_back(
    tmp_path: Path, database_url: str, db_pool: asyncpg.Pool
) -> None:
    playbooks = write_playbooks(tmp_path / "playbooks")
    first = service(tmp_path, database_url, playbooks)
    addresses = await first.start()
    headers = {"Authorization": f"Bearer {first.admin_token()}"}
    try:
        try:
            async with (
                httpx.AsyncClient(base_url=f"http://{addresses['events_api']}", headers=headers) as events,
                httpx.AsyncClient(base_url=f"http://{addresses['autonomous_api']}", headers=headers) as api,
            ):
                event = {"source": "e2e", "event_type": "test_hang", "severity": "high", "host": "db-1",
                         "title": "something hangs"}  # fmt: skip
                stored = await events.post("/api/v1/events/webhook", json=event)
                assert stored.status_code == 200, stored.text
                decision = await api.post(
                    "/api/v1/autonomous/analyze",
                    json={"event_id": stored.json()["event_id"], "context": LOW_RISK_CONTEXT},
                )
                assert decision.status_code == 200, decision.text
                answer = await api.post(
                    "/api/v1/autonomous/execute",
                    json={"decision_id": decision.json()["decision_id"],
                          "execution_options": {"rollback_on_failure": True}},
                )  # fmt: skip
                assert answer.status_code == 202, answer.text
                execution_id = answer.json()["execution_id"]
                await eventually(lambda: bool(playbooks.runs("hang_forever")), what="the hang to start")
                assert (await _execution(api, execution_id))["status"] == "running"
        finally:
            await first.kill()  # SIGKILL while the hanging script runs

        assert len(playbooks.runs("quick_check")) == 1 and playbooks.runs("undo_check") == []
        # Restarted at once: the dead process's lease (2 s here) may not have expired yet; the new process
        # recovers the execution as soon as it has (its claim loop recovers every lease period).
        second = service(tmp_path, database_url, playbooks)
        addresses = await second.start()
        try:
            async with httpx.AsyncClient(
                base_url=f"http://{addresses['autonomous_api']}", headers=headers
            ) as api:
                final = await _until(api, db_pool, execution_id, playbooks)
            # Interrupted, then rolled back as it asked: the status ends rolled_back, the logs tell both.
            assert final["status"] == "rolled_back", final
            assert "lease expired" in final["error"]
            assert any(log["message"].startswith("Interrupted") for log in final["logs"]), final["logs"]
            actions = {(a["phase"], a["key"]): a["status"] for a in final["actions"]}
            assert actions == {
                ("action", "prepare"): "rolled_back",
                ("action", "hang"): "interrupted",
                ("rollback", "prepare"): "completed",
            }, final
            assert len(playbooks.runs("hang_forever")) == 1  # the running action was not run again
            assert len(playbooks.runs("undo_check")) == 1  # the completed step was rolled back, once
            await asyncio.sleep(1)  # a second recovery pass would have run by now: still once each
            assert len(playbooks.runs("hang_forever")) == 1 and len(playbooks.runs("undo_check")) == 1
        finally:
            assert await second.stop() == 0
    finally:
        playbooks.kill_leftovers()


async def _rollback_done(pool: asyncpg.Pool, execution_id: str) -> bool:
    status = await pool.fetchval(
        "SELECT rollback_status FROM autonomous.executions WHERE id = $1",
        int(execution_id.removeprefix("exec_")),
    )
    return status in ("completed", "failed")


async def _until(
    api: httpx.AsyncClient, pool: asyncpg.Pool, execution_id: str, playbooks: Playbooks, within: float = 30
) -> dict[str, Any]:
    """The execution once it is interrupted and its rollback has finished (fails after `within` s)."""
    final: dict[str, Any] = {}
    try:
        async with asyncio.timeout(within):
            while True:
                final = await _execution(api, execution_id)
                if final["status"] in ("interrupted", "rolled_back") and await _rollback_done(
                    pool, execution_id
                ):
                    return final
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(
            f"not interrupted and rolled back within {within} s: {final}; "
            f"undo runs {playbooks.runs('undo_check')}"
        ) from None
