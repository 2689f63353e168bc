"""Learning through the Analyzer on a real PostgreSQL: bad outcomes demote an action (the next analysis
requires approval and says why), good ones after it promote it back; the history keeps both; a feedback
pseudo-outcome moves success probability and confidence; a verification's failure counts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from opsresponder.config import LearningConfig, VerificationConfig
from opsresponder.core.event import Event
from opsresponder.response.analysis import AnalysisContext, Analyzer, AnalyzeRequest
from opsresponder.response.learning import Learning, PolicyBook
from opsresponder.response.learning.feedback import effect_of
from opsresponder.response.learning.scores import efficiency_score, success_score
from opsresponder.response.risk import RiskMatrix
from opsresponder.store.correlations import CorrelationRepository
from opsresponder.store.feedback import FeedbackRepository, NewFeedback
from opsresponder.store.firings import FiringRepository
from opsresponder.store.learning import LearningRepository
from opsresponder.store.verifications import VerificationRepository
from tests.integration.response.test_analysis import (
    CPU_TRIGGER,
    DIAGNOSTIC,
    NOW,
    THRESHOLD,
    World,
    outcome,
    template,
)

LOW = AnalysisContext(system_criticality="low", business_hours=False, maintenance_window=True)


class Learner:
    def __init__(self, world: World) -> None:
        self.world = world
        self.repository = LearningRepository(world.pool)
        self.policies = PolicyBook(self.repository, LearningConfig())
        self.learning = Learning(
            outcomes=world.outcomes,
            repository=self.repository,
            verifications=VerificationRepository(world.pool),
            policies=self.policies,
            verification=VerificationConfig(),
            clock=lambda: world.now,
        )
        self.analyzer = Analyzer(
            events=world.events,
            templates=world.templates,
            firings=FiringRepository(world.pool),
            correlations=CorrelationRepository(world.pool),
            decisions=world.decisions,
            outcomes=world.outcomes,
            catalog=world.analyzer._catalog,
            risk=RiskMatrix(world.analyzer._risk.config),
            config=world.analyzer._config,
            clock=lambda: world.now,
            policies=self.policies,
        )


@pytest.fixture
async def learner(db_pool: asyncpg.Pool) -> Learner:
    world = World(db_pool)
    await world.templates.create(
        template("cpu", [DIAGNOSTIC], triggers=[CPU_TRIGGER], variables=[THRESHOLD]), created_by="t"
    )
    return Learner(world)


async def analysis(learner: Learner, event: Event) -> Any:
    assert event.id is not None
    return await learner.analyzer.analyze(AnalyzeRequest(event_id=event.id, context=LOW), requested_by="ops")


async def test_bad_outcomes_demote_and_good_ones_after_it_promote(learner: Learner) -> None:
    world = learner.world
    event = await world.event(event_type="threshold_breach")
    first = await analysis(learner, event)
    assert first.approval["required"] is False

    # Two failures in three runs: 0.33 < 0.5 (min_runs 3), recorded the way the executor records them.
    for i, ok in enumerate([False, True, False]):
        await learner.learning.record(
            [
                outcome(
                    event, "diag", i, success=ok, finished_at=NOW - timedelta(hours=1) + timedelta(minutes=i)
                )
            ]
        )
    demoted = await analysis(learner, event)
    [action] = demoted.recommended_actions
    assert action.approval_required is True
    assert demoted.approval["required"] is True
    assert (
        "learning demoted it to approval required (success rate 0.33 over its last 3 runs is below 0.5)"
        in (demoted.approval["reason"])
    )
    assert "approval required" in demoted.analysis["reasoning"]
    assert action.risk_score == first.recommended_actions[0].risk_score  # the risk score is untouched

    # Good runs after the demotion: three in a row reach 0.8 and promote it back (the old failures no
    # longer count: the window starts at the demotion).
    world.now = NOW + timedelta(minutes=5)
    for i in range(3):
        await learner.learning.record(
            [outcome(event, "diag", 10 + i, finished_at=NOW + timedelta(minutes=1 + i))]
        )
    promoted = await analysis(learner, event)
    assert promoted.recommended_actions[0].approval_required is False
    assert promoted.approval["required"] is False

    changes = await learner.repository.changes("cpu")
    assert [(c.change, c.action_key) for c in changes] == [("promoted", "diag"), ("demoted", "diag")]
    assert changes[0].reason.startswith("success rate 1.00 over 3 runs since its demotion reached 0.8")
    assert changes[1].at == NOW and changes[1].runs == 3
    stats, total = await learner.repository.action_stats("cpu", 10, 0)
    assert total == 1 and stats[0].runs == 6 and stats[0].successes == 4 and stats[0].demoted is False


async def test_feedback_pseudo_outcomes_move_the_next_analysis(learner: Learner) -> None:
    world = learner.world
    event = await world.event(event_type="threshold_breach")
    await learner.learning.record([outcome(event, "diag", i) for i in range(2)])
    before = await analysis(learner, event)
    feedback = FeedbackRepository(world.pool)
    for execution in ("x0", "x1"):
        await feedback.add(
            NewFeedback(execution_id=execution, decision_id=1, feedback_type="effectiveness", rating=1,
                        feedback="incorrect", comments="", suggestions="", would_approve_again=False,
                        given_by="bob", effect=False, weight=0.5, created_at=NOW)
        )  # fmt: skip
    after = await analysis(learner, event)
    # Two successes plus one failed pseudo-run (2 x 0.5): (2 + 3.2) / (3 + 4) against (2 + 3.2) / (2 + 4).
    assert before.recommended_actions[0].success_probability == round(5.2 / 6, 4)
    assert after.recommended_actions[0].success_probability == round(5.2 / 7, 4)
    assert after.analysis["confidence_score"] < before.analysis["confidence_score"]
    assert after.inputs["history"]["actions"]["diag"]["feedback_runs"] == 1.0


def test_feedback_effects_and_scores() -> None:
    assert effect_of(5, "helpful") == (True, 1.0)
    assert effect_of(4, None) == (True, 1.0)
    assert effect_of(2, "not_helpful") == (False, 1.0)
    assert effect_of(3, None) == (None, 0.0)
    assert effect_of(5, "incorrect") == (None, 0.0)  # a tie: neutral
    assert effect_of(5, "dangerous") == (False, 2.0)
    assert success_score(completed=True, criteria_met=None, verification=None, rolled_back=False) == 1.0
    assert success_score(completed=True, criteria_met=False, verification="passed", rolled_back=False) == 0.75
    assert success_score(completed=False, criteria_met=None, verification=None, rolled_back=True) == 0.0
    assert efficiency_score(30, 60) == 1.0
    assert efficiency_score(120, 60) == 0.5
    assert efficiency_score(None, 60) is None and efficiency_score(10, 0) is None


def _praise(execution: str, by: str) -> NewFeedback:
    return NewFeedback(execution_id=execution, decision_id=1, feedback_type="effectiveness", rating=5,
                       feedback="helpful", comments="", suggestions="", would_approve_again=True,
                       given_by=by, effect=True, weight=0.5, created_at=NOW)  # fmt: skip


async def test_feedback_cannot_undo_a_demotion(learner: Learner, db_pool: asyncpg.Pool) -> None:
    """Praise piled on failed runs never promotes: one feedback per person and execution (a repeat replaces
    it), the feedback on one execution weighs at most one run, and a promotion needs the real runs' own
    success rate at the threshold."""
    world = learner.world
    event = await world.event(event_type="threshold_breach")
    for i in range(3):
        await learner.learning.record([outcome(event, "diag", i, success=False, finished_at=NOW)])
    assert (await learner.policies.demotions("cpu", ["diag"])).keys() == {"diag"}

    # Three failed runs after the demotion, then 30 "rating 5, helpful" posts by one person on one of them
    # (before the fix: 15 pseudo-successes, (0 + 15) / (3 + 15) = 0.83, promoted).
    later = NOW + timedelta(minutes=5)
    world.now = later
    for i in range(3, 6):
        await learner.learning.record([outcome(event, "diag", i, success=False, finished_at=later)])
    feedback = FeedbackRepository(world.pool)
    ids = {await feedback.add(_praise("x3", "mallory")) for _ in range(30)}
    assert len(ids) == 1  # the repeat replaced the earlier one
    assert await db_pool.fetchval("SELECT count(*) FROM autonomous.feedback") == 1
    # ...and many people: the execution's feedback is capped at one run.
    for n in range(30):
        await feedback.add(_praise("x4", f"person{n}"))
    assert await learner.policies.evaluate("cpu", ["diag"], later) == []
    window = await learner.repository.window("cpu", "diag", NOW, 10)
    assert window.runs == 3 and window.feedback_runs == 1.5  # 0.5 (x3) + 1.0 (x4, capped)

    # Feedback alone never promotes: 3 of 4 real runs succeeded (0.75), praise would lift it to 0.8.
    await db_pool.execute("TRUNCATE autonomous.feedback, autonomous.action_outcomes")
    for i, ok in enumerate([False, True, True, True]):
        await learner.learning.record([outcome(event, "diag", 10 + i, success=ok, finished_at=later)])
    for n in range(2):
        await feedback.add(_praise("x10", f"person{n}"))
    window = await learner.repository.window("cpu", "diag", NOW, 10)
    assert window.success_rate == 0.8 and window.real_success_rate == 0.75
    assert await learner.policies.evaluate("cpu", ["diag"], later) == []
    assert (await learner.policies.demotions("cpu", ["diag"])).keys() == {"diag"}

    # One more good real run: 4 of 5 (0.8) promotes.
    await learner.learning.record([outcome(event, "diag", 20, finished_at=later)])
    assert (await learner.policies.demotions("cpu", ["diag"])) == {}
