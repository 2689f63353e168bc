"""The write path's CPU floor on this machine: what storing one new event costs before any listener works.

    python bench/write_floor.py [--events 20000] [--batch 500] [--database-url postgresql://...]

Throughput targets (issue 2: 30,000 syslog messages/s over TCP; issue 6: 30,000 events/s in arrays of 100)
are set for a 2-core machine that also runs PostgreSQL and the load generator. This measures the two costs
every stored event pays whatever its source, each on an otherwise idle machine:

- PostgreSQL's: one row in ``events.events`` with its indexes and one in ``events.dedup``, inserted
  server-side from rows made beforehand in a temporary table (no client data, no parsing of parameters),
  by one statement in a transaction that is rolled back: the commit's WAL flush is left out;
- the service's: `EventRepository.store_batch` in batches of `--batch` new events (building the rows,
  asyncpg's binary encoding, the dedup upsert's arrays, COPY), as this process's CPU time, which excludes
  PostgreSQL's; then the pipeline stages (normalize, correlate, score) per event.

The decision trace (``pipeline.trace``) is measured side by side: its rows in PostgreSQL (server-side, as
above), and `store_batch` with and without the trace writer, alternating runs, in this process's CPU and in
wall-clock time per event (which includes PostgreSQL's work and the round trip).

Their sum is a floor: parsing, HTTP, the intake, metrics, answering callers and the load generator all
come on top. It prints the floor and the rate two cores could sustain at that cost alone. The database:
`--database-url` (an empty, migrated one is made in it otherwise), default a fresh ``bench_<random>`` on
postgresql://postgres@127.0.0.1:5432/test, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import BenchDatabase
from syslog_parsers import calibration_ns

from opsresponder.config import ScoringConfig
from opsresponder.core.batch import Batch
from opsresponder.core.clock import utcnow
from opsresponder.core.event import Event, EventState
from opsresponder.core.severity import Severity
from opsresponder.pipeline.stages import Score, correlate, normalize
from opsresponder.store.events import EventRepository
from opsresponder.store.migrations import migrate
from opsresponder.store.pool import create_pool
from opsresponder.store.subscription_outbox import SubscriptionOutbox
from opsresponder.store.traces import TraceWriter
from opsresponder.store.writers import BatchWriter

# Rows like a syslog message's event (unique title, a little metadata, a 32-hex-digit fingerprint), made
# beforehand in a temporary table so that making them is not counted.
_MAKE_ROWS = """
CREATE TEMPORARY TABLE floor_rows ON COMMIT DROP AS
SELECT 1000000000000 + g AS id, 'floor' AS source, 'syslog' AS source_type, 'syslog_message' AS event_type,
    'medium' AS severity, 'problem' AS state, 'web-' || (g % 1000) AS host, 'nginx' AS service,
    'upstream timed out while reading response header ' || g AS title, NULL::text AS description,
    now() AS occurred_at, now() AS received_at, now() AS processed_at, now() AS last_seen_at,
    0 AS duplicate_count, '{"facility": "daemon", "app_name": "nginx", "procid": "1234"}'::jsonb AS metadata,
    '{}'::text[] AS tags, md5('floor' || g) AS fingerprint, gen_random_uuid() AS correlation_id,
    NULL::float8 AS score, NULL::text AS suppressed_reason,
    '<27>1 2026-11-27T06:00:00Z web nginx 1234 - - upstream timed out' AS raw
