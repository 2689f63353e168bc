"""The script runner: runs a catalog script's argv as a process, never through a shell.

What a script gets, and nothing more:
- its argv, then one ``--name=value`` argument per checked parameter (or ``OPSR_PARAM_NAME`` variables);
  a value is one argument whatever it holds (``; rm -rf /`` is text, not a command);
- an environment built from ``pass_environment``, ``environment`` and ``OPSR_EXECUTION_ID``,
  ``OPSR_ACTION_ID``, ``OPSR_TARGET``: a secret in OpsResponder's own environment does not leak;
- the configured working directory, stdin from /dev/null, its own session (so its own process group),
  CPU niceness ``nice`` (10 by default: background work, below ingest and the executor).

Stopping it means stopping everything it started: on timeout or cancellation the whole process group gets
SIGTERM, then SIGKILL after ``kill_grace_seconds``; when the script exits normally, whatever it left
behind in its group gets SIGKILL at once (a background child would otherwise hold stdout open).

The process is watched through a protocol rather than ``asyncio.subprocess.Process``: on Python 3.11
``Process.wait()`` returns only once every pipe is closed, so a child holding stdout would hide the
script's own exit; a protocol also lets us drop output past the bound as it arrives, so a chatty script
never blocks on a full pipe. The process is started by `spawn.start` (``vfork``, not uvloop's ``fork``:
see there).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Final

import structlog

from opsresponder.config import ScriptRunnerConfig
from opsresponder.response.runners import spawn
from opsresponder.response.runners.base import ActionRequest, RunResult
from opsresponder.response.runners.parameters import ParameterError, check_parameters
from opsresponder.response.runners.results import structured

log = structlog.get_logger(__name__)

PARAMETER_ENV_PREFIX: Final = "OPSR_PARAM_"
# An error message quotes at most this much of the script's last stderr line: enough to see why.
_ERROR_STDERR_CHARS: Final = 200
# After the group is SIGKILLed, how long to wait for the kernel to deliver it (a process in an
# uninterruptible sleep dies only when the sleep ends); past it the run ends without the exit status.
_REAP_SECONDS: Final = 5.0


class _Capture(asyncio.SubprocessProtocol):
    """Keeps each of stdout and stderr up to `limit` bytes, drops the rest, and notes what ended."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.output = {1: bytearray(), 2: bytearray()}
        self.truncated: set[int] = set()
        self.exited = asyncio.Event()
        self.pipes_closed = asyncio.Event()
        self._open = {1, 2}

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        buffer = self.output[fd]
        room = self._limit - len(buffer)
        if room > 0:
            buffer += data[:room]
        if len(data) > room:
            self.truncated.add(fd)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open.discard(fd)
        if not self._open:
            self.pipes_closed.set()

    def process_exited(self) -> None:
        self.exited.set()


class ScriptRunner:
    """Runs catalog scripts that have a ``command`` (`Runner`)."""

    def __init__(self, config: ScriptRunnerConfig, *, data_dir: str = "./var") -> None:
        self._config = config
        self._directory = Path(config.working_directory or Path(data_dir) / "scripts").absolute()
        self._base_environment = {
            name: os.environ[name] for name in config.pass_environment if name in os.environ
        }
        self._base_environment.update(config.environment)

    @property
    def working_directory(self) -> Path:
        return self._directory

    async def run(self, request: ActionRequest) -> RunResult:
        """Run the script to its end (or its timeout); on cancellation stop its group, then re-raise."""
        started = time.monotonic()
        script = request.script
        if not script.command:
            return _failed(started, f"script {script.name} has no command")
        try:
            values = check_parameters(script, request.parameters)
        except ParameterError as e:
            return _failed(started, str(e))
        argv = list(script.command)
        environment = dict(self._base_environment)
        environment["OPSR_EXECUTION_ID"] = request.execution_id
        environment["OPSR_ACTION_ID"] = request.action_id
        if request.target is not None:
            environment["OPSR_TARGET"] = request.target
        for name, text in values.items():
            if script.parameters_as == "environment":
                environment[PARAMETER_ENV_PREFIX + name.upper()] = text
            else:
                # One argument "--name=value": a value starting with "-" can never be read as an option.
                argv.append(f"--{name}={text}")
        capture = _Capture(self._config.max_output_bytes)
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            reason = e.strerror or e
            return _failed(started, f"cannot create the working directory {self._directory}: {reason}")
        try:
            transport = await spawn.start(
                capture, argv, cwd=self._directory, env=environment, nice=self._config.nice
            )
        except OSError as e:
            return _failed(started, f"cannot start {argv[0]}: {e.strerror or e}")
        group = transport.get_pid()
        timed_out = False
        try:
            try:
                async with asyncio.timeout(request.timeout_seconds):
                    await capture.exited.wait()
            except TimeoutError:
                timed_out = True
                await self._stop_group(group, capture)
            else:
                _signal_group(group, signal.SIGKILL)  # stragglers: the script is done, so are they
            # Output still in the pipes is read to the end; a process that left our group (its own
            # session) and holds them is not waited for past the grace.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._config.kill_grace_seconds):
                    await capture.pipes_closed.wait()
        except BaseException:  # cancellation above all: nothing of the script may outlive this call
            await self._stop_group(group, capture)
            raise
        finally:
            transport.close()
        return _result(started, request, capture, transport.get_returncode(), timed_out)

    async def _stop_group(self, group: int, capture: _Capture) -> None:
        """SIGTERM the group, SIGKILL it after the grace (even if this wait is itself cancelled)."""
        _signal_group(group, signal.SIGTERM)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._config.kill_grace_seconds):
                    await capture.exited.wait()
        finally:
            # Also when the script exited on SIGTERM: its children may ignore it.
            _signal_group(group, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_REAP_SECONDS):
                await capture.exited.wait()


def _signal_group(group: int, signum: signal.Signals) -> None:
    # ESRCH: the group is empty (everyone exited); EPERM: a member changed its credentials (setuid), which
    # we cannot signal anyway.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def _result(
    started: float, request: ActionRequest, capture: _Capture, exit_code: int | None, timed_out: bool
) -> RunResult:
    stdout = bytes(capture.output[1])
    stderr = capture.output[2].decode("utf-8", errors="replace")
    # A cut JSON document is not a smaller one: no data rather than a guess.
    data, metrics = structured(stdout) if 1 not in capture.truncated else (None, {})
    error: str | None = None
    if timed_out:
        error = f"timed out after {request.timeout_seconds:g} s"
    elif exit_code is None:
        error = "the process did not exit after SIGKILL"
    elif exit_code < 0:
        error = f"killed by signal {_signal_name(-exit_code)}"
    elif exit_code != 0:
        error = f"exit code {exit_code}"
    if error is not None and not timed_out:
        last = stderr.strip().rsplit("\n", 1)[-1].strip()
        if last:
            error += f": {last[:_ERROR_STDERR_CHARS]}"
    return RunResult(
        success=error is None,
        output=stdout.decode("utf-8", errors="replace"),
        error=error,
        exit_code=exit_code,
        data=data,
        metrics=metrics,
        stderr=stderr,
        timed_out=timed_out,
        truncated=bool(capture.truncated),
        duration_seconds=time.monotonic() - started,
    )


def _failed(started: float, error: str) -> RunResult:
    return RunResult(success=False, error=error, duration_seconds=time.monotonic() - started)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
