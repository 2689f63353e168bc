"""Start ``python -m opsresponder serve`` for a benchmark and read its figures from /proc."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]


class BenchServer:
    """The service in a child process on free ports; `env` adds OPSRESPONDER_* settings."""

    def __init__(self, data_dir: Path | None = None, database_url: str | None = None, **env: str) -> None:
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="opsresponder-bench-"))
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("OPSRESPONDER_")},
            "OPSRESPONDER_DATA_DIR": str(self.data_dir),
            "OPSRESPONDER_API__EVENTS__HOST": "127.0.0.1",
            "OPSRESPONDER_API__EVENTS__PORT": "0",
            "OPSRESPONDER_API__AUTONOMOUS__HOST": "127.0.0.1",
            "OPSRESPONDER_API__AUTONOMOUS__PORT": "0",
            "OPSRESPONDER_SYSLOG__UDP__ENABLED": "false",
            "OPSRESPONDER_SYSLOG__TCP__ENABLED": "false",
            "OPSRESPONDER_SNMP__ENABLED": "false",
            "OPSRESPONDER_LOGGING__FORMAT": "json",
            "OPSRESPONDER_LOGGING__LEVEL": "warning",
            **env,
        }
        if database_url:
            self.env["OPSRESPONDER_DATABASE__URL"] = database_url
        self.process: subprocess.Popen[bytes] | None = None
        self.addresses: dict[str, Any] = {}
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 60) -> float:
        """Start and wait until /ready answers 200; returns the seconds from spawn to ready."""
        self._log = open(self.data_dir / "server.log", "wb")  # noqa: SIM115 - kept open while it runs
        self.env["OPSRESPONDER_LOGGING__LEVEL"] = "info"  # the listening line carries the bound ports
        started = time.monotonic()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "opsresponder",
                "--config",
                str(REPO / "config/opsresponder.yaml"),
                "serve",
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: see {self.data_dir / 'server.log'}")
            if not self.addresses:
                self.addresses = self._listening()
            elif self._ready():
                return time.monotonic() - started
            time.sleep(0.02)
        raise RuntimeError("the server did not become ready in time")

    def _listening(self) -> dict[str, Any]:
        for line in (self.data_dir / "server.log").read_text(errors="replace").splitlines():
            if '"OpsResponder is listening."' in line:
                record: dict[str, Any] = json.loads(line)
                return record
        return {}

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.events_address}/ready", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    @property
    def events_address(self) -> str:
        return str(self.addresses["events_api"])

    def address_of(self, name: str) -> str:
        return str(self.addresses[name])

    def token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    def peak_rss_mb(self) -> float:
        """The server process's peak resident memory (VmHWM), in MiB."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def rss_mb(self) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server process has used so far."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def stop(self) -> int:
        assert self.process is not None
        self.process.terminate()
        code = self.process.wait(60)
        if self._log is not None:
            self._log.close()
        return code
