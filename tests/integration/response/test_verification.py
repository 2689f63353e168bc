"""Closed-loop verification with real scripts and real stored events: a resolve passes it, the problem
seen again after the remediation fails it (the rollback runs, the outcome becomes a failure), a quiet
period passes it, and two checkers decide it once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import asyncpg
import msgspec
import pytest

from opsresponder.config import ExecutorConfig, LearningConfig, ScriptRunnerConfig, VerificationConfig
from opsresponder.core.event import Event, EventState
from opsresponder.response.executor.options import ExecutionOptions
from opsresponder.response.executor.service import ExecutionService
from opsresponder.response.executor.view import ExecutionView
from opsresponder.response.learning import Learning, PolicyBook
from opsresponder.response.runners.script import ScriptRunner
from opsresponder.response.verification import Verifier, criteria_failure
from opsresponder.state.memory import MemoryStateBackend
from opsresponder.store.clearance import ClearanceRepository
from opsresponder.store.errors import DatabaseUnavailableError
from opsresponder.store.events import EventRepository
from opsresponder.store.executions import ExecutionRepository
from opsresponder.store.learning import LearningRepository
from opsresponder.store.outcomes import OutcomeRepository
from opsresponder.store.response_templates import ResponseTemplateRepository
from opsresponder.store.verifications import VerificationRepository
from tests.factories import make_event, prepared
from tests.integration.response.executor.harness import Clock, Notes, action, catalog, decision, journal_lines

VERIFY = VerificationConfig(quiet_seconds=300, check_interval_seconds=5)


class Loop:
    """An executor whose ends go to learning, and a verification checker, on the test database."""

    def __init__(self, pool: asyncpg.Pool, work: Path, clock: Clock | None = None) -> None:
        self.pool, self.work = pool, work
        self.clock = clock or Clock()
        self.events = EventRepository(pool, dedup_window=timedelta(minutes=5))
        self.learned = LearningRepository(pool)
        self.outcomes = OutcomeRepository(pool)
        self.verifications = VerificationRepository(pool)
        self.learning = Learning(
            outcomes=self.outcomes,
            repository=self.learned,
            verifications=self.verifications,
            policies=PolicyBook(self.learned, LearningConfig()),
            verification=VERIFY,
            clock=self.clock,
        )
        self.service = ExecutionService(
            repository=ExecutionRepository(pool),
            runner=ScriptRunner(ScriptRunnerConfig(working_directory=str(work), kill_grace_seconds=0.5)),
            notifier=Notes(),
            catalog=catalog(),
            templates=ResponseTemplateRepository(pool),
            outcomes=self.learning,
            state=MemoryStateBackend(),
            config=ExecutorConfig(lease_seconds=1.5, poll_interval_ms=20),
            owner="worker-1",
            clock=self.clock,
            ended=self.learning,
        )

    def verifier(self) -> Verifier:
        return Verifier(
            repository=self.verifications,
            sightings=ClearanceRepository(self.pool),
            rollbacks=self.service,
            verdicts=self.learning,
            config=VERIFY,
            clock=self.clock,
        )

    async def problem(self, **fields: object) -> Event:
        [event] = prepared(make_event(host="web-01", title="CPU high", **fields))
        await self.events.store_batch([event])
        return event

    async def remediate(self, event: Event) -> ExecutionView:
        """Run a diagnostic then the `fix` remediation (undone by `undo`) about `event`."""
        plan = msgspec.structs.replace(
            decision(
                action("look", journal=str(self.work / "journal")),
                action("fix", script="fix", action_type="remediation", required=True,
                       journal=str(self.work / "journal")),
            ),
            fingerprint=event.fingerprint,
        )  # fmt: skip
        submitted = await self.service.submit(
            plan, None, ExecutionOptions(), requested_by="alice", approved=True
        )
        return await self.finished(submitted.execution_id)

    async def finished(self, execution_id: str) -> ExecutionView:
        await self.service.run_until_idle()
        view = await self.service.get(execution_id)
        assert view is not None
        return view


@pytest.fixture
def loop(db_pool: asyncpg.Pool, tmp_path: Path) -> Loop:
    return Loop(db_pool, tmp_path)


async def test_a_resolve_after_the_remediation_passes_the_verification(loop: Loop) -> None:
    event = await loop.problem()
    view = await loop.remediate(event)
    assert view.status == "completed", view.logs
    assert view.verification is not None and view.verification.status == "pending"
    assert view.verification.next_check_at is not None
    assert any("Verification pending: fix changed the target" in entry.message for entry in view.logs)
    score = await loop.learned.score(view.execution_id)
    assert score is not None and score.verification == "pending" and score.success_score == 1.0

    assert await loop.verifier().run(loop.clock()) == 0  # too early, no news: still pending
    await loop.problem(state=EventState.RESOLVED)
    assert await loop.verifier().run(loop.clock() + timedelta(seconds=6)) == 1

    view = await loop.finished(view.execution_id)
    assert view.status == "completed"
    assert view.verification is not None and view.verification.status == "passed"
    assert "a resolve arrived" in view.verification.reason
    assert any(entry.message.startswith("Verification passed: a resolve arrived") for entry in view.logs)
    score = await loop.learned.score(view.execution_id)
    assert score is not None and score.verification == "passed" and score.success_score == 1.0
    fix = [o for o in await loop.learned.outcomes_of(view.execution_id) if o.action_key == "fix"]
    assert fix[0].success is True


async def test_the_problem_seen_again_fails_it_rolls_back_and_counts_as_a_failure(loop: Loop) -> None:
    event = await loop.problem()
    view = await loop.remediate(event)
    assert view.status == "completed"
    await loop.problem()  # the same condition, sighted again after the remediation

    assert await loop.verifier().run(loop.clock() + timedelta(seconds=6)) == 1
    view = await loop.finished(view.execution_id)  # the rollback queued by the verdict runs

    assert view.verification is not None and view.verification.status == "failed"
    assert "seen again" in view.verification.reason
    assert view.status == "rolled_back" and view.rollback_status == "completed", view.logs
    messages = [entry.message for entry in view.logs]
    assert any(m.startswith("Verification failed: the problem was seen again") for m in messages)
    assert "Rollback requested by verification." in messages
    assert journal_lines(loop.work / "journal")[-2:] == [
        f"undo fix start {view.execution_id}",
        f"undo fix end {view.execution_id}",
    ]
    outcomes = {o.action_key: o for o in await loop.learned.outcomes_of(view.execution_id)}
    assert outcomes["fix"].success is False and outcomes["fix"].rolled_back is True
    assert outcomes["look"].success is True  # the diagnostic worked; only the remediation failed
    score = await loop.learned.score(view.execution_id)
    assert score is not None and score.verification == "failed" and score.rolled_back
    assert score.success_score == 0.3333  # completed; but verification failed, and it was rolled back


async def test_no_new_sighting_within_the_quiet_period_passes(loop: Loop) -> None:
    event = await loop.problem()
    view = await loop.remediate(event)
    verifier = loop.verifier()
    assert await verifier.run(loop.clock() + timedelta(seconds=6)) == 0
    pending = await loop.verifications.get(int(view.execution_id.removeprefix("exec_")))
    assert pending is not None and pending.status == "pending" and "waiting until" in pending.reason
    assert await verifier.run(loop.clock() + timedelta(seconds=VERIFY.quiet_seconds + 1)) == 1
    view = await loop.finished(view.execution_id)
    assert view.verification is not None and view.verification.status == "passed"
    assert "no new occurrence within 300 s" in view.verification.reason


async def test_two_checkers_decide_and_act_exactly_once(loop: Loop) -> None:
    event = await loop.problem()
    views = [await loop.remediate(event) for _ in range(3)]
    await loop.problem()
    now = loop.clock() + timedelta(seconds=6)
    decided = await asyncio.gather(loop.verifier().run(now), loop.verifier().run(now))
    assert sum(decided) == 3
    for view in views:
        done = await loop.finished(view.execution_id)
        messages = [entry.message for entry in done.logs]
        assert sum(m.startswith("Verification failed") for m in messages) == 1
        assert messages.count("Rollback requested by verification.") == 1
    # Deciding again is refused by the store: the verdict stands, nobody acts twice.
    row_id = int(views[0].execution_id.removeprefix("exec_"))
    assert not await loop.verifications.decide(row_id, "passed", "late", now, "late")


async def test_nothing_to_roll_back_is_logged_and_a_diagnostic_plan_is_not_verified(loop: Loop) -> None:
    event = await loop.problem()
    plan = msgspec.structs.replace(
        decision(action("tidy", script="cleanup", action_type="remediation", required=True),
                 action("look")),
        fingerprint=event.fingerprint,
    )  # fmt: skip
    submitted = await loop.service.submit(plan, None, ExecutionOptions(), requested_by="a", approved=True)
    await loop.finished(submitted.execution_id)
    await loop.problem()
    assert await loop.verifier().run(loop.clock() + timedelta(seconds=6)) == 1
    view = await loop.finished(submitted.execution_id)
    assert view.status == "completed" and view.verification is not None
    assert view.verification.status == "failed"
    assert any(entry.message.startswith("Verification could not roll back") for entry in view.logs)

    diagnostic = await loop.service.submit(
        decision(action("only-look")), None, ExecutionOptions(), requested_by="a", approved=True
    )
    view = await loop.finished(diagnostic.execution_id)
    assert view.status == "completed" and view.verification is None
    assert await loop.learned.score(view.execution_id) is not None


def test_criteria_failure_names_what_did_not_hold() -> None:
    assert criteria_failure(None) is None
    assert criteria_failure({"succeeded": True, "success_criteria": []}) is None
    why = criteria_failure(
        {
            "succeeded": False,
            "success_criteria": [{"expression": "a.succeeded", "value": False}],
            "failure_criteria": [{"expression": "any_action_failed == true", "value": True}],
        }
    )
    assert why == "success criteria not met: a.succeeded, failure criteria met: any_action_failed == true"


async def test_a_failing_end_sink_is_logged_and_changes_nothing(loop: Loop) -> None:
    class Broken:
        async def execution_ended(self, ended: object) -> None:
            raise RuntimeError("learning exploded")

    loop.service._worker._deps.ended = Broken()
    submitted = await loop.service.submit(
        decision(action("look")), None, ExecutionOptions(), requested_by="a", approved=True
    )
    view = await loop.finished(submitted.execution_id)
    assert view.status == "completed"
    assert any(
        entry.message == "Learning from this execution failed: RuntimeError: learning exploded."
        for entry in view.logs
    )


class FailingOnce:
    """Forwards to the real object; the first call of `method` fails as a lost database would."""

    def __init__(self, real: object, method: str) -> None:
        self.real, self.method, self.failed = real, method, False

    def __getattr__(self, name: str) -> object:
        forward = getattr(self.real, name)
        if name != self.method or self.failed:
            return forward

        async def fail(*args: object, **kwargs: object) -> None:
            self.failed = True
            raise DatabaseUnavailableError("connection lost")

        return fail


@pytest.mark.parametrize("failing", ["rollbacks", "verdicts"])
async def test_a_failed_verdict_is_acted_on_after_an_error(loop: Loop, failing: str) -> None:
    """A database error while asking the rollback (or while learning records the failure) leaves the
    verification ``acting``: the next check asks the rollback (once) and records the failure; the log says
    the rollback is queued only once it is."""
    event = await loop.problem()
    view = await loop.remediate(event)
    await loop.problem()
    rollbacks = FailingOnce(loop.service, "rollback") if failing == "rollbacks" else loop.service
    verdicts = FailingOnce(loop.learning, "verified") if failing == "verdicts" else loop.learning
    verifier = Verifier(repository=loop.verifications, sightings=ClearanceRepository(loop.pool),
                        rollbacks=rollbacks, verdicts=verdicts, config=VERIFY, clock=loop.clock)  # type: ignore[arg-type]  # fmt: skip
    row_id = int(view.execution_id.removeprefix("exec_"))

    now = loop.clock() + timedelta(seconds=6)
    assert await verifier.run(now) == 0  # the error: logged, not lost
    stored = await loop.verifications.get(row_id)
    assert stored is not None and stored.status == "acting"
    assert stored.rollback == (None if failing == "rollbacks" else "requested")
    messages = [entry.message for entry in (await loop.finished(view.execution_id)).logs]
    assert any(m.startswith("Verification failed:") for m in messages)
    assert ("Verification requested the rollback; it is queued." in messages) == (failing == "verdicts")
    shown = (await loop.service.get(view.execution_id)).verification  # type: ignore[union-attr]
    assert shown is not None and shown.status == "failed"

    # Taken again once its lease is over: acted on, once.
    later = now + timedelta(seconds=VERIFY.check_interval_seconds * 4 + 1)
    assert await verifier.run(later) == 1
    assert await verifier.run(later + timedelta(minutes=5)) == 0
    view = await loop.finished(view.execution_id)
    stored = await loop.verifications.get(row_id)
    assert stored is not None and stored.status == "failed" and stored.rollback == "requested"
    assert view.status == "rolled_back", view.logs
    messages = [entry.message for entry in view.logs]
    assert messages.count("Verification requested the rollback; it is queued.") == 1
    assert messages.count("Rollback requested by verification.") == 1
    outcomes = {o.action_key: o for o in await loop.learned.outcomes_of(view.execution_id)}
    assert outcomes["fix"].success is False and outcomes["fix"].rolled_back is True
    score = await loop.learned.score(view.execution_id)
    assert score is not None and score.verification == "failed" and score.rolled_back
