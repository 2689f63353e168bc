#!/usr/bin/env python3
"""check_cpu_usage: CPU usage over a sample of /proc/stat, and the load averages.

Prints {"cpu_usage": percent busy, "load_1m", "load_5m", "load_15m", "cpu_count", "metrics": {...}}.
"""

from __future__ import annotations

import os
import socket
import time

from _opsr import emit, fail, parser

_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def cpu_times() -> dict[str, int]:
    with open("/proc/stat", encoding="ascii") as f:
        for line in f:
            if line.startswith("cpu "):
                values = [int(v) for v in line.split()[1:]]
                return dict(zip(_FIELDS, values + [0] * (len(_FIELDS) - len(values)), strict=False))
    raise OSError("no aggregate cpu line in /proc/stat")


def main() -> None:
    arguments = parser(__doc__ or "")
    arguments.add_argument("--sample_seconds", type=float, default=5.0)
    args = arguments.parse_args()
    if not 0 < args.sample_seconds <= 60:
        fail("sample_seconds must be in (0, 60]", 2)
    try:
        before = cpu_times()
        time.sleep(args.sample_seconds)
        after = cpu_times()
    except OSError as e:
        fail(f"cannot read /proc/stat: {e}")
    delta = {name: after[name] - before[name] for name in _FIELDS}
    total = sum(delta.values()) or 1
    idle = delta["idle"] + delta["iowait"]

    def percent(ticks: int) -> float:
        return round(100.0 * ticks / total, 1)

    load_1m, load_5m, load_15m = os.getloadavg()
    usage = round(100.0 * (total - idle) / total, 1)
    metrics = {
        "cpu_usage": usage,
        "user_percent": percent(delta["user"] + delta["nice"]),
        "system_percent": percent(delta["system"] + delta["irq"] + delta["softirq"]),
        "iowait_percent": percent(delta["iowait"]),
        "steal_percent": percent(delta["steal"]),
        "load_1m": load_1m,
        "load_5m": load_5m,
        "load_15m": load_15m,
    }
    emit(
        {
            "host": socket.gethostname(),
            "cpu_usage": usage,
            "load_1m": load_1m,
            "load_5m": load_5m,
            "load_15m": load_15m,
            "cpu_count": os.cpu_count() or 1,
            "sample_seconds": args.sample_seconds,
            "metrics": metrics,
        }
    )


if __name__ == "__main__":
    main()
