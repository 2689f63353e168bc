"""`Learning`: where the executor reports (its `OutcomeSink` and `ExecutionEndSink`) and verification's
verdicts arrive. It scores each ended execution, opens its verification when it remediated, re-evaluates
the action policies after every outcome recording, and records a failed verification as failures."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import msgspec
import structlog

from opsresponder.config import VerificationConfig
from opsresponder.core.clock import Clock, utcnow
from opsresponder.response.executor.ports import EndedExecution
from opsresponder.response.learning.policies import PolicyBook
from opsresponder.response.learning.scores import score, success_score
from opsresponder.response.verification import new_verification
from opsresponder.store.decisions import DecisionAction
from opsresponder.store.errors import StoreError
from opsresponder.store.executions import parse_execution_id
from opsresponder.store.learning import LearningRepository
from opsresponder.store.outcomes import ActionOutcome, OutcomeRepository
from opsresponder.store.verifications import VerificationRepository

log = structlog.get_logger(__name__)


class Learning:
    def __init__(
        self,
        *,
        outcomes: OutcomeRepository,
        repository: LearningRepository,
        verifications: VerificationRepository,
        policies: PolicyBook,
        verification: VerificationConfig,
        clock: Clock = utcnow,
    ) -> None:
        self._outcomes = outcomes
        self._repository = repository
        self._verifications = verifications
        self.policies = policies
        self._verification = verification
        self._clock = clock

    async def record(self, outcomes: Sequence[ActionOutcome]) -> None:
        """Store the outcomes, then re-evaluate the policies of the actions they are about (a failure
        there is logged: the outcomes stand, and the next recording evaluates again)."""
        await self._outcomes.record(outcomes)
        by_template: dict[str, list[str]] = defaultdict(list)
        for outcome in outcomes:
            if outcome.template_id is not None:
                by_template[outcome.template_id].append(outcome.action_key)
        for template_id, keys in by_template.items():
            try:
                await self.policies.evaluate(template_id, keys, self._clock())
            except StoreError as e:
                log.warning("The action policies could not be evaluated.", template=template_id, error=str(e))

    async def execution_ended(self, ended: EndedExecution) -> None:
        """Score the execution; open its verification when it completed after changing its target."""
        now = self._clock()
        row = ended.execution
        verification: str | None = None
        if self._verification.enabled and ended.status == "completed" and ended.remediated:
            opened = new_verification(ended, self._verification, now)
            keys = ", ".join(opened.action_keys)
            await self._verifications.create(
                opened, now, f"Verification pending: {keys} changed the target; checking that it worked."
            )
            verification = "pending"
        actions = msgspec.convert(row.plan.get("actions", []), list[DecisionAction])
        await self._repository.save_score(
            score(
                execution_id=row.execution_id,
                decision_id=row.decision_id,
                template_id=row.template_id,
                plan=row.plan,
                actions=actions,
                status=ended.status,
                criteria=ended.criteria,
                verification=verification,
                rolled_back=ended.status == "rolled_back",
                started_at=row.started_at,
                completed_at=ended.completed_at,
                now=now,
            )
        )

    async def verified(self, execution_id: str, *, passed: bool, rolled_back: bool) -> None:
        """A verdict: a failure records the remediating actions' outcomes again as failures (which
        re-evaluates their policies); either way the execution is rescored."""
        if not passed:
            row_id = parse_execution_id(execution_id)
            stored = None if row_id is None else await self._verifications.get(row_id)
            keys = set(stored.action_keys) if stored is not None else set()
            again = [
                msgspec.structs.replace(o, success=False, rolled_back=o.rolled_back or rolled_back)
                for o in await self._repository.outcomes_of(execution_id)
                if o.action_key in keys
            ]
            await self.record(again)
        current = await self._repository.score(execution_id)
        if current is None:
            return
        verdict = "passed" if passed else "failed"
        undone = current.rolled_back or rolled_back
        await self._repository.save_score(
            msgspec.structs.replace(
                current,
                verification=verdict,
                rolled_back=undone,
                success_score=success_score(
                    completed=current.status == "completed",
                    criteria_met=current.criteria_met,
                    verification=verdict,
                    rolled_back=undone,
                ),
                scored_at=self._clock(),
            )
        )
