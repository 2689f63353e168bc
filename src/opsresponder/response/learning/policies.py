"""Demotion and promotion of template actions (docs/response.md "Feedback and learning").

An action's success rate is taken over its last ``window_runs`` runs that finished after its policy last
changed, feedback on those runs' executions counting as weighted pseudo-outcomes. With at least
``min_runs`` runs there: below ``demote_below`` it is demoted to "approval required"; a demoted one at or
above ``promote_at_or_above`` is promoted back. Counting only the runs since the last change means a
promotion needs good runs after the demotion, and a promoted action is not demoted again by the old
failures that demoted it. ``dangerous`` feedback demotes at once. Feedback never promotes on its own: a
promotion also needs the real runs' own success rate (feedback left out) at or above the threshold, and
the feedback on one execution weighs at most one run (store/feedback.py).

Learning never edits a template or a script and never touches the risk score: a demotion only adds an
approval requirement, which the Analyzer reads through `PolicyBook.demotions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog

from opsresponder.config import LearningConfig
from opsresponder.store.learning import LearningRepository, Window

log = structlog.get_logger(__name__)


class PolicyBook:
    """Evaluates and answers the action policies."""

    def __init__(self, repository: LearningRepository, config: LearningConfig) -> None:
        self._repository = repository
        self._config = config

    async def demotions(self, template_id: str, action_keys: Sequence[str]) -> dict[str, str]:
        """The demoted actions among `action_keys`, each with why (the Analyzer's `ActionPolicies`)."""
        policies = await self._repository.policies(template_id, action_keys)
        return {key: p.reason for key, p in policies.items() if p.demoted}

    async def evaluate(self, template_id: str, action_keys: Sequence[str], now: datetime) -> list[str]:
        """Demote or promote each action as its window says; the changes made, as sentences."""
        config = self._config
        policies = await self._repository.policies(template_id, action_keys)
        made: list[str] = []
        for key in dict.fromkeys(action_keys):
            policy = policies.get(key)
            demoted = policy is not None and policy.demoted
            window = await self._repository.window(
                template_id, key, policy.changed_at if policy is not None else None, config.window_runs
            )
            rate = window.success_rate
            if window.runs < config.min_runs or rate is None:
                continue
            runs = window.weighted_runs
            if not demoted and rate < config.demote_below:
                reason = (
                    f"success rate {rate:.2f} over its last {_runs(runs)} runs is below "
                    f"{config.demote_below:g}"
                )
            elif (
                demoted
                and rate >= config.promote_at_or_above
                and _real_rate(window) >= config.promote_at_or_above
            ):
                # Feedback may demote but never promotes on its own: the real runs since the demotion must
                # reach the threshold too (30 "helpful" votes on one failed run do not undo a demotion).
                reason = (
                    f"success rate {rate:.2f} over {_runs(runs)} runs since its demotion reached "
                    f"{config.promote_at_or_above:g} ({window.successes} of its {window.runs} real runs "
                    "succeeded)"
                )
            else:
                continue
            if await self._repository.change_policy(
                template_id, key, demoted=not demoted, reason=reason, runs=runs, success_rate=rate, at=now
            ):
                change = "demoted to approval required" if not demoted else "promoted back"
                log.info(
                    "A template action's policy changed.", template=template_id, action=key, change=change
                )
                made.append(f"{template_id}/{key} {change}: {reason}")
        return made

    async def demote(
        self, template_id: str, action_keys: Sequence[str], reason: str, now: datetime
    ) -> list[str]:
        """Demote at once (``dangerous`` feedback), whatever the success rate."""
        made: list[str] = []
        for key in dict.fromkeys(action_keys):
            if await self._repository.change_policy(
                template_id, key, demoted=True, reason=reason, runs=0, success_rate=None, at=now
            ):
                made.append(f"{template_id}/{key} demoted to approval required: {reason}")
        return made


def _real_rate(window: Window) -> float:
    rate = window.real_success_rate
    return 0.0 if rate is None else rate


def _runs(runs: float) -> str:
    return f"{runs:g}"
