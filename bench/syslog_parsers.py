"""Syslog parser speed: median µs per message over 100k messages, per format, parse alone and full decode.

Run: ``python bench/syslog_parsers.py [--messages 100000] [--batch 1000]``.

Targets (issue 2): parse <= 10 µs per RFC 5424 or CEF message, <= 8 µs per RFC 3164 message. "parse" is
bytes -> UTF-8 text -> the format's parser (``parse_rfc5424`` / ``parse_rfc3164`` / ``parse_cef``);
"decode" is `SyslogDecoder.decode` (detection, parser, Event with metadata, the spec's two parsing rules),
which is what a listener calls. Messages are a varied corpus (different hosts, apps, lengths around
100-300 bytes), so no cache sees the same string twice in a row.

Timing: batches of ``--batch`` messages; each batch's time divided by its size is one sample, and the
median of the samples over ``--messages`` messages is one round's figure, measured twice: wall clock
(``perf_counter``) and this thread's CPU time (``thread_time``). On a shared machine wall time includes time
the OS gave to other processes and CPU time does not, so CPU time is the steadier figure of what the code
costs. ``--rounds`` rounds are run and the best round is printed (as `timeit` takes the best repeat: noise
only ever adds time). The load average and a pure-Python calibration loop are printed so figures from
different machines, or from a busy and a quiet run, can be compared.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from opsresponder.config import ParsingRuleConfig
from opsresponder.ingest.syslog.cef import parse_cef
from opsresponder.ingest.syslog.decode import SyslogDecoder
from opsresponder.ingest.syslog.rfc3164 import parse_rfc3164
from opsresponder.ingest.syslog.rfc5424 import parse_rfc5424

TARGET_US = {"rfc5424": 10.0, "rfc3164": 8.0, "cef": 10.0}
SPEC_RULES = [
    ParsingRuleConfig(
        pattern="Failed password for .* from (.*) port",
        event_type="authentication_failure",
        severity="medium",
        extract_fields=["source_ip"],
    ),
    ParsingRuleConfig(pattern="Out of disk space", event_type="disk_space_critical", severity="critical"),
]
CORPUS_SIZE = 1000
APPS = ["sshd", "nginx", "CRON", "kernel", "systemd-logind", "postfix/smtpd", "dockerd", "sudo"]
TEXTS = [
    "Failed password for invalid user admin from 203.0.113.{n} port 5{n:04d} ssh2",
    'GET /api/v1/items/{n} HTTP/1.1 200 {n} "-" "Mozilla/5.0 (X11; Linux x86_64)" rt=0.00{n}',
    "Accepted publickey for deploy from 10.0.{n}.1 port 22 ssh2: ED25519 SHA256:abcdefghijklmnop",
    "Out of disk space on /var/lib/docker (used {n}%)",
    "pam_unix(sudo:session): session opened for user root(uid=0) by ops(uid={n})",
    "container {n:08x} health status changed to unhealthy after 3 failed checks",
]


def _message(rng: random.Random, n: int) -> str:
    return rng.choice(TEXTS).format(n=n % 250)


def rfc5424_corpus(rng: random.Random) -> list[bytes]:
    """RFC 5424 messages with structured data, ~200-300 bytes."""
    out = []
    for i in range(CORPUS_SIZE):
        stamp = f"2024-01-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}.{i:06d}+01:00"
        sd = (
            f'[origin ip="10.0.{i % 256}.{i % 200}" software="app"]'
            f'[meta sequenceId="{i}" sysUpTime="{i * 13}"]'
        )
        app = rng.choice(APPS).replace("/", "-")
        line = f"<{rng.randrange(192)}>1 {stamp} host-{i % 50}.example.com {app} {1000 + i} ID{i % 90} {sd} "
        out.append((line + "\ufeff" + _message(rng, i)).encode())
    return out


def rfc3164_corpus(rng: random.Random) -> list[bytes]:
    """Classic BSD messages, ~100-150 bytes."""
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    out = []
    for i in range(CORPUS_SIZE):
        stamp = f"{months[i % 12]} {1 + i % 28:2d} {i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}"
        line = f"<{rng.randrange(192)}>{stamp} host-{i % 50} {rng.choice(APPS)}[{1000 + i}]: "
        out.append((line + _message(rng, i)).encode())
    return out


def cef_corpus(rng: random.Random) -> list[bytes]:
    """ArcSight-style CEF events with a dozen extension keys, ~250 bytes."""
    out = []
    for i in range(CORPUS_SIZE):
        ext = (
            f"src=10.0.{i % 256}.{i % 200} dst=192.168.{i % 100}.{i % 250} spt={1024 + i} dpt=443 proto=TCP "
            f"act=blocked msg=Connection {i} blocked by policy rule\\=default suser=user{i % 40} "
            f"cs1Label=policy cs1=perimeter-{i % 7} rt={1704067200000 + i * 1000} dvchost=fw-{i % 9}"
        )
        line = f"CEF:0|Vendor{i % 5}|Firewall|{i % 3}.0|{100 + i % 50}|Connection blocked|{i % 11}|{ext}"
        out.append(line.encode())
    return out


def measure(
    fn: Callable[[bytes], object], corpus: list[bytes], messages: int, batch: int
) -> tuple[float, float]:
    """Median µs per message over `messages` calls, as (wall, thread CPU)."""
    wall_samples: list[float] = []
    cpu_samples: list[float] = []
    size = len(corpus)
    for start in range(0, messages, batch):
        chunk = [corpus[(start + k) % size] for k in range(batch)]
        wall0 = time.perf_counter_ns()
        cpu0 = time.thread_time_ns()
        for data in chunk:
            fn(data)
        cpu1 = time.thread_time_ns()
        wall1 = time.perf_counter_ns()
        wall_samples.append((wall1 - wall0) / batch / 1000)
        cpu_samples.append((cpu1 - cpu0) / batch / 1000)
    return statistics.median(wall_samples), statistics.median(cpu_samples)


def calibration_ns() -> float:
    """Nanoseconds per iteration of a fixed pure-Python loop: this machine's speed, right now."""

    def loop() -> int:
        total = 0
        for i in range(10_000):
            total += i & 7
        return total

    best = float("inf")
    for _ in range(20):
        start = time.thread_time_ns()
        loop()
        best = min(best, (time.thread_time_ns() - start) / 10_000)
    return best


