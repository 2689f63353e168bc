"""The response side in its own process (response.process: separate, what `serve` runs): port 3011, the
executor and the rule-to-response loop live in a child of the service; a pipeline commit wakes the child's
loop through its pipe (the loop's poll is a minute here, so only the wake can be in time); a child that
dies is started again and counted; stopping the service stops it, also when the stop signal reached the
child first (a signal to the process group, as systemd sends)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import msgspec
import psutil
import pytest

from opsresponder.app import OpsResponder, running
from opsresponder.config import Settings
from tests.integration.api.autonomous import DONE, auth, wait_for
from tests.integration.api.conftest import base_url
from tests.integration.api.inbox import Inbox
from tests.integration.api.loop_service import executions_of, loop_settings
from tests.integration.api.playbooks import Playbooks
from tests.waiting import eventually


def _settings(database_url: str, data_dir: Path, playbooks: Playbooks, inbox: Inbox) -> Settings:
    settings = loop_settings(database_url, data_dir, playbooks, inbox)
    loop = msgspec.structs.replace(settings.response.loop, poll_interval_ms=60_000)
    response = msgspec.structs.replace(settings.response, loop=loop)
    return msgspec.structs.replace(settings, response=response)


@pytest.fixture
async def service(
    database_url: str, db_pool: asyncpg.Pool, tmp_path: Path, playbooks: Playbooks, inbox: Inbox
) -> AsyncIterator[OpsResponder]:
    try:
        settings = _settings(database_url, tmp_path / "data", playbooks, inbox)
        async with running(settings, role="events") as svc:
            yield svc
    finally:
        playbooks.kill_leftovers()


def _child(service: OpsResponder) -> psutil.Process:
    assert service.response_process is not None
    pid = service.response_process.pid
    assert pid is not None and pid != os.getpid()
    return psutil.Process(pid)


async def _fired_and_ran(service: OpsResponder, host: str) -> None:
    """A webhook event fires the loop's rule; the child's loop runs its diagnostic to the end."""
    headers = auth("ingest")
    async with (
        httpx.AsyncClient(base_url=base_url(service), headers=headers, timeout=10) as events,
        httpx.AsyncClient(base_url=base_url(service, "autonomous_api"), headers=auth(), timeout=10) as client,
    ):
        body = {"source": "tests", "event_type": "test_loop", "severity": "high", "host": host, "title": "t"}
        stored = await events.post("/api/v1/events/webhook", json=body)
        assert stored.status_code == 200, stored.text
        found: list[dict[str, object]] = []

        async def both() -> bool:
            nonlocal found
            found = await executions_of(client, stored.json()["event_id"])
            return len(found) == 2

        await eventually(both, within=15, what="the loop's executions, submitted in the response process")
        automatic = next(e for e in found if e["status"] != "pending_approval")
        done = await wait_for(client, str(automatic["execution_id"]), DONE)
        assert done["status"] == "completed", done


async def test_the_response_side_serves_and_runs_in_a_child_process(
    service: OpsResponder, playbooks: Playbooks
) -> None:
    child = _child(service)
    assert child.ppid() == os.getpid()
    assert child.nice() >= service.settings.response.process_nice
    assert "response-process" in " ".join(child.cmdline())
    # Port 3011 is the child's: this process has no socket listening on it.
    port = int(service.listeners["autonomous_api"].rsplit(":", 1)[1])
    assert any(c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in child.net_connections())
    assert not any(c.laddr.port == port for c in psutil.Process().net_connections())

    async with httpx.AsyncClient(base_url=base_url(service), timeout=10) as events:
        ready = await events.get("/ready")  # no token: readiness is public
    assert ready.status_code == 200, ready.text
    assert ready.json()["response_process"] == {"running": True, "restarts": 0}

    await _fired_and_ran(service, "web-1")
    (look,) = playbooks.runs("quick_check")
    assert look["ppid"] == child.pid  # the child ran the script


async def test_a_dead_response_process_is_started_again_and_counted(service: OpsResponder) -> None:
    first = _child(service)
    old_port = service.listeners["autonomous_api"]
    os.kill(first.pid, signal.SIGKILL)

    async def down() -> bool:
        # /health no longer names a dead child's port, and /ready says it is not running.
        process = service.response_process
        return (
            "autonomous_api" not in service.listeners and process is not None and not process.state().running
        )

    await eventually(down, within=10, what="the dead child's listener forgotten")

    async def restarted() -> bool:
        process = service.response_process
        return process is not None and process.pid not in (None, first.pid)

    await eventually(restarted, within=20, what="a new response process")
    second = _child(service)

    async def serving() -> bool:
        if "autonomous_api" not in service.listeners:
            return False
        try:
            async with httpx.AsyncClient(timeout=2) as c:
                return (await c.get(f"{base_url(service, 'autonomous_api')}/health")).status_code == 200
        except httpx.HTTPError:
            return False

    await eventually(serving, within=20, what="port 3011 served again")
    port = int(service.listeners["autonomous_api"].rsplit(":", 1)[1])
    assert any(c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in second.net_connections())
    assert service.listeners["autonomous_api"] != old_port  # tests bind port 0: the new child's own
    await _fired_and_ran(service, "web-2")  # the new child's loop and executor work
    async with httpx.AsyncClient(base_url=base_url(service), headers=auth("read"), timeout=10) as events:
        metrics = (await events.get("/metrics")).text
    assert "opsresponder_response_process_restarts_total 1.0" in metrics
    async with httpx.AsyncClient(base_url=base_url(service), timeout=10) as events:
        ready = (await events.get("/ready")).json()
    assert ready["status"] == "ready" and ready["response_process"] == {"running": True, "restarts": 1}
    assert service.response_process is not None and service.response_process.restart_count == 1
    assert second.is_running()


async def test_stopping_the_service_stops_its_response_process(
    database_url: str, db_pool: asyncpg.Pool, tmp_path: Path, playbooks: Playbooks, inbox: Inbox
) -> None:
    async with running(_settings(database_url, tmp_path / "data", playbooks, inbox), role="events") as svc:
        child = _child(svc)
        process = svc.response_process
    assert process is not None and process.exit_code == 0  # a clean stop, not a kill
    assert not psutil.pid_exists(child.pid)


async def test_stop_signals_that_reach_the_child_first_are_no_crash(service: OpsResponder) -> None:
    # A signal to the whole process group (systemd's) reaches the child as the parent starts stopping:
    # the parent's handler marks the stop at once (`prepare_stop`); the child may get SIGTERM again and
    # again, also while it exits.
    process = service.response_process
    assert process is not None and process.pid is not None
    first = process.pid
    process.prepare_stop()

    async def signal_until_gone() -> None:
        with contextlib.suppress(ProcessLookupError):
            while True:
                os.kill(first, signal.SIGTERM)
                await asyncio.sleep(0.005)

    sender = asyncio.create_task(signal_until_gone())

    async def ended() -> bool:
        return process.exit_code is not None

    try:
        await eventually(ended, within=30, what="the child's end")
    finally:
        sender.cancel()
    assert process.exit_code == 0  # a clean stop, never -15
    await asyncio.sleep(1.0)  # beyond the first restart delay
    assert process.restart_count == 0 and process.pid is None  # not taken for a crash
