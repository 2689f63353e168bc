#!/usr/bin/env python3
"""check_service_status: a systemd unit's state, through ``systemctl show``.

Prints {"service", "available": true, "active": bool, "active_state", "sub_state", "load_state",
"main_pid", "exec_main_status", "metrics": {...}} and exits 0 when the state could be read (an inactive
unit is a finding, not a failure). Without systemctl, or without a running systemd, prints
{"available": false, "error": ...} and exits 2.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from _opsr import emit, fail, parser

UNIT_NAME = re.compile(r"^[A-Za-z0-9@_.:\\-]{1,200}$")
_PROPERTIES = ("LoadState", "ActiveState", "SubState", "MainPID", "ExecMainStatus", "ActiveEnterTimestamp")


def systemctl_show(unit: str) -> dict[str, str]:
    """The unit's properties; exits with a JSON error when systemd cannot be asked."""
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        fail("systemctl is not available on this host", 2, service=unit, available=False)
    try:
        done = subprocess.run(
            [systemctl, "show", "--no-pager", f"--property={','.join(_PROPERTIES)}", "--", unit],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        fail(f"systemctl did not answer: {e}", 2, service=unit, available=False)
    if done.returncode != 0:
        reason = done.stderr.strip() or f"exit code {done.returncode}"
        fail(f"systemctl show failed: {reason}", 2, service=unit, available=False)
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def checked_unit(name: str) -> str:
    if not UNIT_NAME.match(name) or name.startswith("-"):
        fail(f"not a unit name: {name!r}", 2)
    return name if "." in name else f"{name}.service"


def main() -> None:
    arguments = parser(__doc__ or "")
    arguments.add_argument("--service", required=True)
    unit = checked_unit(arguments.parse_args().service)
    properties = systemctl_show(unit)
    active = properties.get("ActiveState") == "active"
    main_pid = int(properties.get("MainPID") or 0)
    status = int(properties.get("ExecMainStatus") or 0)
    emit(
        {
            "service": unit,
            "available": True,
            "active": active,
            "load_state": properties.get("LoadState"),
            "active_state": properties.get("ActiveState"),
            "sub_state": properties.get("SubState"),
            "main_pid": main_pid,
            "exec_main_status": status,
            "active_since": properties.get("ActiveEnterTimestamp") or None,
            "metrics": {"active": 1 if active else 0, "exec_main_status": status},
        }
    )


if __name__ == "__main__":
    main()
