"""The script runner against real processes: exit codes, JSON, bounds, timeouts and cancellation that
kill the whole process group, hostile parameter text that stays text, and an environment that leaks
nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from opsresponder.config import ScriptRunnerConfig
from opsresponder.response.runners.base import ActionRequest
from opsresponder.response.runners.script import ScriptRunner
from opsresponder.rules.templates import Script
from opsresponder.rules.templates.scripts import ScriptParameter
from tests.waiting import eventually


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan waits for PID 1 to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def write_script(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path


def request(
    command: list[str],
    parameters: dict[str, Any] | None = None,
    *,
    declared: list[ScriptParameter] | None = None,
    timeout: float = 10.0,
    parameters_as: str = "arguments",
) -> ActionRequest:
    script = Script(
        id=1,
        name="test_script",
        risk_level="low",
        command=command,
        parameters=declared or [],
        parameters_as=parameters_as,  # type: ignore[arg-type]
    )
    return ActionRequest(
        execution_id="exec-1",
        action_id="act-1",
        script=script,
        parameters=parameters or {},
        target="web-01",
        timeout_seconds=timeout,
    )


@pytest.fixture
def runner(tmp_path: Path) -> ScriptRunner:
    return ScriptRunner(
        ScriptRunnerConfig(
            working_directory=str(tmp_path / "work"), max_output_bytes=4096, kill_grace_seconds=0.3
        )
    )


async def test_a_script_that_prints_json(runner: ScriptRunner, tmp_path: Path) -> None:
    path = write_script(
        tmp_path,
        "ok.py",
        "import json\n"
        'print(json.dumps({"cpu_usage": 91.5, "ok": True, "name": "x", "metrics": {"load_1m": 2}}))',
    )
    result = await runner.run(request([str(path)]))
    assert result.success and result.exit_code == 0 and result.error is None
    assert result.data == {"cpu_usage": 91.5, "ok": True, "name": "x", "metrics": {"load_1m": 2}}
    assert result.metrics == {"cpu_usage": 91.5, "load_1m": 2.0}
    assert not result.timed_out and not result.truncated and result.duration_seconds > 0


async def test_plain_output_has_no_data(runner: ScriptRunner, tmp_path: Path) -> None:
    path = write_script(tmp_path, "plain.py", "print('hello')")
    result = await runner.run(request([str(path)]))
    assert result.success and result.output == "hello\n" and result.data is None and result.metrics == {}


async def test_a_failing_script(runner: ScriptRunner, tmp_path: Path) -> None:
    path = write_script(
        tmp_path,
        "fail.py",
        "import sys\nprint('partial')\nprint('disk is gone', file=sys.stderr)\nsys.exit(3)",
    )
    result = await runner.run(request([str(path)]))
    assert not result.success and result.exit_code == 3
    assert result.error == "exit code 3: disk is gone"
    assert result.output == "partial\n" and result.stderr == "disk is gone\n"


async def test_a_missing_or_unexecutable_command_is_a_failed_result(
    runner: ScriptRunner, tmp_path: Path
) -> None:
    missing = await runner.run(request([str(tmp_path / "nope.py")]))
    assert not missing.success and missing.error is not None and "cannot start" in missing.error
    plain = tmp_path / "not_executable.py"
    plain.write_text("print(1)")
    denied = await runner.run(request([str(plain)]))
    assert not denied.success and denied.error is not None and "Permission denied" in denied.error


async def test_a_bad_parameter_starts_nothing(runner: ScriptRunner, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = write_script(tmp_path, "mark.py", f"open({str(marker)!r}, 'w').close()")
    declared = [ScriptParameter(name="count", type="integer")]
    result = await runner.run(request([str(path)], {"count": "12"}, declared=declared))
    assert not result.success and result.error == "parameter 'count' must be an integer, not string"
    assert not marker.exists()


async def test_a_hang_times_out_and_the_whole_group_dies(runner: ScriptRunner, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    path = write_script(
        tmp_path,
        "hang.py",
        "import os, subprocess, time\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "time.sleep(60)\n",
    )
    started = time.monotonic()
    result = await runner.run(request([str(path)], timeout=1.0))
    assert time.monotonic() - started < 5
    assert result.timed_out and not result.success and result.error == "timed out after 1 s"
    assert result.exit_code == -15
    script_pid, grandchild = map(int, pids.read_text().split())
    await eventually(lambda: not alive(script_pid) and not alive(grandchild), within=5, what="the group gone")


async def test_a_script_ignoring_sigterm_is_killed(runner: ScriptRunner, tmp_path: Path) -> None:
    path = write_script(
        tmp_path,
        "stubborn.py",
        "import signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\ntime.sleep(60)\n",
    )
    result = await runner.run(request([str(path)], timeout=1.0))
    assert result.timed_out and result.exit_code == -9 and result.output == "ready\n"


async def test_cancellation_kills_the_group_then_propagates(runner: ScriptRunner, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    path = write_script(
        tmp_path,
        "long.py",
        "import os, signal, subprocess, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        f"open({str(pids)!r} + '.tmp', 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        f"os.rename({str(pids)!r} + '.tmp', {str(pids)!r})\n"
        "time.sleep(60)\n",
    )
    task = asyncio.create_task(runner.run(request([str(path)], timeout=60)))
    await eventually(pids.exists, within=10, what="the script to start")
    script_pid, grandchild = map(int, pids.read_text().split())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: not alive(script_pid) and not alive(grandchild), within=5, what="the group gone")


async def test_stragglers_holding_stdout_are_killed_when_the_script_exits(
    runner: ScriptRunner, tmp_path: Path
) -> None:
    pids = tmp_path / "pid"
    path = write_script(
        tmp_path,
        "leaves_a_child.py",
        "import subprocess\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        f"open({str(pids)!r}, 'w').write(str(child.pid))\n"
        "print('{\"done\": 1}')\n",
    )
    started = time.monotonic()
    result = await runner.run(request([str(path)], timeout=30))
    assert time.monotonic() - started < 5  # not the child's 60 s, nor the timeout
    assert result.success and result.data == {"done": 1}
    await eventually(lambda: not alive(int(pids.read_text())), within=5, what="the straggler gone")


async def test_output_is_bounded_and_the_rest_drained(runner: ScriptRunner, tmp_path: Path) -> None:
    path = write_script(
        tmp_path,
        "chatty.py",
        "import sys\nsys.stdout.write('{' + 'x' * 1_000_000)\nsys.stderr.write('e' * 1_000_000)\n",
    )
    result = await runner.run(request([str(path)]))
    assert result.success and result.truncated
    assert len(result.output) == 4096 and len(result.stderr) == 4096 and result.data is None


HOSTILE = ["; rm -rf /", "$(touch {marker})", "`touch {marker}`", "a\nb\n", "--help", "-x", "'\"\\", "ünï"]


async def test_hostile_parameter_text_arrives_as_literal_arguments(
    runner: ScriptRunner, tmp_path: Path
) -> None:
    marker = tmp_path / "executed"
    path = write_script(tmp_path, "argv.py", "import json, sys\nprint(json.dumps({'argv': sys.argv[1:]}))")
    values = {f"p{i}": text.format(marker=marker) for i, text in enumerate(HOSTILE)}
    declared = [ScriptParameter(name=name) for name in values]
    result = await runner.run(request([str(path), "fixed"], values, declared=declared))
    assert result.success and result.data is not None
    assert result.data["argv"] == ["fixed", *(f"--{name}={text}" for name, text in values.items())]
    assert not marker.exists()


async def test_parameters_as_environment(runner: ScriptRunner, tmp_path: Path) -> None:
    path = write_script(
        tmp_path,
        "env.py",
        "import json, os, sys\n"
        "print(json.dumps({'argv': sys.argv[1:], 'env': {k: v for k, v in os.environ.items()"
        " if k.startswith('OPSR_PARAM_')}}))",
    )
    declared = [ScriptParameter(name="path"), ScriptParameter(name="days", type="integer")]
    result = await runner.run(
        request([str(path)], {"path": "$(id)", "days": 3}, declared=declared, parameters_as="environment")
    )
    assert result.data == {"argv": [], "env": {"OPSR_PARAM_PATH": "$(id)", "OPSR_PARAM_DAYS": "3"}}


async def test_the_environment_and_working_directory_are_restricted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSR_TEST_SECRET", "hunter2")
    monkeypatch.setenv("LANG", "C.UTF-8")
    runner = ScriptRunner(
        ScriptRunnerConfig(
            working_directory=str(tmp_path / "nested" / "work"),
            pass_environment=["PATH", "LANG"],
            environment={"SITE": "eu-1"},
        )
    )
    path = write_script(
        tmp_path,
        "env.py",
        "import json, os, sys\nprint(json.dumps({'env': dict(os.environ), 'cwd': os.getcwd(),"
        " 'stdin': sys.stdin.read()}))",
    )
    result = await runner.run(request([str(path)]))
    assert result.data is not None
    env = result.data["env"]
    env.pop("LC_CTYPE", None)  # Python may set it itself when coercing the C locale
    assert env == {
        "PATH": os.environ["PATH"],
        "LANG": "C.UTF-8",
        "SITE": "eu-1",
        "OPSR_EXECUTION_ID": "exec-1",
        "OPSR_ACTION_ID": "act-1",
        "OPSR_TARGET": "web-01",
    }
    assert "hunter2" not in result.output
    assert result.data["cwd"] == str(tmp_path / "nested" / "work") and result.data["stdin"] == ""


async def test_many_runs_at_once(runner: ScriptRunner, tmp_path: Path) -> None:
    path = write_script(tmp_path, "quick.sh", "")
    path.write_text('#!/bin/sh\necho "{\\"n\\": $OPSR_ACTION_ID}"\n')
    requests = [
        ActionRequest(
            execution_id="e",
            action_id=str(i),
            script=Script(id=1, name="quick", risk_level="low", command=[str(path)]),
            parameters={},
            timeout_seconds=20,
        )
        for i in range(40)
    ]
    results = await asyncio.gather(*(runner.run(r) for r in requests))
    assert [r.data for r in results] == [{"n": i} for i in range(40)]
    assert json.loads(results[0].output) == {"n": 0}


def own_children() -> dict[int, str]:
    """This process's children by pid, with their state letter (``Z``: exited, not reaped)."""
    children: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            children[int(stat.parent.name)] = fields[0]
    return children


