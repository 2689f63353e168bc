"""Webhook ingest side by side in one run: no trigger rules, then 1,000 active rules (``rules.file``).

    python bench/rules_ingest.py [--duration 30] [--database-url postgresql://...]

Issue 16's figure: arrays (bench/webhook.py's array scenario, the same wrk script) with 1,000 active rules
reach at least 80% of the rate with none. The rules are bench/rules_stage.py's mix; one in `--targeted`
(default 100) is rewritten to select one of the webhook mix's own event types (bench/webhook_mix.lua) at
high severity or above, so that the rules stage has real matches, windows and firings to handle, not only
misses (with 1,000 rules and the default, an event of the mix matches about two rules). Each run starts
a fresh server on the same database.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import BenchServer
from rules_stage import rule_bodies
from webhook import run_wrk

MIX_KINDS = ["threshold_breach", "disk_space_critical", "connectivity_issue", "authentication_failure",
             "service_restart"]  # fmt: skip


def rules_file(directory: Path, count: int, targeted: int) -> Path:
    rng = random.Random(16)
    rules = []
    for i, body in enumerate(rule_bodies(rng, count)):
        if i % targeted == 0:
            body["conditions"] = {"event_type": rng.choice(MIX_KINDS), "severity": {"$gte": "high"}}
        rules.append({"id": i + 1, **body})
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump({"rules": rules}))
    return path


def rate(label: str, args: argparse.Namespace, **env: str) -> float:
    server = BenchServer(None, args.database_url, **env)
    server.start()
    try:
        cpu_before = server.cpu_seconds()
        r = run_wrk(server, connections=args.batch_connections, duration=args.duration, batch=args.batch_size)
        cpu = server.cpu_seconds() - cpu_before
    finally:
        server.stop()
    events = r.requests * args.batch_size
    per_second = float(events / r.seconds)
    print(f"{label}: {per_second:,.0f} events/s; non-2xx {r.non_2xx}, errors {r.errors}; "
          f"p99 {r.p99_ms:.1f} ms; server CPU {1e6 * cpu / max(events, 1):.0f} µs/event")  # fmt: skip
    return per_second


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--targeted", type=int, default=100, help="one rule in this many selects the mix")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--batch-connections", type=int, default=8)
    parser.add_argument("--database-url", help="use this PostgreSQL instead of the embedded one")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/rules_ingest.py needs wrk (apt-get install wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        path = rules_file(Path(tmp), args.rules, args.targeted)
        none = rate("arrays, no rules", args)
        some = rate(f"arrays, {args.rules} active rules", args, OPSRESPONDER_RULES__FILE=str(path))
    share = some / none
    print(f"with {args.rules} rules: {share:.0%} of the rate without (target at least 80%)")
    return 0 if share >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
