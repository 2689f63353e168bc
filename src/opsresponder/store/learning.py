"""What learning keeps (migration 015): the score of each ended execution (``execution_scores``), the
action policies (``action_policies``: demoted to "approval required" or not) with every change
(``action_policy_changes``), and the statistics ``GET /api/v1/autonomous/insights`` answers.

A policy change is one conditional statement: the row changes only when its ``demoted`` differs, and the
change is logged by the same statement, so two replicas evaluating one action at once log it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

import asyncpg
import msgspec

from opsresponder.store.feedback import capped_feedback_of
from opsresponder.store.outcomes import NOT_RUNS, ActionOutcome
from opsresponder.store.pool import connection

MAX_CHANGES: Final = 1000
"""The newest policy changes an insights answer lists at most."""


class ExecutionScore(msgspec.Struct, kw_only=True, frozen=True):
    """The outcome analysis of one ended execution (docs/response.md "Feedback and learning").

    Attributes:
        criteria_met: the template's criteria held (None: it has none).
        verification: passed, failed, pending, or None when nothing needed verifying.
        success_score: the share of the known checks that passed (completed, criteria met, verification
            passed, not rolled back).
        efficiency_score: min(1, estimated / actual duration); None without an estimate or a duration.
    """

    execution_id: str
    decision_id: int
    template_id: str | None
    pattern_id: str | None
    event_type: str
    status: str
    criteria_met: bool | None
    verification: str | None
    rolled_back: bool
    success_score: float
    efficiency_score: float | None
    duration_seconds: float | None
    estimated_seconds: float | None
    scored_at: datetime


class ActionPolicy(msgspec.Struct, kw_only=True, frozen=True):
    template_id: str
    action_key: str
    demoted: bool
    reason: str
    changed_at: datetime


class PolicyChange(msgspec.Struct, kw_only=True, frozen=True):
    template_id: str
    action_key: str
    change: str
    reason: str
    runs: float
    success_rate: float | None
    at: datetime


class Window(msgspec.Struct, kw_only=True, frozen=True):
    """An action's last runs since its policy last changed: outcomes plus feedback pseudo-outcomes."""

    runs: int
    successes: int
    feedback_runs: float
    feedback_successes: float

    @property
    def weighted_runs(self) -> float:
        return self.runs + self.feedback_runs

    @property
    def success_rate(self) -> float | None:
        runs = self.weighted_runs
        return None if runs == 0 else (self.successes + self.feedback_successes) / runs

    @property
    def real_success_rate(self) -> float | None:
        """The success rate of the real runs alone (feedback left out)."""
        return None if self.runs == 0 else self.successes / self.runs


class ActionStats(msgspec.Struct, kw_only=True):
    template_id: str
    action_key: str
    runs: int
    successes: int
    success_rate: float | None
    mean_success_score: float | None
    mean_efficiency: float | None
    feedback_count: int
    feedback_positive: int
    feedback_negative: int
    demoted: bool
    policy_reason: str | None
    policy_changed_at: datetime | None


class GroupStats(msgspec.Struct, kw_only=True):
    """Scores of the executions of one template (or of one template on one pattern)."""

    template_id: str | None
    pattern_id: str | None = None
    executions: int
    mean_success_score: float | None
    mean_efficiency: float | None
    verifications_passed: int
    verifications_failed: int
    feedback_count: int


_UPSERT_SCORE: Final = """
INSERT INTO autonomous.execution_scores (execution_id, decision_id, template_id, pattern_id, event_type,
    status, criteria_met, verification, rolled_back, success_score, efficiency_score, duration_seconds,
    estimated_seconds, scored_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (execution_id) DO UPDATE SET status = EXCLUDED.status, criteria_met = EXCLUDED.criteria_met,
    verification = EXCLUDED.verification, rolled_back = EXCLUDED.rolled_back,
    success_score = EXCLUDED.success_score, efficiency_score = EXCLUDED.efficiency_score,
    duration_seconds = EXCLUDED.duration_seconds, estimated_seconds = EXCLUDED.estimated_seconds,
    scored_at = EXCLUDED.scored_at
"""

# Per action outcome settled, so it reads only what it counts: the action's newest runs through
# action_outcomes_recent_idx (migration 020), and the feedback of those executions alone (each once: an
# execution has one outcome per action, UNIQUE (execution_id, action_key)). The time bound is written so
# that it bounds the index scan too: a demoted action has few runs since, and an "$4 IS NULL OR" filter
# would read all its older ones looking for more.
_WINDOW: Final = f"""
WITH recent AS (
    SELECT execution_id, success FROM autonomous.action_outcomes
    WHERE template_id = $1 AND action_key = $2 AND NOT (status = ANY($3::text[]))
      AND finished_at > coalesce($4::timestamptz, '-infinity')
    ORDER BY finished_at DESC, id DESC LIMIT $5)
SELECT count(*) AS runs, count(*) FILTER (WHERE r.success) AS successes,
       coalesce(sum(f.weight), 0) AS feedback_runs, coalesce(sum(f.success_weight), 0) AS feedback_successes
FROM recent AS r
LEFT JOIN LATERAL {capped_feedback_of("r.execution_id")} AS f ON true
"""

