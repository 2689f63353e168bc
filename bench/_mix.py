"""A realistic event mix for the pipeline benchmarks: 10,000 hosts, 200 message templates, 20% storms.

Hosts are ``rNNN-hNN``: 200 racks of 50 hosts, each rack behind its switch ``sw-rNNN``; the inventory
written by `write_inventory` says so (a glob per rack with its group and ``depends_on`` the switch), so
enrichment, causal and time-based correlation all have something real to work on.

80% of the events are background: a random host, one of 200 templates with its variable parts filled in
(numbers, addresses, paths), a severity mostly low. The other 20% come in storms, one of:
- a switch's linkDown, then connectivity errors from 20-40 hosts of its rack within a minute;
- one application error on 10 independent hosts;
- a disk filling on one host: the same warning repeated (duplicates once stored).
Timestamps advance at `rate` events per second of simulated time, from `start`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opsresponder.core.event import Event
from opsresponder.core.severity import Severity

RACKS = 200
HOSTS_PER_RACK = 50
TEMPLATES = 200
STORM_SHARE = 0.2
SERVICES = [f"svc-{i:02d}" for i in range(30)]
_SEVERITIES = ["info", "low", "low", "low", "medium", "medium", "high", "critical"]
_EVENT_TYPES = [
    "threshold_breach",
    "connectivity_issue",
    "authentication_failure",
    "disk_space_critical",
    "system_restart",
    "application_error",
    "notification",
]
_WORDS = [
    "connection", "request", "worker", "queue", "cache", "session", "backend", "upstream", "socket",
    "handler", "pool", "lease", "replica", "index", "segment", "shard", "token", "client", "server",
    "process", "thread", "buffer", "transaction", "journal",
]  # fmt: skip
_VERBS = [
    "timed out", "failed", "refused", "reset", "exceeded limit", "was dropped", "is degraded",
    "restarted", "retrying",
]  # fmt: skip


def host_name(rack: int, n: int) -> str:
    return f"r{rack:03d}-h{n:02d}"


def switch_name(rack: int) -> str:
    return f"sw-r{rack:03d}"


def _templates(rng: random.Random) -> list[tuple[str, str]]:
    """(event_type, format string) pairs; each format has one to three variable slots."""
    out: list[tuple[str, str]] = []
    slots = ["{n}", "{ip}", "{path}", "{hex}", "{n} ms", "{ip}:{port}"]
    for i in range(TEMPLATES):
        a, b = rng.sample(_WORDS, 2)
        verb = rng.choice(_VERBS)
        parts = [f"{a.capitalize()} {b} {verb}"]
        for _ in range(rng.randint(1, 3)):
            parts.append(f"{rng.choice(['on', 'for', 'after', 'to', 'at'])} {rng.choice(slots)}")
        out.append((_EVENT_TYPES[i % len(_EVENT_TYPES)], " ".join(parts)))
    return out


def _fill(rng: random.Random, fmt: str) -> str:
    return fmt.format(
        n=rng.randint(1, 99_999),
        ip=f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        port=rng.randint(1024, 65535),
        path=f"/var/lib/app{rng.randint(1, 9)}/data/{rng.randint(1, 999)}.db",
        hex=f"0x{rng.getrandbits(32):08x}",
    )


def events(
    count: int, *, seed: int = 7, rate: float = 1000.0, start: datetime | None = None
) -> Iterator[Event]:
    """`count` events of the mix, in time order."""
    rng = random.Random(seed)
    templates = _templates(rng)
    now = start or datetime.now(UTC) - timedelta(seconds=count / rate)
    step = timedelta(seconds=1 / rate)
    produced = 0
    while produced < count:
        if rng.random() < STORM_SHARE / 25:  # storms average ~25 events each: 20% of the mix in all
            storm = list(_storm(rng, templates, now))
        else:
            storm = [_background(rng, templates, now)]
        for event in storm:
            if produced >= count:
                return
            now += step
            event.occurred_at = event.received_at = now
            produced += 1
            yield event


def _event(host: str, event_type: str, severity: str, title: str, now: datetime, **kw: object) -> Event:
    return Event(
        source="bench",
        source_type="custom",
        event_type=event_type,
        severity=Severity(severity),
        title=title,
        host=host,
        occurred_at=now,
        received_at=now,
        **kw,  # type: ignore[arg-type]
    )


def _background(rng: random.Random, templates: list[tuple[str, str]], now: datetime) -> Event:
    event_type, fmt = rng.choice(templates)
    host = host_name(rng.randrange(RACKS), rng.randrange(HOSTS_PER_RACK))
    return _event(
        host,
        event_type,
        rng.choice(_SEVERITIES),
        _fill(rng, fmt),
        now,
        service=rng.choice(SERVICES),
        metadata={"cpu_usage": round(rng.random() * 100, 1)},
    )


def _storm(rng: random.Random, templates: list[tuple[str, str]], now: datetime) -> Iterator[Event]:
    kind = rng.random()
    if kind < 0.5:
        rack = rng.randrange(RACKS)
        link = f"Interface Gi0/{rng.randint(1, 48)} linkDown"
        yield _event(switch_name(rack), "connectivity_issue", "critical", link, now)
        gateway = f"10.{rack % 256}.0.1"
        for n in rng.sample(range(HOSTS_PER_RACK), rng.randint(20, 40)):
            title = f"Connection to {gateway} timed out"
            yield _event(host_name(rack, n), "connectivity_issue", "high", title, now, service="net")
    elif kind < 0.8:
        _, fmt = rng.choice(templates)
        title = _fill(rng, fmt)
        for _ in range(10):
            host = host_name(rng.randrange(RACKS), rng.randrange(HOSTS_PER_RACK))
            yield _event(host, "application_error", "high", title, now, service=rng.choice(SERVICES))
    else:
        host = host_name(rng.randrange(RACKS), rng.randrange(HOSTS_PER_RACK))
        for _ in range(rng.randint(10, 30)):
            title = "Filesystem /var is 91% full"
            yield _event(host, "disk_space_critical", "medium", title, now, service="disk")


def write_inventory(path: Path) -> Path:
    """The mix's inventory: a glob per rack (its group, depending on the rack's switch), the switches."""
    lines = ["assets:"]
    for rack in range(RACKS):
        criticality = ("critical", "high", "medium", "low")[rack % 4]
        environment = ("production", "production", "staging", "dev")[rack % 4]
        lines += [
            f'  "r{rack:03d}-*":',
            f"    criticality: {criticality}",
            f"    environment: {environment}",
            f"    team: team-{rack % 12}",
            f"    group: rack-{rack:03d}",
            f"    depends_on: [{switch_name(rack)}]",
            f'  "{switch_name(rack)}":',
            "    criticality: critical",
            "    environment: production",
            "    team: network",
            f"    group: rack-{rack:03d}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path
