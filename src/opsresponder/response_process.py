"""The response side in a child process of its own (``response.process: separate``): the parent's
supervisor (`ResponseProcess`) and the child's link to its parent (`ParentLink`).

Why a process: 200 running executions share nothing with ingest but the database, yet in one process
their callbacks, the API's submits and the executor's writes run on ingest's event loop, between a
webhook's arrival and its commit (bench/executions.py: webhook p99 beside them 39 ms in one process,
19-22 ms with the response side in its own, 4-7 ms alone). docs/response.md "The response process".

The protocol, over the child's standard streams (its stderr is the parent's: one log):
- parent -> child stdin: the first line is the whole configuration as JSON (the parent's, with the
  database it actually uses, so an embedded PostgreSQL is shared; the configuration is not read again
  from files or the environment); then one ``w`` line per wake (a pipeline commit may have written
  firings: the rule-to-response loop looks at once instead of at its next poll). End of input: the
  parent is gone, the child stops as on SIGTERM.
- child -> parent stdout: one JSON line ``{"listening": {name: address}}`` once port 3011 serves (other
  lines before it are skipped); then the child's stdout is its stderr, so nothing it prints can fill a
  pipe nobody reads, and it stays in the log.
- The child dies with its parent (``PR_SET_PDEATHSIG``, Linux): a kill -9 of the service kills both, as
  one process would die; executions it ran are recovered by lease expiry, as after any crash. It runs in
  a session of its own, so a terminal's Ctrl-C reaches only the parent, which stops it in order; it
  ignores SIGTERM once stopped.
- The child reads the script catalog and the message templates when it starts (and restarts), as the
  one process does at its start.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, Final

import msgspec
import structlog
from prometheus_client import CollectorRegistry, Counter

from opsresponder.api.bodies import ResponseProcessState
from opsresponder.config import Settings
from opsresponder.core.errors import OpsResponderError

log = structlog.get_logger(__name__)

COMMAND: Final = "response-process"
"""The ``opsresponder`` subcommand the child runs (not listed in its help: only `serve` starts it)."""
START_TIMEOUT_SECONDS: Final = 120.0
"""From spawn to serving: imports, pools, and the executor's recovery of what a dead process left."""
STOP_MARGIN_SECONDS: Final = 40.0
"""The child's stop beyond its HTTP drain (``pipeline.drain_grace_seconds``): the loop's stop (up to
10 s), the executor's grace for its runs to record their end (10 s) and the cancels after it; then the
child is killed (its executions are then recovered by lease expiry)."""
_RESTART_FIRST_DELAY: Final = 0.5
_RESTART_MAX_DELAY: Final = 30.0
_HEALTHY_SECONDS: Final = 60.0
"""A child that served this long before dying restarts after the first delay again."""
_WAKE: Final = b"w\n"
_MAX_UNSENT_WAKES: Final = 4096
"""Bytes of wakes left unread by a stuck child beyond which more are dropped (one is enough to wake it)."""
_PR_SET_PDEATHSIG: Final = 1


class ResponseProcessError(OpsResponderError):
    """The response process did not start (its own log lines, on the same stderr, say why)."""


