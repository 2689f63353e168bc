"""Fixtures for the syslog listener tests: list-backed sinks, a stand-in decoder, real clients, certs."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import trustme
from prometheus_client import CollectorRegistry

from opsresponder.core.event import Event
from opsresponder.core.severity import Severity
from opsresponder.ingest.syslog.metrics import SyslogMetrics
from tests.waiting import Arrivals

WAIT_SECONDS = 20.0


class ListSink:
    """An `EventSink` that keeps events in a list; tests wait on it instead of sleeping.

    With a `capacity`, it behaves like the intake: `offer` refuses when full and `put` waits for room; a
    consumer task (see `start_consumer`) takes events out one at a time, `delay` seconds apart.
    """

    def __init__(self, capacity: int | None = None) -> None:
        self._arrived = Arrivals[Event]()
        self.refused = 0
        self._queue: asyncio.Queue[Event] | None = asyncio.Queue(capacity) if capacity else None
        self._consumer: asyncio.Task[None] | None = None

    def offer(self, event: Event) -> bool:
        if self._queue is None:
            self._store(event)
            return True
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.refused += 1
            return False
        return True

    async def put(self, event: Event) -> None:
        if self._queue is None:
            self._store(event)
        else:
            await self._queue.put(event)

    def start_consumer(self, delay: float) -> None:
        assert self._queue is not None
        self._consumer = asyncio.get_running_loop().create_task(self._consume(self._queue, delay))

    async def stop_consumer(self) -> None:
        if self._consumer is not None:
            self._consumer.cancel()
            await asyncio.wait([self._consumer])

    async def _consume(self, queue: asyncio.Queue[Event], delay: float) -> None:
        while True:
            event = await queue.get()
            self._store(event)
            # The slow pipeline this sink stands for: time spent per event, not a wait for a result.
            await asyncio.sleep(delay)

    def _store(self, event: Event) -> None:
        self._arrived.append(event)

    @property
    def events(self) -> list[Event]:
        return self._arrived.items

    async def wait_for(self, count: int, within: float = WAIT_SECONDS) -> list[Event]:
        """Wait until at least `count` events arrived; fail with what did arrive on timeout."""
        return await self._arrived.at_least(count, within)

    def raws(self) -> list[str]:
        return [e.raw or "" for e in self.events]


def fake_decode(data: bytes, peer: str | None, received_at: datetime, transport: str) -> Event:
    """Stands in for SyslogDecoder: the listeners are tested apart from the parsers."""
    text = data.decode("utf-8", "replace")
    return Event(
        source="syslog",
        source_type="syslog",
        event_type="syslog",
        severity=Severity.INFO,
        title=text[:80] or "-",
        occurred_at=received_at,
        received_at=received_at,
        host=peer.rpartition(":")[0] if peer else None,
        raw=text,
        metadata={"peer": peer, "transport": transport},
    )


async def run_client(*argv: str, stdin: bytes | None = None, within: float = WAIT_SECONDS) -> str:
    """Run a real client (logger, loggen) without blocking the loop that serves the listener."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(within):
            output, _ = await proc.communicate(stdin)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    text = output.decode(errors="replace")
    assert proc.returncode == 0, f"{argv[0]} exited with {proc.returncode}: {text}"
    # loggen exits 0 after some usage errors; they all print "error [".
    assert "error [" not in text, f"{argv[0]} reported an error: {text}"
    return text


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (.ci/run installs it)")
    return path


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> SyslogMetrics:
    return SyslogMetrics(registry)


@pytest.fixture
async def sink() -> AsyncIterator[ListSink]:
    sink = ListSink()
    yield sink
    await sink.stop_consumer()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@dataclass(frozen=True)
class TlsFiles:
    ca: trustme.CA
    ca_file: Path
    cert_file: Path
    key_file: Path
    tmp: Path

    def client_cert(self, *names: str, ca: trustme.CA | None = None) -> ClientCert:
        """A client certificate (issued by `ca`, default the server's CA) with its key, written to a PEM."""
        issued = (ca or self.ca).issue_cert(*names)
        path = self.tmp / f"client-{'-'.join(names)}-{id(issued)}.pem"
        issued.private_key_and_cert_chain_pem.write_to_path(str(path))
        der = ssl.PEM_cert_to_DER_cert(issued.cert_chain_pems[0].bytes().decode())
        return ClientCert(path=path, sha256=hashlib.sha256(der).hexdigest())


@dataclass(frozen=True)
class ClientCert:
    path: Path
    sha256: str


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    tmp = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    server.cert_chain_pems[0].write_to_path(str(cert_file))
    server.private_key_pem.write_to_path(str(key_file))
    return TlsFiles(ca=ca, ca_file=ca_file, cert_file=cert_file, key_file=key_file, tmp=tmp)
