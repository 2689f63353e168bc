"""What the executor tests share: a catalog of real test scripts (scripts/step.py), decisions built
directly, a service on the test database, and the small sinks the executor reports to."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from opsresponder.config import ExecutorConfig, ScriptRunnerConfig
from opsresponder.core.clock import utcnow
from opsresponder.response.analysis.analyzer import ActionPolicies
from opsresponder.response.executor.service import ExecutionService
from opsresponder.response.notify.base import ChannelResult, Notification
from opsresponder.response.runners.script import ScriptRunner
from opsresponder.rules.templates import Script, ScriptCatalog
from opsresponder.rules.templates.scripts import ScriptParameter
from opsresponder.state.base import StateBackend
from opsresponder.state.memory import MemoryStateBackend
from opsresponder.store.decisions import DecisionAction, StoredDecision
from opsresponder.store.executions import ExecutionRepository
from opsresponder.store.outcomes import ActionOutcome
from opsresponder.store.response_templates import ResponseTemplateRepository

STEP = Path(__file__).parent / "scripts" / "step.py"
_PARAMETERS = [
    ScriptParameter(name="name", type="string"),
    ScriptParameter(name="sleep", type="float"),
    ScriptParameter(name="exit", type="integer"),
    ScriptParameter(name="journal", type="string"),
    ScriptParameter(name="touch", type="string"),
    ScriptParameter(name="hang", type="string"),
    ScriptParameter(name="pid_file", type="string"),
]


def catalog() -> ScriptCatalog:
    """``step`` (a diagnostic), ``fix`` (a remediation undone by ``undo``), ``undo``, ``cleanup``."""
    command = [sys.executable, str(STEP)]
    return ScriptCatalog(
        [
            Script(id=1, name="step", risk_level="low", command=command, parameters=_PARAMETERS),
            Script(
                id=2,
                name="fix",
                risk_level="medium",
                action_type="remediation",
                command=command,
                parameters=_PARAMETERS,
                rollback="undo",
            ),
            Script(
                id=3,
                name="undo",
                risk_level="medium",
                action_type="remediation",
                command=[*command, "--undo=true"],
                parameters=_PARAMETERS,
            ),
            Script(
                id=4,
                name="cleanup",
                risk_level="low",
                action_type="remediation",
                command=command,
                parameters=_PARAMETERS,
            ),
        ]
    )


_next_action_id = 1000


def action(
    key: str,
    *,
    script: str | None = "step",
    depends_on: Sequence[str] = (),
    required: bool = False,
    action_type: str = "diagnostic",
    approval_required: bool = False,
    timeout: float = 20.0,
    **parameters: Any,
) -> DecisionAction:
    global _next_action_id
    _next_action_id += 1
    rollback = "undo" if script == "fix" else None
    return DecisionAction(
        action_id=_next_action_id,
        key=key,
        name=f"Action {key}",
        action_type=action_type,
        script=script,
        parameters={"name": key, **parameters} if script is not None else parameters,
        depends_on=list(depends_on),
        required=required,
        timeout_seconds=timeout,
        risk_level="low",
        risk_score=0.1,
        approval_required=approval_required,
        rollback_script=rollback,
        estimated_duration_minutes=1.0,
        success_probability=0.8,
    )


_next_decision_id = 500


def decision(
    *actions: DecisionAction, target: str | None = "web-01", template: tuple[str, str] | None = None
) -> StoredDecision:
    global _next_decision_id
    _next_decision_id += 1
    return StoredDecision(
        decision_id=_next_decision_id,
        event_id=_next_decision_id * 10,
        created_at=utcnow(),
        requested_by="tester",
        target=target,
        fingerprint="fp",
        pattern_id="pat-1",
        template_id=None if template is None else template[0],
        template_version=None if template is None else template[1],
        variables={"threshold": 5},
        inputs={"event": {"event_type": "threshold_breach"}},
        recommended_actions=list(actions),
    )


@dataclass
class Notes:
    """A notifier that keeps what it was asked to send (channels answered as told)."""

    sent: list[Notification] = field(default_factory=list)
    fail: bool = False
    raise_error: bool = False

    async def send(self, notification: Notification) -> list[ChannelResult]:
        self.sent.append(notification)
        if self.raise_error:
            raise RuntimeError("notifier exploded")
        channels = notification.channels or ("webhook",)
        return [
            ChannelResult(channel=c, success=not self.fail, error="refused" if self.fail else None)
            for c in channels
        ]

    def templates(self) -> list[str]:
        return [n.template for n in self.sent]


@dataclass
class Outcomes:
    recorded: list[ActionOutcome] = field(default_factory=list)

    async def record(self, outcomes: Sequence[ActionOutcome]) -> None:
        self.recorded.extend(outcomes)


class Clock:
    """The wall clock plus an offset a test can advance (deadlines without waiting minutes)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, by: timedelta) -> None:
        self.offset += by


@dataclass
class Rig:
    """One service (a "process") on the test database, with what it reports to."""

    service: ExecutionService
    repository: ExecutionRepository
    notes: Notes
    outcomes: Outcomes
    state: StateBackend
    clock: Clock
    templates: ResponseTemplateRepository


def make_rig(
    pool: asyncpg.Pool,
    work: Path,
    *,
    owner: str = "worker-1",
    state: StateBackend | None = None,
    clock: Clock | None = None,
    automation_paused: Callable[[], Awaitable[bool]] | None = None,
    policies: ActionPolicies | None = None,
    notifier: Notes | None = None,
    **config: Any,
) -> Rig:
    settings: dict[str, Any] = {"lease_seconds": 1.5, "poll_interval_ms": 20, "lock_ttl_seconds": 3.0}
    settings.update(config)
    repository = ExecutionRepository(pool)
    notes, outcomes = notifier or Notes(), Outcomes()
    state = state or MemoryStateBackend()
    clock = clock or Clock()
    templates = ResponseTemplateRepository(pool)
    service = ExecutionService(
        repository=repository,
        runner=ScriptRunner(ScriptRunnerConfig(working_directory=str(work), kill_grace_seconds=0.5)),
        notifier=notes,
        catalog=catalog(),
        templates=templates,
        outcomes=outcomes,
        state=state,
        config=ExecutorConfig(**settings),
        owner=owner,
        clock=clock,
        automation_paused=automation_paused,
        policies=policies,
    )
    return Rig(service, repository, notes, outcomes, state, clock, templates)


def journal_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []
