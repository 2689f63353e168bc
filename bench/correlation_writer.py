"""What storing the correlate stage's output costs: `store.correlations.CorrelationWriter` alone.

    python bench/correlation_writer.py [--batches 400] [--batch 266]

Against a fresh PostgreSQL database (dropped at the end), batches of `--batch` stored events with 2 to 4
correlations each (3 on average, as the realistic mix of bench/_mix.py has 2.8), each batch in its own
transaction as the pipeline writes it. Prints, next to bench/syslog_parsers.py's calibration line, the
writer's CPU per event in this process (building the rows, asyncpg's COPY encoding) and in its PostgreSQL
backend (the COPY: heap, primary key, GIN index on the related ids), and the table's size with its
indexes per event. docs/correlation.md ("Storage") has the figures of the schema before migration 018,
measured by this script's logic against that release.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import BenchDatabase
from syslog_parsers import print_machine

from opsresponder.core.batch import Batch
from opsresponder.core.clock import utcnow
from opsresponder.core.correlation import CORRELATIONS, CorrelationLink, CorrelationType
from opsresponder.core.event import Event, EventState
from opsresponder.core.severity import Severity
from opsresponder.store.correlations import CorrelationWriter
from opsresponder.store.migrations import migrate
from opsresponder.store.pool import connection, create_pool

KINDS: tuple[CorrelationType, ...] = ("time_based", "pattern_based", "host_based", "causal")
REASONS = [f"Events occurred within 1 hour on the same host web-{i}" for i in range(50)]


def backend_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stored_events(count: int) -> list[Event]:
    at = utcnow()
    return [
        Event(
            source="bench",
            source_type="custom",
            event_type="threshold_breach",
            severity=Severity.HIGH,
            state=EventState.PROBLEM,
            title="High CPU usage",
            occurred_at=at,
            received_at=at,
            host=f"web-{i}",
        )
        for i in range(count)
    ]


async def run(batches: int, size: int) -> None:
    async with BenchDatabase() as url:
        pool = await create_pool(url, min_size=1, max_size=1, connect_timeout=10, command_timeout=120)
        try:
            async with connection(pool) as conn:
                await migrate(conn)
                pid = await conn.fetchval("SELECT pg_backend_pid()")
                writer = CorrelationWriter()
                events = stored_events(size)
                rng = random.Random(7)
                next_id, links_written, service, backend = 1000, 0, 0.0, 0.0
                for _ in range(batches):
                    links: list[CorrelationLink] = []
                    for event in events:
                        event.id, event.correlation_id = next_id, uuid.uuid4()
                        next_id += 1
                        for _ in range(rng.choice((2, 3, 3, 3, 4))):
                            related = event.id - rng.randint(1, 300)
                            kind = rng.choice(KINDS)
                            links.append(CorrelationLink(event, related, kind, 0.55, rng.choice(REASONS)))
                    links_written += len(links)
                    batch = Batch(events)
                    batch.add(CORRELATIONS, links)
                    before_backend, before = backend_cpu_seconds(pid), time.thread_time()
                    async with conn.transaction():
                        await writer.write(conn, batch, events)
                    service += time.thread_time() - before
                    backend += backend_cpu_seconds(pid) - before_backend
                count = batches * size
                size_bytes = await conn.fetchval("SELECT pg_total_relation_size('events.event_correlations')")
        finally:
            await pool.close()
    print(f"{count:,} events in batches of {size}, {links_written / count:.2f} correlations per event")
    print(f"   writer CPU, this process:       {1e6 * service / count:6.2f} µs/event")
    print(f"   writer CPU, PostgreSQL backend: {1e6 * backend / count:6.2f} µs/event")
    print(f"   table and indexes on disk:      {size_bytes / count:6.0f} bytes/event")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--batch", type=int, default=266)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores")
    print_machine()
    asyncio.run(run(args.batches, args.batch))
    print_machine()


if __name__ == "__main__":
    main()
