"""The real process on the embedded PostgreSQL: serve, ingest, read back, stop cleanly, survive a kill."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.process import ServiceProcess

pytestmark = pytest.mark.embedded_pg


def _postgres_running(pgdata: Path) -> bool:
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if (proc.info.get("name") or "").startswith("postgres") and str(pgdata) in " ".join(cmdline):
            return True
    return False


async def _post_and_read(addresses: dict[str, str], token: str, title: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    base = f"http://{addresses['events_api']}"
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as client:
        event = {"source": "e2e", "event_type": "alert", "severity": "high", "title": title, "host": "h"}
        r = await client.post("/api/v1/events/webhook", json=event)
        assert r.status_code == 200, r.text
        got = await client.get(f"/api/v1/events/{r.json()['event_id']}")
        assert got.json()["title"] == title
        assert (await client.get("/ready")).status_code == 200
        assert (await client.get(f"http://{addresses['autonomous_api']}/health")).status_code == 200


async def test_serve_ingest_and_stop_on_sigterm(service_data_dir: Path) -> None:
    service = ServiceProcess(service_data_dir)
    addresses = await service.start()
    await _post_and_read(addresses, service.admin_token(), "first run")
    assert await service.stop(signal.SIGTERM) == 0
    assert not _postgres_running(service_data_dir / "postgres")

    # The second start reuses the database: the event of the first run is still there.
    again = ServiceProcess(service_data_dir)
    addresses = await again.start()
    headers = {"Authorization": f"Bearer {again.admin_token()}"}
    async with httpx.AsyncClient(base_url=f"http://{addresses['events_api']}", headers=headers) as client:
        listing = (await client.get("/api/v1/events", params={"host": "h"})).json()
        assert [e["title"] for e in listing["events"]] == ["first run"]
    assert await again.stop(signal.SIGINT) == 0


async def test_a_killed_run_leaves_nothing_that_breaks_the_next(service_data_dir: Path) -> None:
    service = ServiceProcess(service_data_dir)
    await service.start()
    await service.kill()  # SIGKILL: no cleanup at all; the embedded server keeps running on its own

    second = ServiceProcess(service_data_dir)
    addresses = await second.start()
    await _post_and_read(addresses, second.admin_token(), "after a kill")
    assert await second.stop() == 0
    # The dead process's handle must not keep the embedded server alive after a clean stop.
    assert not _postgres_running(service_data_dir / "postgres")

    # A postmaster.pid whose process is gone (a crash of the server itself) is cleaned before starting.
    pidfile = service_data_dir / "postgres" / "postmaster.pid"
    pidfile.write_text("999999\n")
    third = ServiceProcess(service_data_dir)
    addresses = await third.start()
    await _post_and_read(addresses, third.admin_token(), "after a stale pid file")
    assert await third.stop() == 0


async def test_a_taken_port_stops_the_start_naming_the_port(service_data_dir: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        service = ServiceProcess(service_data_dir, env={"OPSRESPONDER_API__AUTONOMOUS__PORT": str(port)})
        with pytest.raises(AssertionError, match="did not start"):
            await service.start()
        assert service.process.returncode == 1
        errors = [r for r in service.records if r.get("level") == "error"]
        assert any(
            f"127.0.0.1:{port}" in r.get("error", "") and "api.autonomous" in r["error"] for r in errors
        )
    assert not _postgres_running(service_data_dir / "postgres")


async def test_check_config_names_the_bad_key(service_data_dir: Path) -> None:
    bad = service_data_dir / "bad.yaml"
    bad.write_text("syslog:\n  udp:\n    port: not-a-port\n  tcp: {prot: 1}\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "opsresponder",
        "--config",
        str(bad),
        "check-config",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 1
    assert "syslog.udp.port" in err.decode()


async def test_the_snmp_v3_worker_lives_and_ends_with_the_service(service_data_dir: Path) -> None:
    service = ServiceProcess(
        service_data_dir,
        env={
            "OPSRESPONDER_SNMP__ENABLED": "true",
            "OPSRESPONDER_SNMP__HOST": "127.0.0.1",
            "OPSRESPONDER_SNMP__PORT": "0",
        },
    )
    addresses = await service.start()
    assert "snmp" in addresses
    parent = psutil.Process(service.process.pid)
    [worker] = [p for p in parent.children() if "opsresponder.ingest.snmp.v3_worker" in " ".join(p.cmdline())]
    assert await service.stop(signal.SIGTERM) == 0
    # The receiver closed the worker's input at shutdown: no orphan is left behind.
    gone, _ = psutil.wait_procs([worker], timeout=10)
    assert gone == [worker]


async def test_the_response_side_runs_in_a_child_that_dies_with_the_service(service_data_dir: Path) -> None:
    service = ServiceProcess(service_data_dir, env={"OPSRESPONDER_RESPONSE__PROCESS": "separate"})
    addresses = await service.start()
    parent = psutil.Process(service.process.pid)
    (child,) = [p for p in parent.children() if "response-process" in " ".join(p.cmdline())]
    assert child.nice() == max(10, os.getpriority(os.PRIO_PROCESS, 0))  # response.process_nice
    await _post_and_read(addresses, service.admin_token(), "with a response process")  # 3011: the child's
    await service.kill()  # SIGKILL of the service: the kernel kills its response process too

    def dead() -> bool:  # a zombie is dead: reaping it is up to whoever adopted it (PID 1)
        try:
            return child.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    for _ in range(20):  # killed by the kernel at once (a stop on the end of its stdin takes longer)
        if dead():
            break
        await asyncio.sleep(0.1)
    assert dead()
    # Killed, not stopped: the end of its stdin (the parent's pipe, closed as the parent exits, just before
    # the kernel sends the parent-death signal) may start a graceful stop, which never gets to its end.
    assert not any(r.get("event") == "The response process stopped." for r in service.records)
