"""Recorded outcomes of actions (``autonomous.action_outcomes``): what analysis turns into confidence,
success probability and duration estimates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final, Literal

import asyncpg
import msgspec

from opsresponder.store.feedback import CAPPED_FEEDBACK
from opsresponder.store.pool import connection


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


HistoryBasis = Literal["pattern", "event_type", "none"]

# Statuses that say nothing about whether the action works: it never ran to an end of its own (skipped
# after a failed dependency, cancelled by an operator). They are stored but not counted as runs.
NOT_RUNS: Final = ("skipped", "cancelled")


class OutcomeStats(msgspec.Struct, kw_only=True, frozen=True):
    """What the recorded outcomes of one template action on similar events say.

    Attributes:
        basis: ``pattern`` when outcomes on events of the same message template exist, else
            ``event_type`` (same event type), else ``none`` (no history: all counts 0).
        runs, successes: outcomes counted (skipped and cancelled ones are not runs) and how many succeeded.
        mean_seconds, p50_seconds, p90_seconds: durations of the successful runs; None without one.
        feedback_runs, feedback_successes: feedback on those runs' executions as pseudo-outcomes
            (``autonomous.feedback``: each counts ``weight`` runs, a success when its ``effect`` is true;
            docs/response.md "Feedback and learning"), on the same basis.
    """

    basis: HistoryBasis = "none"
    runs: int = 0
    successes: int = 0
    mean_seconds: float | None = None
    p50_seconds: float | None = None
    p90_seconds: float | None = None
    feedback_runs: float = 0.0
    feedback_successes: float = 0.0


_UPSERT: Final = """
INSERT INTO autonomous.action_outcomes AS o (execution_id, decision_id, event_id, template_id, action_key,
    script, event_type, pattern_id, target, status, success, duration_seconds, rolled_back, finished_at)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::text[], $10::text[], $11::boolean[], $12::double precision[], $13::boolean[],
    $14::timestamptz[])
ON CONFLICT (execution_id, action_key) DO UPDATE SET
    status = EXCLUDED.status, success = EXCLUDED.success, duration_seconds = EXCLUDED.duration_seconds,
    rolled_back = EXCLUDED.rolled_back, finished_at = EXCLUDED.finished_at
"""

# One pass over the template's outcomes since `since` that are similar by pattern or by event type; each
# aggregate is computed twice, once per basis (FILTER), and the caller keeps the pattern's when it has
# runs. Ordered-set aggregates (percentile_cont) take FILTER like any other.
_STATS: Final = """
SELECT action_key,
       count(*) FILTER (WHERE p) AS p_runs,
       count(*) FILTER (WHERE p AND success) AS p_successes,
       avg(duration_seconds) FILTER (WHERE p AND success) AS p_mean,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_seconds) FILTER (WHERE p AND success) AS p_p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY duration_seconds) FILTER (WHERE p AND success) AS p_p90,
       count(*) FILTER (WHERE t) AS t_runs,
       count(*) FILTER (WHERE t AND success) AS t_successes,
       avg(duration_seconds) FILTER (WHERE t AND success) AS t_mean,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_seconds) FILTER (WHERE t AND success) AS t_p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY duration_seconds) FILTER (WHERE t AND success) AS t_p90
FROM (SELECT action_key, success, duration_seconds,
             coalesce(pattern_id = $3, false) AS p, event_type = $4 AS t
      FROM autonomous.action_outcomes
      WHERE template_id = $1 AND action_key = ANY($2::text[]) AND finished_at >= $5
        AND NOT (status = ANY($6::text[]))
        AND (pattern_id = $3 OR event_type = $4)) AS alike
