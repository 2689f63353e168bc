"""SNMP trap benchmark, full pipeline: the service in one process, the trap sender in another.

    python bench/snmp.py [--rate 2000] [--duration 60] [--database-url postgresql://...]

Prints (issue 3):
- webhook latency at rest: single events at `--probe-rate` (20/s) for `--duration` seconds, p50/p99, from a
  small keep-alive HTTP client in this process (latency counted from when each request was due, so a slow
  answer cannot hide queueing);
- v2c traps at `--rate` for `--duration` seconds from bench/_udp_sender.py (own BER encoder, even pacing),
  with the same webhook probe running: sent, received, stored, deduplicated, loss %, drops by reason
  (the receiver's ``opsresponder_snmp_traps_dropped_total``, the pipeline's, and the kernel's for the
  trap socket), the rate the sender reached, the time the pipeline took to catch up, server CPU, and the
  probe's p50/p99 against the idle figure (issue: p99 under load <= 2x idle);
- the same for v1 traps (`--v1-rate`) and SNMPv3 authPriv traps (SHA + AES-128, built and encrypted by the
  sender, `--v3-rate`), whose "stored/s" shows how many the receiver got through;
- the server's peak RSS and the machine's core count.

Every trap is a linkDown of its own ifIndex (the service fingerprints a linkDown by host and ifIndex), so
stored rows == traps sent when nothing is lost. The database: `--database-url`, or a fresh database
``bench_<random>`` on the server of postgresql://postgres@127.0.0.1:5432/test, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import BenchDatabase, BenchServer, Snapshot, udp_rmem_max, wait_until_stored
from _udp_sender import SENDER_ENGINE_ID, V3_AUTH_KEY, V3_PRIV_KEY, V3_USER

BENCH = Path(__file__).resolve().parent
RECEIVER_ENGINE_ID = "80001f8880aabbccddeeff0011"
SNMP_RECEIVED = "opsresponder_snmp_traps_received_total"
SNMP_DROPPED = "opsresponder_snmp_traps_dropped_total"
DROPPED = "opsresponder_events_dropped_total"
DEDUPLICATED = "opsresponder_events_deduplicated_total"


# The webhook probe --------------------------------------------------------------------------------------
@dataclass
class Latencies:
    seconds: list[float] = field(default_factory=list)
    errors: int = 0

    def ms(self, p: float) -> float:
        """The p-th percentile in milliseconds (nearest rank)."""
        if not self.seconds:
            return float("nan")
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    def summary(self) -> str:
        return (
            f"{len(self.seconds)} requests, p50 {self.ms(50):.1f} ms, p99 {self.ms(99):.1f} ms, "
            f"max {self.ms(100):.1f} ms, errors {self.errors}"
        )


class WebhookProbe:
    """Single events POSTed at a fixed rate on a few keep-alive connections, each answered after commit."""

    def __init__(self, server: BenchServer, rate: float, connections: int = 4) -> None:
        self._host, port = server.events_address.rsplit(":", 1)
        self._port = int(port)
        self._token = server.token()
        self._rate = rate
        self._connections = connections
        self._counter = itertools.count()

    def _request(self) -> bytes:
        n = next(self._counter)
        body = msgspec.json.encode(
            {
                "source": "bench-probe",
                "source_type": "custom",
                "event_type": "notification",
                "severity": "info",
                "host": f"probe-{n % 10}",
                "title": f"Probe {os.getpid()}-{n}",
                "description": "Webhook latency probe of bench/snmp.py",
            }
        )
        head = (
            f"POST /api/v1/events/webhook HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            f"Authorization: Bearer {self._token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    async def run(self, duration: float) -> Latencies:
        """Open loop: request i is due at ``start + i / rate`` whatever came before; a request that finds no
        idle connection opens one, so a slow answer delays nothing but itself."""
        result = Latencies()
        idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        for _ in range(self._connections):
            idle.append(await asyncio.open_connection(self._host, self._port))

        async def connection() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            # Like any HTTP client's pool: a kept-alive connection the server has closed meanwhile (idle
            # past its keep-alive timeout) is dropped, not used for a request that would fail.
            while idle:
                reader, writer = idle.pop()
                if not reader.at_eof():
                    return reader, writer
                writer.close()
            return await asyncio.open_connection(self._host, self._port)

        async def one(due: float) -> None:
            reader, writer = await connection()
            try:
                writer.write(self._request())
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line[15:])
                        for line in head.split(b"\r\n")
                        if line[:15].lower() == b"content-length:"
                    ),
                    0,
                )
                await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError):
                result.errors += 1
                writer.close()
                return
            if head[9:10] == b"2":
                result.seconds.append(time.perf_counter() - due)
            else:
                result.errors += 1
            idle.append((reader, writer))

        start = time.perf_counter()
        async with asyncio.TaskGroup() as tasks:
            for i in range(int(duration * self._rate)):
                due = start + i / self._rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                tasks.create_task(one(due))
        for _, writer in idle:
            writer.close()
        return result


# Trap loads ---------------------------------------------------------------------------------------------
@dataclass
class Phase:
    label: str
    rate: float
    sender_rate: float
    sender_seconds: float
    sent: int
    received: int
    stored: int
    deduplicated: int
    drops: dict[str, int]
    socket_drops: int
    rcvbuf_errors: int
    catch_up: float
    cpu_percent: float
    probe: Latencies

    @property
    def loss(self) -> int:
        return max(self.sent - self.stored - self.deduplicated, 0)

    @property
    def loss_pct(self) -> float:
        return 100.0 * self.loss / self.sent if self.sent else 0.0


async def run_sender(target: str, kind: str, rate: float, duration: float) -> dict[str, float]:
    argv = [target, "--kind", kind, "--rate", str(rate), "--duration", str(duration)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(BENCH / "_udp_sender.py"), *argv, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"the trap sender failed with exit code {proc.returncode}")
    result: dict[str, float] = json.loads(out)
    return result


async def trap_phase(
    server: BenchServer,
    database_url: str,
    label: str,
    kind: str,
    rate: float,
    duration: float,
    probe_rate: float,
) -> Phase:
    target = server.address_of("snmp")
    port = int(target.rsplit(":", 1)[1])
    before = await Snapshot.take(server, database_url, port, source_type="snmp")
    sent, probe = await asyncio.gather(
        run_sender(target, kind, rate, duration), WebhookProbe(server, probe_rate).run(duration)
    )
    stopped = time.monotonic()
    cpu_percent = 100 * (server.cpu_seconds() - before.cpu) / (stopped - before.at)
    expected = before.stored + int(sent["sent"])
    stored, caught_up = await wait_until_stored(server, database_url, expected, source_type="snmp")
    after = await Snapshot.take(server, database_url, port, source_type="snmp")
    drops = {f"snmp:{k}": n for k, n in after.grew_by(before, SNMP_DROPPED, "reason").items()}
    drops |= {f"pipeline:{k}": n for k, n in after.grew_by(before, DROPPED, "stage", "reason").items()}
    drops.pop("snmp:intake_full", None)  # the same events as pipeline:intake/intake_full
    return Phase(
        label=label,
        rate=rate,
        sender_rate=sent["rate"],
        sender_seconds=sent["seconds"],
        sent=int(sent["sent"]),
        received=after.grew(before, SNMP_RECEIVED),
        stored=stored - before.stored,
        deduplicated=after.grew(before, DEDUPLICATED, source="snmp"),
        drops=drops,
        socket_drops=after.socket_drops - before.socket_drops,
        rcvbuf_errors=after.rcvbuf_errors - before.rcvbuf_errors,
        catch_up=max(caught_up - stopped, 0.0),
        cpu_percent=cpu_percent,
        probe=probe,
    )


def print_phases(phases: list[Phase], idle: Latencies, duration: float) -> None:
    print(
        f"\nTraps for {duration:g} s per version, through the pipeline into PostgreSQL, webhook probe running"
    )
    print(
        f"{'traps':<12} {'target/s':>8} {'sent/s':>7} {'sent':>8} {'received':>8} {'stored':>8} {'dedup':>6} "
        f"{'loss':>7} {'loss %':>7} {'stored/s':>8} {'sock drops':>10} {'RcvbufErr':>9} {'catch-up s':>10} "
        f"{'CPU %':>5} {'probe p50':>9} {'p99 ms':>7}"
    )
    for p in phases:
        print(
            f"{p.label:<12} {p.rate:8,.0f} {p.sender_rate:7,.0f} {p.sent:8,} {p.received:8,} {p.stored:8,} "
            f"{p.deduplicated:6,} {p.loss:7,} {p.loss_pct:7.3f} {p.stored / p.sender_seconds:8,.0f} "
            f"{p.socket_drops:10,} {p.rcvbuf_errors:9,} {p.catch_up:10.1f} {p.cpu_percent:5.0f} "
            f"{p.probe.ms(50):9.1f} {p.probe.ms(99):7.1f}"
        )
    for p in phases:
        print(f"  {p.label}: drops by reason {p.drops or '{}'}; probe {p.probe.summary()}")
        if p.sender_rate < 0.98 * p.rate:
            print(f"  {p.label}: the sender reached only {p.sender_rate:,.0f}/s of {p.rate:,.0f}/s")
    print("sock drops: the kernel's drops for the trap socket (/proc/net/udp); RcvbufErr: the whole")
    print("namespace's RcvbufErrors delta (/proc/net/snmp), which also counts other processes' sockets;")
    print("catch-up: from the sender's end to the last row stored; CPU %: the server's, while the sender ran")
    v2c = next((p for p in phases if p.label.startswith("v2c")), None)
    if v2c is not None:
        ratio = v2c.probe.ms(99) / idle.ms(99)
        print(
            f"v2c at {v2c.rate:,.0f}/s: loss {v2c.loss:,} ({v2c.loss_pct:.3f}%), webhook p99 "
            f"{v2c.probe.ms(99):.1f} ms = {ratio:.2f}x idle {idle.ms(99):.1f} ms "
            "(issue 3 targets: >= 2,000/s with 0 loss, p99 <= 2x idle)"
        )


async def main(args: argparse.Namespace) -> None:
    print(
        f"machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"service, sender and PostgreSQL on the same machine; net.core.rmem_max {udp_rmem_max():,} bytes"
    )
    user = {
        "name": V3_USER,
        "auth_protocol": "sha",
        "auth_key": V3_AUTH_KEY,
        "priv_protocol": "aes128",
        "priv_key": V3_PRIV_KEY,
        "engine_ids": [SENDER_ENGINE_ID],
    }
    async with BenchDatabase(args.database_url) as database_url:
        server = BenchServer(
            database_url=database_url,
            OPSRESPONDER_SNMP__ENABLED="true",
            OPSRESPONDER_SNMP__HOST="127.0.0.1",
            OPSRESPONDER_SNMP__PORT="0",
            OPSRESPONDER_SNMP__ENGINE_ID=RECEIVER_ENGINE_ID,
            OPSRESPONDER_SNMP__V3_USERS=json.dumps([user]),
        )
        print(
            f"service ready in {server.start():.1f} s on database {database_url.rsplit('/', 1)[1]}; "
            f"log {server.data_dir / 'server.log'}"
        )
        try:
            idle = await WebhookProbe(server, args.probe_rate).run(args.duration)
            print(f"\nwebhook probe at rest, {args.probe_rate:g} single events/s: {idle.summary()}")
            plan = [("v2c", "v2c", args.rate), ("v1", "v1", args.v1_rate or args.rate)]
            plan.append(("v3 authPriv", "v3", args.v3_rate or args.rate))
            phases = []
            for label, kind, rate in plan:
                phase = await trap_phase(
                    server, database_url, label, kind, rate, args.duration, args.probe_rate
                )
                phases.append(phase)
                print(f"  ... {label} done: sent {phase.sent:,}, stored {phase.stored:,}", flush=True)
            print_phases(phases, idle, args.duration)
            print(f"\nserver: peak RSS {server.peak_rss_mb():.0f} MiB; machine cores {os.cpu_count()}")
        finally:
            print(f"server exit code on SIGTERM: {server.stop()}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=2000, help="v2c traps per second (2000)")
    parser.add_argument("--v1-rate", type=float, help="v1 traps per second (default: --rate)")
    parser.add_argument("--v3-rate", type=float, help="v3 authPriv traps per second (default: --rate)")
    parser.add_argument("--duration", type=float, default=60, help="seconds per phase (60)")
    parser.add_argument("--probe-rate", type=float, default=20, help="webhook probe requests per second (20)")
    parser.add_argument("--database-url", help="an existing database (default: a fresh one, dropped after)")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
