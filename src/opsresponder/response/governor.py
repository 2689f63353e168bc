"""The safety governor: what may run without a person, decided before any automatic execution starts.

Four guards, in the order they are checked (docs/response.md "Safety governor"):

1. the global pause (the kill switch, `store.controls`): while paused nothing starts automatically; the
   caller keeps such work pending rather than dropping it;
2. the target set: a remediation about no host, or about more than ``max_targets``, is refused;
3. loop detection: the same remediation for the same fingerprint run more than ``loop_max_runs`` times
   within ``loop_window_minutes`` is a loop: that run is refused, the loop is escalated once, and the
   (remediation, fingerprint) needs approval for ``loop_hold_hours``;
4. budgets: at most ``max_runs_per_host_per_hour`` automatic executions per host and
   ``max_runs_per_action_per_hour`` runs per script.

Counts live in the state backend (shared through Redis), so replicas share budgets. A run is counted
only once admitted (`admit` checks, then records): a refused attempt spends nothing, so a storm of
refused attempts cannot look like a loop. Two replicas admitting at the same instant can overshoot a
budget by one run each; the pause, the target check and an established loop hold are exact.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import msgspec

from opsresponder.config import GovernorConfig
from opsresponder.state import StateBackend
from opsresponder.store.controls import PauseState

_HOUR = 3600.0


class PauseSource(Protocol):
    async def pause_state(self) -> PauseState | None: ...
    async def pause(self, by: str, reason: str) -> tuple[PauseState, bool]: ...
    async def resume(self, by: str, reason: str = "") -> bool: ...


class AutomaticRun(msgspec.Struct, kw_only=True, frozen=True):
    """What an automatic execution would do, as the governor weighs it.

    Attributes:
        actions: every script (or notification template) it would run, by name.
        remediations: those of `actions` that change something (not diagnostics or notifications): the
            ones loop detection and the target check are about.
        targets: the hosts it acts on.
        fingerprint: the triggering event's fingerprint (loops are per fingerprint).
    """

    actions: tuple[str, ...]
    remediations: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    fingerprint: str | None = None


class Verdict(msgspec.Struct, kw_only=True, frozen=True):
    """The governor's answer.

    Attributes:
        allowed: it may start now without a person.
        paused: refused only because automatic execution is paused: keep it pending.
        approval_required: a person may still run it (a loop hold); otherwise a refusal is final for
            this attempt.
        escalate: this check detected a new loop; the caller notifies people about it.
        reasons: why, one sentence per guard that refused.
    """

    allowed: bool
    paused: bool = False
    approval_required: bool = False
    escalate: bool = False
    reasons: tuple[str, ...] = ()


class SafetyGovernor:
    def __init__(
        self,
        state: StateBackend,
        controls: PauseSource,
        config: GovernorConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._state = state
        self._controls = controls
        self._config = config
        self._clock = clock
        self._pause: PauseState | None = None
        self._pause_read_at: float | None = None
        # Moves on every pause and resume made here, so a read that started before one (and answers the
        # old state) cannot overwrite what the change cached.
        self._changes = 0

    async def paused(self) -> PauseState | None:
        """The pause in force, reread at most every ``pause_refresh_seconds``."""
        now = self._clock()
        if self._pause_read_at is None or now - self._pause_read_at >= self._config.pause_refresh_seconds:
            changes = self._changes
            state = await self._controls.pause_state()
            if changes == self._changes:
                self._pause, self._pause_read_at = state, now
        return self._pause

    async def pause(self, by: str, reason: str) -> tuple[PauseState, bool]:
        state, changed = await self._controls.pause(by, reason)
        self._changes += 1
        self._pause, self._pause_read_at = state, self._clock()
        return state, changed

    async def resume(self, by: str, reason: str = "") -> bool:
        changed = await self._controls.resume(by, reason)
        self._changes += 1
        self._pause, self._pause_read_at = None, self._clock()
        return changed

    async def admit(self, run: AutomaticRun) -> Verdict:
        """Check `run` against every guard; when allowed, count it against the budgets and loops."""
        pause = await self.paused()
        if pause is not None:
            return Verdict(
                allowed=False,
                paused=True,
                reasons=(
                    f"automatic execution is paused (by {pause.paused_by}: {pause.reason or 'no reason'})",
                ),
            )
        if run.remediations:
            refusal = self._target_refusal(run.targets)
            if refusal is not None:
                return Verdict(allowed=False, reasons=(refusal,))
        held = await self._held_loops(run)
        if held:
            return Verdict(allowed=False, approval_required=True, reasons=tuple(held))
        now = self._clock()
        checks = self._window_keys(run)
        counts = await self._state.window_count_many([(key, window, now) for key, window, _, _ in checks])
        reasons: list[str] = []
        new_loops: list[str] = []
        for (_, _, limit, describe), count in zip(checks, counts, strict=True):
            if count < limit:
                continue
            reason, loop_action = describe
            reasons.append(reason.format(count=count, limit=limit))
            if loop_action is not None:
                new_loops.append(loop_action)
        if new_loops:
            escalate = await self._hold_loops(new_loops, run.fingerprint)
            return Verdict(allowed=False, approval_required=True, escalate=escalate, reasons=tuple(reasons))
        if reasons:
            return Verdict(allowed=False, reasons=tuple(reasons))
        await self._state.window_add_many([(key, window, now) for key, window, _, _ in checks])
        return Verdict(allowed=True)

    async def release_loop(self, action: str, fingerprint: str) -> bool:
        """End a loop hold before it expires (an operator fixed the cause), and forget the runs that made
        it, so the next run is not taken for the same loop; True when one was held."""
        await self._state.delete(_loop_key(action, fingerprint))
        return await self._state.delete(_hold_key(action, fingerprint))

    def _target_refusal(self, targets: tuple[str, ...]) -> str | None:
        hosts = {t for t in targets if t}
        if not hosts:
            return "a remediation whose target set resolves to no host is refused"
        if len(hosts) > self._config.max_targets:
            return (
                f"a remediation over {len(hosts)} hosts is refused "
                f"(response.governor.max_targets is {self._config.max_targets})"
            )
        return None

    async def _held_loops(self, run: AutomaticRun) -> list[str]:
        if run.fingerprint is None or not run.remediations:
            return []
        held: list[str] = []
        for action in run.remediations:
            if await self._state.get(_hold_key(action, run.fingerprint)) is not None:
                held.append(
                    f"{action} for fingerprint {run.fingerprint} was detected running in a loop: "
                    "it needs approval until the hold ends"
                )
        return held

    def _window_keys(self, run: AutomaticRun) -> list[tuple[str, float, int, tuple[str, str | None]]]:
        """(key, window seconds, limit, (reason template, remediation when the key is a loop counter))."""
        config = self._config
        keys: list[tuple[str, float, int, tuple[str, str | None]]] = []
        for host in sorted({t for t in run.targets if t}):
            keys.append(
                (
                    f"governor:host:{host}",
                    _HOUR,
                    config.max_runs_per_host_per_hour,
                    (
                        f"host {host} had {{count}} automatic executions in the last hour (budget {{limit}})",
                        None,
                    ),
                )
            )
        for action in sorted(set(run.actions)):
            keys.append(
                (
                    f"governor:action:{action}",
                    _HOUR,
                    config.max_runs_per_action_per_hour,
                    (f"{action} ran automatically {{count}} times in the last hour (budget {{limit}})", None),
                )
            )
        if run.fingerprint is not None:
            for action in sorted(set(run.remediations)):
                keys.append(
                    (
                        _loop_key(action, run.fingerprint),
                        config.loop_window_minutes * 60.0,
                        config.loop_max_runs,
                        (
                            f"{action} already ran {{count}} times for fingerprint {run.fingerprint} within "
                            f"{config.loop_window_minutes} minutes: a loop, automatic runs stop",
                            action,
                        ),
                    )
                )
        return keys

    async def _hold_loops(self, actions: list[str], fingerprint: str | None) -> bool:
        """Hold each looping remediation; True when at least one hold is new (escalate once per loop)."""
        assert fingerprint is not None
        ttl = self._config.loop_hold_hours * _HOUR
        new = False
        for action in actions:
            if await self._state.set_if_absent(_hold_key(action, fingerprint), str(self._clock()), ttl):
                new = True
        return new


def _loop_key(action: str, fingerprint: str) -> str:
    return f"governor:loop:{action}:{fingerprint}"


def _hold_key(action: str, fingerprint: str) -> str:
    return f"governor:loop-hold:{action}:{fingerprint}"
