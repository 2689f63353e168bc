"""What the executor needs from elsewhere, as protocols: the template versions (the store's
`ResponseTemplateRepository.get_version`) and where outcomes go (the analysis side's outcome store)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

import msgspec

from opsresponder.rules.templates import ResponseTemplate
from opsresponder.store.executions import ExecutionRow
from opsresponder.store.outcomes import ActionOutcome


class TemplateVersions(Protocol):
    """One stored version of a template, or None when it is not (or no longer) stored."""

    async def get_version(self, template_id: str, version: str) -> ResponseTemplate | None: ...


class OutcomeSink(Protocol):
    """Records how each action of an ended execution went (what confidence is learned from)."""

    async def record(self, outcomes: Sequence[ActionOutcome]) -> None: ...


class EndedExecution(msgspec.Struct, kw_only=True, frozen=True):
    """An execution that ran to its own end (``completed``, ``failed`` or ``rolled_back``).

    Attributes:
        execution: the row as claimed (its plan, decision, event, start).
        status, error, criteria, completed_at: how it ended.
        outcomes: what was recorded for each chosen action.
        remediated: the keys of the completed actions that changed the target (a remediation action, or a
            script whose catalog type is not diagnostic or notification): what verification checks.
    """

    execution: ExecutionRow
    status: str
    error: str | None
    criteria: dict[str, Any] | None
    completed_at: datetime
    outcomes: list[ActionOutcome]
    remediated: list[str]


class ExecutionEndSink(Protocol):
    """Told of every execution that ran to its own end, after its outcomes were recorded (learning:
    scores, closed-loop verification). Its failure is logged in the execution and changes nothing."""

    async def execution_ended(self, ended: EndedExecution) -> None: ...
