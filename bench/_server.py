"""Start ``python -m opsresponder serve`` for a benchmark and read its figures from /proc and /metrics.

Also: a throwaway PostgreSQL database per run (`BenchDatabase`), the stored event count, waiting for the
pipeline to settle after a load, and the kernel's UDP counters.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import asyncpg
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]


class BenchServer:
    """The service in a child process on free ports; `env` adds OPSRESPONDER_* settings."""

    def __init__(self, data_dir: Path | None = None, database_url: str | None = None, **env: str) -> None:
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="opsresponder-bench-"))
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("OPSRESPONDER_")},
            "OPSRESPONDER_DATA_DIR": str(self.data_dir),
            "OPSRESPONDER_API__EVENTS__HOST": "127.0.0.1",
            "OPSRESPONDER_API__EVENTS__PORT": "0",
            "OPSRESPONDER_API__AUTONOMOUS__HOST": "127.0.0.1",
            "OPSRESPONDER_API__AUTONOMOUS__PORT": "0",
            "OPSRESPONDER_SYSLOG__UDP__ENABLED": "false",
            "OPSRESPONDER_SYSLOG__TCP__ENABLED": "false",
            "OPSRESPONDER_SNMP__ENABLED": "false",
            "OPSRESPONDER_LOGGING__FORMAT": "json",
            "OPSRESPONDER_LOGGING__LEVEL": "warning",
            **env,
        }
        if database_url:
            self.env["OPSRESPONDER_DATABASE__URL"] = database_url
        self.process: subprocess.Popen[bytes] | None = None
        self.addresses: dict[str, Any] = {}
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 60) -> float:
        """Start and wait until /ready answers 200; returns the seconds from spawn to ready."""
        self._log = open(self.data_dir / "server.log", "wb")  # noqa: SIM115 - kept open while it runs
        self.env["OPSRESPONDER_LOGGING__LEVEL"] = "info"  # the listening line carries the bound ports
        started = time.monotonic()
        # OPSRESPONDER_BENCH_PROFILE=<file>: the server runs under cProfile (its main thread: the event
        # loop), the stats written to <file> when it stops (SIGTERM), for `python -m pstats <file>`.
        profile = os.environ.get("OPSRESPONDER_BENCH_PROFILE")
        self.process = subprocess.Popen(
            [
                sys.executable,
                *(["-m", "cProfile", "-o", profile] if profile else []),
                "-m",
                "opsresponder",
                "--config",
                str(REPO / "config/opsresponder.yaml"),
                "serve",
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: see {self.data_dir / 'server.log'}")
            if not self.addresses:
                self.addresses = self._listening()
            elif self._ready():
                return time.monotonic() - started
            time.sleep(0.02)
        raise RuntimeError("the server did not become ready in time")

    def _listening(self) -> dict[str, Any]:
        for line in (self.data_dir / "server.log").read_text(errors="replace").splitlines():
            if '"OpsResponder is listening."' in line:
                record: dict[str, Any] = json.loads(line)
                return record
        return {}

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.events_address}/ready", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    @property
    def events_address(self) -> str:
        return str(self.addresses["events_api"])

    def address_of(self, name: str) -> str:
        return str(self.addresses[name])

    def token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    def peak_rss_mb(self) -> float:
        """The server process's peak resident memory (VmHWM), in MiB."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def rss_mb(self) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        """User plus system CPU time the service has used so far: the server process and its response
        process (response.process: separate), not the scripts they run."""
        assert self.process is not None
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in (self.process.pid, *self.response_pids()):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue  # a response process restarting
            total += int(fields[11]) + int(fields[12])
        return total / ticks

    def response_pids(self) -> list[int]:
        """The server's response process (none with response.process: inline)."""
        assert self.process is not None
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        found = []
        for child in children:
            try:
                if b"response-process" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(int(child))
            except FileNotFoundError:
                continue
        return found

    def stop(self) -> int:
        assert self.process is not None
        self.process.terminate()
        code = self.process.wait(60)
        if self._log is not None:
            self._log.close()
        return code

    def metrics(self) -> Metrics:
        """The service's /metrics, read with the admin token."""
        request = urllib.request.Request(
            f"http://{self.events_address}/metrics", headers={"Authorization": f"Bearer {self.token()}"}
        )
        with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310 - http, our own server
            return Metrics(r.read().decode())


