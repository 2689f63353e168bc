#!/usr/bin/env python3
"""rotate_logs: force a logrotate run of one service's configuration (/etc/logrotate.d/<service>).

Prints {"service", "config", "rotated": true} and exits 0 when logrotate succeeded; without logrotate
or without that configuration, {"error": ...} and exit 2.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from _opsr import emit, fail, parser

SERVICE_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,100}$")
CONFIG_DIRECTORY = Path("/etc/logrotate.d")


def main() -> None:
    arguments = parser(__doc__ or "")
    arguments.add_argument("--service", required=True)
    service = arguments.parse_args().service
    if not SERVICE_NAME.match(service) or service.startswith((".", "-")):
        fail(f"not a service name: {service!r}", 2)
    logrotate = shutil.which("logrotate")
    if logrotate is None:
        fail("logrotate is not available on this host", 2, service=service)
    config = CONFIG_DIRECTORY / service
    if not config.is_file():
        fail(f"no logrotate configuration {config}", 2, service=service)
    done = subprocess.run(
        [logrotate, "--force", str(config)], capture_output=True, text=True, timeout=240, check=False
    )
    if done.returncode != 0:
        fail(f"logrotate failed: {done.stderr.strip()[-500:]}", 1, service=service, config=str(config))
    emit({"service": service, "config": str(config), "rotated": True})


if __name__ == "__main__":
    main()
