"""Message templates: grouping accuracy on labeled Loghub samples, µs per event, memory per template.

Run: ``python bench/patterns.py [--events 50000] [--rounds 3]``.

Three parts, each for the patterns stage's own miner (masking + a Drain-like tree, `pipeline.patterns`)
and for drain3 (the reference Drain implementation) with its default settings on the same messages:

1. Grouping accuracy per Loghub system (tests/data/loghub; the standard metric: a message counts when its
   predicted group is exactly its ground-truth group). drain3 is also run on our masked messages, to
   show how much of the difference the masking makes.
2. µs per message (this thread's CPU time, the median over batches of 1,000, best of ``--rounds``) over
   the samples cycled with varying numbers, hosts and users; then the whole stage (metadata, trace entry)
   on batches of 500 events.
3. Memory: tracemalloc's figure for a miner holding ``--templates`` distinct templates (the cap).

The calibration line of bench/syslog_parsers.py is printed first, so figures from machines can be compared.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry
from syslog_parsers import print_machine
from tests.factories import make_event
from tests.loghub import corpora, drain3, grouping_accuracy, ours

from opsresponder.config import PatternsConfig
from opsresponder.core.batch import Batch
from opsresponder.pipeline.patterns import PatternMetrics, Patterns, TemplateMiner, mask
from opsresponder.pipeline.patterns.stage import NoPatterns

USERS = ["root", "admin", "oracle", "postgres", "test", "guest", "ubuntu", "git", "deploy", "www"]


def accuracy_table() -> None:
    print("grouping accuracy (Loghub samples)")
    print(f"{'system':<10} {'messages':>8} {'ours':>6} {'drain3':>7} {'drain3+mask':>11}")
    rows = []
    for corpus in corpora():
        a = grouping_accuracy(corpus.labels, ours(corpus.messages))
        b = grouping_accuracy(corpus.labels, drain3(corpus.messages))
        c = grouping_accuracy(corpus.labels, drain3([mask(m) for m in corpus.messages]))
        rows.append((a, b, c))
        print(f"{corpus.name:<10} {len(corpus.messages):>8} {a:>6.3f} {b:>7.3f} {c:>11.3f}")
    means = [statistics.mean(r[i] for r in rows) for i in range(3)]
    print(f"{'mean':<10} {'':>8} {means[0]:>6.3f} {means[1]:>7.3f} {means[2]:>11.3f}")


def stream(rng: random.Random, n: int) -> list[str]:
    """`n` messages: the samples cycled, their numbers and addresses varied, some user names changed."""
    base = [m for c in corpora() for m in c.messages]
    out = []
    for i in range(n):
        message = base[i % len(base)]
        words = message.split(" ")
        for j, word in enumerate(words):
            if word.isdigit():
                words[j] = str(rng.randrange(10**6))
            elif word in USERS:
                words[j] = rng.choice(USERS)
        out.append(" ".join(words))
    return out


def per_message(add: Callable[[str], object], messages: Sequence[str], batch: int = 1000) -> float:
    samples = []
    for start in range(0, len(messages), batch):
        chunk = messages[start : start + batch]
        t0 = time.thread_time_ns()
        for m in chunk:
            add(m)
        samples.append((time.thread_time_ns() - t0) / len(chunk) / 1000)
    return statistics.median(samples)


def drain3_adder() -> Callable[[str], object]:
    from drain3 import TemplateMiner as Drain3Miner  # type: ignore[import-untyped]
    from drain3.template_miner_config import TemplateMinerConfig  # type: ignore[import-untyped]

    config = TemplateMinerConfig()
    config.profiling_enabled = False
    miner = Drain3Miner(config=config)
    return miner.add_log_message  # type: ignore[no-any-return]


def stage_per_event(messages: Sequence[str], batch_size: int = 500) -> float:
    config = PatternsConfig(seed_from_store=False)
    stage = Patterns(config, NoPatterns(), PatternMetrics(CollectorRegistry()))
    batches = [
        [make_event(title=m) for m in messages[i : i + batch_size]]
        for i in range(0, len(messages), batch_size)
    ]
    samples = []
    for events in batches:
        batch = Batch(events)
        t0 = time.thread_time_ns()
        _run(stage, batch)
        samples.append((time.thread_time_ns() - t0) / len(events) / 1000)
    return statistics.median(samples)


def _run(stage: Patterns, batch: Batch) -> None:
    # With seeding off the stage never awaits, so one step of its coroutine runs it (no event loop cost).
    coroutine = stage.run(batch)
    try:
        coroutine.send(None)
    except StopIteration:
        return
    raise RuntimeError("the stage awaited")


def memory(templates: int, rng: random.Random) -> tuple[float, float]:
    """(MiB, bytes per template) for a miner holding `templates` distinct templates of 6-12 words."""
    vocabulary = [
        f"w{chr(97 + i % 26)}{chr(97 + (i // 26) % 26)}{chr(97 + (i // 676) % 26)}" for i in range(5000)
    ]
    messages = [
        " ".join(rng.choice(vocabulary) for _ in range(rng.randrange(6, 13))) for _ in range(templates)
    ]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    miner = TemplateMiner.from_config(PatternsConfig(max_templates=templates, similarity_threshold=1.0))
    for m in messages:
        miner.add(m)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    used = after - before
    return used / 2**20, used / max(1, len(miner))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--templates", type=int, default=PatternsConfig().max_templates)
    args = parser.parse_args()
    logging.getLogger("drain3").setLevel(logging.WARNING)
    rng = random.Random(15)

    print_machine()
    accuracy_table()
    messages = stream(rng, args.events)
    print(
        f"\nµs per message over {args.events} messages (thread CPU, median of batches, best of {args.rounds})"
    )
    ours_us = min(
        per_message(TemplateMiner.from_config(PatternsConfig()).add, messages) for _ in range(args.rounds)
    )
    drain_us = min(per_message(drain3_adder(), messages) for _ in range(args.rounds))
    mask_us = min(per_message(mask, messages) for _ in range(args.rounds))
    stage_us = min(stage_per_event(messages) for _ in range(args.rounds))
    print(f"{'ours (mask + miner)':<28} {ours_us:>7.2f}")
    print(f"{'  of which masking':<28} {mask_us:>7.2f}")
    print(f"{'drain3 (default, no mask)':<28} {drain_us:>7.2f}")
    print(f"{'patterns stage (per event)':<28} {stage_us:>7.2f}")
    mib, per = memory(args.templates, rng)
    print(f"\nmemory: {args.templates} templates hold {mib:.1f} MiB ({per:.0f} bytes per template)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