class Metrics:
    """One scrape of /metrics: samples by name and labels (``_created`` samples left out)."""

    def __init__(self, text: str) -> None:
        self.samples: list[tuple[str, dict[str, str], float]] = [
            (s.name, dict(s.labels), float(s.value))
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if not s.name.endswith("_created")
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called `name` whose labels include `labels`."""
        return sum(
            v for n, ls, v in self.samples if n == name and all(ls.get(k) == x for k, x in labels.items())
        )

    def by(self, name: str, *label_names: str) -> dict[str, float]:
        """The samples called `name`, summed per combination of `label_names` (joined with ``/``)."""
        out: dict[str, float] = {}
        for n, ls, v in self.samples:
            if n == name:
                key = "/".join(ls.get(k, "") for k in label_names)
                out[key] = out.get(key, 0.0) + v
        return out


def grown(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, int]:
    """What grew between two `Metrics.by` readings (counters), leaving out what did not."""
    return {k: int(v - before.get(k, 0.0)) for k, v in after.items() if v - before.get(k, 0.0) > 0}


ADMIN_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"


class BenchDatabase:
    """A fresh database ``bench_<random>`` on the server of `admin_url`, dropped on exit; or, given `url`,
    that database, kept. ``async with BenchDatabase(...) as url:`` (or plain ``with`` outside an event
    loop); the service migrates it at start."""

    def __init__(self, url: str | None = None, admin_url: str = ADMIN_DATABASE_URL) -> None:
        self._given = url
        self._admin_url = admin_url
        self._name = f"bench_{secrets.token_hex(4)}"
        self.url = url or f"{admin_url.rsplit('/', 1)[0]}/{self._name}"

    async def __aenter__(self) -> str:
        if self._given is None:
            conn = await asyncpg.connect(self._admin_url)
            try:
                await conn.execute(f'CREATE DATABASE "{self._name}"')
            finally:
                await conn.close()
        return self.url

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._given is None:
            conn = await asyncpg.connect(self._admin_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)')
            finally:
                await conn.close()

    def __enter__(self) -> str:
        return asyncio.run(self.__aenter__())

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        asyncio.run(self.__aexit__(kind, error, tb))


async def count_events(database_url: str, source_type: str | None = None) -> int:
    """Rows in ``events.events`` (each stored event once; duplicates are folded into their event), all or
    those of one `source_type` (``syslog``, ``snmp``, ...)."""
    conn = await asyncpg.connect(database_url)
    try:
        if source_type is None:
            count: int = await conn.fetchval("SELECT count(*) FROM events.events")
        else:
            count = await conn.fetchval(
                "SELECT count(*) FROM events.events WHERE source_type = $1", source_type
            )
        return count
    finally:
        await conn.close()


async def wait_until_stored(
    server: BenchServer,
    database_url: str,
    expected: int,
    *,
    source_type: str | None = None,
    settle: float = 3.0,
    timeout: float = 300.0,
) -> tuple[int, float]:
    """Poll the stored count until it reaches `expected`, or stops growing for `settle` seconds with the
    intake empty (something was lost), or `timeout` passes. Returns the last count and the monotonic
    time it was first seen (when the pipeline caught up, without the settle time)."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while True:
        count = await count_events(database_url, source_type)
        now = time.monotonic()
        if count != last:
            last, since = count, now
        if count >= expected or now >= deadline:
            return count, since
        if now - since >= settle:
            scrape = await asyncio.to_thread(server.metrics)
            if scrape.value("opsresponder_intake_depth") == 0:
                return count, since
        await asyncio.sleep(0.2)


def udp_counters() -> dict[str, int]:
    """This network namespace's UDP counters from /proc/net/snmp (``RcvbufErrors``, ``InErrors``, ...)."""
    text = Path("/proc/net/snmp").read_text()
    lines = [line.split() for line in text.splitlines() if line.startswith("Udp:")]
    return dict(zip(lines[0][1:], (int(x) for x in lines[1][1:]), strict=True))


def udp_rmem_max() -> int:
    """net.core.rmem_max: the ceiling on a socket's SO_RCVBUF request (the kernel doubles what it grants)."""
    return int(Path("/proc/sys/net/core/rmem_max").read_text())


def udp_socket_drops(port: int) -> int:
    """Datagrams the kernel dropped for the UDP sockets bound to `port` (the ``drops`` column of
    /proc/net/udp and udp6): this listener's own share of ``RcvbufErrors``, whatever else the machine runs."""
    drops = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                drops += int(fields[-1])
    return drops


@dataclass
class Snapshot:
    """What is counted before and after a load: /metrics, stored rows, kernel UDP drops, server CPU."""

    metrics: Metrics
    stored: int
    rcvbuf_errors: int
    socket_drops: int
    cpu: float
    at: float = field(default_factory=time.monotonic)

    @classmethod
    async def take(
        cls,
        server: BenchServer,
        database_url: str,
        udp_port: int | None = None,
        source_type: str | None = None,
    ) -> Snapshot:
        """`udp_port`: the listener whose own kernel drops (`udp_socket_drops`) to count; `source_type`:
        count only those stored events."""
        return cls(
            metrics=await asyncio.to_thread(server.metrics),
            stored=await count_events(database_url, source_type),
            rcvbuf_errors=udp_counters()["RcvbufErrors"],
            socket_drops=udp_socket_drops(udp_port) if udp_port else 0,
            cpu=server.cpu_seconds(),
        )

    def grew(self, before: Snapshot, name: str, **labels: str) -> int:
        """How much counter `name` (samples matching `labels`, summed) grew since `before`."""
        return int(self.metrics.value(name, **labels) - before.metrics.value(name, **labels))

    def grew_by(self, before: Snapshot, name: str, *label_names: str) -> dict[str, int]:
        """How much counter `name` grew since `before`, per combination of `label_names`; growth only."""
        return grown(self.metrics.by(name, *label_names), before.metrics.by(name, *label_names))

    def cpu_percent(self, before: Snapshot) -> float:
        """The server's CPU use between the two snapshots, in % of one core."""
        return 100 * (self.cpu - before.cpu) / (self.at - before.at)
