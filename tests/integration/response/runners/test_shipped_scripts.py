"""Every shipped catalog script run for real through the script runner: valid JSON, the documented
fields, and the remediations undone by their rollbacks. The process scripts also run under a bare system
python3 (no psutil: the /proc code path)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from opsresponder.config import ScriptRunnerConfig
from opsresponder.response.runners.base import ActionRequest, RunResult
from opsresponder.response.runners.script import ScriptRunner
from opsresponder.rules.templates import load_script_catalog
from tests.integration.outbound.conftest import Receiver
from tests.integration.response.runners.test_script import alive
from tests.waiting import eventually

REPO = Path(__file__).parents[4]
CATALOG = load_script_catalog(REPO / "config" / "scripts.yaml")
SYSTEM_PYTHON = "/usr/bin/python3"
INTERPRETERS = [
    None,
    pytest.param(
        SYSTEM_PYTHON, marks=pytest.mark.skipif(not Path(SYSTEM_PYTHON).exists(), reason="no system python3")
    ),
]


@pytest.fixture
def runner(tmp_path: Path) -> ScriptRunner:
    return ScriptRunner(ScriptRunnerConfig(working_directory=str(tmp_path / "work"), kill_grace_seconds=1))


async def run(
    runner: ScriptRunner,
    name: str,
    parameters: dict[str, Any] | None = None,
    *,
    interpreter: str | None = None,
    execution_id: str = "exec-1",
) -> RunResult:
    script = CATALOG.by_name[name]
    assert script.command is not None
    if interpreter is not None:
        script = msgspec.structs.replace(script, command=[interpreter, *script.command])
    return await runner.run(
        ActionRequest(
            execution_id=execution_id,
            action_id=name,
            script=script,
            parameters=parameters or {},
            timeout_seconds=60,
        )
    )


@pytest.mark.parametrize("interpreter", INTERPRETERS)
async def test_check_cpu_usage(runner: ScriptRunner, interpreter: str | None) -> None:
    result = await run(runner, "check_cpu_usage", {"sample_seconds": 0.2}, interpreter=interpreter)
    assert result.success, result.error
    assert result.data is not None and 0 <= result.data["cpu_usage"] <= 100
    assert {"load_1m", "load_5m", "load_15m", "cpu_count"} <= set(result.data)
    assert {"cpu_usage", "user_percent", "system_percent", "iowait_percent", "load_1m"} <= set(result.metrics)


@pytest.mark.parametrize("interpreter", INTERPRETERS)
async def test_list_high_cpu_processes(runner: ScriptRunner, interpreter: str | None) -> None:
    result = await run(
        runner, "list_high_cpu_processes", {"limit": 3, "sample_seconds": 0.2}, interpreter=interpreter
    )
    assert result.success, result.error
    assert result.data is not None
    processes = result.data["processes"]
    assert 1 <= len(processes) <= 3 == result.data["listed"] and result.data["total_processes"] >= 3
    assert {"pid", "ppid", "name", "user", "cpu_percent", "rss_bytes", "cmdline"} == set(processes[0])
    usages = [p["cpu_percent"] for p in processes]
    assert usages == sorted(usages, reverse=True)
    assert result.metrics["total_processes"] == result.data["total_processes"]


async def test_a_usage_error_is_json_too(runner: ScriptRunner) -> None:
    result = await run(runner, "list_high_cpu_processes", {"limit": 0})
    assert not result.success and result.exit_code == 2
    assert result.data == {"error": "limit must be between 1 and 1000"}


async def test_check_disk_usage(runner: ScriptRunner, tmp_path: Path) -> None:
    result = await run(runner, "check_disk_usage", {"path": str(tmp_path)})
    assert result.success and result.data is not None
    assert 0 <= result.data["used_percent"] <= 100 and result.data["free_bytes"] > 0
    assert result.metrics["total_bytes"] >= result.metrics["used_bytes"]
    missing = await run(runner, "check_disk_usage", {"path": str(tmp_path / "nope")})
    assert not missing.success and missing.data is not None and "cannot read" in missing.data["error"]


async def test_service_scripts_report_a_host_without_systemd_as_json(runner: ScriptRunner) -> None:
    status = await run(runner, "check_service_status", {"service": "opsr-test-no-such-unit"})
    assert status.data is not None
    if status.success:  # a host with systemd: the unknown unit is simply not active
        assert status.data["active"] is False and status.data["load_state"] == "not-found"
    else:
        assert status.exit_code == 2 and status.data["available"] is False and status.data["error"]
    bad_name = await run(runner, "check_service_status", {"service": "../../etc/passwd"})
    assert bad_name.exit_code == 2 and bad_name.data == {"error": "not a unit name: '../../etc/passwd'"}
    restart = await run(runner, "restart_service", {"service": "opsr-test-no-such-unit", "wait_seconds": 1})
    assert not restart.success and restart.data is not None and "error" in restart.data
    rotate = await run(runner, "rotate_logs", {"service": "opsr-test-no-such-service"})
    assert rotate.exit_code == 2 and rotate.data is not None and rotate.data["error"]


async def test_verify_http_endpoint(runner: ScriptRunner, receiver: Receiver) -> None:
    ok = await run(runner, "verify_http_endpoint", {"url": receiver.url})
    assert ok.success and ok.data is not None
    assert ok.data["status_code"] == 200 and ok.data["ok"] is True and ok.metrics["latency_ms"] >= 0
    receiver.status = 503
    down = await run(runner, "verify_http_endpoint", {"url": receiver.url, "expected_status": 200})
    assert not down.success and down.exit_code == 1 and down.data is not None
    assert down.data["status_code"] == 503
    local_file = await run(runner, "verify_http_endpoint", {"url": "file:///etc/passwd"})
    assert local_file.exit_code == 2 and "root:" not in local_file.output


@pytest.fixture
def busy() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A process burning CPU, recognisable by a token in its command line (so nothing else is hit)."""
    token = f"opsr-burn-{uuid.uuid4().hex}"
    process = subprocess.Popen([sys.executable, "-c", "while True: pass", token])
    yield process, token
    if process.poll() is None:
        process.kill()
    process.wait()
    _kill_by_token(token)


def _proc(pid: int, name: str) -> bytes:
    return Path(f"/proc/{pid}/{name}").read_bytes()


def _kill_by_token(token: str) -> None:
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            except OSError:
                continue
            if token.encode() in cmdline:
                os.kill(int(name), signal.SIGKILL)


async def test_kill_high_cpu_processes_and_restore_them(
    runner: ScriptRunner, busy: tuple[subprocess.Popen[bytes], str]
) -> None:
    process, token = busy
    root = os.getuid() == 0
    common = {"match": token, "min_cpu_percent": 5.0, "sample_seconds": 0.5, "grace_seconds": 2.0}
    if root:  # the busy process is root's like everything here: refused unless allowed
        refused = await run(runner, "kill_high_cpu_processes", common)
        assert refused.success and refused.data is not None
        assert refused.data["killed"] == [] and refused.data["skipped"] == {"root_owned": 1}
        common["allow_root"] = True
    name = _proc(process.pid, "comm").decode().strip()
    protected = await run(runner, "kill_high_cpu_processes", {**common, "protected": [name]})
    assert protected.data is not None and protected.data["skipped"] == {"protected_name": 1}

    dry = await run(runner, "kill_high_cpu_processes", {**common, "dry_run": True})
    assert dry.success and dry.data is not None and dry.data["killed"] == []
    assert [c["pid"] for c in dry.data["candidates"]] == [process.pid] and process.poll() is None

    killed = await run(runner, "kill_high_cpu_processes", common)
    assert killed.success, killed.output
    assert killed.data is not None and killed.data["killed"] == [
        {"pid": process.pid, "name": name, "signal": "SIGTERM"}
    ]
    assert process.wait(timeout=5) == -signal.SIGTERM and killed.metrics["killed"] == 1

    restored = await run(runner, "restore_processes", common)
    assert restored.success and restored.data is not None, restored.output
    (entry,) = restored.data["restored"]
    new_pid = entry["new_pid"]
    assert alive(new_pid) and token.encode() in _proc(new_pid, "cmdline")
    again = await run(runner, "restore_processes", common)  # the record was used: nothing twice
    assert again.success and again.data is not None and again.data["restored"] == []
    os.kill(new_pid, signal.SIGKILL)
    await eventually(lambda: not alive(new_pid), within=5, what="the restored process to end")


