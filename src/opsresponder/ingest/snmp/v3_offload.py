"""The receiver's side of the SNMPv3 worker process: submit datagrams, get results in order, keep it alive.

One worker process (`v3_worker`), started with the receiver and restarted with a backoff if it dies.
At most `max_in_flight` datagrams wait for it: beyond that the receiver drops and counts them
(``reason="v3_backlog"``), as the kernel would drop them from a full socket buffer, instead of letting
them pile up in memory. Datagrams in flight when the worker dies are counted as ``internal_error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import structlog

from opsresponder.config import SnmpConfig
from opsresponder.ingest.snmp import metrics as m
from opsresponder.ingest.snmp.v3_protocol import (
    RESULT_DECODER,
    FrameError,
    FrameReader,
    V3Request,
    V3Result,
    V3Setup,
    decode_body,
    encode_frame,
)

log = structlog.get_logger(__name__)

DEFAULT_MAX_IN_FLIGHT: Final = 2048
_RESTART_FIRST_DELAY: Final = 0.5
_RESTART_MAX_DELAY: Final = 30.0
_STOP_TIMEOUT: Final = 5.0


@dataclass(frozen=True, slots=True)
class Pending:
    """A submitted datagram: where it came from and when, for the result's handler."""

    address: Any
    received_at: datetime


ResultHandler = Callable[[V3Result, Pending], None]


class V3Offload:
    """Runs SNMPv3 processing in a worker process; `on_result` gets each result on the loop, in order."""

    def __init__(
        self,
        config: SnmpConfig,
        engine_id: bytes,
        ipv6: bool,
        on_result: ResultHandler,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        self._setup = encode_frame(V3Setup(config, engine_id, ipv6))
        self._on_result = on_result
        self._max_in_flight = max_in_flight
        self._pending: deque[tuple[int, Pending]] = deque()
        self._outgoing: list[bytes] = []
        self._seq = 0
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._settled = asyncio.Event()
        self._settled.set()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    @property
    def worker_pid(self) -> int | None:
        process = self._process
        return None if process is None or process.returncode is not None else process.pid

    async def start(self) -> None:
        """Start the worker; returns at once (datagrams submitted meanwhile wait in its pipe)."""
        if self._supervisor is None:
            self._stopping = False
            process = await self._spawn()
            self._supervisor = asyncio.create_task(self._supervise(process), name="snmp-v3-worker")

    def submit(self, data: bytes, address: Any, received_at: datetime) -> bool:
        """Queue a datagram for the worker; False when `max_in_flight` are waiting or it is not running.

        Requests go out in one write per loop iteration, however many datagrams it read.
        """
        process = self._process
        if process is None or process.stdin is None or process.stdin.is_closing():
            return False
        if len(self._pending) >= self._max_in_flight:
            return False
        self._seq += 1
        self._outgoing.append(encode_frame(V3Request(self._seq, data, tuple(address))))
        if len(self._outgoing) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append((self._seq, Pending(address, received_at)))
        self._settled.clear()
        return True

    def _flush(self) -> None:
        frames, self._outgoing = self._outgoing, []
        process = self._process
        if process is not None and process.stdin is not None and not process.stdin.is_closing():
            process.stdin.write(b"".join(frames))
        # Otherwise the worker died meanwhile: its supervisor counts these as internal errors.

    async def settled(self) -> None:
        """Return once every submitted datagram has had its result handled."""
        await self._settled.wait()

    async def stop(self) -> None:
        """Let the worker finish what it has (at most a few seconds), then stop it. Idempotent."""
        self._stopping = True
        process = self._process
        if process is not None and process.stdin is not None:
            if self._outgoing:
                self._flush()
            process.stdin.close()  # the worker answers what it read, then exits at end of input
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), _STOP_TIMEOUT)
            if process.returncode is None:
                process.kill()
                await process.wait()
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            await asyncio.wait([supervisor])
        self._fail_pending()

    async def _spawn(self) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "opsresponder.ingest.snmp.v3_worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**22,
        )
        assert process.stdin is not None
        process.stdin.write(self._setup)
        self._process = process
        return process

    async def _supervise(self, process: asyncio.subprocess.Process) -> None:
        delay = _RESTART_FIRST_DELAY
        while True:
            reason = await self._read_results(process)
            code = await process.wait()
            self._process = None
            self._fail_pending()
            if self._stopping:
                return
            log.error(
                "The SNMPv3 worker process stopped; restarting it. v3 traps meanwhile are dropped.",
                exit_code=code,
                reason=reason,
                restart_in_seconds=delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RESTART_MAX_DELAY)
            process = await self._spawn()

    async def _read_results(self, process: asyncio.subprocess.Process) -> str:
        assert process.stdout is not None
        frames = FrameReader(process.stdout)
        while True:
            try:
                bodies = await frames.next_bodies()
                if bodies is None:
                    return "end of output"
                for body in bodies:
                    result = decode_body(body, RESULT_DECODER)
                    if not self._pending or self._pending[0][0] != result.seq:
                        raise FrameError(f"result {result.seq} does not answer the oldest request")
                    _, pending = self._pending.popleft()
                    self._handle(result, pending)
            except FrameError as e:
                process.kill()
                return str(e)
            if not self._pending:
                self._settled.set()

    def _handle(self, result: V3Result, pending: Pending) -> None:
        try:
            self._on_result(result, pending)
        except Exception:  # a handler bug costs this trap, never the stream of results
            log.exception("Handling an SNMPv3 result failed; the trap is lost.")

    def _fail_pending(self) -> None:
        while self._pending:
            seq, pending = self._pending.popleft()
            self._handle(V3Result(seq, m.INTERNAL_ERROR), pending)
        self._settled.set()
