"""The outcome analysis of one execution: its success and efficiency scores (docs/response.md "Feedback
and learning"), pure functions over what the executor reported."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from opsresponder.response.analysis.estimates import critical_path_minutes
from opsresponder.store.decisions import DecisionAction
from opsresponder.store.learning import ExecutionScore


def success_score(
    *, completed: bool, criteria_met: bool | None, verification: str | None, rolled_back: bool
) -> float:
    """The share of the known checks that passed: the execution completed, its criteria held (when the
    template has any), its verification passed (once decided), nothing was rolled back. 1.0 is a clean
    success; a completed execution whose verification failed and was rolled back scores 0.5."""
    checks = [completed, not rolled_back]
    if criteria_met is not None:
        checks.append(criteria_met)
    if verification in ("passed", "failed"):
        checks.append(verification == "passed")
    return round(sum(checks) / len(checks), 4)


def efficiency_score(duration_seconds: float | None, estimated_seconds: float | None) -> float | None:
    """``min(1, estimated / actual)``: 1.0 when it took no longer than the decision estimated, 0.5 when
    twice as long. None when either is unknown (or the estimate is 0)."""
    if duration_seconds is None or not estimated_seconds:
        return None
    if duration_seconds <= estimated_seconds:
        return 1.0
    return round(estimated_seconds / duration_seconds, 4)


def estimated_seconds(actions: Sequence[DecisionAction]) -> float:
    """The decision's estimate for the chosen actions: their estimated durations along the longest
    ``depends_on`` chain (independent actions run in parallel), as analysis computes it."""
    minutes = critical_path_minutes(
        {a.key: a.estimated_duration_minutes for a in actions}, {a.key: a.depends_on for a in actions}
    )
    return minutes * 60


def score(
    *,
    execution_id: str,
    decision_id: int,
    template_id: str | None,
    plan: dict[str, Any],
    actions: Sequence[DecisionAction],
    status: str,
    criteria: dict[str, Any] | None,
    verification: str | None,
    rolled_back: bool,
    started_at: datetime | None,
    completed_at: datetime | None,
    now: datetime,
) -> ExecutionScore:
    criteria_met = None if criteria is None else bool(criteria.get("succeeded"))
    duration = (
        (completed_at - started_at).total_seconds()
        if started_at is not None and completed_at is not None
        else None
    )
    estimate = estimated_seconds(actions)
    event = plan.get("event") or {}
    return ExecutionScore(
        execution_id=execution_id,
        decision_id=decision_id,
        template_id=template_id,
        pattern_id=plan.get("pattern_id"),
        event_type=str(event.get("event_type") or ""),
        status=status,
        criteria_met=criteria_met,
        verification=verification,
        rolled_back=rolled_back,
        success_score=success_score(
            completed=status == "completed",
            criteria_met=criteria_met,
            verification=verification,
            rolled_back=rolled_back,
        ),
        efficiency_score=efficiency_score(duration, estimate),
        duration_seconds=duration,
        estimated_seconds=estimate or None,
        scored_at=now,
    )
