"""Run ``python -m opsresponder serve`` as a child process and follow its JSON log lines."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

LISTENING = "OpsResponder is listening."


class ServiceProcess:
    """The real service in a child process, with its stderr parsed into log records as they arrive."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.records: list[dict[str, Any]] = []
        self.other_lines: list[str] = []
        self._env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("OPSRESPONDER_")},
            "OPSRESPONDER_DATA_DIR": str(data_dir),
            "OPSRESPONDER_API__EVENTS__HOST": "127.0.0.1",
            "OPSRESPONDER_API__EVENTS__PORT": "0",
            "OPSRESPONDER_API__AUTONOMOUS__HOST": "127.0.0.1",
            "OPSRESPONDER_API__AUTONOMOUS__PORT": "0",
            "OPSRESPONDER_SYSLOG__UDP__ENABLED": "false",
            "OPSRESPONDER_SYSLOG__TCP__ENABLED": "false",
            "OPSRESPONDER_SNMP__ENABLED": "false",
            "OPSRESPONDER_LOGGING__FORMAT": "json",
            "OPSRESPONDER_PIPELINE__DRAIN_GRACE_SECONDS": "3",
            **(env or {}),
        }
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    @property
    def process(self) -> asyncio.subprocess.Process:
        assert self._process is not None
        return self._process

    async def start(self, timeout: float = 60) -> dict[str, str]:
        """Start and wait for the listening line; returns the bound addresses by listener name."""
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "opsresponder",
            "serve",
            "--config",
            str(Path(__file__).parents[2] / "config" / "opsresponder.yaml"),
            env=self._env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read())
        exited = asyncio.create_task(self._process.wait())
        listening = asyncio.create_task(self._listening.wait())
        done, _ = await asyncio.wait(
            {exited, listening}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        for task in (exited, listening):
            if task not in done:
                task.cancel()
        if listening not in done:
            await self.kill()
            raise AssertionError(f"the service did not start: {self.records} {self.other_lines}")
        record = next(r for r in self.records if r.get("event") == LISTENING)
        return {k: v for k, v in record.items() if k.endswith("_api") or k.startswith(("syslog", "snmp"))}

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.process.send_signal(sig)
        code = await asyncio.wait_for(self.process.wait(), timeout)
        if self._reader is not None:
            await self._reader
        return code

    async def kill(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()
        if self._reader is not None:
            await self._reader

    async def wait_exit(self, timeout: float = 60) -> int:
        code = await asyncio.wait_for(self.process.wait(), timeout)
        if self._reader is not None:
            await self._reader
        return code

    async def _read(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        async for raw in self._process.stderr:
            line = raw.decode(errors="replace").strip()
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                self.other_lines.append(line)
                continue
            self.records.append(record)
            if record.get("event") == LISTENING:
                self._listening.set()

    def admin_token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()
