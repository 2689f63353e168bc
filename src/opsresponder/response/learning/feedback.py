"""Feedback (service-spec.md "Provide Feedback"): stored with who gave it, turned into a weighted
pseudo-outcome of the execution's actions, and answered with what it really changed.

What a feedback counts as (docs/response.md "Feedback and learning"): the rating votes (4-5 for, 1-2
against, 3 neither) and so does the word (``helpful`` for, ``not_helpful`` and ``incorrect`` against);
more for is a success, more against a failure, a tie is neutral (stored, no effect). ``dangerous`` is
always a failure that counts twice and demotes the execution's actions to "approval required" at once.
A feedback counts ``response.learning.feedback_weight`` runs (0.5): two feedbacks weigh one real run.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Final, Literal

import msgspec

from opsresponder.config import AnalysisConfig, LearningConfig
from opsresponder.core.clock import Clock, utcnow
from opsresponder.core.errors import OpsResponderError
from opsresponder.response.analysis.estimates import backing, confidence, success_probability
from opsresponder.response.learning.policies import PolicyBook
from opsresponder.store.decisions import DecisionAction, DecisionRepository, StoredDecision
from opsresponder.store.executions import ExecutionRepository, parse_execution_id
from opsresponder.store.feedback import FeedbackRepository, NewFeedback
from opsresponder.store.outcomes import OutcomeRepository

FeedbackType = Literal["effectiveness", "accuracy", "timeliness", "safety"]
FeedbackWord = Literal["helpful", "not_helpful", "incorrect", "dangerous"]

DANGEROUS_FACTOR: Final = 2.0
"""``dangerous`` counts this many times the feedback weight."""
_WORD_VOTE: Final = {"helpful": 1, "not_helpful": -1, "incorrect": -1}


class FeedbackNotFound(OpsResponderError):
    """The execution or the decision does not exist (404)."""


class FeedbackMismatch(OpsResponderError):
    """The execution is not one of the decision's (422, on ``execution_id``)."""


class GivenFeedback(msgspec.Struct, kw_only=True, frozen=True):
    execution_id: str
    decision_id: int
    feedback_type: FeedbackType
    rating: int
    feedback: FeedbackWord | None = None
    comments: str = ""
    suggestions: str = ""
    would_approve_again: bool | None = None


class LearningImpact(msgspec.Struct, kw_only=True):
    """What the feedback really changed.

    Attributes:
        confidence_adjustment: the change of the decision's confidence score, as a new analysis of the same
            template on the same pattern (or event type) computes it, from before to after the feedback.
        template_updates: the template whose statistics moved (empty for a neutral feedback).
        pattern_updates: the event pattern (message template id) whose statistics moved.
    """

    confidence_adjustment: float
    template_updates: list[str]
    pattern_updates: list[str]


class FeedbackAnswer(msgspec.Struct, kw_only=True):
    feedback_id: int
    status: str
    learning_impact: LearningImpact


def effect_of(rating: int, word: str | None) -> tuple[bool | None, float]:
    """(success, how many feedback weights it counts as); (None, 0) when neutral."""
    if word == "dangerous":
        return False, DANGEROUS_FACTOR
    votes = (1 if rating >= 4 else -1 if rating <= 2 else 0) + _WORD_VOTE.get(word or "", 0)
    if votes == 0:
        return None, 0.0
    return votes > 0, 1.0


class FeedbackService:
    def __init__(
        self,
        *,
        feedback: FeedbackRepository,
        executions: ExecutionRepository,
        decisions: DecisionRepository,
        outcomes: OutcomeRepository,
        policies: PolicyBook,
        analysis: AnalysisConfig,
        config: LearningConfig,
        clock: Clock = utcnow,
    ) -> None:
        self._feedback = feedback
        self._executions = executions
        self._decisions = decisions
        self._outcomes = outcomes
        self._policies = policies
        self._analysis = analysis
        self._config = config
        self._clock = clock

    async def give(self, given: GivenFeedback, *, by: str) -> FeedbackAnswer:
        """Store `given` (from the token `by`), re-evaluate the execution's action policies, and answer
        what changed.

        Raises:
            FeedbackNotFound: no such execution or decision.
            FeedbackMismatch: the execution is not the decision's.
        """
        decision = await self._decisions.get(given.decision_id)
        if decision is None:
            raise FeedbackNotFound(f"no decision has id {given.decision_id}")
        row_id = parse_execution_id(given.execution_id)
        stored = None if row_id is None else await self._executions.get(row_id)
        if stored is None:
            raise FeedbackNotFound(f"no execution has id {given.execution_id!r}")
        if stored.execution.decision_id != decision.decision_id:
            raise FeedbackMismatch(
                f"execution {given.execution_id} belongs to decision {stored.execution.decision_id}, "
                f"not {decision.decision_id}"
            )
        effect, factor = effect_of(given.rating, given.feedback)
        before = await self._confidence(decision)
        now = self._clock()
        feedback_id = await self._feedback.add(
            NewFeedback(
                execution_id=given.execution_id,
                decision_id=given.decision_id,
                feedback_type=given.feedback_type,
                rating=given.rating,
                feedback=given.feedback,
                comments=given.comments,
                suggestions=given.suggestions,
                would_approve_again=given.would_approve_again,
                given_by=by,
                effect=effect,
                weight=factor * self._config.feedback_weight,
                created_at=now,
            )
        )
        after = await self._confidence(decision)
        template_id = decision.template_id
        keys = [a.key for a in decision.recommended_actions]
        if template_id is not None and keys:
            if given.feedback == "dangerous":
                await self._policies.demote(
                    template_id, keys, f"feedback {feedback_id} by {by} called it dangerous", now
                )
            else:
                await self._policies.evaluate(template_id, keys, now)
        moved = effect is not None and template_id is not None and before != after
        return FeedbackAnswer(
            feedback_id=feedback_id,
            status="recorded",
            learning_impact=LearningImpact(
                confidence_adjustment=round(after - before, 4),
                template_updates=[template_id] if moved and template_id is not None else [],
                pattern_updates=[decision.pattern_id] if moved and decision.pattern_id else [],
            ),
        )

    async def _confidence(self, decision: StoredDecision) -> float:
        """The decision's confidence as analysis would compute it now (docs/response.md)."""
        if decision.template_id is None or not decision.recommended_actions:
            return 0.0
        actions = _required(decision.recommended_actions)
        event = decision.inputs.get("event") or {}
        stats = await self._outcomes.stats_for_template(
            decision.template_id,
            [a.key for a in actions],
            decision.pattern_id,
            str(event.get("event_type") or ""),
            self._clock() - timedelta(days=self._analysis.history_days),
        )
        prior, weight = self._analysis.prior_success_probability, self._analysis.prior_weight
        return confidence(
            [success_probability(stats[a.key], prior, weight) for a in actions],
            [backing(stats[a.key], weight) for a in actions],
        )


def _required(actions: Sequence[DecisionAction]) -> list[DecisionAction]:
    required = [a for a in actions if a.required]
    return required or list(actions)