GROUP BY action_key
"""

# Feedback on the executions of those outcomes, as weighted pseudo-outcomes, on both bases (the caller
# keeps the basis the outcomes chose). A neutral feedback (effect null) moves nothing.
_FEEDBACK_STATS: Final = f"""
SELECT o.action_key,
       coalesce(sum(f.weight) FILTER (WHERE o.pattern_id = $3), 0) AS p_runs,
       coalesce(sum(f.success_weight) FILTER (WHERE o.pattern_id = $3), 0) AS p_successes,
       coalesce(sum(f.weight) FILTER (WHERE o.event_type = $4), 0) AS t_runs,
       coalesce(sum(f.success_weight) FILTER (WHERE o.event_type = $4), 0) AS t_successes
FROM {CAPPED_FEEDBACK} AS f
JOIN autonomous.action_outcomes AS o ON o.execution_id = f.execution_id
WHERE o.template_id = $1 AND o.action_key = ANY($2::text[]) AND o.finished_at >= $5
  AND NOT (o.status = ANY($6::text[]))
  AND (o.pattern_id = $3 OR o.event_type = $4)
GROUP BY o.action_key
"""


class OutcomeRepository:
    """Writes and aggregates ``autonomous.action_outcomes``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record(self, outcomes: Sequence[ActionOutcome]) -> None:
        """Store `outcomes` in one statement; an outcome already stored for its execution and action is
        replaced (a retried write after a crash counts once).

        Raises:
            DatabaseUnavailableError: PostgreSQL cannot be reached; nothing was stored.
        """
        if not outcomes:
            return
        async with connection(self.pool) as conn:
            await conn.execute(
                _UPSERT,
                [o.execution_id for o in outcomes],
                [o.decision_id for o in outcomes],
                [o.event_id for o in outcomes],
                [o.template_id for o in outcomes],
                [o.action_key for o in outcomes],
                [o.script for o in outcomes],
                [o.event_type for o in outcomes],
                [o.pattern_id for o in outcomes],
                [o.target for o in outcomes],
                [o.status for o in outcomes],
                [o.success for o in outcomes],
                [o.duration_seconds for o in outcomes],
                [o.rolled_back for o in outcomes],
                [o.finished_at for o in outcomes],
            )

    async def stats_for_template(
        self,
        template_id: str,
        action_keys: Sequence[str],
        pattern_id: str | None,
        event_type: str,
        since: datetime,
    ) -> dict[str, OutcomeStats]:
        """`OutcomeStats` of each of `action_keys` (every key present; ``none`` without history), in one
        query: outcomes since `since` on events of `pattern_id` when that action has any, else on events
        of `event_type`.

        Raises:
            DatabaseUnavailableError: PostgreSQL cannot be reached.
        """
        found: dict[str, OutcomeStats] = {key: OutcomeStats() for key in action_keys}
        if not action_keys:
            return found
        arguments = (template_id, list(action_keys), pattern_id, event_type, since, list(NOT_RUNS))
        async with connection(self.pool) as conn:
            rows = await conn.fetch(_STATS, *arguments)
            feedback = {r["action_key"]: r for r in await conn.fetch(_FEEDBACK_STATS, *arguments)}
        for row in rows:
            basis: HistoryBasis = "pattern" if row["p_runs"] else "event_type"
            prefix = "p_" if basis == "pattern" else "t_"
            if not row[prefix + "runs"]:
                continue
            pseudo = feedback.get(row["action_key"])
            found[row["action_key"]] = OutcomeStats(
                basis=basis,
                runs=row[prefix + "runs"],
                successes=row[prefix + "successes"],
                mean_seconds=row[prefix + "mean"],
                p50_seconds=row[prefix + "p50"],
                p90_seconds=row[prefix + "p90"],
                feedback_runs=float(pseudo[prefix + "runs"]) if pseudo is not None else 0.0,
                feedback_successes=float(pseudo[prefix + "successes"]) if pseudo is not None else 0.0,
            )
        return found

    async def stats(
        self, template_id: str, action_key: str, pattern_id: str | None, event_type: str, since: datetime
    ) -> OutcomeStats:
        """`stats_for_template` for one action."""
        found = await self.stats_for_template(template_id, [action_key], pattern_id, event_type, since)
        return found[action_key]
