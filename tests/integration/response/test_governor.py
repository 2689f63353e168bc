"""The safety governor against real PostgreSQL (the pause) and both state backends (budgets, loops)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from opsresponder.config import GovernorConfig
from opsresponder.response.governor import AutomaticRun, SafetyGovernor
from opsresponder.state import MemoryStateBackend, RedisStateBackend, StateBackend
from opsresponder.store.controls import AutomationControls, PauseState
from tests.conftest import service_url

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[StateBackend]:
    prefix = f"test:{uuid.uuid4().hex}:"
    if request.param == "memory":
        async with MemoryStateBackend(prefix, clock=clock) as memory:
            yield memory
        return
    url = service_url("OPSRESPONDER_TEST_REDIS_URL", "Redis")
    try:
        async with RedisStateBackend(url, prefix) as shared:
            yield shared
    finally:
        cleaner = aioredis.from_url(url)
        keys = [key async for key in cleaner.scan_iter(match=f"{prefix}*")]
        if keys:
            await cleaner.delete(*keys)
        await cleaner.aclose()


def governor(state: StateBackend, pool: asyncpg.Pool, clock: Clock, **config: int) -> SafetyGovernor:
    return SafetyGovernor(state, AutomationControls(pool), GovernorConfig(**config), clock=clock)


def restart(host: str = "web-1", fingerprint: str = "fp-1") -> AutomaticRun:
    return AutomaticRun(
        actions=("check_service_status", "restart_service"),
        remediations=("restart_service",),
        targets=(host,),
        fingerprint=fingerprint,
    )


async def test_the_pause_stops_everything_and_outlives_the_process(
    db_pool: asyncpg.Pool, state: StateBackend, clock: Clock
) -> None:
    first = governor(state, db_pool, clock)
    assert (await first.admit(restart())).allowed

    paused, changed = await first.pause("oncall", "bad deploy in progress")
    assert changed and paused.paused_by == "oncall"
    verdict = await first.admit(restart())
    assert not verdict.allowed and verdict.paused
    assert "paused (by oncall: bad deploy in progress)" in verdict.reasons[0]
    _, again = await first.pause("someone-else", "")
    assert not again  # the pause in force is kept, with its author

    restarted = governor(state, db_pool, clock)  # a new process reads the pause from PostgreSQL
    assert (await restarted.paused()) is not None
    assert (await restarted.admit(restart(host="web-2"))).paused

    assert await restarted.resume("oncall")
    assert not await restarted.resume("oncall")
    assert (await restarted.admit(restart(host="web-2"))).allowed
    log = await db_pool.fetch("SELECT action, by_name FROM autonomous.automation_pause_log ORDER BY id")
    assert [tuple(r) for r in log] == [("pause", "oncall"), ("resume", "oncall")]


async def test_another_replica_sees_a_pause_within_the_refresh_interval(
    db_pool: asyncpg.Pool, state: StateBackend, clock: Clock
) -> None:
    here, there = governor(state, db_pool, clock), governor(state, db_pool, clock)
    assert (await there.admit(restart())).allowed
    await here.pause("oncall", "")
    clock.now += 0.5
    assert (await there.admit(restart(host="web-2"))).allowed  # its view is at most 1 s old
    clock.now += 0.6
    assert (await there.admit(restart(host="web-3"))).paused


async def test_a_remediation_needs_a_target_set_of_sane_size(
    db_pool: asyncpg.Pool, state: StateBackend, clock: Clock
) -> None:
    gov = governor(state, db_pool, clock, max_targets=3)
    nowhere = AutomaticRun(actions=("restart_service",), remediations=("restart_service",), targets=("", ""))
    verdict = await gov.admit(nowhere)
    assert not verdict.allowed and not verdict.approval_required
    assert "resolves to no host" in verdict.reasons[0]
    many = AutomaticRun(
        actions=("restart_service",), remediations=("restart_service",), targets=("a", "b", "c", "d")
    )
    assert "over 4 hosts" in (await gov.admit(many)).reasons[0]
    three = AutomaticRun(
        actions=("restart_service",), remediations=("restart_service",), targets=("a", "b", "c")
    )
    assert (await gov.admit(three)).allowed
    # A diagnostic about no host in particular is not a remediation: it may run.
    assert (await gov.admit(AutomaticRun(actions=("check_cpu_usage",)))).allowed


async def test_budgets_per_host_and_per_action_and_refusals_spend_nothing(
    db_pool: asyncpg.Pool, state: StateBackend, clock: Clock
) -> None:
    gov = governor(state, db_pool, clock, max_runs_per_host_per_hour=2, max_runs_per_action_per_hour=3)

    def diag(host: str) -> AutomaticRun:
        return AutomaticRun(actions=("check_cpu_usage",), targets=(host,))

    assert (await gov.admit(diag("a"))).allowed
    clock.now += 60
    assert (await gov.admit(diag("a"))).allowed
    refused = await gov.admit(diag("a"))
    assert not refused.allowed
    assert refused.reasons == ("host a had 2 automatic executions in the last hour (budget 2)",)
    for _ in range(5):  # refused attempts are not counted against the action's budget
        assert not (await gov.admit(diag("a"))).allowed
    assert (await gov.admit(diag("b"))).allowed  # 3rd run of the script overall
    over = await gov.admit(diag("c"))
    assert over.reasons == ("check_cpu_usage ran automatically 3 times in the last hour (budget 3)",)

    clock.now += 3600 - 59  # the first run (host a, the script's first) leaves the hour
    assert (await gov.admit(diag("a"))).allowed
    assert not (await gov.admit(diag("c"))).allowed  # three runs of the script in the hour again


async def test_a_loop_stops_is_escalated_once_and_needs_approval_until_released(
    db_pool: asyncpg.Pool, state: StateBackend, clock: Clock
) -> None:
    gov = governor(state, db_pool, clock, loop_max_runs=3, loop_window_minutes=30)
    for _ in range(3):
        assert (await gov.admit(restart())).allowed
        clock.now += 60
    looped = await gov.admit(restart())
    assert not looped.allowed and looped.approval_required and looped.escalate
    assert "already ran 3 times for fingerprint fp-1 within 30 minutes" in looped.reasons[0]

    again = await gov.admit(restart())
    assert again.approval_required and not again.escalate  # escalated once
    assert "detected running in a loop" in again.reasons[0]
    clock.now += 3 * 3600  # the runs left the window, the hold (24 h) did not
    assert (await gov.admit(restart())).approval_required

    assert (await gov.admit(restart(fingerprint="fp-2"))).allowed  # another incident is not this loop
    assert await gov.release_loop("restart_service", "fp-1")
    assert (await gov.admit(restart())).allowed
    assert not await gov.release_loop("restart_service", "fp-1")


async def test_a_read_in_flight_during_a_resume_does_not_bring_the_pause_back(
    db_pool: asyncpg.Pool, state: StateBackend, clock: Clock
) -> None:
    controls = AutomationControls(db_pool)
    release = asyncio.Event()

    class SlowControls:
        """Answers reads with the state as it was when the read began, after the test lets it go."""

        async def pause_state(self) -> PauseState | None:
            before = await controls.pause_state()
            await release.wait()
            return before

        async def pause(self, by: str, reason: str) -> tuple[PauseState, bool]:
            return await controls.pause(by, reason)

        async def resume(self, by: str, reason: str = "") -> bool:
            return await controls.resume(by, reason)

    gov = SafetyGovernor(state, SlowControls(), GovernorConfig(), clock=clock)
    await controls.pause("oncall", "")
    reading = asyncio.create_task(gov.paused())
    await asyncio.sleep(0.05)
    assert await gov.resume("oncall")
    release.set()
    await reading  # it began while paused and answers after the resume...
    assert await gov.paused() is None  # ...without putting the pause back into the cache
