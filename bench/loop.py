"""Rule-to-response loop benchmark: from a webhook event to the automatic execution it triggers starting,
with background webhook ingest.

    python bench/loop.py [--events 300] [--probe-rate 10] [--rate 1000] [--database-url URL]

The service runs as deployed (``python -m opsresponder serve``, bench/_server.py) with a trigger rule on
``bench_loop`` events and a one-step low-risk diagnostic playbook (``cat /proc/loadavg``) that the loop
runs by itself. A separate process (bench/executions.py ``--load-ingest``) sends ``--rate`` single-event
webhooks per second (open loop, another event type: no rule fires on them) for the whole run. This process
sends ``--events`` ``bench_loop`` events at ``--probe-rate``/s, each about its own host (the governor's
per-host budget is not what is measured; its budgets are raised for the run), noting the wall time just
before each POST. Afterwards each event's execution is read back: latency = its ``started_at`` (the
claim by the executor, written in the same statement that marks it running) minus that send time; the
first action's start is printed too. Same machine, same clock.

Target (issue 18): p99 <= 500 ms with 1,000 events/s of background ingest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import BenchDatabase, BenchServer
from executions import busy_since, machine_busy
from syslog_parsers import print_machine

TARGET_P99_MS = 500.0
EVENT_TYPE = "bench_loop"
CATALOG = {
    "scripts": [
        {"id": 1, "name": "read_load", "risk_level": "low", "action_type": "diagnostic",
         "command": ["/bin/cat", "/proc/loadavg"], "timeout_seconds": 30},
    ]
}  # fmt: skip
TEMPLATE = {
    "id": "bench_loop",
    "name": "One diagnostic",
    "version": "1",
    "triggers": [{"event_type": EVENT_TYPE}],
    "actions": [
        {"id": "load", "name": "Load", "type": "diagnostic", "automation_script": "read_load",
         "required": True},
    ],
}  # fmt: skip
RULES = {"rules": [{"id": 1, "name": "every bench_loop event", "conditions": {"event_type": EVENT_TYPE}}]}


def _time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _prepare(root: Path) -> dict[str, str]:
    templates = root / "templates"
    templates.mkdir(parents=True)
    (root / "scripts.yaml").write_text(yaml.safe_dump(CATALOG, sort_keys=False))
    (templates / "bench_loop.yaml").write_text(yaml.safe_dump(TEMPLATE, sort_keys=False))
    (root / "rules.yaml").write_text(yaml.safe_dump(RULES, sort_keys=False))
    (root / "work").mkdir()
    big = "1000000"
    return {
        "OPSRESPONDER_TEMPLATES__DIRECTORY": str(templates),
        "OPSRESPONDER_TEMPLATES__SCRIPTS_FILE": str(root / "scripts.yaml"),
        "OPSRESPONDER_RULES__FILE": str(root / "rules.yaml"),
        "OPSRESPONDER_RESPONSE__SCRIPTS__WORKING_DIRECTORY": str(root / "work"),
        "OPSRESPONDER_RESPONSE__NOTIFICATIONS__DIRECTORY": "null",
        "OPSRESPONDER_RESPONSE__LOOP__BUSINESS_HOURS": "false",
        "OPSRESPONDER_RESPONSE__LOOP__MAINTENANCE_WINDOW": "true",
        "OPSRESPONDER_RESPONSE__LOOP__SYSTEM_CRITICALITY": "low",
        "OPSRESPONDER_RESPONSE__GOVERNOR__MAX_RUNS_PER_HOST_PER_HOUR": big,
        "OPSRESPONDER_RESPONSE__GOVERNOR__MAX_RUNS_PER_ACTION_PER_HOUR": big,
    }


async def probe(events: str, api: str, token: str, count: int, rate: float) -> list[dict[str, Any]]:
    """Send `count` bench_loop events at `rate`/s; then read each one's execution back."""
    headers = {"Authorization": f"Bearer {token}"}
    sent: list[tuple[int, float]] = []
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        start = time.monotonic()

        async def one(n: int) -> None:
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
            body = {"source": "bench", "event_type": EVENT_TYPE, "severity": "high",
                    "host": f"loop-{n:05d}", "title": f"needs a look #{n}"}  # fmt: skip
            at = time.time()
            answer = await client.post(f"http://{events}/api/v1/events/webhook", json=body)
            answer.raise_for_status()
            sent.append((int(answer.json()["event_id"]), at))

        await asyncio.gather(*(one(n) for n in range(count)))
        results: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        for event_id, at in sent:
            while True:
                answer = await client.get(
                    f"http://{api}/api/v1/autonomous/executions", params={"event_id": event_id}
                )
                found = [e for e in answer.json()["executions"] if e["started_at"]]
                if found or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            if not found:
                results.append({"event_id": event_id, "missing": True})
                continue
            execution = found[0]
            first_action = min(
                (_time(a["started_at"]) for a in execution["actions"] if a["started_at"]), default=None
            )
            results.append(
                {
                    "event_id": event_id,
                    "started_ms": 1000 * (_time(execution["started_at"]) - at),
                    "first_action_ms": None if first_action is None else 1000 * (first_action - at),
                }
            )
    return results


