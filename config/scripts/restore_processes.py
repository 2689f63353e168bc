#!/usr/bin/env python3
"""restore_processes: the rollback of kill_high_cpu_processes; restarts what it recorded as killed.

Reads kill_high_cpu_processes/<execution id>.json under the working directory. Best effort, per
process: a systemd unit is started with ``systemctl start``; otherwise the recorded command line is
started again in its recorded directory, in its own session (so it outlives this script), when it
belonged to this user and no process with the same command line runs already. The record is renamed
``.restored.json`` afterwards, so a second rollback restarts nothing twice.
Accepts (and ignores) kill_high_cpu_processes' parameters: a rollback gets the same ones.
Prints {"restored", "skipped", "failed", "metrics": {...}}; exits 1 when a restart failed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

from _opsr import boolean, describe, emit, execution_key, json_list, parser, state_directory

STATE_NAME = "kill_high_cpu_processes"


def running_command_lines() -> set[tuple[str, ...]]:
    lines = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = describe(int(name))
            if info is not None and info["cmdline"] and info["state"] != "Z":
                lines.add(tuple(info["cmdline"]))
    return lines


def restart(record: dict[str, Any], running: set[tuple[str, ...]]) -> tuple[str, dict[str, Any]]:
    """("restored" | "skipped" | "failed", what happened)."""
    base = {"pid": record["pid"], "name": record["name"]}
    systemctl = shutil.which("systemctl")
    if record.get("unit") and systemctl is not None:
        done = subprocess.run(
            [systemctl, "start", "--", record["unit"]],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode == 0:
            return "restored", base | {"unit": record["unit"]}
        # No systemd here after all: fall through to the command line.
    cmdline = record.get("cmdline") or []
    if not cmdline:
        return "skipped", base | {"reason": "no command line was recorded"}
    if record.get("uid") != os.getuid():
        return "skipped", base | {"reason": f"it belonged to {record.get('user')}, not to this user"}
    if tuple(cmdline) in running:
        return "skipped", base | {"reason": "a process with the same command line is running"}
    directory = record.get("cwd") if record.get("cwd") and os.path.isdir(record["cwd"]) else "/"
    try:
        process = subprocess.Popen(
            cmdline,
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not in the runner's process group: it must outlive this run
        )
    except OSError as e:
        return "failed", base | {"error": f"cannot start {cmdline[0]}: {e.strerror}"}
    return "restored", base | {"new_pid": process.pid, "cmdline": " ".join(cmdline)[:300]}


def main() -> None:
    arguments = parser(__doc__ or "")
    for name in ("--max_processes", "--min_cpu_percent", "--match", "--sample_seconds", "--grace_seconds"):
        arguments.add_argument(name)
    arguments.add_argument("--allow_root", type=boolean, default=False)
    arguments.add_argument("--protected", type=json_list, default=[])
    arguments.add_argument("--dry_run", type=boolean, default=False)
    args = arguments.parse_args()
    state_file = state_directory(STATE_NAME) / f"{execution_key()}.json"
    if not state_file.exists():
        emit(
            {
                "restored": [],
                "skipped": [],
                "failed": [],
                "note": "nothing was recorded as killed",
                "metrics": {"restored": 0, "failed": 0},
            }
        )
    records = json.loads(state_file.read_text())
    if args.dry_run:
        emit(
            {
                "dry_run": True,
                "would_restore": records,
                "restored": [],
                "skipped": [],
                "failed": [],
                "metrics": {"restored": 0, "failed": 0},
            }
        )
    running = running_command_lines()
    outcomes: dict[str, list[dict[str, Any]]] = {"restored": [], "skipped": [], "failed": []}
    for record in records:
        kind, outcome = restart(record, running)
        outcomes[kind].append(outcome)
    os.replace(state_file, state_file.with_name(state_file.stem + ".restored.json"))
    emit(
        {
            **outcomes,
            "metrics": {"restored": len(outcomes["restored"]), "failed": len(outcomes["failed"])},
        },
        1 if outcomes["failed"] else 0,
    )


if __name__ == "__main__":
    main()