FROM generate_series(1, $1) AS g
"""
_INSERT_EVENTS = "INSERT INTO events.events SELECT * FROM floor_rows"
_INSERT_DEDUP = (
    "INSERT INTO events.dedup (fingerprint, state, event_id, correlation_id, last_seen_at) "
    "SELECT fingerprint, state, id, correlation_id, last_seen_at FROM floor_rows"
)

# A trace as the default stages leave it for a plain webhook or syslog event (three entries, msgpack).
_TRACE_PAYLOAD = TraceWriter.encode(
    [
        ("normalize", "fingerprint computed from source, host, service, event_type, title"),
        ("noise", "passed: no active silence, not flapping"),
        (
            "score",
            "score 20: severity medium +20, repetition 0 earlier +0; "
            "missing: criticality, environment, correlation, business_hours",
        ),
    ]
)
_INSERT_TRACES = "INSERT INTO events.event_traces SELECT id, $1::bytea FROM floor_rows"


async def server_side_us(
    conn: asyncpg.Connection, statement: str, rows: int, *args: object, before: str | None = None
) -> float:
    """µs per row of `statement` in PostgreSQL, in a transaction rolled back afterwards (so no commit).

    Timed from here: one round trip (well under a millisecond) against hundreds of milliseconds of work.
    """
    tr = conn.transaction()
    await tr.start()
    try:
        await conn.execute(_MAKE_ROWS, rows)
        await conn.execute("ANALYZE floor_rows")
        if before is not None:
            await conn.execute(before)
        started = time.perf_counter()
        await conn.execute(statement, *args)
        seconds = time.perf_counter() - started
    finally:
        await tr.rollback()
    return 1e6 * seconds / rows


def syslog_like(n: int, run: int) -> list[Event]:
    now = utcnow()
    return [
        Event(
            source="floor",
            source_type="syslog",
            event_type="syslog_message",
            severity=Severity.MEDIUM,
            state=EventState.PROBLEM,
            host=f"web-{i % 1000}",
            service="nginx",
            title=f"upstream timed out while reading response header {run}-{i}",
            occurred_at=now,
            received_at=now,
            metadata={"facility": "daemon", "app_name": "nginx", "procid": "1234"},
            raw="<27>1 2026-11-27T06:00:00Z web nginx 1234 - - upstream timed out",
        )
        for i in range(n)
    ]


async def main(args: argparse.Namespace) -> None:
    print(
        f"machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        "run it with nothing else busy"
    )
    print(f"calibration: {calibration_ns():.1f} ns per pure-Python loop iteration (bench/syslog_parsers.py)")
    async with BenchDatabase(args.database_url) as url:
        pool = await create_pool(url, min_size=1, max_size=2, connect_timeout=5, command_timeout=300)
        try:
            conn = await asyncpg.connect(url)
            try:
                await migrate(conn)
                # Three rounds each, the median kept: the first warms the caches.
                events_us = statistics.median(
                    [await server_side_us(conn, _INSERT_EVENTS, args.events) for _ in range(3)]
                )
                dedup_us = statistics.median(
                    [await server_side_us(conn, _INSERT_DEDUP, args.events) for _ in range(3)]
                )
                trace_us = statistics.median(
                    [
                        await server_side_us(
                            conn, _INSERT_TRACES, args.events, _TRACE_PAYLOAD, before=_INSERT_EVENTS
                        )
                        for _ in range(3)
                    ]
                )
            finally:
                await conn.close()
            # With the service's writers: with no subscription, the outbox sends no query (one per second at
            # most). Runs alternate between without and with the trace writer, so that a load change on the
            # machine touches both alike.
            scores = {False: Score(ScoringConfig(), trace=False), True: Score(ScoringConfig())}
            plain = EventRepository(pool, dedup_window=timedelta(minutes=5), writers=[SubscriptionOutbox()])
            writers: list[BatchWriter] = [SubscriptionOutbox(), TraceWriter()]
            traced = EventRepository(pool, dedup_window=timedelta(minutes=5), writers=writers)
            stage_cpu = {False: 0.0, True: 0.0}
            store_cpu = {False: 0.0, True: 0.0}
            store_wall = {False: 0.0, True: 0.0}
            stored = {False: 0, True: 0}
            for run in range(max(2, 2 * (args.events // args.batch))):
                with_trace = run % 2 == 1
                events = syslog_like(args.batch, run)
                batch = Batch(events)
                started = time.process_time()
                normalize(events, batch.trace if with_trace else None)
                correlate(events)
                await scores[with_trace].run(batch)
                for event in events:
                    event.processed_at = event.received_at
                stage_cpu[with_trace] += time.process_time() - started
                repository = traced if with_trace else plain
                started, wall = time.process_time(), time.perf_counter()
                await repository.store_batch(events, batch=batch)
                store_cpu[with_trace] += time.process_time() - started
                store_wall[with_trace] += time.perf_counter() - wall
                stored[with_trace] += len(events)
        finally:
            await pool.close()
    print_figures(args, events_us, dedup_us, trace_us, stage_cpu, store_cpu, store_wall, stored)


def print_figures(
    args: argparse.Namespace,
    events_us: float,
    dedup_us: float,
    trace_us: float,
    stage_cpu: dict[bool, float],
    store_cpu: dict[bool, float],
    store_wall: dict[bool, float],
    stored: dict[bool, int],
) -> None:
    store_us = 1e6 * store_cpu[False] / stored[False]
    stages_us = 1e6 * stage_cpu[False] / stored[False]
    traced_stages_us = 1e6 * stage_cpu[True] / stored[True]
    traced_store_us = 1e6 * store_cpu[True] / stored[True]
    wall_us = {k: 1e6 * store_wall[k] / stored[k] for k in (False, True)}
    floor = events_us + dedup_us + store_us + stages_us
    print(f"PostgreSQL, per new event (server-side, {args.events:,} rows, median of 3):")
    print(f"  events.events row with its indexes  {events_us:6.1f} µs")
    print(f"  events.dedup row                    {dedup_us:6.1f} µs")
    print(f"the service, per new event (CPU of this process, batches of {args.batch}):")
    print(f"  store_batch                         {store_us:6.1f} µs")
    print(f"  pipeline stages                     {stages_us:6.1f} µs")
    print(
        f"floor: {floor:.1f} µs of CPU per stored event, before parsing, HTTP, the intake and the load "
        f"generator; {os.cpu_count()} cores at that cost alone: {1e6 * (os.cpu_count() or 1) / floor:,.0f} "
        "events/s"
    )
    print("the decision trace (pipeline.trace), per new event:")
    print(f"  events.event_traces row (server-side) {trace_us:6.1f} µs")
    print(f"  stages CPU without / with entries     {stages_us:6.1f} / {traced_stages_us:.1f} µs")
    print(f"  store_batch CPU without / with        {store_us:6.1f} / {traced_store_us:.1f} µs")
    print(f"  store_batch wall without / with       {wall_us[False]:6.1f} / {wall_us[True]:.1f} µs")
    with_trace = floor + trace_us + traced_store_us - store_us + traced_stages_us - stages_us
    print(
        f"trace share: floor {floor:.1f} -> {with_trace:.1f} µs (x{with_trace / floor:.3f}); "
        f"store_batch wall x{wall_us[True] / wall_us[False]:.3f}"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--database-url", help="an existing database (default: a fresh one, dropped after)")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
