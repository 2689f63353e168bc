#!/usr/bin/env python3
"""list_high_cpu_processes: the processes using the most CPU over a short sample.

Prints {"processes": [{pid, ppid, name, user, cpu_percent, rss_bytes, cmdline}...], "total_processes",
"listed", "cpu_count", "metrics": {"total_processes", "top_cpu_percent", "listed_cpu_percent"}}.
cpu_percent is of one CPU (like top): a process busy on two CPUs shows 200.
"""

from __future__ import annotations

import os

from _opsr import emit, fail, parser, sample_processes

# A command line is shown up to this many characters: enough to recognise it, bounded in size.
_CMDLINE_CHARS = 300


def main() -> None:
    arguments = parser(__doc__ or "")
    arguments.add_argument("--limit", type=int, default=10)
    arguments.add_argument("--sample_seconds", type=float, default=1.0)
    args = arguments.parse_args()
    if not 1 <= args.limit <= 1000:
        fail("limit must be between 1 and 1000", 2)
    if not 0 < args.sample_seconds <= 60:
        fail("sample_seconds must be in (0, 60]", 2)
    processes = sample_processes(args.sample_seconds)
    top = [
        {
            "pid": p["pid"],
            "ppid": p["ppid"],
            "name": p["name"],
            "user": p["user"],
            "cpu_percent": p["cpu_percent"],
            "rss_bytes": p["rss_bytes"],
            "cmdline": " ".join(p["cmdline"])[:_CMDLINE_CHARS],
        }
        for p in processes[: args.limit]
    ]
    emit(
        {
            "processes": top,
            "total_processes": len(processes),
            "listed": len(top),
            "cpu_count": os.cpu_count() or 1,
            "sample_seconds": args.sample_seconds,
            "metrics": {
                "total_processes": len(processes),
                "top_cpu_percent": top[0]["cpu_percent"] if top else 0.0,
                "listed_cpu_percent": round(sum(p["cpu_percent"] for p in top), 1),
            },
        }
    )


if __name__ == "__main__":
    main()
