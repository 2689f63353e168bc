#!/usr/bin/env python3
"""kill_high_cpu_processes: terminate the busiest processes, conservatively, recording what it did.

Candidates use at least min_cpu_percent (of one CPU) over a sample and, when ``match`` is given, have it
in their command line. Never signalled: pid 1 and kernel threads, this script's own process tree (its
ancestors are the runner and OpsResponder), root-owned processes unless allow_root, and the protected
names (a built-in list plus ``protected``). Each victim gets SIGTERM, then SIGKILL after grace_seconds;
its identity (pid and start time) is checked before each signal, so a reused pid is never hit.

What was killed is recorded in kill_high_cpu_processes/<execution id>.json under the working directory,
for restore_processes (the rollback). dry_run lists the candidates and signals nothing.
Prints {"dry_run", "candidates", "killed", "failed", "skipped", "state_file", "metrics": {...}};
exits 1 when a kill failed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

from _opsr import (
    DEFAULT_PROTECTED,
    boolean,
    describe,
    emit,
    execution_key,
    fail,
    json_list,
    own_tree,
    parser,
    sample_processes,
    start_time,
    state_directory,
    write_json_atomically,
)

STATE_NAME = "kill_high_cpu_processes"
_POLL_SECONDS = 0.05


def systemd_unit(pid: int) -> str | None:
    """The .service unit a process runs under (from its cgroup), so the rollback can start the unit."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return None
    found = re.findall(r"/([A-Za-z0-9@_.:\\-]+\.service)(?:/|$)", text)
    return found[-1] if found else None


def refusal(process: dict[str, Any], tree: set[int], protected: set[str], allow_root: bool) -> str | None:
    """Why `process` must not be signalled, or None."""
    if process["pid"] == 1 or process["pid"] == 2 or process["ppid"] == 2 or not process["cmdline"]:
        return "init_or_kernel"
    if process["pid"] in tree:
        return "own_tree"
    program = os.path.basename(process["cmdline"][0])
    if process["name"] in protected or program in protected:
        return "protected_name"
    if process["uid"] == 0 and not allow_root:
        return "root_owned"
    return None


def alive_as(pid: int, began: int | None) -> bool:
    return began is not None and start_time(pid) == began and (describe(pid) or {}).get("state") != "Z"


def terminate(process: dict[str, Any], grace: float) -> dict[str, Any]:
    """SIGTERM, then SIGKILL after `grace`; the answer says which signal ended it."""
    pid, began = process["pid"], process["start_time"]
    for signum in (signal.SIGTERM, signal.SIGKILL):
        if not alive_as(pid, began):
            break
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            break
        except PermissionError as e:
            return {"pid": pid, "name": process["name"], "error": f"cannot signal: {e.strerror}"}
        deadline = time.monotonic() + (grace if signum == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline and alive_as(pid, began):
            time.sleep(_POLL_SECONDS)
        if not alive_as(pid, began):
            return {"pid": pid, "name": process["name"], "signal": signum.name}
    if alive_as(pid, began):
        return {"pid": pid, "name": process["name"], "error": "still running after SIGKILL"}
    return {"pid": pid, "name": process["name"], "signal": "already_exited"}


def main() -> None:
    arguments = parser(__doc__ or "")
    arguments.add_argument("--max_processes", type=int, default=1)
    arguments.add_argument("--min_cpu_percent", type=float, default=50.0)
    arguments.add_argument("--match", default=None)
    arguments.add_argument("--sample_seconds", type=float, default=1.0)
    arguments.add_argument("--grace_seconds", type=float, default=5.0)
    arguments.add_argument("--allow_root", type=boolean, default=False)
    arguments.add_argument("--protected", type=json_list, default=[])
    arguments.add_argument("--dry_run", type=boolean, default=False)
    args = arguments.parse_args()
    if not 1 <= args.max_processes <= 100:
        fail("max_processes must be between 1 and 100", 2)
    if not 0 < args.sample_seconds <= 60 or not 0 <= args.grace_seconds <= 60:
        fail("sample_seconds must be in (0, 60] and grace_seconds in [0, 60]", 2)
    protected = set(DEFAULT_PROTECTED) | {str(name) for name in args.protected}

    processes = sample_processes(args.sample_seconds)
    tree = own_tree()
    skipped: dict[str, int] = {}
    candidates = []
    for process in processes:
        if process["cpu_percent"] < args.min_cpu_percent:
            continue
        if args.match is not None and args.match not in " ".join(process["cmdline"]):
            continue
        reason = refusal(process, tree, protected, args.allow_root)
        if reason is not None:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        candidates.append(process)
    candidates = candidates[: args.max_processes]
    listed = [
        {k: p[k] for k in ("pid", "name", "user", "cpu_percent")} | {"cmdline": " ".join(p["cmdline"])[:300]}
        for p in candidates
    ]
    state_file = state_directory(STATE_NAME) / f"{execution_key()}.json"
    if args.dry_run:
        emit(
            {
                "dry_run": True,
                "candidates": listed,
                "killed": [],
                "failed": [],
                "skipped": skipped,
                "state_file": None,
                "metrics": {"candidates": len(candidates), "killed": 0},
            }
        )

    records: list[dict[str, Any]] = json.loads(state_file.read_text()) if state_file.exists() else []
    killed, failed = [], []
    for process in candidates:
        # Recorded before the signal: if this script is itself killed mid-way, the rollback still knows.
        record = {
            "pid": process["pid"],
            "name": process["name"],
            "uid": process["uid"],
            "user": process["user"],
            "cmdline": process["cmdline"],
            "cwd": _cwd(process["pid"]),
            "unit": systemd_unit(process["pid"]),
            "cpu_percent": process["cpu_percent"],
            "killed_at": time.time(),
        }
        records.append(record)
        write_json_atomically(state_file, records)
        outcome = terminate(process, args.grace_seconds)
        if "error" in outcome:
            records.remove(record)
            write_json_atomically(state_file, records)
            failed.append(outcome)
        else:
            killed.append(outcome)
    emit(
        {
            "dry_run": False,
            "candidates": listed,
            "killed": killed,
            "failed": failed,
            "skipped": skipped,
            "state_file": str(state_file),
            "metrics": {"candidates": len(candidates), "killed": len(killed), "failed": len(failed)},
        },
        1 if failed else 0,
    )


def _cwd(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


if __name__ == "__main__":
    main()