class ResponseProcess:
    """Starts the response side's process, restarts it when it dies, wakes its loop, stops it."""

    def __init__(self, settings: Settings, registry: CollectorRegistry, listeners: dict[str, str]) -> None:
        """`listeners`: the service's bound addresses by name (what /health shows): the child's are added
        while it serves, removed while it is down."""
        self._setup = msgspec.json.encode(settings) + b"\n"
        self._stop_timeout = settings.pipeline.drain_grace_seconds + STOP_MARGIN_SECONDS
        self._listeners = listeners
        self._announced: list[str] = []
        self._restarts = Counter(
            "opsresponder_response_process_restarts",
            "Times the response process (port 3011, executions) died and was started again.",
            registry=registry,
        )
        self.restart_count = 0
        """Times the child died (not stopped by this service) since this service started."""
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._terminated: asyncio.subprocess.Process | None = None
        self._wake_pending = False

    @property
    def pid(self) -> int | None:
        process = self._process
        return None if process is None or process.returncode is not None else process.pid

    def state(self) -> ResponseProcessState:
        """What the events port's /ready shows of it."""
        return ResponseProcessState(
            running=self.pid is not None and bool(self._announced), restarts=self.restart_count
        )

    @property
    def exit_code(self) -> int | None:
        """The last child's exit code once it has ended (None while it runs)."""
        return None if self._process is None else self._process.returncode

    async def start(self) -> None:
        """Start the child and wait until it serves (its listeners are then in `listeners`).

        Raises:
            ResponseProcessError: it exited or did not serve within `START_TIMEOUT_SECONDS`.
        """
        self._stopping = False
        try:
            process = await self._spawn()
        except ResponseProcessError:
            if self._stopping:
                return  # the service was told to stop while it started (and so was the child)
            raise
        self._supervisor = asyncio.create_task(self._supervise(process), name="response-process")
        self._supervisor.add_done_callback(_log_failure)

    def prepare_stop(self) -> None:
        """The service is stopping: a child ending from now on is not restarted (a signal to the whole
        process group, as systemd sends, ends it before the parent's stop reaches it)."""
        self._stopping = True

    async def begin_stop(self) -> None:
        """Send SIGTERM now (once), so the child drains its requests while the parent drains its own."""
        self._stopping = True
        process = self._process
        if process is not None and process.returncode is None and self._terminated is not process:
            self._terminated = process
            process.send_signal(signal.SIGTERM)

    def wake(self) -> None:
        """Tell the child's rule-to-response loop to look for firings now (coalesced per loop iteration)."""
        if not self._wake_pending:
            self._wake_pending = True
            asyncio.get_running_loop().call_soon(self._send_wake)

    def _send_wake(self) -> None:
        self._wake_pending = False
        process = self._process
        if process is None or process.stdin is None or process.stdin.is_closing():
            return  # restarting: the new child's loop looks at the outbox when it starts
        if process.stdin.transport.get_write_buffer_size() < _MAX_UNSENT_WAKES:
            process.stdin.write(_WAKE)

    async def stop(self) -> None:
        """SIGTERM (unless `begin_stop` sent it): the child stops as the service does (executions
        interrupted, rollbacks queued); killed when it takes longer than its drain and stop graces.
        Idempotent."""
        await self.begin_stop()
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            await asyncio.wait([supervisor])
        process = self._process
        if process is None:
            return
        try:
            await asyncio.wait_for(process.wait(), self._stop_timeout)
        except TimeoutError:
            log.error("The response process did not stop in time; killing it.", pid=process.pid)
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                process.kill()
            await process.wait()
        finally:
            self._forget_listeners()
        if process.returncode not in (0, -signal.SIGTERM):  # -SIGTERM: stopped before it could listen
            log.warning("The response process stopped with an error.", exit_code=process.returncode)

    async def _spawn(self) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-P",  # not the working directory first on sys.path: the parent's code, nothing planted there
            "-m",
            "opsresponder",
            COMMAND,
            "--parent-pid",
            str(os.getpid()),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        self._process = process
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(self._setup)
        try:
            listening = await asyncio.wait_for(_announced(process.stdout), START_TIMEOUT_SECONDS)
        except TimeoutError:
            listening = None
        if listening is None:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            code = await process.wait()
            raise ResponseProcessError(
                f"the response process did not start (exit code {code}; its log says why)"
            ) from None
        log.info("The response process is serving.", pid=process.pid, **listening)
        self._listeners.update(listening)
        self._announced = list(listening)
        return process

    def _forget_listeners(self) -> None:
        for name in self._announced:
            self._listeners.pop(name, None)
        self._announced = []

    async def _supervise(self, process: asyncio.subprocess.Process | None) -> None:
        delay = _RESTART_FIRST_DELAY
        loop = asyncio.get_running_loop()
        served_since = loop.time()
        while True:
            if process is not None:
                code = await process.wait()
                if self._stopping:
                    return
                self._forget_listeners()
                self._restarts.inc()
                self.restart_count += 1
                if loop.time() - served_since >= _HEALTHY_SECONDS:
                    delay = _RESTART_FIRST_DELAY
                log.error(
                    "The response process stopped; starting it again. Port 3011 and executions wait.",
                    exit_code=code,
                    restart_in_seconds=delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RESTART_MAX_DELAY)
            if self._stopping:
                return
            try:
                process = await self._spawn()
            except (ResponseProcessError, OSError) as e:
                if self._stopping:
                    return  # stopped while it started: not a failure
                log.error("Starting the response process again failed.", error=str(e), retry_in_seconds=delay)
                process = None
                continue
            served_since = loop.time()