def print_machine() -> float:
    """Print this machine's Python, cores, load and calibration, so figures can be compared across runs;
    returns the calibration (ns)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(
        f"python {platform.python_version()} on {platform.machine()}, cpu_count={os.cpu_count()}, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    calibration = calibration_ns()
    print(f"calibration: {calibration:.1f} ns per pure-Python loop iteration (lower is a faster machine)")
    return calibration


def main() -> int:
    """Run the benchmark and print one line per (format, step)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    rng = random.Random(5424)
    received_at = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    decoder = SyslogDecoder(SPEC_RULES)
    peer = "10.0.0.5:514"

    def decode(data: bytes) -> object:
        return decoder.decode(data, peer, received_at, "udp")

    def parse_5424(data: bytes) -> object:
        return parse_rfc5424(data.decode("utf-8", "replace"))

    def parse_3164(data: bytes) -> object:
        return parse_rfc3164(data.decode("utf-8", "replace"), received_at)

    def parse_cef_bytes(data: bytes) -> object:
        return parse_cef(data.decode("utf-8", "replace"))

    cases: list[tuple[str, list[bytes], Callable[[bytes], object]]] = [
        ("rfc5424", rfc5424_corpus(rng), parse_5424),
        ("rfc3164", rfc3164_corpus(rng), parse_3164),
        ("cef", cef_corpus(rng), parse_cef_bytes),
    ]
    print_machine()
    print(
        f"median µs/message over {args.messages} messages (batches of {args.batch}), "
        f"best of {args.rounds} rounds"
    )
    print(f"{'format':<8} {'step':<7} {'wall':>8} {'cpu':>8} {'target':>7}  verdict (on cpu time)")
    all_ok = True
    for name, corpus, parse in cases:
        for fn in (parse, decode):  # warm up: first-call costs (imports, regex caches) are not the figure
            for data in corpus[:200]:
                fn(data)
        for step, fn in (("parse", parse), ("decode", decode)):
            rounds = [measure(fn, corpus, args.messages, args.batch) for _ in range(args.rounds)]
            wall = min(r[0] for r in rounds)
            cpu = min(r[1] for r in rounds)
            target = TARGET_US[name] if step == "parse" else None
            verdict = ""
            if target is not None:
                ok = cpu <= target
                all_ok = all_ok and ok
                verdict = "ok" if ok else "OVER TARGET"
            target_text = f"{target:.1f}" if target is not None else "-"
            print(f"{name:<8} {step:<7} {wall:8.2f} {cpu:8.2f} {target_text:>7}  {verdict}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