async def test_runs_start_no_thread_and_leave_no_zombie(runner: ScriptRunner, tmp_path: Path) -> None:
    # Watching through a pidfd: asyncio's default child watcher would start a thread per process.
    path = write_script(tmp_path, "quick.sh", "")
    path.write_text("#!/bin/sh\nsleep 0.2\necho done\n")
    before = {t.ident for t in threading.enumerate()}
    tasks = [asyncio.create_task(runner.run(request([str(path)]))) for _ in range(10)]
    await eventually(lambda: len(own_children()) >= 10, within=10, what="the ten scripts running")
    assert {t.ident for t in threading.enumerate()} <= before
    results = await asyncio.gather(*tasks)
    assert all(r.success and r.output == "done\n" and r.exit_code == 0 for r in results)
    assert not [pid for pid, state in own_children().items() if state == "Z"]


async def test_scripts_run_niced_never_below_the_service(tmp_path: Path) -> None:
    # The script reads its niceness after a pause: it is set just after the start.
    path = write_script(
        tmp_path, "nice.py", "import os, time\ntime.sleep(0.3)\nprint(os.getpriority(os.PRIO_PROCESS, 0))\n"
    )
    own = os.getpriority(os.PRIO_PROCESS, 0)
    for nice, expected in ((10, max(10, own)), (0, own)):
        niced = ScriptRunner(ScriptRunnerConfig(working_directory=str(tmp_path / "work"), nice=nice))
        result = await niced.run(request([str(path)]))
        assert result.success and int(result.output) == expected


