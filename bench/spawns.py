"""How long starting a script holds up the event loop: uvloop's ``subprocess_exec`` (libuv's ``fork``)
against the runner's `spawn.start` (``vfork``), at the resident size of a small and of a running service.

    python bench/spawns.py [--resident-mb 0 250] [--runs 3]

For each way and resident size: how long the start call takes (p50, max), one start at a time and 200 at
once, and the runs per second of ``/bin/cat /proc/uptime``. ``spawn.start`` never awaits: all its time
blocks the loop. uvloop's call blocks the loop for the fork and the wait for the child's ``exec``; with
200 at once its figure also counts waiting for the others' starts. The ballast is touched memory, so a
fork has its page tables to copy, as the service's would be.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from opsresponder.response.runners import spawn

ARGV = ["/bin/cat", "/proc/uptime"]


class _Exit(asyncio.SubprocessProtocol):
    def __init__(self) -> None:
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        self.exited.set()


async def _one(how: str, blocked: list[float]) -> None:
    loop = asyncio.get_running_loop()
    protocol = _Exit()
    started = time.perf_counter()
    handle: spawn.ProcessHandle
    if how == "fork":
        handle, _ = await loop.subprocess_exec(
            lambda: protocol, *ARGV, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd="/", env={}, start_new_session=True,
        )  # fmt: skip
    else:
        handle = await spawn.start(protocol, ARGV, cwd=Path("/"), env={})
    blocked.append(time.perf_counter() - started)
    await protocol.exited.wait()
    handle.close()


async def _measure(how: str, resident_mb: int, runs: int) -> None:
    ballast = bytearray(resident_mb * 2**20)
    ballast[:: 4096] = b"x" * len(ballast[:: 4096])  # fmt: skip
    for at_once in (1, 200):
        blocked: list[float] = []
        started = time.perf_counter()
        for _ in range(runs):
            await asyncio.gather(*(_one(how, blocked) for _ in range(at_once)))
        rate = runs * at_once / (time.perf_counter() - started)
        name = "uvloop subprocess_exec (fork)" if how == "fork" else "spawn.start (vfork + pidfd)"
        print(
            f"  {name}, +{resident_mb} MiB, {at_once} at once: the start call takes p50 "
            f"{1000 * statistics.median(blocked):.2f} ms, max {1000 * max(blocked):.2f} ms; {rate:.0f} runs/s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--resident-mb", type=int, nargs="+", default=[0, 250])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for resident in args.resident_mb:
        for how in ("fork", "vfork"):
            uvloop.run(_measure(how, resident, args.runs))


if __name__ == "__main__":
    main()
