"""The rule-to-response loop: fired trigger rules become decisions, and decisions become executions.

For each firing claimed from the outbox (``rules.rule_firings``, `FiringRepository.claim`) the event that
completed it is analyzed as the user ``rules`` would (the context from ``response.loop``). Without a
template there is nothing to do. Otherwise the decision's actions are split:

- the **automatic** part: actions needing no approval whose dependencies need none either. The safety
  governor weighs it (`SafetyGovernor.admit`); admitted, it is one ``queued`` execution, run at once;
- the **approval** part: every other action, with the actions it depends on, as one
  ``pending_approval`` execution and its approval request (the approvers are notified).

The governor's answers: paused -> the firing goes back to the outbox and is taken again after the
resume (nothing is lost, nothing runs); refused (a budget, the target set) -> no execution, the reason
is logged and recorded in the decision's ``inputs.governor``; a loop (new or held) -> the automatic part
joins the approval part, and a new loop is escalated (``automation_loop_detected``).

A firing is completed once handled, released for another try when the database failed, and failed
(kept with its error) after ``max_attempts``. Docs: docs/response.md "The rule-to-response loop".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import structlog

from opsresponder.config import RULES_LOOP_IDENTITY, LoopConfig
from opsresponder.core.clock import utcnow
from opsresponder.core.errors import OpsResponderError
from opsresponder.core.event import Event
from opsresponder.response.analysis import Analyzer
from opsresponder.response.analysis.analyzer import EventNotFound
from opsresponder.response.analysis.request import AnalysisContext, AnalyzeRequest, UserPreferences
from opsresponder.response.executor.options import ExecutionOptions
from opsresponder.response.executor.plan import PlanError, changes_target
from opsresponder.response.executor.service import ExecutionService
from opsresponder.response.governor import AutomaticRun, SafetyGovernor, Verdict
from opsresponder.response.notify.base import Notification, Notifier
from opsresponder.rules.templates import ScriptCatalog
from opsresponder.store.decisions import DecisionAction, DecisionRepository, StoredDecision
from opsresponder.store.errors import StoreError
from opsresponder.store.firing_responses import FiringResponse, FiringResponseRepository
from opsresponder.store.firings import FiringRepository, StoredFiring

log = structlog.get_logger(__name__)

MIN_CLAIM_GAP_SECONDS: Final = 0.01
"""The least time between two claims of the firings outbox (a wake-up sooner waits for it)."""

REQUESTER: Final = RULES_LOOP_IDENTITY
"""The identity of the loop's decisions and executions (no token may bear it: config checks)."""