_CHANGE: Final = """
WITH changed AS (
    INSERT INTO autonomous.action_policies AS p (template_id, action_key, demoted, reason, changed_at)
    VALUES ($1, $2, $3, $4, $7)
    ON CONFLICT (template_id, action_key) DO UPDATE
    SET demoted = EXCLUDED.demoted, reason = EXCLUDED.reason, changed_at = EXCLUDED.changed_at
    WHERE p.demoted <> EXCLUDED.demoted
    RETURNING template_id)
INSERT INTO autonomous.action_policy_changes (template_id, action_key, change, reason, runs, success_rate, at)
SELECT $1, $2, CASE WHEN $3 THEN 'demoted' ELSE 'promoted' END, $4, $5, $6, $7 FROM changed
RETURNING id
"""

_ACTION_STATS: Final = """
WITH counted AS (
    SELECT o.template_id, o.action_key, count(*) AS runs, count(*) FILTER (WHERE o.success) AS successes,
           avg(s.success_score) AS mean_success_score, avg(s.efficiency_score) AS mean_efficiency,
           coalesce(sum(fb.n), 0) AS feedback_count, coalesce(sum(fb.positive), 0) AS feedback_positive,
           coalesce(sum(fb.negative), 0) AS feedback_negative
    FROM autonomous.action_outcomes AS o
    LEFT JOIN autonomous.execution_scores AS s USING (execution_id)
    LEFT JOIN LATERAL (SELECT count(*) AS n, count(*) FILTER (WHERE effect) AS positive,
                              count(*) FILTER (WHERE NOT effect) AS negative
                       FROM autonomous.feedback AS f WHERE f.execution_id = o.execution_id) AS fb ON true
    WHERE o.template_id IS NOT NULL AND NOT (o.status = ANY($1::text[]))
      AND ($2::text IS NULL OR o.template_id = $2)
    GROUP BY o.template_id, o.action_key)
SELECT c.*, count(*) OVER () AS total, p.demoted, p.reason AS policy_reason, p.changed_at AS policy_changed_at
FROM counted AS c
LEFT JOIN autonomous.action_policies AS p USING (template_id, action_key)
ORDER BY c.template_id, c.action_key
LIMIT $3 OFFSET $4
"""

_GROUP_STATS: Final = """
SELECT s.template_id, {pattern} AS pattern_id, count(*) AS executions,
       avg(s.success_score) AS mean_success_score, avg(s.efficiency_score) AS mean_efficiency,
       count(*) FILTER (WHERE s.verification = 'passed') AS verifications_passed,
       count(*) FILTER (WHERE s.verification = 'failed') AS verifications_failed,
       coalesce(sum((SELECT count(*) FROM autonomous.feedback AS f WHERE f.execution_id = s.execution_id)), 0)
           AS feedback_count
FROM autonomous.execution_scores AS s
WHERE ($1::text IS NULL OR s.template_id = $1) {only_patterns}
GROUP BY s.template_id{group}
ORDER BY s.template_id{group}
LIMIT $2
"""


class LearningRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def save_score(self, score: ExecutionScore) -> None:
        """Store (or replace: a verification's verdict rescores) one execution's score."""
        s = score
        async with connection(self.pool) as conn:
            await conn.execute(
                _UPSERT_SCORE,
                s.execution_id,
                s.decision_id,
                s.template_id,
                s.pattern_id,
                s.event_type,
                s.status,
                s.criteria_met,
                s.verification,
                s.rolled_back,
                s.success_score,
                s.efficiency_score,
                s.duration_seconds,
                s.estimated_seconds,
                s.scored_at,
            )

    async def score(self, execution_id: str) -> ExecutionScore | None:
        async with connection(self.pool) as conn:
            row = await conn.fetchrow(
                "SELECT * FROM autonomous.execution_scores WHERE execution_id = $1", execution_id
            )
        return None if row is None else msgspec.convert(dict(row.items()), ExecutionScore)

    async def outcomes_of(self, execution_id: str) -> list[ActionOutcome]:
        """The outcomes recorded for one execution (to record them again, changed)."""
        async with connection(self.pool) as conn:
            rows = await conn.fetch(
                "SELECT execution_id, decision_id, event_id, template_id, action_key, script, event_type, "
                "pattern_id, target, status, success, duration_seconds, rolled_back, finished_at "
                "FROM autonomous.action_outcomes WHERE execution_id = $1 ORDER BY id",
                execution_id,
            )
        return [msgspec.convert(dict(r.items()), ActionOutcome) for r in rows]

    async def policies(self, template_id: str, action_keys: Sequence[str]) -> dict[str, ActionPolicy]:
        """The stored policies of these actions (an action never evaluated has none)."""
        async with connection(self.pool) as conn:
            rows = await conn.fetch(
                "SELECT template_id, action_key, demoted, reason, changed_at FROM autonomous.action_policies "
                "WHERE template_id = $1 AND action_key = ANY($2::text[])",
                template_id,
                list(action_keys),
            )
        return {r["action_key"]: msgspec.convert(dict(r.items()), ActionPolicy) for r in rows}

    async def window(self, template_id: str, action_key: str, after: datetime | None, runs: int) -> Window:
        """The action's last `runs` runs that finished after `after` (None: any), with the feedback on
        their executions."""
        async with connection(self.pool) as conn:
            row = await conn.fetchrow(_WINDOW, template_id, action_key, list(NOT_RUNS), after, runs)
        assert row is not None  # an aggregate always answers one row
        return Window(
            runs=row["runs"],
            successes=row["successes"],
            feedback_runs=float(row["feedback_runs"]),
            feedback_successes=float(row["feedback_successes"]),
        )

    async def change_policy(
        self,
        template_id: str,
        action_key: str,
        *,
        demoted: bool,
        reason: str,
        runs: float,
        success_rate: float | None,
        at: datetime,
    ) -> bool:
        """Demote (or promote) the action unless it already is; True when this call changed it."""
        async with connection(self.pool) as conn:
            changed = await conn.fetchval(
                _CHANGE, template_id, action_key, demoted, reason, runs, success_rate, at
            )
        return changed is not None

    async def action_stats(
        self, template_id: str | None, limit: int, offset: int
    ) -> tuple[list[ActionStats], int]:
        """Per template action: runs, success rate, mean scores, feedback counts and its policy; and how
        many actions match."""
        async with connection(self.pool) as conn:
            rows = await conn.fetch(_ACTION_STATS, list(NOT_RUNS), template_id, limit, offset)
        total = rows[0]["total"] if rows else 0
        if not rows and offset:
            async with connection(self.pool) as conn:
                again = await conn.fetch(_ACTION_STATS, list(NOT_RUNS), template_id, 1, 0)
            total = again[0]["total"] if again else 0
        stats = [
            ActionStats(
                template_id=r["template_id"],
                action_key=r["action_key"],
                runs=r["runs"],
                successes=r["successes"],
                success_rate=round(r["successes"] / r["runs"], 4) if r["runs"] else None,
                mean_success_score=_rounded(r["mean_success_score"]),
                mean_efficiency=_rounded(r["mean_efficiency"]),
                feedback_count=int(r["feedback_count"]),
                feedback_positive=int(r["feedback_positive"]),
                feedback_negative=int(r["feedback_negative"]),
                demoted=bool(r["demoted"]),
                policy_reason=r["policy_reason"],
                policy_changed_at=r["policy_changed_at"],
            )
            for r in rows
        ]
        return stats, total

    async def group_stats(self, template_id: str | None, *, by_pattern: bool, limit: int) -> list[GroupStats]:
        """Execution scores per template, or per template and pattern (`by_pattern`)."""
        sql = _GROUP_STATS.format(
            pattern="s.pattern_id" if by_pattern else "NULL::text",
            only_patterns="AND s.pattern_id IS NOT NULL" if by_pattern else "",
            group=", s.pattern_id" if by_pattern else "",
        )
        async with connection(self.pool) as conn:
            rows = await conn.fetch(sql, template_id, limit)
        return [
            GroupStats(
                template_id=r["template_id"],
                pattern_id=r["pattern_id"],
                executions=r["executions"],
                mean_success_score=_rounded(r["mean_success_score"]),
                mean_efficiency=_rounded(r["mean_efficiency"]),
                verifications_passed=r["verifications_passed"],
                verifications_failed=r["verifications_failed"],
                feedback_count=int(r["feedback_count"]),
            )
            for r in rows
        ]

    async def changes(self, template_id: str | None) -> list[PolicyChange]:
        """Every demotion and promotion (newest first, at most `MAX_CHANGES`)."""
        async with connection(self.pool) as conn:
            rows = await conn.fetch(
                "SELECT template_id, action_key, change, reason, runs, success_rate, at "
                "FROM autonomous.action_policy_changes WHERE $1::text IS NULL OR template_id = $1 "
                "ORDER BY at DESC, id DESC LIMIT $2",
                template_id,
                MAX_CHANGES,
            )
        return [msgspec.convert(dict(r.items()), PolicyChange) for r in rows]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
