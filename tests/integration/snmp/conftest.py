"""A receiver on 127.0.0.1 port 0 with a list-backed sink, and net-snmp's tools as real senders."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from opsresponder.config import SnmpConfig, SnmpV3UserConfig
from opsresponder.core.event import Event
from opsresponder.ingest.snmp import SnmpMetrics, SnmpTrapReceiver
from tests.waiting import Arrivals

WAIT_SECONDS = 10.0
SENDER_ENGINE_ID = "0x8000000001020304"
RECEIVER_ENGINE_ID = "80001f8880aabbccddeeff0011"
LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
IF_VARBINDS = (
    *("1.3.6.1.2.1.2.2.1.1.2", "i", "2"),
    *("1.3.6.1.2.1.2.2.1.2.2", "s", "eth0"),
    *("1.3.6.1.2.1.2.2.1.8.2", "i", "2"),
)
USERS = [
    SnmpV3UserConfig(
        name="alice",
        auth_protocol="sha",
        auth_key="alice-auth-pass",
        priv_protocol="aes128",
        priv_key="alice-priv-pass",
        engine_ids=[SENDER_ENGINE_ID],
    ),
    SnmpV3UserConfig(
        name="bob", auth_protocol="md5", auth_key="bob-auth-pass", engine_ids=[SENDER_ENGINE_ID]
    ),
]


class ListSink:
    """An `EventSink` that keeps events in a list; `full` makes `offer` refuse, like a full intake."""

    def __init__(self) -> None:
        self._arrived = Arrivals[Event]()
        self.full = False

    @property
    def events(self) -> list[Event]:
        return self._arrived.items

    def offer(self, event: Event) -> bool:
        if self.full:
            return False
        self._arrived.append(event)
        return True

    async def put(self, event: Event) -> None:
        self._arrived.append(event)

    async def wait_for(self, count: int, timeout: float = WAIT_SECONDS) -> list[Event]:
        """Wait until at least `count` events arrived; fail the test after `timeout` seconds."""
        return await self._arrived.at_least(count, timeout)


class Harness:
    def __init__(self, receiver: SnmpTrapReceiver, sink: ListSink, registry: CollectorRegistry) -> None:
        self.receiver = receiver
        self.sink = sink
        self.registry = registry

    @property
    def target(self) -> str:
        host, port = self.receiver.address
        return f"{host}:{port}"

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def dropped(self, reason: str) -> float:
        return self.metric("opsresponder_snmp_traps_dropped_total", reason=reason)

    def send_raw(self, data: bytes) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(data, self.receiver.address)

    async def good_trap(self) -> Event:
        """Send a valid v2c trap and wait for its event: the socket is read in order, so by then every
        datagram sent before it has been counted, once the v3 worker process has answered its share."""
        before = len(self.sink.events)
        code, err = await run_tool(
            "snmptrap", "-v2c", "-c", "public", self.target, "", LINK_DOWN, *IF_VARBINDS
        )
        assert code == 0, err
        event = (await self.sink.wait_for(before + 1))[before]
        await self.receiver.settled()
        return event


async def run_tool(*argv: str, timeout: float = 30.0) -> tuple[int, str]:
    """Run a net-snmp tool (argv, never a shell); returns its exit code and stderr."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(timeout):
            _, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, err.decode(errors="replace")


def v3_args(user: str, level: str, auth: tuple[str, str] | None, priv: tuple[str, str] | None) -> list[str]:
    args = ["-v3", "-u", user, "-l", level]
    if auth:
        args += ["-a", auth[0], "-A", auth[1]]
    if priv:
        args += ["-x", priv[0], "-X", priv[1]]
    return args


@pytest.fixture(autouse=True)
def _needs_net_snmp() -> None:
    if shutil.which("snmptrap") is None or shutil.which("snmpinform") is None:
        pytest.fail("net-snmp's snmptrap/snmpinform are required (Debian package 'snmp')", pytrace=False)


@pytest.fixture
def make_receiver() -> Callable[..., Any]:
    def make(**overrides: Any) -> Harness:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "engine_id": RECEIVER_ENGINE_ID,
            "v3_users": USERS,
        }
        values.update(overrides)
        registry = CollectorRegistry()
        sink = ListSink()
        receiver = SnmpTrapReceiver(SnmpConfig(**values), sink, SnmpMetrics(registry))
        return Harness(receiver, sink, registry)

    return make


@pytest.fixture
async def snmp(make_receiver: Callable[..., Harness]) -> AsyncIterator[Harness]:
    harness = make_receiver()
    await harness.receiver.start()
    try:
        yield harness
    finally:
        await harness.receiver.stop()