class ResponseLoop:
    def __init__(
        self,
        *,
        firings: FiringRepository,
        responses: FiringResponseRepository,
        analyzer: Analyzer,
        decisions: DecisionRepository,
        executions: ExecutionService,
        governor: SafetyGovernor,
        notifier: Notifier,
        catalog: ScriptCatalog,
        config: LoopConfig,
        owner: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._firings = firings
        self._responses = responses
        self._analyzer = analyzer
        self._decisions = decisions
        self._executions = executions
        self._governor = governor
        self._notifier = notifier
        self._catalog = catalog
        self._config = config
        self._owner = owner
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    def on_commit(self, events: list[Event]) -> None:
        """A commit listener of the pipeline worker: a local commit may have written firings, so look now
        instead of at the next poll (cheap: only an event set)."""
        self._wake.set()

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 10)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None

    async def run_once(self) -> int:
        """Claim one batch and handle it; how many firings were claimed (0 while paused)."""
        if await self._governor.paused() is not None:
            return 0
        now = self._clock()
        claimed = await self._firings.claim(
            self._config.batch_size, self._owner, timedelta(seconds=self._config.lease_seconds), now
        )
        if not claimed:
            return 0
        # Several rules firing on one event: one analysis (it names every rule that fired) and one run.
        handled: set[int] = set()
        lease = timedelta(seconds=self._config.lease_seconds)
        for i, firing in enumerate(claimed):
            # Handling one firing may take a while (notifications); the lease of the batch's rest is
            # renewed before each, so it never runs out under a slow batch. A firing whose lease was lost
            # anyway (claimed by another consumer meanwhile) is left to that consumer.
            rest = [f.id for f in claimed[i:]]
            still_ours = await self._firings.renew(rest, self._owner, lease, self._clock())
            if firing.id not in still_ours:
                log.warning(
                    "A claimed rule firing's lease was lost; another consumer has it.", firing=firing.id
                )
                continue
            await self._settle(firing, handled)
        return len(claimed)

    async def _run(self) -> None:
        poll = self._config.poll_interval_ms / 1000
        loop = asyncio.get_running_loop()
        last_claim = -MIN_CLAIM_GAP_SECONDS
        while not self._stopping:
            # Every committed batch wakes the loop, firings or not: under load, claim at most once per gap
            # rather than once per batch (each claim is a statement on rules.rule_firings).
            gap = last_claim + MIN_CLAIM_GAP_SECONDS - loop.time()
            if gap > 0:
                await asyncio.sleep(gap)
            self._wake.clear()
            last_claim = loop.time()
            try:
                claimed = await self.run_once()
            except StoreError as e:
                log.warning("Claiming rule firings failed; retrying.", error=str(e))
                claimed = 0
            except Exception:
                log.exception("The rule-to-response loop failed; retrying.")
                claimed = 0
            if claimed >= self._config.batch_size:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll)

    async def _settle(self, firing: StoredFiring, handled: set[int]) -> None:
        try:
            done = await self._handle(firing, handled)
        except (EventNotFound, PlanError) as e:
            # Nothing another try could change (the event was deleted; the decision cannot run).
            log.warning("A rule firing cannot be acted on.", firing=firing.id, error=str(e))
            await self._firings.fail([firing.id], self._owner, f"{e.__class__.__name__}: {e}")
            return
        except Exception as e:
            if not isinstance(e, StoreError | OpsResponderError):
                log.exception("Acting on a rule firing failed.", firing=firing.id)
            error = f"{e.__class__.__name__}: {e}"
            if firing.attempts >= self._config.max_attempts:
                log.error(
                    "A rule firing is given up.", firing=firing.id, attempts=firing.attempts, error=error
                )
                await self._firings.fail([firing.id], self._owner, error)
            else:
                log.warning("A rule firing failed; it is retried.", firing=firing.id, error=error)
                await self._firings.release([firing.id], self._owner, error)
            return
        if done:
            await self._firings.complete([firing.id], self._owner)
        else:
            await self._firings.release([firing.id], self._owner, "automatic execution is paused")

    async def _handle(self, firing: StoredFiring, handled: set[int]) -> bool:
        """Act on one firing; False to give it back (paused). Idempotent: what a previous try of this
        firing recorded (`FiringResponseRepository`) is reused, and only the missing executions are made."""
        if not firing.event_ids:
            log.info("A firing without an event: nothing to analyze.", firing=firing.id, rule=firing.rule_id)
            return True
        event_id = firing.event_ids[-1]
        recorded = await self._responses.get(firing.id)
        if recorded is not None:
            decision = await self._decisions.get(recorded.decision_id)
            if decision is not None:
                log.info("A rule firing is handled again: only what is missing is created.",
                         firing=firing.id, decision_id=decision.decision_id)  # fmt: skip
                await self._submit(decision, recorded)
            handled.add(event_id)
            return True
        if event_id in handled:
            return True
        config = self._config
        decision = await self._analyzer.analyze(
            AnalyzeRequest(
                event_id=event_id,
                context=AnalysisContext(
                    business_hours=config.business_hours,
                    maintenance_window=config.maintenance_window,
                    system_criticality=config.system_criticality,
                    user_preferences=UserPreferences(auto_approve_low_risk=config.auto_approve_low_risk),
                ),
            ),
            requested_by=REQUESTER,
            trusted_context=True,  # the operator's configured context (response.loop), taken as given
        )
        if decision.template_id is None or not decision.recommended_actions:
            log.info(
                "A rule fired but no response template applies: nothing to do.",
                firing=firing.id,
                rule=firing.rule_id,
                event_id=event_id,
                decision_id=decision.decision_id,
            )
            handled.add(event_id)
            return True
        automatic, approval = split(decision.recommended_actions)
        governor_reason: str | None = None
        if automatic:
            verdict = await self._governor.admit(self._run_of(decision, automatic))
            if verdict.paused:
                return False
            if not verdict.allowed:
                await self._decisions.add_input(
                    decision.decision_id,
                    "governor",
                    {
                        "allowed": False,
                        "reasons": list(verdict.reasons),
                        "approval_required": verdict.approval_required,
                    },
                )
                if not verdict.approval_required:
                    log.warning(
                        "The safety governor refused an automatic execution; none was created.",
                        decision_id=decision.decision_id,
                        event_id=event_id,
                        reasons=list(verdict.reasons),
                    )
                    automatic = []
                else:
                    if verdict.escalate:
                        await self._escalate(decision, verdict)
                    governor_reason = "Safety governor: " + " ".join(verdict.reasons)
                    approval = _with_dependencies(decision.recommended_actions, automatic + approval)
                    automatic = []
        # The plan is recorded before anything is submitted: a retry carries it out instead of deciding
        # again (the governor would count this firing's own automatic run against it).
        recorded = await self._responses.record(
            FiringResponse(
                firing_id=firing.id,
                decision_id=decision.decision_id,
                automatic_action_ids=[a.action_id for a in automatic],
                approval_action_ids=[a.action_id for a in approval],
                approval_reason=governor_reason,
                created_at=self._clock(),
            )
        )
        if recorded.decision_id != decision.decision_id:  # another consumer recorded this firing first
            first = await self._decisions.get(recorded.decision_id)
            if first is None:
                return True
            decision = first
        await self._submit(decision, recorded)
        handled.add(event_id)
        return True

    async def _submit(self, decision: StoredDecision, plan: FiringResponse) -> None:
        """Submit the parts of `plan` that have no execution yet (each is made once: a retry finds it)."""
        made = await self._responses.parts_of(decision.decision_id, REQUESTER)
        options = ExecutionOptions(rollback_on_failure=self._config.rollback_on_failure)
        if plan.automatic_action_ids and True not in made:
            view = await self._executions.submit(
                decision,
                plan.automatic_action_ids,
                options,
                requested_by=REQUESTER,
                approved=False,
                automatic=True,
            )
            log.info("Automatic execution queued.", decision_id=decision.decision_id,
                     execution_id=view.execution_id, status=view.status)  # fmt: skip
        if plan.approval_action_ids and False not in made:
            view = await self._executions.submit(
                decision,
                plan.approval_action_ids,
                options,
                requested_by=REQUESTER,
                approved=False,
                approval_reason=plan.approval_reason or "",
            )
            log.info("Execution waits for approval.", decision_id=decision.decision_id,
                     execution_id=view.execution_id, status=view.status)  # fmt: skip

    def _run_of(self, decision: StoredDecision, actions: Sequence[DecisionAction]) -> AutomaticRun:
        """The run the governor weighs. A remediation is what the executor's target lock, verification
        and outcome analysis count as one (`changes_target`): a template action of ``type: remediation``
        whatever its script's catalog type, or a script whose catalog type is not read-only."""
        names: list[str] = []
        changing: list[str] = []
        for action in actions:
            name = action.script or action.message_template or action.key
            names.append(name)
            if changes_target(action, self._catalog):
                changing.append(name)
        return AutomaticRun(
            actions=tuple(names),
            remediations=tuple(changing),
            targets=(decision.target,) if decision.target else (),
            fingerprint=decision.fingerprint,
        )

    async def _escalate(self, decision: StoredDecision, verdict: Verdict) -> None:
        context: dict[str, Any] = {
            "event": {"id": decision.event_id, "host": decision.target, "fingerprint": decision.fingerprint},
            "decision": {"id": decision.decision_id, "template": decision.template_id},
            "reasons": list(verdict.reasons),
        }
        results = await self._notifier.send(
            Notification(template="automation_loop_detected", context=context)
        )
        failed = [f"{r.channel}: {r.error}" for r in results if not r.success]
        log.warning(
            "A remediation loop was detected: automatic runs stop, approval is required from now on.",
            decision_id=decision.decision_id,
            fingerprint=decision.fingerprint,
            reasons=list(verdict.reasons),
            notification_failures=failed,
        )


def split(actions: Sequence[DecisionAction]) -> tuple[list[DecisionAction], list[DecisionAction]]:
    """(the actions that run without a person: approval-free with approval-free dependencies, the rest
    with every action they depend on), each in the decision's order."""
    by_key = {a.key: a for a in actions}
    free: dict[str, bool] = {}

    def is_free(key: str, seen: frozenset[str] = frozenset()) -> bool:
        if key not in free:
            action = by_key.get(key)
            free[key] = (
                action is not None
                and not action.approval_required
                and key not in seen
                and all(is_free(d, seen | {key}) for d in action.depends_on)
            )
        return free[key]

    automatic = [a for a in actions if is_free(a.key)]
    rest = [a for a in actions if not is_free(a.key)]
    return automatic, _with_dependencies(actions, rest)


def _with_dependencies(
    actions: Sequence[DecisionAction], chosen: Sequence[DecisionAction]
) -> list[DecisionAction]:
    by_key = {a.key: a for a in actions}
    wanted: set[str] = set()
    todo = [a.key for a in chosen]
    while todo:
        key = todo.pop()
        if key in wanted or key not in by_key:
            continue
        wanted.add(key)
        todo.extend(by_key[key].depends_on)
    return [a for a in actions if a.key in wanted]
