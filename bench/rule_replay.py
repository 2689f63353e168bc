"""The ``estimated_trigger_rate`` replay over 1,000,000 stored events: seconds per rule.

Run: ``python bench/rule_replay.py [--events 1000000] [--database-url URL] [--keep NAME] [--rounds 2]``.

Target (issue 16): at most 5 s per replay over 1,000,000 stored events. The database is a new one on the
server of ``--database-url`` (default: OPSRESPONDER_TEST_DATABASE_URL), migrated, filled by binary COPY
with seven days of events (60 event types, 6 sources, 100 hosts, metadata with numeric metrics, 2%
suppressed, a heartbeat per host every 10 minutes), analyzed, and dropped at the end (``--keep NAME``
keeps it and reuses it on the next run). Each rule is replayed as ``POST /api/v1/rules/triggers`` does it
(`RuleHistory.estimate`), over every severity (``rules.min_severity: info``, the most rows to replay);
the time printed is the wall time of the best of ``--rounds``, with the rows PostgreSQL returned (the
matches, or a superset when the conditions cannot be pushed down exactly) and the rate text. The
machine line and the calibration of bench/syslog_parsers.py are printed alongside.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
from syslog_parsers import print_machine

from opsresponder.core.event import compute_fingerprint
from opsresponder.rules.triggers import TriggerRuleBody, compile_rule
from opsresponder.store.event_columns import EVENT_COLUMNS
from opsresponder.store.migrations import migrate
from opsresponder.store.pool import create_pool
from opsresponder.store.rule_history import RuleHistory

TARGET_SECONDS = 5.0
DAYS = 7
EVENT_TYPES = [
    f"{kind}_{n}" for kind in ("threshold_breach", "service_down", "auth_failure") for n in range(20)
]
SOURCES = ["prometheus", "zabbix", "syslog", "snmp", "datadog", "custom"]
HOSTS = [f"{role}-{n:02d}" for role in ("web-server", "db", "cache", "worker") for n in range(25)]
SERVICES = ["nginx", "postgres", "redis", "api", "batch"]
# Severity shares of a real feed: mostly low and info, few critical.
LEVELS = ["critical"] * 3 + ["high"] * 12 + ["medium"] * 25 + ["low"] * 30 + ["info"] * 30
RULES: dict[str, dict[str, Any]] = {
    "spec example (pushed down)": {
        "conditions": {
            "event_type": "threshold_breach_3",
            "severity": ["critical", "high"],
            "metadata.cpu_usage": {"$gt": 90},
            "host": {"$regex": "web-server-.*"},
        },
        "time_window_minutes": 5,
        "max_triggers_per_hour": 3,
        "cooldown_minutes": 15,
    },
    "severity >= high, 5 in 10 min per host": {
        "conditions": {"severity": {"$gte": "high"}},
        "time_window_minutes": 10,
        "threshold": 5,
        "group_by": ["host"],
        "cooldown_minutes": 30,
    },
    "RE2-only regex (\\d, not pushed down)": {
        "conditions": {"source": ["syslog", "snmp"], "title": {"$regex": r"on db-\d+"}},
        "group_by": ["host"],
        "cooldown_minutes": 10,
    },
    "heartbeat absence per host": {
        "conditions": {"event_type": "heartbeat"},
        "group_by": ["host"],
        "absence": {"within_minutes": 30, "expected_groups": ["db-99"]},
    },
    "every event (worst case)": {
        "conditions": {},
        "group_by": ["metadata.region"],
        "max_triggers_per_hour": 10,
    },
}


def records(count: int, now: datetime, rng: random.Random) -> list[tuple[Any, ...]]:
    """`count` event rows over the last `DAYS` days, in `EVENT_COLUMNS` order, oldest first."""
    start = now - timedelta(days=DAYS) + timedelta(minutes=1)
    span = (timedelta(days=DAYS) - timedelta(minutes=2)).total_seconds()
    beats_per_host = int(span // 600)
    beats = min(count // 10, beats_per_host * len(HOSTS))
    out: list[tuple[Any, ...]] = []
    for i in range(count):
        if i < beats:
            host = HOSTS[i % len(HOSTS)]
            at = start + timedelta(seconds=600 * (i // len(HOSTS)) + rng.random())
            fields = {"source": "custom", "event_type": "heartbeat", "severity": "info", "host": host}
            title, metadata = "heartbeat", {}
        else:
            host = rng.choice(HOSTS)
            at = start + timedelta(seconds=rng.random() * span)
            fields = {
                "source": rng.choice(SOURCES),
                "event_type": rng.choice(EVENT_TYPES),
                "severity": rng.choice(LEVELS),
                "host": host,
            }
            title = f"{rng.choice(['High CPU', 'Disk full', 'Service down'])} on {host}"
            metadata = {
                "cpu_usage": round(rng.uniform(0, 100), 1),
                "memory_usage": round(rng.uniform(0, 100), 1),
                "region": rng.choice(["eu-west", "us-east", "ap-south"]),
            }
        values: dict[str, Any] = {
            **fields,
            "source_type": "custom",
            "title": title,
            "occurred_at": at,
            "received_at": at,
            "service": rng.choice(SERVICES),
            "description": None,
            "metadata": metadata,
            "tags": [],
            "state": "problem",
            "raw": None,
            "id": i + 1,
            "fingerprint": compute_fingerprint(fields["source"], host, None, fields["event_type"], title),
            "correlation_id": uuid.uuid4(),
            "processed_at": at,
            "duplicate_count": 0,
            "last_seen_at": at,
            "score": None,
            "suppressed_reason": "silenced" if rng.random() < 0.02 else None,
        }
        out.append(tuple(values[c] for c in EVENT_COLUMNS))
    # Stored as a service stores them: in arrival order, so the table's physical order is time order.
    at_index = EVENT_COLUMNS.index("occurred_at")
    out.sort(key=lambda record: record[at_index])
    return out


async def prepare(server_url: str, name: str, count: int, now: datetime) -> tuple[str, bool]:
    """The URL of database `name`, created, migrated and filled unless it already holds `count` events."""
    parts = urlsplit(server_url)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))
    admin = await asyncpg.connect(server_url)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        stored = await conn.fetchval("SELECT count(*) FROM events.events")
        if stored == count:
            newest = await conn.fetchval("SELECT max(occurred_at) FROM events.events")
            if newest is not None and now - newest < timedelta(hours=1):
                return url, False
        await conn.execute("TRUNCATE events.events")
        began = time.perf_counter()
        await conn.set_type_codec(
            "jsonb", schema="pg_catalog", encoder=_jsonb, decoder=bytes, format="binary"
        )
        rows = records(count, now, random.Random(16))
        built = time.perf_counter()
        for i in range(0, len(rows), 100_000):
            await conn.copy_records_to_table(
                "events", schema_name="events", columns=EVENT_COLUMNS, records=rows[i : i + 100_000]
            )
        copied = time.perf_counter()
        await conn.execute("ANALYZE events.events")
        print(
            f"seeded {count:,} events: built in {built - began:.1f} s, COPY {copied - built:.1f} s "
            f"({count / (copied - built):,.0f} rows/s), ANALYZE {time.perf_counter() - copied:.1f} s"
        )
    finally:
        await conn.close()
    return url, True


def _jsonb(value: Any) -> bytes:
    return b"\x01" + msgspec.json.encode(value)


async def drop(server_url: str, name: str) -> None:
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def run(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    name = args.keep or f"opsresponder_bench_replay_{uuid.uuid4().hex[:8]}"
    url, _ = await prepare(args.database_url, name, args.events, now)
    try:
        pool = await create_pool(url, min_size=1, max_size=2, connect_timeout=5, command_timeout=600)
        history = RuleHistory(pool, days=DAYS, timeout_seconds=600, field_sample_events=10_000)
        print_machine()
        print(f"replay over the last {DAYS} days of {args.events:,} stored events, best of {args.rounds}")
        print(f"{'rule':<40} {'seconds':>8} {'rows':>9} {'exact':>6}  rate")
        all_ok = True
        for label, fields in RULES.items():
            rule = compile_rule(msgspec.convert({"name": label, **fields}, TriggerRuleBody))
            best = float("inf")
            estimate = None
            for _ in range(args.rounds):
                began = time.perf_counter()
                estimate = await history.estimate(rule, datetime.now(UTC))
                best = min(best, time.perf_counter() - began)
            assert estimate is not None
            ok = best <= TARGET_SECONDS
            all_ok &= ok
            exact = rule.condition.sql_exact and (rule.after is None or rule.after.sql_exact)
            print(
                f"{label:<40} {best:8.2f} {estimate.replayed_rows:9,} {'yes' if exact else 'no':>6}  "
                f"{estimate.text}{'' if ok else '  OVER TARGET'}"
            )
        print(f"target: at most {TARGET_SECONDS:.0f} s per replay: {'ok' if all_ok else 'OVER TARGET'}")
        await pool.close()
    finally:
        if not args.keep:
            await drop(args.database_url, name)
    return 0 if all_ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--database-url", default=os.environ.get("OPSRESPONDER_TEST_DATABASE_URL"))
    parser.add_argument("--keep", metavar="NAME", help="keep (and reuse) the seeded database NAME")
    args = parser.parse_args()
    if not args.database_url:
        parser.error("--database-url or OPSRESPONDER_TEST_DATABASE_URL is needed")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
