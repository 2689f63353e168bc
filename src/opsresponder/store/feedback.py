"""Feedback on executions (``autonomous.feedback``): what people said, and what learning made of it.

Analysis reads it through `OutcomeRepository.stats_for_template` (weighted pseudo-outcomes), the action
policies through `LearningRepository.window`; this module only writes it.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from opsresponder.store.pool import connection


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
        """Store one feedback; its id."""
        f = feedback
        async with connection(self.pool) as conn:
            feedback_id: int = await conn.fetchval(
                "INSERT INTO autonomous.feedback (execution_id, decision_id, feedback_type, rating, "
                "feedback, comments, suggestions, would_approve_again, given_by, effect, weight, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
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
