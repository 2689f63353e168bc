"""Shared helpers of the shipped catalog scripts (imported from the scripts' own directory).

Scripts run as argv under the script runner: parameters arrive as ``--name=value`` arguments, the
answer is one JSON object on stdout, exit 0 means success. They must work with a bare system python3
(standard library only): psutil is used when it is importable, /proc otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

try:  # optional: the venv has it, a bare system python3 may not
    import psutil
except ImportError:  # pragma: no cover - depends on the interpreter
    psutil = None

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Process names never signalled by a remediation, whatever their CPU usage: init, the session and
# logging plumbing, remote access, and the services OpsResponder itself depends on.
DEFAULT_PROTECTED = frozenset(
    {
        "systemd",
        "init",
        "systemd-journald",
        "systemd-logind",
        "systemd-udevd",
        "dbus-daemon",
        "sshd",
        "containerd",
        "dockerd",
        "kubelet",
        "postgres",
        "redis-server",
        "opsresponder",
    }
)


def emit(answer: dict[str, Any], code: int = 0) -> NoReturn:
    """Print the answer as one JSON object and exit with `code`."""
    sys.stdout.write(json.dumps(answer, default=str) + "\n")
    sys.stdout.flush()
    raise SystemExit(code)


def fail(message: str, code: int = 1, **extra: Any) -> NoReturn:
    emit({"error": message, **extra}, code)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # a usage error is JSON too
        fail(f"invalid arguments: {message}", 2)


def parser(description: str) -> argparse.ArgumentParser:
    return _Parser(description=description, allow_abbrev=False)


def boolean(text: str) -> bool:
    """The runner renders booleans as true/false."""
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def json_list(text: str) -> list[Any]:
    """The runner renders lists as JSON."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not a JSON list: {e}") from None
    if not isinstance(value, list):
        raise argparse.ArgumentTypeError("not a JSON list")
    return value


def execution_key() -> str:
    """The execution this run belongs to (the runner's OPSR_EXECUTION_ID), safe as a file name; a
    remediation and its rollback share it, which is how the rollback finds what to undo."""
    raw = os.environ.get("OPSR_EXECUTION_ID") or "manual"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", raw)[:128] or "manual"


def state_directory(name: str) -> Path:
    """A directory for `name`'s records under the working directory the runner gave us."""
    directory = Path.cwd() / name
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def write_json_atomically(path: Path, value: Any) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=1, default=str))
    os.replace(temporary, path)


# --- processes ---------------------------------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:  # the process exited, or is not ours to read
        return None


def stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (which may hold spaces and parentheses): [state, ppid, ...]."""
    text = _read(f"/proc/{pid}/stat")
    if text is None or ")" not in text:
        return None
    return text.rsplit(")", 1)[1].split()


def start_time(pid: int) -> int | None:
    """Clock ticks after boot when `pid` started: with the pid, it names one process (pids are reused)."""
    fields = stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def parent_of(pid: int) -> int | None:
    fields = stat_fields(pid)
    return int(fields[1]) if fields else None


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _uid_of(pid: int) -> int | None:
    status = _read(f"/proc/{pid}/status")
    if status is None:
        return None
    for line in status.splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return None


def _cpu_ticks(pid: int) -> int | None:
    fields = stat_fields(pid)
    return int(fields[11]) + int(fields[12]) if fields and len(fields) > 12 else None


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def describe(pid: int) -> dict[str, Any] | None:
    """What is known about a live process, from /proc; None once it is gone."""
    fields = stat_fields(pid)
    uid = _uid_of(pid)
    if fields is None or uid is None:
        return None
    cmdline = [part for part in (_read(f"/proc/{pid}/cmdline") or "").split("\0") if part]
    rss_pages = int(fields[21]) if len(fields) > 21 else 0
    return {
        "pid": pid,
        "ppid": int(fields[1]),
        "name": (_read(f"/proc/{pid}/comm") or "").strip(),
        "state": fields[0],
        "uid": uid,
        "user": _user_name(uid),
        "cmdline": cmdline,
        "rss_bytes": rss_pages * os.sysconf("SC_PAGE_SIZE"),
        "start_time": int(fields[19]) if len(fields) > 19 else None,
    }


def sample_processes(seconds: float) -> list[dict[str, Any]]:
    """Every process with its CPU usage over `seconds` (percent of one CPU, like top), busiest first."""
    if psutil is not None:
        return _sample_with_psutil(seconds)
    before = {pid: (_cpu_ticks(pid), start_time(pid)) for pid in _pids()}
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = max(time.monotonic() - started, 1e-6)
    processes = []
    for pid, (ticks, began) in before.items():
        info = describe(pid)
        now = _cpu_ticks(pid)
        if info is None or ticks is None or now is None or info["start_time"] != began:
            continue  # exited, or the pid was reused during the sample
        info["cpu_percent"] = round(100.0 * (now - ticks) / _CLOCK_TICKS / elapsed, 1)
        processes.append(info)
    processes.sort(key=lambda p: p["cpu_percent"], reverse=True)
    return processes


def _sample_with_psutil(seconds: float) -> list[dict[str, Any]]:
    assert psutil is not None
    tracked = []
    for process in psutil.process_iter():
        try:
            process.cpu_percent(None)  # the first call starts the interval
            tracked.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    time.sleep(seconds)
    processes = []
    for process in tracked:
        try:
            cpu = process.cpu_percent(None)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        info = describe(process.pid)
        if info is None:
            continue
        info["cpu_percent"] = round(cpu, 1)
        processes.append(info)
    processes.sort(key=lambda p: p["cpu_percent"], reverse=True)
    return processes


def own_tree() -> set[int]:
    """This process, its ancestors (the runner, OpsResponder, up to init) and its descendants."""
    mine = os.getpid()
    children: dict[int, list[int]] = {}
    parents: dict[int, int] = {}
    for pid in _pids():
        parent = parent_of(pid)
        if parent is not None:
            parents[pid] = parent
            children.setdefault(parent, []).append(pid)
    tree = {mine}
    pid = mine
    while parents.get(pid, 0) > 0 and parents[pid] not in tree:
        pid = parents[pid]
        tree.add(pid)
    frontier = [mine]
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in tree:
                tree.add(child)
                frontier.append(child)
    return tree
