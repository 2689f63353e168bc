"""A small script catalog, response templates and real scripts under a test's directory, for the
autonomous API tests (tests/integration/api/test_autonomous_*.py) and the crash test (tests/e2e/).

Every script is a real Python process run as argv: it appends one line to ``<markers>/<name>`` (its pid,
the execution id and its arguments) so a test can see what ran, and how often.

- ``quick_check`` (1): prints a JSON object with metrics; its rollback is ``undo_check``.
- ``hang_forever`` (2): writes its marker, then sleeps for an hour (until killed).
- ``undo_check`` (3): the rollback; writes its marker.
- ``guarded_change`` (4): a configuration change whose script always needs approval.
- ``fail_check`` (5): exits 3.
- ``fix_thing`` (6): a remediation (risk medium by the matrix in `LOOP_CONTEXT`); writes its marker.

Templates, each applying to its own event type:
- ``quick_playbook`` (``test_quick``): ``diag_one`` then ``diag_two`` (quick_check twice).
- ``hang_playbook`` (``test_hang``): ``prepare`` (quick_check) then ``hang`` (hang_forever, required).
- ``guarded_playbook`` (``test_guarded``): one ``guarded_change``.
- ``loop_playbook`` (``test_loop``): ``look`` (quick_check) then ``fix`` (fix_thing, depends on look).

The analyze context of `LOW_RISK_CONTEXT` keeps every diagnostic under the approval threshold (criticality
low 0.1 + diagnostic 0.1 + after hours 0 + outside maintenance 0.1 = 0.3, not over 0.3: the request's
``maintenance_window`` counts only with a matching silence, and there is none; the hosts are not in the
inventory, so the request's criticality and hours are taken).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

LOW_RISK_CONTEXT: Final = {
    "business_hours": False,
    "maintenance_window": True,
    "system_criticality": "low",
}

_RECORD: Final = """\
import json, os, sys, time
markers = sys.argv[1]
with open(os.path.join(markers, NAME), "a") as f:
    f.write(json.dumps({"pid": os.getpid(), "ppid": os.getppid(),
                        "execution": os.environ.get("OPSR_EXECUTION_ID"), "args": sys.argv[2:]}) + "\\n")
