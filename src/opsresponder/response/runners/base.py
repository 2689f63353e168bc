"""The contract between the executor and the runners: one action in (`ActionRequest`), one `RunResult`
out. Cancelling the task that awaits `Runner.run` is how the executor stops an action: a runner must
then stop what it started (a script's whole process group) before the cancellation propagates."""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from opsresponder.rules.templates import Script


class ActionRequest(msgspec.Struct, kw_only=True, frozen=True):
    """One action to run.

    Attributes:
        execution_id, action_id: for logs and the process environment (``OPSR_EXECUTION_ID``).
        script: the catalog entry (its command or HTTP call, its declared parameters).
        parameters: the resolved values, not yet type-checked: the runner checks them against
            ``script.parameters`` and refuses (a failed `RunResult`, nothing started) what does not fit.
        target: the host the action is about (the event's host), or None.
        timeout_seconds: the whole run's limit (the smaller of the script's and the action's).
    """

    execution_id: str
    action_id: str
    script: Script
    parameters: dict[str, Any]
    target: str | None = None
    timeout_seconds: float


class RunResult(msgspec.Struct, kw_only=True):
    """What one run produced.

    Attributes:
        success: the run did what it was for (exit 0; an accepted HTTP status; every channel sent).
        output: stdout (or the response body), decoded, at most the configured bound.
        error: why it failed, for people (``exit code 3``, ``timed out after 5.0 s``...), else None.
        exit_code: a process's exit status (negative: killed by that signal); None otherwise.
        data: the JSON object the script printed (or the endpoint answered), else None; criteria read it
            as ``<action>.result``.
        metrics: the numeric values of `data` (its top-level numbers, and those of ``data["metrics"]``).
        stderr: a process's stderr, bounded like `output`.
        timed_out, truncated: the run hit its timeout; output was cut at the bound.
        duration_seconds: wall time of the run.
    """

    success: bool
    output: str = ""
    error: str | None = None
    exit_code: int | None = None
    data: dict[str, Any] | None = None
    metrics: dict[str, float] = msgspec.field(default_factory=dict)
    stderr: str = ""
    timed_out: bool = False
    truncated: bool = False
    duration_seconds: float = 0.0


class Runner(Protocol):
    """Runs one action to its end; never raises for the action's own failure (that is a failed result),
    only for cancellation."""

    async def run(self, request: ActionRequest) -> RunResult: ...