def test_the_runner_on_uvloop_the_service_loop(tmp_path: Path) -> None:
    """The service runs on uvloop: output, exit codes, a timeout killing the group and many at once."""
    uvloop = pytest.importorskip("uvloop")
    runner = ScriptRunner(
        ScriptRunnerConfig(working_directory=str(tmp_path / "work"), kill_grace_seconds=0.3)
    )
    pids = tmp_path / "pids"
    hang = write_script(
        tmp_path,
        "hang.py",
        "import os, subprocess, time\nchild = subprocess.Popen(['sleep', '60'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\ntime.sleep(60)\n",
    )
    fails = write_script(tmp_path, "fails.py", "import sys\nprint('{\"a\": 1}')\nsys.exit(3)\n")

    async def scenario() -> None:
        many = await asyncio.gather(*(runner.run(request(["/bin/echo", f"{i}"])) for i in range(30)))
        assert [r.output for r in many] == [f"{i}\n" for i in range(30)]
        failed = await runner.run(request([str(fails)]))
        assert failed.exit_code == 3 and failed.data == {"a": 1} and not failed.success
        timed_out = await runner.run(request([str(hang)], timeout=1.0))
        assert timed_out.timed_out and timed_out.exit_code == -15
        script_pid, grandchild = map(int, pids.read_text().split())
        await eventually(lambda: not alive(script_pid) and not alive(grandchild), within=5, what="gone")

    uvloop.run(scenario())
    assert not [pid for pid, state in own_children().items() if state == "Z"]


async def test_a_run_cancelled_just_after_its_start_leaves_nothing_running(
    runner: ScriptRunner, tmp_path: Path
) -> None:
    path = write_script(tmp_path, "sleeper.py", "import time\ntime.sleep(60)\n")

    def sleepers() -> list[int]:
        """Sleepers still running, or exited and not reaped (a zombie's command line is empty)."""
        found = []
        for pid, state in own_children().items():
            with contextlib.suppress(OSError):
                if state == "Z" or b"sleeper.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(pid)
        return found

    for _ in range(5):
        task = asyncio.create_task(runner.run(request([str(path)])))
        await asyncio.sleep(0)  # the run has started its process and waits for it
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await eventually(lambda: not sleepers(), within=10, what="every started sleeper killed and reaped")
