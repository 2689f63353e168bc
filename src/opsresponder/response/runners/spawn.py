"""Start a script's process and watch it from the event loop, without forking the service.

Why not ``loop.subprocess_exec``: the service runs on uvloop, whose spawn is libuv's ``fork()``; a fork
copies the page tables of the whole service process and the loop waits for the child to ``exec``, so
each spawn blocked the loop for 1.7 ms in a small process and 6.8 ms with 200 MiB more resident on a
quiet machine (7-14 ms on a busy one). Spawns were then the executor's throughput ceiling (about 120
steps/s) and held up every webhook answered on the same loop. ``subprocess.Popen`` uses ``vfork()``
(CPython 3.10+): 0.2-0.5 ms whatever the service's size (bench/spawns.py measures both).

Watching needs no thread: the exit through a pidfd (Linux 5.3+) readable on the loop, then
``waitpid`` of that one pid (never ``-1``: uvloop and asyncio's watchers reap their own children), the
output through non-blocking reads of the pipes. Where pidfds are missing, `start` falls back to
``loop.subprocess_exec``.

The returned handle answers like an ``asyncio.SubprocessTransport`` for what the runner uses
(``get_pid``, ``get_returncode``, ``close``) and drives the same ``SubprocessProtocol`` callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Final, Protocol

_READ_BYTES: Final = 64 * 1024


class ProcessHandle(Protocol):
    def get_pid(self) -> int: ...

    def get_returncode(self) -> int | None: ...

    def close(self) -> None: ...


def _pidfds_work() -> bool:
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


PIDFDS: Final = _pidfds_work()


async def start(
    protocol: asyncio.SubprocessProtocol,
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    nice: int = 0,
) -> ProcessHandle:
    """Start `argv` in its own session (stdin /dev/null, stdout and stderr piped to `protocol`), at CPU
    niceness `nice` (or the service's own, when higher).

    The niceness is set just after the start (``vfork`` allows no hook in the child): what the script
    does, and the processes it starts, in its first microseconds keep the service's.

    Raises:
        OSError: the program cannot be started (missing, not executable, bad working directory).
    """
    loop = asyncio.get_running_loop()
    if not PIDFDS:
        transport, _ = await loop.subprocess_exec(
            lambda: protocol,
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
        _renice(transport.get_pid(), nice)
        return transport
    # Blocking, but only until the child execs: vfork suspends this thread about 0.4 ms (the point).
    process = subprocess.Popen(  # noqa: ASYNC220
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=dict(env),
        start_new_session=True,
    )
    _renice(process.pid, nice)
    return _Watched(loop, process, protocol)


def _renice(pid: int, nice: int) -> None:
    # Raising niceness needs no privilege; lowering it below ours would (and is never wanted).
    wanted = max(nice, os.getpriority(os.PRIO_PROCESS, 0))
    with contextlib.suppress(OSError):  # ESRCH: it has exited (and been reaped) already
        os.setpriority(os.PRIO_PROCESS, pid, wanted)


class _Watched:
    """A `subprocess.Popen` watched from the loop: exit through its pidfd, output as it arrives.

    Everything is registered before the constructor returns (no await between the spawn and the watch),
    so a cancellation cannot leave a child nobody reaps.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        process: subprocess.Popen[bytes],
        protocol: asyncio.SubprocessProtocol,
    ) -> None:
        self._loop = loop
        self._process = process
        self._protocol = protocol
        self._pipes: dict[int, IO[bytes]] = {}
        try:
            self._pidfd: int | None = os.pidfd_open(process.pid)
        except OSError:  # cannot happen for our own unreaped child; if it does, stop it rather than leak it
            process.kill()
            process.wait()
            raise
        loop.add_reader(self._pidfd, self._exited)
        for number, pipe in ((1, process.stdout), (2, process.stderr)):
            assert pipe is not None
            os.set_blocking(pipe.fileno(), False)
            self._pipes[number] = pipe
            loop.add_reader(pipe.fileno(), self._readable, number)

    def get_pid(self) -> int:
        return self._process.pid

    def get_returncode(self) -> int | None:
        return self._process.returncode

    def close(self) -> None:
        """Stop reading the pipes. A child not yet exited stays watched until it does, so it is reaped."""
        for number in list(self._pipes):
            self._close_pipe(number)

    def _readable(self, number: int) -> None:
        pipe = self._pipes.get(number)
        if pipe is None:
            return
        try:
            data = os.read(pipe.fileno(), _READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._protocol.pipe_data_received(number, data)
        else:
            self._close_pipe(number)

    def _close_pipe(self, number: int) -> None:
        pipe = self._pipes.pop(number)
        self._loop.remove_reader(pipe.fileno())
        pipe.close()
        self._protocol.pipe_connection_lost(number, None)

    def _exited(self) -> None:
        try:
            pid, status = os.waitpid(self._process.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else: the exit is known, its status is not
            pid, status = self._process.pid, None
        if pid == 0:
            return
        if status is not None:
            # Popen sees it reaped: it never waits for the pid again (which may be reused by then).
            self._process.returncode = os.waitstatus_to_exitcode(status)
        assert self._pidfd is not None
        self._loop.remove_reader(self._pidfd)
        with contextlib.suppress(OSError):
            os.close(self._pidfd)
        self._pidfd = None
        self._protocol.process_exited()
