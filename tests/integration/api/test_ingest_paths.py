"""Every ingest path end to end: real clients -> listeners -> pipeline -> PostgreSQL -> GET /api/v1/events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import trustme

from opsresponder.app import OpsResponder, running
from opsresponder.config import settings_from_tree
from opsresponder.core.event import Event
from tests.conftest import require_program
from tests.integration.api.conftest import TOKENS, base_url
from tests.waiting import Arrivals


class CommitWatcher:
    """Collects committed events and wakes a waiter when one matching a predicate arrived (no polling)."""

    def __init__(self) -> None:
        self._arrived = Arrivals[Event]()

    @property
    def events(self) -> list[Event]:
        return self._arrived.items

    def __call__(self, events: list[Event]) -> None:
        self._arrived.extend(events)

    async def wait_for(self, predicate: Callable[[Event], bool], timeout: float = 15) -> Event:
        return await self._arrived.first(predicate, timeout)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    d = tmp_path_factory.mktemp("tls")
    cert.private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    return {"cert": str(d / "server.pem"), "ca": str(d / "ca.pem")}


@pytest.fixture
async def service(
    database_url: str, db_pool: asyncpg.Pool, tmp_path: Path, tls_files: dict[str, str]
) -> AsyncIterator[OpsResponder]:
    listen = {"host": "127.0.0.1", "port": 0}
    settings = settings_from_tree(
        {
            "data_dir": str(tmp_path),
            "database": {"url": database_url},
            "api": {
                "events": listen,
                "autonomous": listen,
                "tokens": [{"name": n, "token": t, "scopes": [n]} for n, t in TOKENS.items()],
            },
            "syslog": {
                "udp": listen,
                "tcp": listen,
                "tls": {
                    **listen,
                    "enabled": True,
                    "cert_file": tls_files["cert"],
                    "key_file": tls_files["cert"],
                },
                "parsing_rules": [
                    {
                        "pattern": "Failed password for .* from (.*) port",
                        "event_type": "authentication_failure",
                        "severity": "medium",
                        "extract_fields": ["source_ip"],
                    }
                ],
            },
            "snmp": {
                **listen,
                "communities": ["public"],
                "trap_mapping": {"linkDown": {"event_type": "connectivity_issue", "severity": "high"}},
            },
        }
    )
    async with running(settings) as svc:
        yield svc


@pytest.fixture
def watcher(service: OpsResponder) -> CommitWatcher:
    w = CommitWatcher()
    assert service.worker is not None
    service.worker.add_commit_listener(w)
    return w


def _port(service: OpsResponder, name: str) -> str:
    return service.listeners[name].rsplit(":", 1)[1]


async def _run(*argv: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def _api_event(service: OpsResponder, event_id: int | None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKENS['read']}"}
    async with httpx.AsyncClient(base_url=base_url(service), headers=headers) as client:
        r = await client.get(f"/api/v1/events/{event_id}")
        assert r.status_code == 200, r.text
        event: dict[str, Any] = r.json()
        return event


async def test_logger_over_udp_rfc3164(service: OpsResponder, watcher: CommitWatcher) -> None:
    logger = require_program("logger", "bsdutils")
    code, out = await _run(
        logger,
        "--udp",
        "--rfc3164",
        "--server",
        "127.0.0.1",
        "--port",
        _port(service, "syslog_udp"),
        "-p",
        "daemon.err",
        "-t",
        "nginx",
        "upstream timed out on udp",
    )
    assert code == 0, out
    committed = await watcher.wait_for(lambda e: "upstream timed out on udp" in (e.description or ""))
    event = await _api_event(service, committed.id)
    assert event["source_type"] == "syslog"
    assert event["severity"] == "high"  # err
    assert event["metadata"]["format"] == "rfc3164"
    assert event["metadata"]["transport"] == "udp"
    assert event["metadata"]["peer"].startswith("127.0.0.1:")


async def test_logger_over_tcp_rfc5424_with_a_parsing_rule(
    service: OpsResponder, watcher: CommitWatcher
) -> None:
    logger = require_program("logger", "bsdutils")
    code, out = await _run(
        logger,
        "--tcp",
        "--rfc5424",
        "--octet-count",
        "--server",
        "127.0.0.1",
        "--port",
        _port(service, "syslog_tcp"),
        "-p",
        "auth.info",
        "-t",
        "sshd",
        "Failed password for root from 10.0.0.9 port 22 ssh2",
    )
    assert code == 0, out
    committed = await watcher.wait_for(lambda e: e.event_type == "authentication_failure")
    event = await _api_event(service, committed.id)
    assert event["severity"] == "medium"
    assert event["metadata"]["source_ip"] == "10.0.0.9"
    assert event["metadata"]["format"] == "rfc5424"
    assert event["metadata"]["app_name"] == "sshd"


async def test_loggen_over_tls(service: OpsResponder, watcher: CommitWatcher) -> None:
    loggen = require_program("loggen", "syslog-ng-core")
    code, out = await _run(
        loggen,
        "--use-ssl",
        "--syslog-proto",
        "--number",
        "20",
        "--interval",
        "1",
        "127.0.0.1",
        _port(service, "syslog_tls"),
    )
    assert code == 0, out
    await watcher.wait_for(
        lambda e: e.metadata.get("transport") == "tls" and "seq: 0000000019" in (e.description or "")
    )
    tls_events = [e for e in watcher.events if e.metadata.get("transport") == "tls"]
    assert len(tls_events) == 20
    assert all(e.metadata.get("format") == "rfc5424" for e in tls_events)


async def test_snmptrap_v2c_link_down_and_an_inform(service: OpsResponder, watcher: CommitWatcher) -> None:
    snmptrap = require_program("snmptrap", "snmp")
    target = f"udp:127.0.0.1:{_port(service, 'snmp')}"
    code, out = await _run(
        snmptrap,
        "-v",
        "2c",
        "-c",
        "public",
        target,
        "",
        "1.3.6.1.6.3.1.1.5.3",
        "1.3.6.1.2.1.2.2.1.1.7",
        "i",
        "7",
        "1.3.6.1.2.1.2.2.1.2.7",
        "s",
        "eth7",
        "1.3.6.1.2.1.2.2.1.8.7",
        "i",
        "2",
    )
    assert code == 0, out
    committed = await watcher.wait_for(lambda e: e.event_type == "connectivity_issue")
    event = await _api_event(service, committed.id)
    assert event["severity"] == "high"
    assert event["host"] == "127.0.0.1"
    assert event["metadata"]["ifIndex"] == 7
    assert event["metadata"]["ifDescr"] == "eth7"

    snmpinform = require_program("snmpinform", "snmp")
    code, out = await _run(
        snmpinform, "-v", "2c", "-c", "public", "-r", "2", "-t", "2", target, "", "1.3.6.1.6.3.1.1.5.1"
    )
    assert code == 0, out  # acknowledged
    await watcher.wait_for(
        lambda e: e.event_type == "system_restart" or e.metadata.get("snmp", {}).get("inform")
    )


async def test_health_lists_every_bound_listener(service: OpsResponder) -> None:
    async with httpx.AsyncClient(base_url=base_url(service)) as client:
        listeners = (await client.get("/health")).json()["listeners"]
    assert set(listeners) == {
        "events_api",
        "autonomous_api",
        "syslog_udp",
        "syslog_tcp",
        "syslog_tls",
        "snmp",
    }
    assert all(not address.endswith(":0") for address in listeners.values())
