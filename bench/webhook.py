"""Webhook ingest benchmark: the service in one process, wrk (C, Lua-scripted) as the load generator.

    python bench/webhook.py [--duration 60] [--database-url postgresql://...]

Scenarios, each printing events/s, latency p50/p95/p99/max, errors, and the server's CPU per event:
- single events on 32 keep-alive connections, a mix of new (70%) and repeated (30%) events across 1,000
  hosts (bench/webhook_mix.lua);
- JSON arrays of 100 such events on 8 connections;
then the server's peak RSS, and the time from start to /ready on an existing embedded database.
Every event answered 200 was committed before its answer: that is the service's contract.
Needs wrk (Debian package `wrk`).

    python bench/webhook.py --compare-trace [--rounds 2] [--duration 20]

measures what the decision trace costs instead: the arrays scenario with ``pipeline.trace`` on and off,
alternating (on, off, on, off...) with a fresh server and database (PostgreSQL at 127.0.0.1:5432) each,
so that a change of load on the machine touches both alike; it prints each run and the medians' ratios.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import BenchDatabase, BenchServer

SCRIPT = Path(__file__).resolve().parent / "webhook_mix.lua"
_RESULT = re.compile(
    r"RESULT requests=(\d+) duration_us=(\d+) non2xx=(\d+) errors=(\d+) "
    r"p50_us=(\d+) p95_us=(\d+) p99_us=(\d+) max_us=(\d+)"
)


@dataclass
class WrkResult:
    requests: int
    seconds: float
    non_2xx: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def run_wrk(server: BenchServer, *, connections: int, duration: float, batch: int) -> WrkResult:
    env = {**os.environ, "TOKEN": server.token(), "BATCH": str(batch)}
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", "-s", str(SCRIPT)]
    out = subprocess.run([*argv, f"http://{server.events_address}"], env=env, capture_output=True, text=True)
    m = _RESULT.search(out.stdout)
    if m is None:
        raise RuntimeError(f"wrk printed no result: {out.stdout}\n{out.stderr}")
    n = [int(g) for g in m.groups()]
    return WrkResult(n[0], n[1] / 1e6, n[2], n[3], n[4] / 1e3, n[5] / 1e3, n[6] / 1e3, n[7] / 1e3)


def scenario(
    server: BenchServer, label: str, *, connections: int, duration: float, batch: int
) -> tuple[float, float]:
    """Run one load and print it; returns events/s and the server's CPU µs per event."""
    cpu_before = server.cpu_seconds()
    r = run_wrk(server, connections=connections, duration=duration, batch=batch)
    cpu = server.cpu_seconds() - cpu_before
    events = r.requests * batch
    print(
        f"{label}: {events / r.seconds:,.0f} events/s ({r.requests / r.seconds:,.0f} requests/s) over "
        f"{r.seconds:.0f} s; errors {r.errors}, non-2xx {r.non_2xx}; latency ms p50 {r.p50_ms:.1f} "
        f"p95 {r.p95_ms:.1f} p99 {r.p99_ms:.1f} max {r.max_ms:.1f}; "
        f"server CPU {1e6 * cpu / max(events, 1):.0f} µs/event ({cpu / r.seconds:.2f} cores)"
    )
    return events / r.seconds, 1e6 * cpu / max(events, 1)


def compare_trace(args: argparse.Namespace) -> None:
    """The arrays scenario with the decision trace on and off, alternating; medians and their ratios."""
    results: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for _ in range(args.rounds):
        for trace in (True, False):
            with BenchDatabase() as url:
                server = BenchServer(database_url=url, OPSRESPONDER_PIPELINE__TRACE=str(trace).lower())
                server.start()
                try:
                    results[trace].append(
                        scenario(
                            server,
                            f"trace {'on ' if trace else 'off'}: arrays of {args.batch_size}, "
                            f"{args.batch_connections} connections",
                            connections=args.batch_connections,
                            duration=args.duration,
                            batch=args.batch_size,
                        )
                    )
                finally:
                    server.stop()
    rate = {k: statistics.median(r for r, _ in v) for k, v in results.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in results.items()}
    print(
        f"trace on / off (medians of {args.rounds}): {rate[True]:,.0f} / {rate[False]:,.0f} events/s "
        f"(rate x{rate[True] / rate[False]:.3f}); server CPU {cpu[True]:.0f} / {cpu[False]:.0f} µs/event "
        f"(cost x{cpu[True] / cpu[False]:.3f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--batch-connections", type=int, default=8)
    parser.add_argument("--database-url", help="use this PostgreSQL instead of the embedded one")
    parser.add_argument("--compare-trace", action="store_true", help="trace on vs off (arrays only)")
    parser.add_argument("--rounds", type=int, default=2, help="with --compare-trace: runs of each")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/webhook.py needs wrk (apt-get install wrk)")
    if args.compare_trace:
        print(f"machine: {os.cpu_count()} cores; server, PostgreSQL and wrk on the same machine")
        compare_trace(args)
        return

    print(f"machine: {os.cpu_count()} cores; server, PostgreSQL and wrk on the same machine")
    server = BenchServer(database_url=args.database_url)
    first_start = server.start()
    where = "external" if args.database_url else "embedded"
    print(f"database: {where}; first start to /ready {first_start:.2f} s")
    try:
        scenario(
            server,
            f"single events, {args.connections} connections",
            connections=args.connections,
            duration=args.duration,
            batch=1,
        )
        print(f"server peak RSS so far: {server.peak_rss_mb():.0f} MiB")
        scenario(
            server,
            f"arrays of {args.batch_size}, {args.batch_connections} connections",
            connections=args.batch_connections,
            duration=args.duration,
            batch=args.batch_size,
        )
        print(f"server peak RSS: {server.peak_rss_mb():.0f} MiB (now {server.rss_mb():.0f} MiB)")
    finally:
        print(f"server exit code on SIGTERM: {server.stop()}")
    if not args.database_url:
        again = BenchServer(data_dir=server.data_dir)
        print(f"restart on the existing embedded database: start to /ready {again.start():.2f} s")
        again.stop()


if __name__ == "__main__":
    main()
