"""The rule-to-response loop over real sockets with real scripts, after the review fixes: a firing handled
again after a failure between its two submits creates each execution once (the automatic script runs
once), and a template action of ``type: remediation`` whose script's catalog type is diagnostic is
governed as a remediation (a hostless event is refused, loop detection applies)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import httpx
import yaml

from opsresponder.app import OpsResponder, running
from opsresponder.response.loop import ResponseLoop
from opsresponder.store.errors import DatabaseUnavailableError
from tests.integration.api.autonomous import DONE, auth, wait_for
from tests.integration.api.conftest import base_url
from tests.integration.api.inbox import Inbox
from tests.integration.api.loop_service import executions_of, loop_settings
from tests.integration.api.playbooks import Playbooks
from tests.integration.api.test_autonomous_loop_governor import governor_inputs, post_event, settled
from tests.waiting import eventually


def the_loop(svc: OpsResponder) -> ResponseLoop:
    """The running service's loop (its commit listener on the pipeline worker is the loop's method)."""
    assert svc.worker is not None
    for listener in svc.worker._on_committed:
        owner = getattr(listener, "__self__", None)
        if isinstance(owner, ResponseLoop):
            return owner
    raise AssertionError("the service runs no rule-to-response loop")


class FailingApprovalSubmit:
    """The real execution service, except that the first submit of a part waiting for approval fails as
    a lost database would: after the automatic part was committed, before the approval part."""

    def __init__(self, real: Any) -> None:
        self.real, self.failed = real, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def submit(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("automatic") and not self.failed:
            self.failed = True
            raise DatabaseUnavailableError("connection lost")
        return await self.real.submit(*args, **kwargs)


async def test_a_firing_handled_again_creates_each_execution_once(
    database_url: str, db_pool: asyncpg.Pool, tmp_path: Path, playbooks: Playbooks, inbox: Inbox
) -> None:
    settings = loop_settings(database_url, tmp_path / "data", playbooks, inbox)
    async with (
        running(settings) as svc,
        httpx.AsyncClient(base_url=base_url(svc), timeout=10) as events,
        httpx.AsyncClient(base_url=base_url(svc, "autonomous_api"), headers=auth(), timeout=10) as client,
    ):
        loop = the_loop(svc)
        failing = FailingApprovalSubmit(loop._executions)
        loop._executions = failing  # type: ignore[assignment]
        event_id = await post_event(events, "retried")
        await settled(db_pool, 1)
        assert failing.failed  # the first try failed between the two submits, the second completed it
        firing = await db_pool.fetchrow("SELECT attempts, last_error FROM rules.rule_firings")
        assert firing is not None and firing["attempts"] == 2 and "connection lost" in firing["last_error"]

        runs = await executions_of(client, event_id)
        assert [e["status"] for e in runs][1:] == ["pending_approval"] and len(runs) == 2
        assert (await wait_for(client, runs[0]["execution_id"], DONE))["status"] == "completed"
        assert len(playbooks.runs("quick_check")) == 1  # the automatic part ran once
        # One decision: the retry carried out the recorded plan instead of deciding again.
        decisions = await db_pool.fetchval(
            "SELECT count(*) FROM autonomous.decisions WHERE event_id = $1", event_id
        )
        assert decisions == 1
        approvals = (await client.get("/api/v1/autonomous/approvals", params={"status": "pending"})).json()
        assert [a["execution_id"] for a in approvals["approvals"]] == [runs[1]["execution_id"]]


async def test_a_remediation_action_on_a_diagnostic_script_is_governed(
    database_url: str, db_pool: asyncpg.Pool, tmp_path: Path, playbooks: Playbooks, inbox: Inbox
) -> None:
    # `fix` is a template remediation whose script (quick_check) has the catalog's default type,
    # diagnostic: the executor, verification and analysis count it as a remediation, so must the governor.
    (playbooks.templates / "loop_playbook.yaml").write_text(
        yaml.safe_dump(
            {
                "id": "loop_playbook",
                "name": "Fix with a diagnostic-typed script",
                "version": "1",
                "triggers": [{"event_type": "test_loop"}],
                "actions": [
                    {"id": "fix", "name": "Fix", "type": "remediation", "automation_script": "quick_check",
                     "required": True},
                ],
            },
            sort_keys=False,
        )
    )  # fmt: skip
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
        hostless = await post_event(events, "somewhere", host=None)
        await settled(db_pool, 1)
        assert await executions_of(client, hostless) == []
        (refusal,) = await governor_inputs(db_pool, hostless)
        assert "resolves to no host" in refusal["reasons"][0]

        event_id = 0
        for n in range(2):
            event_id = await post_event(events, "disk keeps filling")
            await settled(db_pool, n + 2)
        runs = await executions_of(client, event_id)
        assert [e["requested_by"] for e in runs] == ["rules", "rules"]
        assert all(e["status"] != "pending_approval" for e in runs)
        await post_event(events, "disk keeps filling")
        await settled(db_pool, 4)
        assert [e["status"] for e in (await executions_of(client, event_id))[2:]] == ["pending_approval"]
        await eventually(lambda: "automation_loop_detected" in inbox.templates(), within=5)
