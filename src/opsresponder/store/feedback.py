"""Feedback on executions (``autonomous.feedback``): what people said, and what learning made of it.

Analysis reads it through `OutcomeRepository.stats_for_template` (weighted pseudo-outcomes), the action
policies through `LearningRepository.window`; both read it capped (`CAPPED_FEEDBACK`,
`capped_feedback_of`). A person gives one feedback per execution (migration 016: a repeat replaces the
earlier one), and however many people give feedback on one execution, together it weighs at most
`MAX_WEIGHT_PER_EXECUTION` runs, so feedback cannot outvote what really happened.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import asyncpg
import msgspec

from opsresponder.store.pool import connection

MAX_WEIGHT_PER_EXECUTION: Final = 1.0
"""All the feedback on one execution counts as at most this many runs (one: as much as the run itself)."""

_CAPPED: Final = f"""least(sum(weight), {MAX_WEIGHT_PER_EXECUTION}) AS weight,
        coalesce(sum(weight) FILTER (WHERE effect), 0) * least(sum(weight), {MAX_WEIGHT_PER_EXECUTION})
            / sum(weight) AS success_weight"""
# Neutral feedback (effect null) moves nothing.
_COUNTED: Final = "effect IS NOT NULL AND weight > 0"

CAPPED_FEEDBACK: Final = f"""
(SELECT execution_id, {_CAPPED}
 FROM autonomous.feedback WHERE {_COUNTED} GROUP BY execution_id)
"""
"""A subquery: per execution, its feedback's weight (capped) and the part of it that counts as success
(in the same proportion as before the cap). Neutral feedback (effect null) is left out."""


def capped_feedback_of(execution_id: str) -> str:
    """`CAPPED_FEEDBACK`'s row for the one execution `execution_id` (an SQL expression: a LATERAL join's
    column), read through its index; no row when it has none (``least`` would make 1 of no weight). For a
    few executions, where aggregating all the feedback first would read the whole table."""
    return (
        f"(SELECT {_CAPPED} FROM autonomous.feedback WHERE execution_id = {execution_id} AND {_COUNTED}"
        " HAVING count(*) > 0)"
    )


_UPSERT: Final = """
INSERT INTO autonomous.feedback AS f (execution_id, decision_id, feedback_type, rating, feedback, comments,
    suggestions, would_approve_again, given_by, effect, weight, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (execution_id, given_by) DO UPDATE SET decision_id = EXCLUDED.decision_id,
    feedback_type = EXCLUDED.feedback_type, rating = EXCLUDED.rating, feedback = EXCLUDED.feedback,
    comments = EXCLUDED.comments, suggestions = EXCLUDED.suggestions,
    would_approve_again = EXCLUDED.would_approve_again, effect = EXCLUDED.effect, weight = EXCLUDED.weight,
    created_at = EXCLUDED.created_at
RETURNING id
"""


class NewFeedback(msgspec.Struct, kw_only=True, frozen=True):
    """One feedback as given, with its learning effect.

    Attributes:
        given_by: the token name that gave it.
        effect: True a success, False a failure, None neutral (no learning effect).
        weight: how many runs it counts as (0 when neutral).
    """

    execution_id: str
    decision_id: int
    feedback_type: str
    rating: int
    feedback: str | None
    comments: str
    suggestions: str
    would_approve_again: bool | None
    given_by: str
    effect: bool | None
    weight: float
    created_at: datetime


class FeedbackRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def add(self, feedback: NewFeedback) -> int:
        """Store one feedback, replacing the same person's earlier feedback on the execution; its id (a
        replacement keeps the earlier id)."""
        f = feedback
        async with connection(self.pool) as conn:
            feedback_id: int = await conn.fetchval(
                _UPSERT,
                f.execution_id,
                f.decision_id,
                f.feedback_type,
                f.rating,
                f.feedback,
                f.comments,
                f.suggestions,
                f.would_approve_again,
                f.given_by,
                f.effect,
                f.weight,
                f.created_at,
            )
        return feedback_id