"""

SCRIPTS: Final = {
    "quick_check": _RECORD + 'print(json.dumps({"cpu_usage": 12.5, "metrics": {"load1": 0.25}}))\n',
    "hang_forever": _RECORD + "time.sleep(3600)\n",
    "undo_check": _RECORD + 'print(json.dumps({"undone": True}))\n',
    "guarded_change": _RECORD + 'print("changed")\n',
    "fail_check": _RECORD + 'print("broken", file=sys.stderr)\nsys.exit(3)\n',
    "fix_thing": _RECORD + 'print(json.dumps({"fixed": True}))\n',
}


@dataclass(frozen=True)
class Playbooks:
    scripts_file: Path
    templates: Path
    markers: Path
    work: Path

    def runs(self, script: str) -> list[dict[str, Any]]:
        """The runs of `script` so far, as each recorded itself."""
        path = self.markers / script
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def kill_leftovers(self) -> None:
        """Kill the scripts still running (a hang the service was killed under keeps running)."""
        for run in self.runs("hang_forever"):
            with suppress(ProcessLookupError, PermissionError):
                os.kill(run["pid"], signal.SIGKILL)


def _script(script_id: int, name: str, directory: Path, markers: Path, **extra: Any) -> dict[str, Any]:
    path = directory / f"{name}.py"
    path.write_text(SCRIPTS[name].replace("NAME", repr(name), 1))
    return {
        "id": script_id,
        "name": name,
        "risk_level": "low",
        "action_type": "diagnostic",
        "command": [sys.executable, str(path), str(markers)],
        "timeout_seconds": 600,
        **extra,
    }


TEMPLATES: Final = {
    "quick_playbook": {
        "id": "quick_playbook",
        "name": "Quick diagnostics",
        "version": "1",
        "triggers": [{"event_type": "test_quick"}],
        "actions": [
            {"id": "diag_one", "name": "First check", "type": "diagnostic",
             "automation_script": "quick_check",
             "required": True, "rollback_supported": True},
            {"id": "diag_two", "name": "Second check", "type": "diagnostic",
             "automation_script": "quick_check",
             "depends_on": ["diag_one"], "rollback_supported": True},
        ],
    },
    "hang_playbook": {
        "id": "hang_playbook",
        "name": "Prepare, then hang",
        "version": "1",
        "triggers": [{"event_type": "test_hang"}],
        "actions": [
            {"id": "prepare", "name": "Prepare", "type": "diagnostic", "automation_script": "quick_check",
             "required": True, "rollback_supported": True},
            {"id": "hang", "name": "Hang", "type": "diagnostic", "automation_script": "hang_forever",
             "required": True, "depends_on": ["prepare"]},
        ],
    },
    "guarded_playbook": {
        "id": "guarded_playbook",
        "name": "A guarded change",
        "version": "1",
        "triggers": [{"event_type": "test_guarded"}],
        "actions": [
            {"id": "change", "name": "Change", "type": "remediation", "automation_script": "guarded_change",
             "approval_required": True},
        ],
    },
    "loop_playbook": {
        "id": "loop_playbook",
        "name": "Look, then fix",
        "version": "1",
        "triggers": [{"event_type": "test_loop"}],
        "actions": [
            {"id": "look", "name": "Look", "type": "diagnostic", "automation_script": "quick_check",
             "required": True},
            {"id": "fix", "name": "Fix", "type": "remediation", "automation_script": "fix_thing",
             "required": True, "depends_on": ["look"]},
        ],
    },
}  # fmt: skip

LOOP_CONTEXT: Final = {
    "business_hours": False,
    "maintenance_window": True,
    "system_criticality": "medium",
}
"""The rule-to-response loop's context in its tests: a diagnostic scores 0.2 + 0.1 = 0.3 (low, no
approval), the remediation 0.2 + 0.2 = 0.4 (medium: approval)."""


def write_playbooks(root: Path) -> Playbooks:
    """The catalog, templates and scripts under `root` (created)."""
    scripts, templates, markers, work = (root / n for n in ("scripts", "templates", "markers", "work"))
    for directory in (scripts, templates, markers, work):
        directory.mkdir(parents=True, exist_ok=True)
    catalog = [
        _script(1, "quick_check", scripts, markers, rollback="undo_check", timeout_seconds=30),
        _script(2, "hang_forever", scripts, markers),
        _script(3, "undo_check", scripts, markers, timeout_seconds=30),
        _script(4, "guarded_change", scripts, markers, action_type="configuration_change",
                risk_level="high", approval_required=True),
        _script(5, "fail_check", scripts, markers, timeout_seconds=30),
        _script(6, "fix_thing", scripts, markers, action_type="remediation", timeout_seconds=30),
    ]  # fmt: skip
    scripts_file = root / "scripts.yaml"
    scripts_file.write_text(yaml.safe_dump({"scripts": catalog}, sort_keys=False))
    for name, body in TEMPLATES.items():
        (templates / f"{name}.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    return Playbooks(scripts_file, templates, markers, work)


def response_tree(playbooks: Playbooks) -> dict[str, Any]:
    """The ``templates`` and ``response`` settings that use `playbooks` (merge into a settings tree)."""
    return {
        "templates": {"directory": str(playbooks.templates), "scripts_file": str(playbooks.scripts_file)},
        "response": {
            "scripts": {"working_directory": str(playbooks.work), "kill_grace_seconds": 0.5},
            "notifications": {"directory": None},
            "executor": {"poll_interval_ms": 50, "lease_seconds": 2},
        },
    }


def response_env(playbooks: Playbooks) -> dict[str, str]:
    """The same as OPSRESPONDER_* variables, for a service process."""
    return {
        "OPSRESPONDER_TEMPLATES__DIRECTORY": str(playbooks.templates),
        "OPSRESPONDER_TEMPLATES__SCRIPTS_FILE": str(playbooks.scripts_file),
        "OPSRESPONDER_RESPONSE__SCRIPTS__WORKING_DIRECTORY": str(playbooks.work),
        "OPSRESPONDER_RESPONSE__SCRIPTS__KILL_GRACE_SECONDS": "0.5",
        "OPSRESPONDER_RESPONSE__NOTIFICATIONS__DIRECTORY": "null",
        "OPSRESPONDER_RESPONSE__EXECUTOR__POLL_INTERVAL_MS": "50",
        "OPSRESPONDER_RESPONSE__EXECUTOR__LEASE_SECONDS": "2",
    }
