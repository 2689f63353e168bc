"""Recorded outcomes of actions (``autonomous.action_outcomes``): what analysis turns into confidence,
success probability and duration estimates. The repository arrives with the analysis."""

from __future__ import annotations

from datetime import datetime

import msgspec


class ActionOutcome(msgspec.Struct, kw_only=True, frozen=True):
    """How one action of one execution ended; written by the executor when the execution ends.

    Attributes:
        execution_id, decision_id, event_id: where it came from.
        template_id, action_key, script: what ran (``action_key`` is the template action's id).
        event_type, pattern_id, target: what it ran about; "similar events" share template, action and
            pattern (or event type when the event had no pattern).
        status: the action's final status (completed, failed, timed_out, skipped, cancelled).
        success: completed and its runner reported success.
        duration_seconds: its run time (0 when it never started).
        rolled_back: a rollback of it ran.
        finished_at: when it ended.
    """

    execution_id: str
    decision_id: int
    event_id: int
    template_id: str | None
    action_key: str
    script: str | None
    event_type: str
    pattern_id: str | None
    target: str | None
    status: str
    success: bool
    duration_seconds: float
    rolled_back: bool = False
    finished_at: datetime
