"""Closed-loop verification: after a completed execution that changed its target, did it work?

Two checks (docs/response.md "Verification"):
1. the template's success and failure criteria, as the executor evaluated and stored them
   (``criteria.succeeded``); a template without criteria passes this check;
2. the triggering condition has cleared (`response.clearance.check_cleared`): a resolve with the event's
   fingerprint after the remediation, or no new sighting of it within ``quiet_seconds``. An event
   without a fingerprint cannot be watched: the criteria alone decide.

A pending verification is a row (store/verifications.py), created when the execution ends and checked
by the scheduler's ``verification`` job every ``check_interval_seconds``, once across replicas. A verdict is
written once (conditional UPDATE) and only its writer acts on it. A failed verification is written as
``acting``: it asks the execution's rollback (``by="verification"``; when the execution's state allows
none that is logged), records the remediating actions' outcomes again as failures, rescores the
execution, and only then becomes ``failed``. Any error on the way (the database) leaves it ``acting``,
and it is taken again at the next check: the rollback is asked once (the step is recorded), learning's
writes are upserts. Both verdicts show in the execution's log and its ``verification`` field.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final, Protocol

import msgspec
import structlog

from opsresponder.config import VerificationConfig
from opsresponder.core.clock import Clock, utcnow
from opsresponder.response.clearance import SightingSource, check_cleared
from opsresponder.response.executor.errors import ExecutionNotFound, ExecutionStateError
from opsresponder.response.executor.ports import EndedExecution
from opsresponder.store.executions import EXECUTION_PREFIX
from opsresponder.store.verifications import NewVerification, Verification, VerificationRepository

log = structlog.get_logger(__name__)

BATCH: Final = 100
"""Verifications taken per statement; the job takes batches until none is due."""
LEASE_FACTOR: Final = 4
"""A taken verification is hidden from other checkers for this many check intervals (a checker that
died mid-check leaves it due again after that)."""


class Rollbacks(Protocol):
    """`ExecutionService.rollback`."""

    async def rollback(self, execution_id: str, *, by: str) -> Any: ...


class VerdictSink(Protocol):
    """Learning: told of each verdict, once."""

    async def verified(self, execution_id: str, *, passed: bool, rolled_back: bool) -> None: ...


def new_verification(ended: EndedExecution, config: VerificationConfig, now: datetime) -> NewVerification:
    """The verification of a completed execution that remediated (first check one interval from now,
    so a resolve is seen well before the quiet period ends)."""
    event = ended.execution.plan.get("event") or {}
    fingerprint = event.get("fingerprint")
    return NewVerification(
        execution_id=ended.execution.id,
        fingerprint=fingerprint if isinstance(fingerprint, str) and fingerprint else None,
        action_keys=list(ended.remediated),
        criteria=ended.criteria,
        since=ended.completed_at,
        due_at=now + timedelta(seconds=min(config.check_interval_seconds, config.quiet_seconds)),
        quiet_until=ended.completed_at + timedelta(seconds=config.quiet_seconds),
    )


def criteria_failure(criteria: dict[str, Any] | None) -> str | None:
    """Why the stored criteria did not hold; None when they did (or the template has none)."""
    if criteria is None or criteria.get("succeeded", True):
        return None
    unmet = [c["expression"] for c in criteria.get("success_criteria", []) if not c.get("value")]
    met = [c["expression"] for c in criteria.get("failure_criteria", []) if c.get("value")]
    parts = []
    if unmet:
        parts.append("success criteria not met: " + "; ".join(unmet))
    if met:
        parts.append("failure criteria met: " + "; ".join(met))
    return ", ".join(parts) or "the criteria did not hold"


class Verifier:
    """Checks the due verifications (the scheduler's job body is `run`)."""

    def __init__(
        self,
        *,
        repository: VerificationRepository,
        sightings: SightingSource,
        rollbacks: Rollbacks,
        verdicts: VerdictSink,
        config: VerificationConfig,
        clock: Clock = utcnow,
    ) -> None:
        self._repository = repository
        self._sightings = sightings
        self._rollbacks = rollbacks
        self._verdicts = verdicts
        self._config = config
        self._clock = clock

    async def run(self, now: datetime) -> int:
        """Check every verification due at `now`; how many were decided (or finished acting) here. One
        that fails (the database) is left due again after its lease; the others are still checked."""
        decided = 0
        lease = timedelta(seconds=self._config.check_interval_seconds * LEASE_FACTOR)
        while True:
            due = await self._repository.take_due(now, lease, BATCH)
            for verification in due:
                try:
                    decided += await self._check(verification, now)
                except Exception:
                    log.exception(
                        "A verification could not be checked or acted on; it is retried.",
                        execution_id=f"{EXECUTION_PREFIX}{verification.execution_id}",
                        status=verification.status,
                    )
            if len(due) < BATCH:
                return decided

    async def _check(self, v: Verification, now: datetime) -> int:
        if v.status == "acting":
            return await self._act(v, now)
        failed = criteria_failure(v.criteria)
        if failed is not None:
            return await self._decide(v, False, failed, now)
        if v.fingerprint is None:
            reason = "the criteria held (the event has no fingerprint: its clearance cannot be watched)"
            return await self._decide(v, True, reason, now)
        clearance = await check_cleared(
            self._sightings, v.fingerprint, v.since, now, self._config.quiet_seconds
        )
        if clearance.cleared is None:
            next_check = min(now + timedelta(seconds=self._config.check_interval_seconds), v.quiet_until)
            await self._repository.postpone(v.execution_id, max(next_check, now), clearance.reason, now)
            return 0
        return await self._decide(v, clearance.cleared, clearance.reason, now)

    async def _decide(self, v: Verification, passed: bool, reason: str, now: datetime) -> int:
        execution_id = f"{EXECUTION_PREFIX}{v.execution_id}"
        message = (
            f"Verification passed: {reason}."
            if passed
            else f"Verification failed: {reason}; the remediation counts as a failure; rolling it back."
        )
        if not await self._repository.decide(
            v.execution_id, "passed" if passed else "acting", reason, now, message
        ):
            return 0  # another checker decided it first
        if passed:
            await self._verdicts.verified(execution_id, passed=True, rolled_back=False)
            return 1
        return await self._act(msgspec.structs.replace(v, status="acting"), now)

    async def _act(self, v: Verification, now: datetime) -> int:
        """A failed verdict's consequences: the rollback (asked once), then learning, then ``failed``."""
        execution_id = f"{EXECUTION_PREFIX}{v.execution_id}"
        step = v.rollback
        if step is None:
            try:
                await self._rollbacks.rollback(execution_id, by="verification")
            except (ExecutionStateError, ExecutionNotFound) as e:
                log.warning(
                    "A failed verification could not roll back.", execution_id=execution_id, error=str(e)
                )
                step = "not_possible"
                await self._repository.rollback_done(
                    v.execution_id, step, now, "warning", f"Verification could not roll back: {e}."
                )
            else:
                step = "requested"
                await self._repository.rollback_done(
                    v.execution_id, step, now, "info", "Verification requested the rollback; it is queued."
                )
        await self._verdicts.verified(execution_id, passed=False, rolled_back=step == "requested")
        await self._repository.finish(v.execution_id)
        return 1
