#!/usr/bin/env python3
"""restart_service: ``systemctl restart`` a unit, then wait until it reports active.

Prints {"service", "restarted", "active", "active_state", "waited_seconds"}; exits 0 only when the unit
is active again within wait_seconds. Without systemctl or systemd: {"available": false, ...}, exit 2.
"""

from __future__ import annotations

import shutil
import subprocess
import time

from _opsr import emit, fail, parser
from check_service_status import checked_unit, systemctl_show

_POLL_SECONDS = 0.5


def main() -> None:
    arguments = parser(__doc__ or "")
    arguments.add_argument("--service", required=True)
    arguments.add_argument("--wait_seconds", type=int, default=30)
    args = arguments.parse_args()
    unit = checked_unit(args.service)
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        fail("systemctl is not available on this host", 2, service=unit, available=False)
    systemctl_show(unit)  # fails early, as JSON, when systemd is not running
    started = time.monotonic()
    done = subprocess.run(
        [systemctl, "restart", "--", unit], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        fail(f"systemctl restart failed: {done.stderr.strip()}", 1, service=unit, restarted=False)
    state = systemctl_show(unit).get("ActiveState")
    while state != "active" and time.monotonic() - started < args.wait_seconds:
        time.sleep(_POLL_SECONDS)
        state = systemctl_show(unit).get("ActiveState")
    answer = {
        "service": unit,
        "restarted": True,
        "active": state == "active",
        "active_state": state,
        "waited_seconds": round(time.monotonic() - started, 1),
    }
    emit(answer, 0 if state == "active" else 1)


if __name__ == "__main__":
    main()