async def _announced(stdout: asyncio.StreamReader) -> dict[str, str] | None:
    """The child's listeners, from the first line of its stdout that is the announce (a stray print
    before it is skipped); None at the end of its output."""
    while True:
        try:
            line = await stdout.readline()
        except ValueError:  # a line over the reader's limit: not the announce
            continue
        if not line:
            return None
        with contextlib.suppress(msgspec.DecodeError):
            return msgspec.json.decode(line, type=_Listening).listening


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "Supervising the response process failed: it is no longer restarted.",
            exc_info=task.exception(),
        )


class _Listening(msgspec.Struct):
    listening: dict[str, str]


class ParentLink:
    """The child's side: read the configuration, die with the parent, announce, follow the wakes."""

    def __init__(self, parent_pid: int, stdin_fd: int = 0, stdout_fd: int = 1) -> None:
        self._parent_pid = parent_pid
        self._stdin_fd = stdin_fd
        self._stdout_fd = stdout_fd
        self._read_ahead = b""

    def die_with_parent(self) -> None:
        """Ask the kernel for SIGKILL when the parent dies (Linux; elsewhere the end of stdin stops the
        child); fail if the parent already has.

        Raises:
            ResponseProcessError: the parent is not the one named (it died before this ran).
        """
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            answer = libc.prctl(
                ctypes.c_int(_PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGKILL), ctypes.c_ulong(0),
                ctypes.c_ulong(0), ctypes.c_ulong(0),
            )  # fmt: skip
            if answer != 0:
                error = os.strerror(ctypes.get_errno())
                raise ResponseProcessError(f"prctl(PR_SET_PDEATHSIG) failed: {error}")
        if os.getppid() != self._parent_pid:
            raise ResponseProcessError("the parent process is gone")

    def read_settings(self) -> Settings:
        """The first line of the input: the parent's configuration. Read from the descriptor, not a
        buffered file, and what came after the line is kept for `follow`: no wake is lost.

        Raises:
            ResponseProcessError: the line is missing or not a configuration.
        """
        data = b""
        while b"\n" not in data:
            chunk = os.read(self._stdin_fd, 65536)
            if not chunk:
                break
            data += chunk
        line, _, self._read_ahead = data.partition(b"\n")
        try:
            return msgspec.json.decode(line, type=Settings)
        except msgspec.DecodeError as e:
            raise ResponseProcessError(f"no configuration from the parent process: {e}") from None

    def announce(self, listening: dict[str, Any]) -> None:
        """Tell the parent where this process serves; then stdout is stderr (see the module)."""
        line = msgspec.json.encode(_Listening({k: str(v) for k, v in listening.items()})) + b"\n"
        os.write(self._stdout_fd, line)
        os.dup2(2, self._stdout_fd)

    async def follow(self, on_wake: Callable[[], None]) -> None:
        """Call `on_wake` per wake line; return at the end of input (the parent is gone)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        reader.feed_data(self._read_ahead)
        pipe = os.fdopen(self._stdin_fd, "rb", buffering=0, closefd=False)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
        try:
            while line := await reader.readline():
                if line == _WAKE:
                    on_wake()
        finally:
            transport.close()