def _line(label: str, values: list[float]) -> str:
    return (
        f"{label}: p50 {_percentile(values, 0.5):.0f} ms, p99 {_percentile(values, 0.99):.0f} ms, "
        f"max {max(values):.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--probe-rate", type=float, default=10.0, help="bench_loop events per second")
    parser.add_argument("--rate", type=float, default=1000.0, help="background webhook events per second")
    parser.add_argument("--database-url", help="an existing database (default: a fresh one, dropped after)")
    args = parser.parse_args()

    print_machine()
    print(f"cores: {os.cpu_count()}; the service, PostgreSQL and the load processes share them")
    duration = args.events / args.probe_rate + 2
    with BenchDatabase(args.database_url) as database_url, tempfile.TemporaryDirectory() as tmp:
        server = BenchServer(None, database_url, **_prepare(Path(tmp)))
        server.start()
        try:
            token = server.token()
            api, events = server.address_of("autonomous_api"), server.events_address
            machine, cpu = machine_busy(), server.cpu_seconds()
            ingest = subprocess.Popen(
                [sys.executable, str(Path(__file__).parent / "executions.py"), "--load-ingest",
                 f"http://{events}", token, "--rate", str(args.rate), "--duration", str(duration)],
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            time.sleep(1.0)  # the background load is under way before the first probe
            results = asyncio.run(probe(events, api, token, args.events, args.probe_rate))
            out, _ = ingest.communicate(timeout=900)
            background = json.loads(out)
            print(
                f"background ingest: {background['requests']} webhooks at {args.rate:.0f}/s, "
                f"p50 {background['p50_ms']:.1f} ms, p99 {background['p99_ms']:.1f} ms, "
                f"errors {background['errors'] or 'none'}"
            )
            used = server.cpu_seconds() - cpu
            print(f"  server CPU {used:.1f} s over {duration:.0f} s; {busy_since(machine)}")
            missing = [r for r in results if r.get("missing")]
            measured = [r for r in results if not r.get("missing")]
            print(
                f"loop: {len(measured)} of {len(results)} events started their execution ({len(missing)} not)"
            )
            if measured:
                started = [r["started_ms"] for r in measured]
                print("  " + _line("event sent -> execution started", started))
                firsts = [r["first_action_ms"] for r in measured if r["first_action_ms"] is not None]
                if firsts:
                    print("  " + _line("event sent -> first action started", firsts))
                p99 = _percentile(started, 0.99)
                met = "met" if p99 <= TARGET_P99_MS and not missing else "NOT met"
                print(f"  target p99 <= {TARGET_P99_MS:.0f} ms: {met}")
            print_machine()
        finally:
            print(f"server exit code on SIGTERM: {server.stop()}")


if __name__ == "__main__":
    main()
