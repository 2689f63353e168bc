"""Realistic event storms for the correlation tests, with their truth, and the measures the tests keep.

Events carry ``metadata.asset`` (group, depends_on) as the ``enrich`` stage sets it, and most carry
``metadata.pattern`` as the ``patterns`` stage would (computed here by `test_pattern`, a masking helper of
the tests); the application-error incident and the noise leave it out, so the engine's own fallback
(masking the title) is exercised too.

The storms (times relative to `T0`):

- ``switch``: sw-core-1 reports linkDown; 20 hosts behind it (``depends_on: [sw-core-1]``, asset group
  rack-12) report connectivity errors over the next 3 minutes. Root: the linkDown.
- ``disk``: db-7 fills its disk over 45 minutes, a warning every 5 minutes, some repeated word for word
  (duplicates), ending in "No space left on device". No root.
- ``app_error``: the same NullPointerException on 10 independent web hosts (different asset groups, no
  service in common) within 4 minutes. No root.
- ``postgres`` and ``kafka``, in the same minute: db-main's PostgreSQL stops accepting connections and 5
  billing hosts (``depends_on: [postgres]``, a service) fail to connect; meanwhile two Kafka brokers report
  under-replicated partitions. Root of ``postgres``: db-main's event.
- ``redis``: 4 API hosts lose their Redis connection, and redis-1's own event arrives 40 s after the first
  of them (the root comes late). Root: redis-1's event.
- noise: 140 events on 80 other hosts over 5 hours, 40 kinds of message, severities info to medium; each
  its own incident.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import combinations
from typing import Any

from opsresponder.core.event import Event, compute_fingerprint
from opsresponder.core.severity import Severity

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

_MASK = (
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"), "<IP>"),
    (re.compile(r"(?:/[\w.\-]+)+"), "<PATH>"),
    (re.compile(r"\d+"), "<NUM>"),
)


def test_pattern(text: str) -> dict[str, str]:
    """``metadata.pattern`` as the patterns stage would set it: a masked template and a hash id."""
    template = text
    for pattern, token in _MASK:
        template = pattern.sub(token, template)
    return {"id": hashlib.blake2b(template.encode(), digest_size=8).hexdigest(), "template": template}


@dataclass
class Scenario:
    """Events in time order, the incident of each (by position) and the true root of some incidents."""

    events: list[Event] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    roots: dict[str, Event] = field(default_factory=dict)

    def add(
        self,
        label: str,
        at: datetime,
        host: str,
        title: str,
        *,
        severity: Severity = Severity.HIGH,
        service: str | None = None,
        event_type: str = "log_error",
        group: str | None = None,
        depends_on: tuple[str, ...] = (),
        tags: tuple[str, ...] = ("production",),
        pattern: bool = True,
        source: str = "syslog-prod",
        root: bool = False,
    ) -> Event:
        metadata: dict[str, Any] = {}
        if group is not None or depends_on:
            metadata["asset"] = {
                "name": host,
                "criticality": "high",
                "environment": "production",
                "owner": None,
                "team": None,
                "tags": list(tags),
                "group": group,
                "depends_on": list(depends_on),
                "business_hours": None,
                "in_business_hours": None,
            }
        if pattern:
            metadata["pattern"] = test_pattern(title)
        event = Event(
            source=source,
            source_type="syslog",
            event_type=event_type,
            severity=severity,
            title=title,
            occurred_at=at,
            received_at=at + timedelta(seconds=1),
            host=host,
            service=service,
            metadata=metadata,
            tags=list(tags),
        )
        event.fingerprint = compute_fingerprint(source, host, service, event_type, title)
        self.events.append(event)
        self.labels.append(label)
        if root:
            self.roots[label] = event
        return event

    def sort(self) -> None:
        order = sorted(range(len(self.events)), key=lambda i: self.events[i].occurred_at)
        self.events = [self.events[i] for i in order]
        self.labels = [self.labels[i] for i in order]


def build(seed: int = 7, t0: datetime = T0) -> Scenario:
    rng = random.Random(seed)
    s = Scenario()
    _switch(s, rng, t0)
    _disk(s, rng, t0 - timedelta(minutes=40))
    _app_error(s, rng, t0 + timedelta(minutes=60))
    _postgres_and_kafka(s, rng, t0 + timedelta(minutes=120))
    _redis_late_root(s, rng, t0 + timedelta(minutes=180))
    _noise(s, rng, t0 - timedelta(minutes=60), minutes=300)
    s.sort()
    return s


def _switch(s: Scenario, rng: random.Random, t: datetime) -> None:
    s.add(
        "switch",
        t,
        "sw-core-1",
        "Interface GigabitEthernet0/1 linkDown (ifIndex 10101)",
        source="snmp-traps",
        event_type="connectivity_issue",
        group="network-core",
        root=True,
    )
    for n in range(1, 21):
        host = f"app-{n:02d}"
        at = t + timedelta(seconds=rng.randint(15, 180))
        s.add(
            "switch",
            at,
            host,
            f"Connection timed out to 10.0.3.{rng.randint(2, 250)} port 5432 after 3000 ms",
            group="rack-12",
            depends_on=("sw-core-1",),
            service="orders-api",
        )
        if n % 4 == 0:
            s.add(
                "switch",
                at + timedelta(seconds=30),
                host,
                "Health check failed: upstream orders-db unreachable (HTTP 503)",
                group="rack-12",
                depends_on=("sw-core-1",),
                service="orders-api",
                severity=Severity.MEDIUM,
            )


def _disk(s: Scenario, rng: random.Random, t: datetime) -> None:
    usage = 86
    for step in range(10):
        title = f"Filesystem /var/lib/postgresql usage at {usage}% on /dev/sdb1"
        at = t + timedelta(minutes=5 * step, seconds=rng.randint(0, 20))
        kwargs: dict[str, Any] = {
            "service": "postgresql",
            "group": "db-tier",
            "severity": Severity.MEDIUM,
            "event_type": "disk_space_warning",
        }
        s.add("disk", at, "db-7", title, **kwargs)
        if step in (3, 6):  # the same warning again a minute later: a duplicate
            s.add("disk", at + timedelta(minutes=1), "db-7", title, **kwargs)
        usage = min(99, usage + rng.randint(1, 2))
    s.add(
        "disk",
        t + timedelta(minutes=48),
        "db-7",
        "could not write to file pg_wal/xlogtemp.1234: No space left on device",
        service="postgresql",
        group="db-tier",
        severity=Severity.CRITICAL,
    )


def _app_error(s: Scenario, rng: random.Random, t: datetime) -> None:
    for n in range(1, 11):
        s.add(
            "app_error",
            t + timedelta(seconds=rng.randint(0, 240)),
            f"web-{n:02d}",
            f"Unhandled java.lang.NullPointerException in CartService.total at line 142 "
            f"(request {rng.randint(10_000, 99_999)})",
            group=f"web-rack-{n}",
            pattern=False,
            tags=("production", f"zone-{n % 3}"),
        )


def _postgres_and_kafka(s: Scenario, rng: random.Random, t: datetime) -> None:
    s.add(
        "postgres",
        t,
        "db-main",
        "PostgreSQL is not accepting connections: the database system is shutting down",
        service="postgres",
        group="db-tier-main",
        severity=Severity.CRITICAL,
        root=True,
    )
    for n in range(1, 6):
        s.add(
            "postgres",
            t + timedelta(seconds=rng.randint(10, 90)),
            f"billing-{n}",
            f'could not connect to server: Connection refused. Is the server running on host "10.1.0.5" '
            f"and accepting TCP/IP connections on port {5432}?",
            service=f"billing-worker-{n}",
            group=f"billing-{n % 2}",
            depends_on=("postgres",),
        )
    for n, broker in enumerate(("kafka-3", "kafka-4")):
        s.add(
            "kafka",
            t + timedelta(seconds=5 + 20 * n),
            broker,
            f"Under-replicated partitions: {12 + n * 3} (topic orders, ISR shrink)",
            service="kafka",
            group="kafka-cluster",
            severity=Severity.MEDIUM,
        )


def _redis_late_root(s: Scenario, rng: random.Random, t: datetime) -> None:
    for n in range(1, 5):
        s.add(
            "redis",
            t + timedelta(seconds=5 * n),
            f"api-{n}",
            f"Redis connection lost to redis-1:6379 (READONLY), retry {rng.randint(1, 5)} of 5",
            service=f"api-{n}",
            group=f"api-pool-{n}",
            depends_on=("redis-1",),
        )
    s.add(
        "redis",
        t + timedelta(seconds=45),
        "redis-1",
        "Redis master lost quorum: MASTER_DOWN, replication halted",
        service="redis",
        group="cache",
        severity=Severity.CRITICAL,
        root=True,
    )


_NOISE_KINDS = [
    ("info", "Accepted publickey for deploy from 10.9.{a}.{b} port {p} ssh2"),
    ("info", "pam_unix(cron:session): session opened for user root by (uid={a})"),
    ("info", "Started Daily apt download activities (run {p})"),
    ("info", "systemd: Reloading nginx.service (pid {p})"),
    ("info", "Health check ok in {a} ms"),
    ("low", "NTP offset {a} ms exceeds soft limit"),
    ("low", "TLS certificate for service-{a}.internal expires in {b} days"),
    ("low", "Slow query took {p} ms on table audit_log_{a}"),
    ("medium", "Swap usage {a}% on host"),
    ("medium", "Packet loss {a}% to gateway 10.{b}.0.1"),
]


def _noise(s: Scenario, rng: random.Random, start: datetime, minutes: int) -> None:
    kinds = [(sev, text + f" [{k}]") for k in range(4) for sev, text in _NOISE_KINDS]
    for i in range(140):
        severity, text = rng.choice(kinds)
        title = text.format(a=rng.randint(1, 99), b=rng.randint(1, 250), p=rng.randint(1000, 65000))
        s.add(
            f"noise-{i}",
            start + timedelta(seconds=rng.randint(0, minutes * 60)),
            f"noise-{rng.randint(1, 80):02d}",
            title,
            severity=Severity(severity),
            group=None,
            pattern=False,
            tags=("production",),
            event_type="log_message",
        )


@dataclass(frozen=True)
class Measures:
    precision: float
    recall: float
    f1: float
    root_top1: float
    groups: int

    def line(self) -> str:
        return (
            f"pairwise precision {self.precision:.3f} recall {self.recall:.3f} F1 {self.f1:.3f}, "
            f"root-cause top-1 {self.root_top1:.2f}, {self.groups} groups"
        )


def measure(labels: Sequence[str], groups: Sequence[object], root_hits: int, root_total: int) -> Measures:
    """Pairwise grouping precision/recall/F1 of `groups` (predicted, by position) against `labels`."""
    true_pairs = predicted_pairs = both = 0
    for i, j in combinations(range(len(labels)), 2):
        same_true = labels[i] == labels[j]
        same_predicted = groups[i] == groups[j]
        true_pairs += same_true
        predicted_pairs += same_predicted
        both += same_true and same_predicted
    precision = both / predicted_pairs if predicted_pairs else 1.0
    recall = both / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Measures(precision, recall, f1, root_hits / root_total if root_total else 1.0, len(set(groups)))


def majority_group(labels: Sequence[str], groups: Sequence[object], label: str) -> object:
    """The predicted group holding most of incident `label`'s events."""
    counts = Counter(g for lab, g in zip(labels, groups, strict=True) if lab == label)
    return counts.most_common(1)[0][0]


def webhook_body(event: Event) -> dict[str, Any]:
    """`event` as the generic webhook's body (what a sender posts)."""
    body: dict[str, Any] = {
        "source": event.source,
        "source_type": event.source_type,
        "event_type": event.event_type,
        "severity": event.severity.value,
        "title": event.title,
        "timestamp": event.occurred_at.isoformat(),
        "host": event.host,
        "metadata": event.metadata,
        "tags": event.tags,
    }
    if event.service is not None:
        body["service"] = event.service
    return body
