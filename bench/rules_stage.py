"""The whole ``rules`` stage: µs per event with 1,000 active rules on the memory state backend.

Run: ``python bench/rules_stage.py [--rules 1000] [--events 50000] [--batch 500] [--rounds 3]
[--redis redis://127.0.0.1:6379/0]``.

Where bench/rules.py times the conditions alone, this times what the pipeline pays: the stage's `run` over
batches (index lookup, conditions, the explanation of a few non-matching rules per event, one trace entry
per event, group keys, sliding windows, cooldowns and hourly limits in the state backend, absence
deadlines, the firings handed on). Rules: bench/rules.py's condition mix, on both of its event mixes (the
target is for the realistic one; the heavy one, about 9 matches and 4 firings per event, is the worst
case), with semantics in realistic
shares: 50% fire on every match, 30% need 3 matches in 5 minutes per host, 30% have a 10-minute cooldown,
20% at most 6 per hour, 2% are heartbeat absence rules per host. The clock moves 1 s per batch. Timing is
thread-CPU time per event of whole batches (median over batches), best of ``--rounds``, next to
bench/syslog_parsers.py's calibration line; the target is issue 16's 50 µs per event for evaluation.
With ``--redis``, one more round runs on the Redis backend (under a throw-away key prefix, deleted after)
and its wall-clock time per event is printed: there the round trips, not the CPU, are the cost.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from rules import MIXES, make_events, make_rules, measure
from syslog_parsers import print_machine

from opsresponder.core.batch import Batch
from opsresponder.pipeline.rules import RuleBook, RuleEngine, RuleMetrics, Rules
from opsresponder.rules.evaluation import FIRINGS, RuleSpec, StaticRules
from opsresponder.rules.index import RuleIndex
from opsresponder.state import MemoryStateBackend, RedisStateBackend

TARGET_US = 50.0


def rule_bodies(rng: random.Random, count: int) -> list[dict[str, Any]]:
    bodies = []
    for i, conditions in enumerate(make_rules(rng, count)):
        body: dict[str, Any] = {"name": f"rule {i}", "conditions": conditions}
        pick = i % 100
        if 50 <= pick < 80:
            body.update(time_window_minutes=5, threshold=3, group_by=["host"])
        if pick % 10 < 3:
            body["cooldown_minutes"] = 10
        if pick % 5 == 1:
            body["max_triggers_per_hour"] = 6
        if pick >= 98:
            body.update(absence={"within_minutes": 30}, group_by=["host"])
        bodies.append(body)
    return bodies


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def run_round(
    stage: Rules, clock: Clock, events: list[Any], size: int, timer: Callable[[], int] = time.thread_time_ns
) -> tuple[float, int]:
    samples = []
    fired = 0
    for start in range(0, len(events) - size + 1, size):
        batch = Batch(events[start : start + size])
        clock.now += timedelta(seconds=1)
        begin = timer()
        await stage.run(batch)
        samples.append((timer() - begin) / size / 1000)
        firings = batch.get(FIRINGS)
        fired += len(firings) if firings else 0
        assert len(batch.trace) == size
    return statistics.median(samples), fired


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", help="also time one round on this Redis (wall clock)")
    args = parser.parse_args()

    rng = random.Random(16)
    specs = [RuleSpec.from_json(i + 1, body) for i, body in enumerate(rule_bodies(rng, args.rules))]

    print_machine()
    ok = True
    for mix in MIXES:
        events = make_events(random.Random(f"{mix}-16"), args.events, mix)
        best = float("inf")
        fired = 0
        for _ in range(args.rounds):
            clock = Clock()
            engine = RuleEngine(MemoryStateBackend())
            book = RuleBook(StaticRules(specs), engine, clock, reload_seconds=3600)
            stage = Rules(book, clock, RuleMetrics(CollectorRegistry()))
            us, fired = asyncio.run(run_round(stage, clock, events, args.batch))
            best = min(best, us)
        # The conditions alone on the same rules and events (bench/rules.py's "indexed"), so the stage's
        # own share (windows, limits, trace, firings) reads as the difference.
        index = RuleIndex((s, s.condition) for s in specs if s.absence is None)
        conditions_us = min(measure(index.matching, events) for _ in range(args.rounds))
        matched = sum(len(index.matching(e)) for e in events[:2000]) / 2000
        # The target is for the realistic mix; the heavy one shows the worst case.
        if mix == "realistic":
            verdict = "ok" if best <= TARGET_US else "OVER"
            ok = best <= TARGET_US
        else:
            verdict = "(no target)"
        print(
            f"{mix} mix: {args.rules} active rules, batches of {args.batch}, {args.events} events: {fired} "
            f"firings ({fired / args.events:.2f} per event), {matched:.1f} rules matched per event"
        )
        print(f"  conditions alone (index + matches), µs per event {conditions_us:8.2f}")
        print(f"  rules stage, thread-CPU µs per event {best:8.2f}   target {TARGET_US:.0f}  {verdict}")
        if args.redis:
            redis_us = asyncio.run(redis_round(args.redis, specs, events[: 20 * args.batch], args.batch))
            print(f"  rules stage on Redis, wall-clock µs per event {redis_us:8.2f}")
    return 0 if ok else 1


async def redis_round(url: str, specs: list[RuleSpec], events: list[Any], size: int) -> float:
    prefix = f"bench:{uuid.uuid4().hex}:"
    clock = Clock()
    try:
        async with RedisStateBackend(url, prefix) as state:
            book = RuleBook(StaticRules(specs), RuleEngine(state), clock, reload_seconds=3600)
            stage = Rules(book, clock, RuleMetrics(CollectorRegistry()))
            us, _ = await run_round(stage, clock, events, size, time.perf_counter_ns)
            return us
    finally:
        client = aioredis.from_url(url)
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
        await client.aclose()


if __name__ == "__main__":
    sys.exit(main())