async def test_the_kill_script_never_touches_its_own_tree(runner: ScriptRunner) -> None:
    # Its own ancestors (this test process) match "pytest"; with everything allowed, nothing is killed.
    result = await run(
        runner,
        "kill_high_cpu_processes",
        {
            "match": "pytest",
            "min_cpu_percent": 0.0,
            "sample_seconds": 0.1,
            "allow_root": True,
            "dry_run": True,
        },
    )
    assert result.data is not None
    assert os.getpid() not in [c["pid"] for c in result.data["candidates"]]
    assert result.data["skipped"].get("own_tree", 0) >= 1


def _make_old(path: Path, days: float, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    when = time.time() - days * 86400
    os.utime(path, (when, when))


async def test_quarantine_and_restore_round_trip(runner: ScriptRunner, tmp_path: Path) -> None:
    temp = tmp_path / "tmpdir"
    _make_old(temp / "old.log", 10, "old")
    _make_old(temp / "deep" / "er" / "old.bin", 30, "older")
    _make_old(temp / "fresh.txt", 1, "fresh")
    outside = tmp_path / "outside.txt"
    _make_old(outside, 40, "not ours")
    (temp / "link").symlink_to(outside)
    parameters = {"path": str(temp), "older_than_days": 7}

    dry = await run(runner, "quarantine_temp_files", {**parameters, "dry_run": True})
    assert dry.success and dry.data is not None and dry.data["moved_count"] == 2
    assert (temp / "old.log").exists()

    moved = await run(runner, "quarantine_temp_files", parameters)
    assert moved.success and moved.data is not None, moved.output
    assert sorted(m["original"] for m in moved.data["moved"]) == [
        str(temp / "deep" / "er" / "old.bin"),
        str(temp / "old.log"),
    ]
    assert moved.metrics["moved_bytes"] == len("old") + len("older")
    assert not (temp / "old.log").exists() and not (temp / "deep" / "er" / "old.bin").exists()
    assert (
        (temp / "fresh.txt").exists() and (temp / "link").is_symlink() and outside.read_text() == "not ours"
    )
    quarantine = tmp_path / "work" / "quarantine" / "exec-1"
    assert (quarantine / "files" / "deep" / "er" / "old.bin").read_text() == "older"

    restored = await run(runner, "restore_quarantined_files", parameters)
    assert restored.success and restored.data is not None and restored.data["restored_count"] == 2
    assert (temp / "old.log").read_text() == "old"
    assert (temp / "deep" / "er" / "old.bin").read_text() == "older"
    assert time.time() - (temp / "old.log").stat().st_mtime > 9 * 86400  # its age is kept
    assert not (quarantine / "manifest.jsonl").exists()


async def test_restore_leaves_a_conflict_in_quarantine(runner: ScriptRunner, tmp_path: Path) -> None:
    temp = tmp_path / "tmpdir"
    _make_old(temp / "a.log", 10, "old a")
    parameters = {"path": str(temp), "older_than_days": 7}
    assert (await run(runner, "clean_temp_files", parameters, execution_id="exec-2")).success
    (temp / "a.log").write_text("a new a")
    restored = await run(runner, "restore_quarantined_files", parameters, execution_id="exec-2")
    assert not restored.success and restored.data is not None
    assert restored.data["conflicts"] == [str(temp / "a.log")] and (temp / "a.log").read_text() == "a new a"
    assert (tmp_path / "work" / "quarantine" / "exec-2" / "manifest.jsonl").exists()


async def test_quarantine_refuses_the_root_and_relative_paths(runner: ScriptRunner) -> None:
    for path in ("/", "relative/dir"):
        result = await run(runner, "quarantine_temp_files", {"path": path})
        assert (
            result.exit_code == 2 and result.data is not None and "absolute directory" in result.data["error"]
        )
