"""The enrich stage's cost: µs per event over a realistic mix, with and without the asset service cache.

Run: ``python bench/enrich.py [--hosts 10000] [--events 100000] [--batch 500] [--rounds 3]``.

The inventory is written like a real one: 2,000 exact host names, 200 globs (``web-17-*``) and 100
networks; events come from ``--hosts`` hosts (half named exactly, a third matched by a glob, the rest
IP addresses in the networks or unknown), about a fifth of them carrying a business-hours calendar. The
figure is this thread's CPU time per event, the median over batches, best of ``--rounds``, the
calibration line of bench/syslog_parsers.py printed alongside. The issue's target: the four new stages
(enrich, noise, correlate, score) together at most 25 µs per event where the calibration reads 30 ns.

"cold" is the first pass over the hosts (every distinct host matched once, then remembered); "warm" is
the steady state (a dict lookup per event); "service" adds the asset service cache consulted first.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry
from syslog_parsers import print_machine

from opsresponder.config import AssetServiceConfig, EnrichmentConfig
from opsresponder.core.batch import Batch
from opsresponder.core.event import Event, EventState
from opsresponder.core.severity import Severity
from opsresponder.pipeline.enrich import Enrich, build_enrich

ZONES = ["Europe/Paris", "America/New_York", "Asia/Tokyo", "UTC"]


def write_inventory(path: Path, rng: random.Random) -> None:
    lines = ["assets:"]
    for i in range(2000):
        hours = ""
        if i % 5 == 0:
            hours = f', business_hours: {{start: "09:00", end: "18:00", timezone: {rng.choice(ZONES)}}}'
        lines.append(
            f"  host-{i:05d}.example.com: {{criticality: high, team: t{i % 40}, tags: [a, b]{hours}}}"
        )
    for i in range(200):
        lines.append(f'  "web-{i}-*": {{criticality: medium, group: web-{i}}}')
    for i in range(100):
        lines.append(f'  "10.{i}.0.0/16": {{criticality: low, group: dc-{i}}}')
    path.write_text("\n".join(lines) + "\n")


def make_hosts(rng: random.Random, count: int) -> list[str]:
    hosts: list[str] = []
    for i in range(count):
        pick = i % 6
        if pick < 3:
            hosts.append(f"host-{rng.randrange(2500):05d}.example.com")  # a fifth of these unknown
        elif pick < 5:
            hosts.append(f"web-{rng.randrange(250)}-{rng.randrange(100)}")
        else:
            hosts.append(f"10.{rng.randrange(120)}.{rng.randrange(256)}.{rng.randrange(256)}")
    return hosts


def make_events(rng: random.Random, hosts: list[str], count: int) -> list[Event]:
    start = datetime(2025, 3, 3, tzinfo=UTC)
    return [
        Event(
            source="bench", source_type="custom", event_type="alert", severity=Severity.HIGH, title="x",
            occurred_at=start + timedelta(seconds=rng.randrange(7 * 86400)), received_at=start,
            host=rng.choice(hosts), state=EventState.PROBLEM,
        )
        for _ in range(count)
    ]  # fmt: skip


async def per_event_us(stage: Enrich, events: list[Event], batch_size: int) -> float:
    samples: list[float] = []
    for i in range(0, len(events), batch_size):
        chunk = events[i : i + batch_size]
        for event in chunk:
            event.metadata = {}
        batch = Batch(chunk)
        started = time.thread_time_ns()
        await stage.run(batch)
        samples.append((time.thread_time_ns() - started) / len(chunk) / 1000)
    return statistics.median(samples)


async def main_async(args: argparse.Namespace) -> None:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "assets.yaml"
        write_inventory(path, rng)
        hosts = make_hosts(rng, args.hosts)
        events = make_events(rng, hosts, args.events)
        print_machine()
        for name, service in (("inventory", False), ("service", True)):
            best_cold = best_warm = float("inf")
            for _ in range(args.rounds):
                config = EnrichmentConfig(
                    assets_file=str(path),
                    asset_service=AssetServiceConfig(url="http://127.0.0.1:9/assets" if service else None),
                )
                stage = build_enrich(config, CollectorRegistry())
                await stage.inventory.load()
                if stage.service is not None:
                    # Every host cached (a fifth of them found): the steady state of a healthy service.
                    stage.service.fetch = lambda hosts: None  # type: ignore[method-assign]
                    for host in hosts[::5]:
                        entry = stage.inventory.current.resolve(host, None).entry
                        if entry is not None:
                            stage.service._remember(host, entry, 3600)
                    for host in hosts:
                        if host not in stage.service._cache:
                            stage.service._remember(host, None, 3600)
                best_cold = min(best_cold, await per_event_us(stage, events, args.batch))
                best_warm = min(best_warm, await per_event_us(stage, events, args.batch))
                await stage.stop()
            print(f"enrich ({name}): cold {best_cold:.2f} µs/event, warm {best_warm:.2f} µs/event "
                  f"({args.hosts} hosts, {args.events} events, batches of {args.batch})")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main_async(parser.parse_args()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
