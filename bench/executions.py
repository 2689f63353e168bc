"""Executor benchmark: concurrent executions of a 3-step diagnostic playbook of short real scripts, the
executor's overhead per step, and what they do to webhook ingest latency.

    python bench/executions.py [--process inline|separate] [--concurrency 200] [--duration 20]
                               [--rate 200] [--database-url URL]

The service runs as it is deployed (``python -m opsresponder serve``, bench/_server.py; with ``--process
separate`` also its response process, whose CPU counts as the service's; the default is the shipped
``inline``) against a fresh PostgreSQL database; the load comes from other processes (this script re-run
with ``--load-executions`` and ``--load-ingest``), so the load generators' CPU is never counted as the
service's.

1. One execution at a time (the uncontended floor).
2. Ingest alone: single-event webhooks at a fixed rate (``--rate``/s, open loop: latency is measured from
   when each request was due, so a stall is not hidden by sending less) for ``--duration`` s: p50/p99.
3. Side by side: the same ingest load, and executions: waves of ``--concurrency`` executions submitted at
   once (each wave waits for the previous to end) until ``--duration`` has passed.
4. Executions alone, as in 3 without ingest.

Each phase starts its load processes together, once each has set itself up (started, imported, connected:
200 connections for a wave of executions); their setup is the generators', not the load, and measured
it fell on the ingest latency of the phase's first 0.3 s.

After 1, 3 and 4 every execution is read back (after the load): the count by status, and per execution
   ``(wall time - sum of its actions' run times) / steps``: all that is not the scripts' own run time
   (claiming, state writes, logs, scheduling the next step, and any queue for CPU or PostgreSQL). A
   script's run time is the runner's (spawn to exit, ``duration_seconds``). Then where that time lies
   between the recorded moments (`_parts`): waiting for a claim, claim to the first start, per step the
   recorded start to the recorded end beyond the script (the start's write, the spawn, noticing the
   exit), an end to its dependant's start, the last end to the execution's end.

Targets (issue 17): every execution completes; overhead <= 5 ms per step beyond the script's run time;
ingest p99 with executions <= 2x without. The playbook's scripts are real binaries reading /proc (cat,
head), run as argv.

Which overhead figure the target is judged on, and why: what the executor adds to a step, i.e. phase 1's
wall time beyond the scripts (nothing else queues there) and, at 200 in flight, the service's CPU per step
(its own work per step, the API's submit and polling included). The wall time beyond the scripts at 200
in flight is printed next to them but is a queue, not a cost of one step: with N executions in flight each
step's wall time is about N / (steps per second the machine sustains) (Little's law), so 5 ms per step
with 200 in flight would need some 30,000 steps per second of real processes on 2 cores, from any
executor. Its breakdown shows which writes the queue forms at. "An end to its dependant's start" is 0 by
construction (both are recorded at the same moment, before the one write that carries them); the time
between a step's end and the next script running is in the next step's "start to end beyond the script".

The machine-wide CPU use says whether the machine was saturated (the service, PostgreSQL, the scripts and
the load processes share its cores, and on a shared development machine so do other people's processes);
the load generators print their own CPU. Ingest is open loop: when the machine cannot keep up with
``--rate`` while the executions run, a queue builds and its latency grows with the run's length. The
executions' load is closed (waves): a faster executor runs more steps per second beside the same ingest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
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

from _server import BenchDatabase, BenchServer, Metrics
from syslog_parsers import print_machine

TARGET_OVERHEAD_MS = 5.0
TARGET_INGEST_RATIO = 2.0
_TOKEN = "BENCH_LOAD_TOKEN"  # the admin token, passed to the load processes in their environment
PLAYBOOK_EVENT = "bench_diagnostics"
LOW_RISK = {"business_hours": False, "maintenance_window": True, "system_criticality": "low"}
CATALOG = {
    "scripts": [
        {"id": 1, "name": "read_load", "risk_level": "low", "action_type": "diagnostic",
         "command": ["/bin/cat", "/proc/loadavg"], "timeout_seconds": 30},
        {"id": 2, "name": "read_memory", "risk_level": "low", "action_type": "diagnostic",
         "command": ["/usr/bin/head", "-n", "3", "/proc/meminfo"], "timeout_seconds": 30},
        {"id": 3, "name": "read_uptime", "risk_level": "low", "action_type": "diagnostic",
         "command": ["/bin/cat", "/proc/uptime"], "timeout_seconds": 30},
    ]
}  # fmt: skip
TEMPLATE = {
    "id": "bench_diagnostics",
    "name": "Three diagnostics in a row",
    "version": "1",
    "triggers": [{"event_type": PLAYBOOK_EVENT}],
    "actions": [
        {"id": "load", "name": "Load", "type": "diagnostic", "automation_script": "read_load",
         "required": True},
        {"id": "memory", "name": "Memory", "type": "diagnostic", "automation_script": "read_memory",
         "depends_on": ["load"]},
        {"id": "uptime", "name": "Uptime", "type": "diagnostic", "automation_script": "read_uptime",
         "depends_on": ["memory"]},
    ],
}  # fmt: skip
STEPS = 3
DONE = {"completed", "failed", "cancelled", "interrupted", "rolled_back"}


def machine_busy() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far (/proc/stat): every process's, ours or not."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def busy_since(before: tuple[int, int]) -> str:
    busy, total = machine_busy()
    return f"machine {100 * (busy - before[0]) / max(total - before[1], 1):.0f}% busy"


def _own_cpu() -> float:
    """This process's CPU seconds so far (a load generator's: it shares the cores with the service)."""
    times = os.times()
    return times.user + times.system


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --- the load processes -------------------------------------------------------------------------------


INGEST_CONNECTIONS = 64


async def load_ingest(url: str, token: str, rate: float, duration: float) -> dict[str, Any]:
    """Single events at `rate`/s for `duration` s, open loop over `INGEST_CONNECTIONS` keep-alive
    connections; latencies from each request's due time (a request waiting for a free connection counts).

    Raw HTTP/1.1 on asyncio streams, not an HTTP client library: the generator shares the machine's cores
    with the service, and a heavier client falling behind its own schedule would be counted as the
    service's latency.
    """
    host, _, port = url.removeprefix("http://").partition(":")
    due_times: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    latencies: list[float] = []
    errors: dict[str, int] = {}

    def request(n: int) -> bytes:
        body = json.dumps(
            {"source": "bench", "event_type": "threshold_breach", "severity": "high",
             "host": f"web-{n % 500:04d}", "title": f"CPU high #{n}", "metadata": {"n": n}}
        ).encode()  # fmt: skip
        head = (
            f"POST /api/v1/events/webhook HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (item := await due_times.get()) is not None:
                n, due = item
                writer.write(request(n))
                status = (await reader.readline()).split(b" ", 2)[1].decode()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(time.monotonic() - due)
                if status != "200":
                    errors[status] = errors.get(status, 0) + 1
        finally:
            writer.close()

    streams = [await asyncio.open_connection(host, int(port)) for _ in range(INGEST_CONNECTIONS)]
    await _ready_then_go()
    workers = [asyncio.create_task(connection(*pair)) for pair in streams]
    start = time.monotonic()
    n = 0
    while (due := start + n / rate) < start + duration:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        due_times.put_nowait((n, due))
        n += 1
    for _ in workers:
        due_times.put_nowait(None)
    await asyncio.gather(*workers)
    return {"requests": n, "errors": errors, "seconds": time.monotonic() - start,
            "p50_ms": 1000 * _percentile(latencies, 0.5), "p99_ms": 1000 * _percentile(latencies, 0.99),
            "max_ms": 1000 * max(latencies)}  # fmt: skip


class _Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams, JSON in and out (why not a client library:
    see `load_ingest`; with httpx the executions' load process alone took 0.6 of the 2 cores)."""

    def __init__(self, url: str, token: str) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self._host, self._port, self._token = host, int(port), token
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def connect(self) -> None:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self._host, self._port)

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        await self.connect()
        assert self._streams is not None
        reader, writer = self._streams
        data = b"" if body is None else json.dumps(body).encode()
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: {self._host}\r\nAuthorization: Bearer {self._token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        status = int((await reader.readline()).split(b" ", 2)[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, json.loads(await reader.readexactly(length)) if length else None

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()


async def load_executions(
    url: str, token: str, decision_id: int, concurrency: int, duration: float
) -> dict[str, Any]:
    """Waves of `concurrency` executions submitted at once, each wave awaited, until `duration` passed."""
    connections = [_Connection(url, token) for _ in range(concurrency)]
    ids: list[str] = []
    refused = 0
    waves = 0

    async def submit(connection: _Connection) -> str | None:
        status, answer = await connection.request(
            "POST", "/api/v1/autonomous/execute", {"decision_id": decision_id}
        )
        return str(answer["execution_id"]) if status == 202 else None

    async def busy() -> int:
        total = 0
        for status in ("queued", "running"):
            _, answer = await connections[0].request(
                "GET", f"/api/v1/autonomous/executions?status={status}&limit=1"
            )
            total += int(answer["total_count"])
        return total

    try:
        for connection in connections:
            await connection.connect()
        await _ready_then_go()
        start = time.monotonic()
        while time.monotonic() - start < duration:
            submitted = await asyncio.gather(*(submit(c) for c in connections))
            refused += sum(1 for s in submitted if s is None)
            ids.extend(s for s in submitted if s is not None)
            waves += 1
            while await busy():  # noqa: ASYNC110 - the service's state, polled over HTTP
                await asyncio.sleep(0.1)
        elapsed = time.monotonic() - start
    finally:
        for connection in connections:
            connection.close()
    return {"ids": ids, "refused": refused, "waves": waves, "seconds": elapsed}


# --- the orchestration --------------------------------------------------------------------------------


async def _ready_then_go() -> None:
    """Tell the orchestrator this load process is set up (imported, connected), and wait for its go."""
    print("ready", flush=True)
    if (await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)).strip() != "go":
        raise SystemExit("no go: the orchestrator stopped")  # its end closed the pipe


def _spawn(token: str, *args: str) -> subprocess.Popen[str]:
    # The token in the environment: as an argument, one that begins with "-" reads as an option.
    return subprocess.Popen(
        [sys.executable, __file__, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, _TOKEN: token},
    )


def _ready(*processes: subprocess.Popen[str]) -> None:
    """Wait until each of `processes` has set itself up.

    A load process's setup (the interpreter's start, its imports, opening its connections: 200 at once
    for a wave of executions) is the generator's, not the load it makes. Measured, it fell on the ingest
    latency of the phase's first 0.3 s, and only of the phase that started two processes.
    """
    for process in processes:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("a load process failed to start")


def _go(*processes: subprocess.Popen[str]) -> None:
    """Start the load of `processes` (each `_ready`) together."""
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()


def _result(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = process.communicate(timeout=900)
    out = out.strip().rsplit("\n", 1)[-1]
    if process.returncode != 0:
        raise RuntimeError(f"a load process failed ({process.returncode})")
    result: dict[str, Any] = json.loads(out)
    return result


def _prepare(root: Path) -> dict[str, str]:
    templates = root / "templates"
    templates.mkdir(parents=True)
    (root / "scripts.yaml").write_text(yaml.safe_dump(CATALOG, sort_keys=False))
    (templates / "bench_diagnostics.yaml").write_text(yaml.safe_dump(TEMPLATE, sort_keys=False))
    (root / "work").mkdir()
    return {
        "OPSRESPONDER_TEMPLATES__DIRECTORY": str(templates),
        "OPSRESPONDER_TEMPLATES__SCRIPTS_FILE": str(root / "scripts.yaml"),
        "OPSRESPONDER_RESPONSE__SCRIPTS__WORKING_DIRECTORY": str(root / "work"),
        "OPSRESPONDER_RESPONSE__NOTIFICATIONS__DIRECTORY": "null",
    }


def _decision(api: str, events: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    event = {"source": "bench", "event_type": PLAYBOOK_EVENT, "severity": "high", "host": "bench-1",
             "title": "diagnose me"}  # fmt: skip
    stored = httpx.post(f"http://{events}/api/v1/events/webhook", json=event, headers=headers, timeout=30)
    stored.raise_for_status()
    answer = httpx.post(
        f"http://{api}/api/v1/autonomous/analyze",
        json={"event_id": stored.json()["event_id"], "context": LOW_RISK},
        headers=headers,
        timeout=30,
    )
    answer.raise_for_status()
    decision = answer.json()
    if decision["approval_requirements"]["required"]:
        raise RuntimeError(f"the bench playbook needs approval: {decision}")
    return int(decision["decision_id"])


def _read_back(api: str, token: str, ids: list[str]) -> list[dict[str, Any]]:
    """Every execution of the run, read after the load through the list endpoint."""
    headers = {"Authorization": f"Bearer {token}"}
    wanted, found = set(ids), list[dict[str, Any]]()
    offset = 0
    with httpx.Client(base_url=f"http://{api}", headers=headers, timeout=60) as client:
        while True:
            page = client.get(
                "/api/v1/autonomous/executions", params={"limit": 1000, "offset": offset}
            ).json()
            found.extend(e for e in page["executions"] if e["execution_id"] in wanted)
            if not page["has_more"]:
                return found
            offset += 1000


def _report(label: str, executions: list[dict[str, Any]], submitted: int, *, judged: bool) -> None:
    """Print the count by status, the scripts' run time, the executor's overhead per step, and where that
    overhead lies between the recorded moments (see `_parts`)."""
    by_status: dict[str, int] = {}
    overheads: list[float] = []
    script_ms: list[float] = []
    parts: dict[str, list[float]] = {}
    for e in executions:
        by_status[e["status"]] = by_status.get(e["status"], 0) + 1
        if e["status"] != "completed" or not e.get("started_at") or not e.get("completed_at"):
            continue
        wall = _time(e["completed_at"]) - _time(e["started_at"])
        scripts = sum(float(a.get("duration_seconds") or 0.0) for a in e["actions"])
        script_ms.append(1000 * scripts / len(e["actions"]))
        overheads.append(1000 * (wall - scripts) / len(e["actions"]))
        for name, value in _parts(e).items():
            parts.setdefault(name, []).append(value)
    all_done = by_status.get("completed", 0) == submitted
    print(
        f"  {label}: {submitted} submitted, by status {dict(sorted(by_status.items()))}; "
        f"all completed: {'yes' if all_done else 'NO'}"
    )
    print(
        f"    script run time per step (the runner's, spawn to exit): p50 "
        f"{_percentile(script_ms, 0.5):.1f} ms, p99 {_percentile(script_ms, 0.99):.1f} ms"
    )
    p50, p99 = _percentile(overheads, 0.5), _percentile(overheads, 0.99)
    mean = statistics.fmean(overheads) if overheads else float("nan")
    verdict = (
        f"target <= {TARGET_OVERHEAD_MS:.0f} ms: p50 {_met(p50 <= TARGET_OVERHEAD_MS)}, "
        f"p99 {_met(p99 <= TARGET_OVERHEAD_MS)}"
        if judged
        else "a queue for CPU and PostgreSQL, not judged: the service's CPU per step is"
    )
    print(
        f"    executor overhead per step (wall - scripts) / steps: p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
        f"mean {mean:.2f} ms ({verdict})"
    )
    print("    where it lies, per execution (ms; p50 / p99):")
    for name, values in parts.items():
        print(f"      {name}: {_percentile(values, 0.5):.1f} / {_percentile(values, 0.99):.1f}")


def _parts(e: dict[str, Any]) -> dict[str, float]:
    """The recorded moments of one completed execution, as intervals in ms: waiting for a claim (created
    to started), claim to the first action's recorded start, per step the recorded start to the recorded
    end beyond the script's run time (the start's write, the spawn, noticing the exit and the task's
    wake-up: a step's own bookkeeping), per step an action's recorded end to its dependant's recorded
    start (deciding what runs next), and the last end to the execution's end (its final write)."""
    actions = sorted(
        (a for a in e["actions"] if a.get("phase", "action") == "action" and a.get("started_at")),
        key=lambda a: _time(a["started_at"]),
    )
    if not actions or not all(a.get("completed_at") for a in actions):
        return {}
    starts = [_time(a["started_at"]) for a in actions]
    ends = [_time(a["completed_at"]) for a in actions]
    steps = len(actions)
    inside = sum(end - start - float(a.get("duration_seconds") or 0.0) for a, start, end in
                 zip(actions, starts, ends, strict=True))  # fmt: skip
    between = sum(start - end for start, end in zip(starts[1:], ends[:-1], strict=True))
    return {
        "waiting for a claim (created to started)": 1000 * (_time(e["started_at"]) - _time(e["created_at"])),
        "claim to first start": 1000 * (starts[0] - _time(e["started_at"])),
        "per step, start to end beyond the script": 1000 * inside / steps,
        "per step, an end to its dependant's start": 1000 * between / max(steps - 1, 1),
        "last end to the execution's end": 1000 * (_time(e["completed_at"]) - ends[-1]),
    }


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _ingest_line(label: str, result: dict[str, Any], cpu_cores: float) -> None:
    print(
        f"  {label}: {result['requests']} events, errors {result['errors'] or 'none'}; latency p50 "
        f"{result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms; "
        f"server CPU {cpu_cores:.2f} cores (the generator's own "
        f"{result['cpu_seconds'] / result['seconds']:.2f})"
    )


def _pipeline_line(before: Metrics, after: Metrics) -> None:
    """Where ingest time went inside the service: batches, their size, intake-to-commit time."""

    def grew(name: str) -> float:
        return after.value(name) - before.value(name)

    batches = grew("opsresponder_pipeline_batch_size_count")
    events = grew("opsresponder_pipeline_latency_seconds_count")
    latency = grew("opsresponder_pipeline_latency_seconds_sum")
    size = grew("opsresponder_pipeline_batch_size_sum") / max(batches, 1)
    print(
        f"  pipeline: {batches:.0f} batches of {size:.1f} "
        f"events on average; intake to commit {1000 * latency / max(events, 1):.1f} ms per event on average"
    )


def _executions_line(executed: dict[str, Any], concurrency: int, cpu: float) -> None:
    steps = len(executed["ids"]) * STEPS
    per_step = 1000 * cpu / max(steps, 1)
    verdict = (
        f"; target <= {TARGET_OVERHEAD_MS:.0f} ms: {_met(per_step <= TARGET_OVERHEAD_MS)}"
        if concurrency > 1
        else ""
    )
    print(
        f"  executions: {executed['waves']} waves of {concurrency} at once, {len(executed['ids'])} accepted, "
        f"{executed['refused']} refused, in {executed['seconds']:.1f} s ({steps / executed['seconds']:.0f} "
        f"steps/s); server CPU {cpu / executed['seconds']:.2f} cores, "
        f"{1000 * cpu / max(steps, 1):.2f} ms per step (submit, polling and read-back requests included"
        f"{verdict}); the generator's own CPU {executed['cpu_seconds'] / executed['seconds']:.2f} cores"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--rate", type=float, default=200, help="webhook events per second")
    parser.add_argument("--database-url", help="an existing database (default: a fresh one, dropped after)")
    parser.add_argument(
        "--process",
        choices=("inline", "separate"),
        default="inline",
        help="response.process: the response side in the service's process, or in its own",
    )
    parser.add_argument("--load-ingest", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--load-executions", nargs=2, metavar=("URL", "DECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_ingest:
        result = asyncio.run(load_ingest(args.load_ingest, os.environ[_TOKEN], args.rate, args.duration))
        print(json.dumps({**result, "cpu_seconds": _own_cpu()}))
        return
    if args.load_executions:
        url, decision = args.load_executions
        token = os.environ[_TOKEN]
        result = asyncio.run(load_executions(url, token, int(decision), args.concurrency, args.duration))
        print(json.dumps({**result, "cpu_seconds": _own_cpu()}))
        return

    print_machine()
    print(f"cores: {os.cpu_count()}; the service, PostgreSQL and the load processes share them")
    with BenchDatabase(args.database_url) as database_url, tempfile.TemporaryDirectory() as tmp:
        env = _prepare(Path(tmp))
        env["OPSRESPONDER_RESPONSE__EXECUTOR__CONCURRENCY"] = str(args.concurrency)
        env["OPSRESPONDER_RESPONSE__PROCESS"] = args.process
        print(f"response side: {env['OPSRESPONDER_RESPONSE__PROCESS']} (response.process)")
        server = BenchServer(None, database_url, **env)
        server.start()
        try:
            token = server.token()
            api, events = server.address_of("autonomous_api"), server.events_address
            decision = _decision(api, events, token)
            ingest_args = ["--rate", str(args.rate), "--duration", str(args.duration)]

            def executions(concurrency: int, duration: float) -> subprocess.Popen[str]:
                return _spawn(
                    token, "--load-executions", f"http://{api}", str(decision),
                    "--concurrency", str(concurrency), "--duration", str(duration),
                )  # fmt: skip

            print(f"1. one execution at a time for {args.duration / 2:.0f} s (the uncontended floor):")
            load = executions(1, args.duration / 2)
            _ready(load)
            cpu, machine = server.cpu_seconds(), machine_busy()
            _go(load)
            single = _result(load)
            _executions_line(single, 1, server.cpu_seconds() - cpu)
            print(f"  {busy_since(machine)}")
            _report("executions", _read_back(api, token, single["ids"]), len(single["ids"]), judged=True)

            print(f"2. webhook ingest alone, {args.rate:.0f} events/s for {args.duration:.0f} s:")
            ingest = _spawn(token, "--load-ingest", f"http://{events}", *ingest_args)
            _ready(ingest)
            cpu, machine, scrape = server.cpu_seconds(), machine_busy(), server.metrics()
            _go(ingest)
            alone = _result(ingest)
            _ingest_line("ingest", alone, (server.cpu_seconds() - cpu) / args.duration)
            _pipeline_line(scrape, server.metrics())
            print(f"  {busy_since(machine)}")

            print(f"3. the same ingest beside waves of {args.concurrency} concurrent executions:")
            # Its own baselines: the pipeline line and the machine's busy share are this phase's alone.
            ingest, load = (
                _spawn(token, "--load-ingest", f"http://{events}", *ingest_args),
                executions(args.concurrency, args.duration),
            )
            _ready(ingest, load)
            cpu, machine, scrape = server.cpu_seconds(), machine_busy(), server.metrics()
            _go(ingest, load)
            beside, executed = _result(ingest), _result(load)
            cpu_beside = server.cpu_seconds() - cpu
            print(f"  {busy_since(machine)}")
            _ingest_line("ingest", beside, cpu_beside / executed["seconds"])
            _pipeline_line(scrape, server.metrics())
            _executions_line(executed, args.concurrency, cpu_beside)
            ratio = beside["p99_ms"] / alone["p99_ms"]
            print(
                f"  ingest p99 with / without executions: x{ratio:.2f} "
                f"(target <= x{TARGET_INGEST_RATIO:.0f}: {_met(ratio <= TARGET_INGEST_RATIO)})"
            )
            _report("executions", _read_back(api, token, executed["ids"]), len(executed["ids"]), judged=False)

            print(f"4. waves of {args.concurrency} concurrent executions alone for {args.duration:.0f} s:")
            load = executions(args.concurrency, args.duration)
            _ready(load)
            cpu, machine = server.cpu_seconds(), machine_busy()
            _go(load)
            only = _result(load)
            _executions_line(only, args.concurrency, server.cpu_seconds() - cpu)
            print(f"  {busy_since(machine)}")
            _report("executions", _read_back(api, token, only["ids"]), len(only["ids"]), judged=False)
            print_machine()
        finally:
            print(f"server exit code on SIGTERM: {server.stop()}")


if __name__ == "__main__":
    main()
