"""A real Prometheus Alertmanager for tests: generated config, free port, readiness, always stopped."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any, Final

import httpx

READY_TIMEOUT: Final = 30.0
STOP_TIMEOUT: Final = 10.0
_PORT_ATTEMPTS: Final = 3


def webhook_config(
    webhook_url: str,
    bearer_token: str,
    *,
    receiver: str = "opsresponder",
    group_by: list[str] | None = None,
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
) -> dict[str, Any]:
    """An ``alertmanager.yml`` (as a dict) routing everything to one webhook receiver, resolves included."""
    return {
        "route": {
            "receiver": receiver,
            "group_by": group_by if group_by is not None else ["alertname"],
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [
            {
                "name": receiver,
                "webhook_configs": [
                    {
                        "url": webhook_url,
                        "send_resolved": True,
                        "max_alerts": 0,
                        "http_config": {"authorization": {"type": "Bearer", "credentials": bearer_token}},
                    }
                ],
            }
        ],
    }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class AlertmanagerProcess:
    """One ``prometheus-alertmanager`` run from argv (no shell), with clustering (gossip) disabled.

    Its stdout and stderr go to a log file in `workdir` (no pipe to fill up); `log()` returns it for failure
    messages. `stop()` is idempotent and always reaps the process (SIGTERM, then SIGKILL).
    """

    def __init__(
        self, binary: str, workdir: Path, config: dict[str, Any], external_host: str = "alertmanager.test"
    ) -> None:
        self._binary = binary
        self._workdir = workdir
        self._external_host = external_host
        self.config_file = workdir / "alertmanager.yml"
        self.log_file = workdir / "alertmanager.log"
        # JSON is YAML: no quoting surprises in URLs or tokens.
        self.config_file.write_text(json.dumps(config, indent=2))
        self._process: asyncio.subprocess.Process | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def external_url(self) -> str:
        return f"http://{self._external_host}:{self.port}"

    def argv(self) -> list[str]:
        return [
            self._binary,
            f"--config.file={self.config_file}",
            f"--storage.path={self._workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--web.external-url={self.external_url}",
            "--cluster.listen-address=",  # empty: no HA mode, no gossip, no settle wait
            "--log.level=debug",
        ]

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def diagnostics(self, tail: int = 40) -> str:
        """The argv, config, warnings/errors and the last lines of the log, for an assertion message."""
        lines = self.log().splitlines()
        problems = [line for line in lines if "level=error" in line or "level=warn" in line][-20:]
        return (
            f"alertmanager argv: {self.argv()}\nconfig:\n{self.config_file.read_text()}\n"
            "log warnings and errors:\n"
            + "\n".join(problems)
            + f"\nlog (last {tail} lines):\n"
            + "\n".join(lines[-tail:])
        )

    async def start(self) -> None:
        """Start and wait for ``GET /-/ready``; retries on another port if the free one was taken meanwhile.

        Raises:
            RuntimeError: the process exited or did not become ready in time (with the diagnostics).
        """
        for _ in range(_PORT_ATTEMPTS):
            self.port = _free_port()
            log_start = len(self.log())
            with self.log_file.open("ab") as log:
                self._process = await asyncio.create_subprocess_exec(
                    *self.argv(),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                )
            if await self._wait_ready():
                return
            if "address already in use" not in self.log()[log_start:]:
                break
        raise RuntimeError(f"Alertmanager did not become ready\n{self.diagnostics()}")

    async def _wait_ready(self) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + READY_TIMEOUT
        async with httpx.AsyncClient(base_url=self.url, timeout=2, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self._process.returncode is not None:
                    await self.stop()
                    return False
                try:
                    r = await client.get("/-/ready")
                    if r.status_code == 200:
                        return True
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)  # polling an external process's readiness, with a deadline
        await self.stop()
        return False

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()
        else:
            await process.wait()
