"""The response side in a child process of its own (``response.process: separate``): the parent's
supervisor (`ResponseProcess`) and the child's link to its parent (`ParentLink`).

Why a process: 200 running executions share nothing with ingest but the database, yet in one process
their callbacks, the API's submits and the executor's writes run on ingest's event loop, between a
webhook's arrival and its commit (bench/executions.py: ingest p99 x8-12 beside them in one process, x2-3
with the response side in its own). docs/response.md "The response process" has the figures.

The protocol, over the child's standard streams (its stderr is the parent's: one log):
- parent -> child stdin: the first line is the whole configuration as JSON (the parent's, with the
  database it actually uses, so an embedded PostgreSQL is shared and nothing is re-read from files or the
  environment); then one ``w`` line per wake (a pipeline commit may have written firings: the
  rule-to-response loop looks at once instead of at its next poll). End of input: the parent is gone,
  the child stops as on SIGTERM.
- child -> parent stdout: one JSON line ``{"listening": {name: address}}`` once port 3011 serves.
- The child dies with its parent (``PR_SET_PDEATHSIG``): a kill -9 of the service kills both, as one
  process would die; executions it ran are recovered by lease expiry, as after any crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, BinaryIO, Final

import msgspec
import structlog
from prometheus_client import CollectorRegistry, Counter

from opsresponder.config import Settings
from opsresponder.core.errors import OpsResponderError

log = structlog.get_logger(__name__)

COMMAND: Final = "response-process"
"""The ``opsresponder`` subcommand the child runs (not listed in its help: only `serve` starts it)."""
START_TIMEOUT_SECONDS: Final = 60.0
STOP_TIMEOUT_SECONDS: Final = 30.0
"""Beyond the executor's own stop grace (10 s) and the HTTP server's: then the child is killed."""
_RESTART_FIRST_DELAY: Final = 0.5
_RESTART_MAX_DELAY: Final = 30.0
_WAKE: Final = b"w\n"
_MAX_UNSENT_WAKES: Final = 4096
"""Bytes of wakes left unread by a stuck child beyond which more are dropped (one is enough to wake it)."""
_PR_SET_PDEATHSIG: Final = 1


class ResponseProcessError(OpsResponderError):
    """The response process did not start (its own log lines, on the same stderr, say why)."""


class ResponseProcess:
    """Starts the response side's process, restarts it when it dies, wakes its loop, stops it."""

    def __init__(
        self,
        settings: Settings,
        registry: CollectorRegistry,
        on_listening: Callable[[dict[str, str]], None],
    ) -> None:
        self._setup = msgspec.json.encode(settings) + b"\n"
        self._on_listening = on_listening
        self._restarts = Counter(
            "opsresponder_response_process_restarts",
            "Times the response process (port 3011, executions) died and was started again.",
            registry=registry,
        )
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._wake_pending = False

    @property
    def pid(self) -> int | None:
        process = self._process
        return None if process is None or process.returncode is not None else process.pid

    async def start(self) -> dict[str, str]:
        """Start the child and wait until it serves; its listeners' addresses by name.

        Raises:
            ResponseProcessError: it exited or did not serve within `START_TIMEOUT_SECONDS`.
        """
        self._stopping = False
        process, listening = await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(process), name="response-process")
        return listening

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
        """SIGTERM: the child stops as the service does (executions interrupted, rollbacks queued); killed
        after `STOP_TIMEOUT_SECONDS`. Idempotent."""
        self._stopping = True
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            await asyncio.wait([supervisor])
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            log.error("The response process did not stop in time; killing it.", pid=process.pid)
            process.kill()
            await process.wait()
        if process.returncode:
            log.warning("The response process stopped with an error.", exit_code=process.returncode)

    async def _spawn(self) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "opsresponder",
            COMMAND,
            "--parent-pid",
            str(os.getpid()),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self._process = process
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(self._setup)
        try:
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_SECONDS)
        except TimeoutError:
            line = b""
        try:
            listening = msgspec.json.decode(line, type=_Listening).listening
        except msgspec.DecodeError:
            if process.returncode is None:
                process.kill()
            code = await process.wait()
            raise ResponseProcessError(
                f"the response process did not start (exit code {code}; its log says why)"
            ) from None
        log.info("The response process is serving.", pid=process.pid, **listening)
        return process, listening

    async def _supervise(self, process: asyncio.subprocess.Process) -> None:
        delay = _RESTART_FIRST_DELAY
        while True:
            code = await process.wait()
            if self._stopping:
                return
            self._restarts.inc()
            log.error(
                "The response process stopped; starting it again. Port 3011 and executions wait meanwhile.",
                exit_code=code,
                restart_in_seconds=delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RESTART_MAX_DELAY)
            try:
                process, listening = await self._spawn()
            except (ResponseProcessError, OSError) as e:
                log.error("Starting the response process again failed.", error=str(e))
                continue
            self._on_listening(listening)


class _Listening(msgspec.Struct):
    listening: dict[str, str]


class ParentLink:
    """The child's side: read the configuration, die with the parent, announce, follow the wakes."""

    def __init__(
        self, parent_pid: int, stdin: BinaryIO = sys.stdin.buffer, stdout: BinaryIO = sys.stdout.buffer
    ) -> None:
        self._parent_pid = parent_pid
        self._stdin = stdin
        self._stdout = stdout

    def die_with_parent(self) -> None:
        """Ask the kernel for SIGKILL when the parent dies; exit at once if it already has.

        Raises:
            ResponseProcessError: the parent is not the one named (it died before this ran).
        """
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise ResponseProcessError(f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(ctypes.get_errno())}")
        if os.getppid() != self._parent_pid:
            raise ResponseProcessError("the parent process is gone")

    def read_settings(self) -> Settings:
        """The first line of the input: the parent's configuration.

        Raises:
            ResponseProcessError: the line is missing or not a configuration.
        """
        try:
            return msgspec.json.decode(self._stdin.readline(), type=Settings)
        except msgspec.DecodeError as e:
            raise ResponseProcessError(f"no configuration from the parent process: {e}") from None

    def announce(self, listening: dict[str, Any]) -> None:
        self._stdout.write(msgspec.json.encode(_Listening({k: str(v) for k, v in listening.items()})) + b"\n")
        self._stdout.flush()

    async def follow(self, on_wake: Callable[[], None]) -> None:
        """Call `on_wake` per wake line; return at the end of input (the parent is gone)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), self._stdin)
        try:
            while line := await reader.readline():
                if line == _WAKE:
                    on_wake()
        finally:
            with contextlib.suppress(Exception):
                transport.close()
