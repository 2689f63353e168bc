"""The ``rules`` stage in the real worker with the real store, on Redis: a storm of events fires each
group's rule once (threshold, cooldown) and the firings are in ``rules.rule_firings`` with their events;
an event that is never stored (answered 503, refused, its batch lost to a stage) counts for nothing once
its client sends it again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import NamedTuple

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from opsresponder.core.batch import Batch
from opsresponder.core.clock import utcnow
from opsresponder.core.event import Event
from opsresponder.pipeline.errors import EventRefusedError, StageError, StoreUnavailableError
from opsresponder.pipeline.intake import Intake, Submission
from opsresponder.pipeline.rules import RuleBook, RuleEngine, RuleMetrics, Rules
from opsresponder.pipeline.rules.keys import window_key
from opsresponder.pipeline.stage import Stage
from opsresponder.pipeline.stages import Correlate, Normalize
from opsresponder.pipeline.worker import PipelineWorker
from opsresponder.rules.evaluation import RuleSpec, StaticRules
from opsresponder.state import MemoryStateBackend, RedisStateBackend, StateBackend
from opsresponder.store.errors import (
    CommitOutcomeUnknownError,
    DatabaseUnavailableError,
    EarlierBatchWithdrawnError,
    StoreError,
)
from opsresponder.store.events import EventRepository
from opsresponder.store.firings import FiringsWriter
from tests.factories import make_event, make_pipeline
from tests.integration.pipeline.test_held_back import Faults
from tests.unit.pipeline.rules.conftest import redis_backend
from tests.unit.state.test_backends import random_prefix

RULE = RuleSpec.from_json(
    3,
    {"name": "errors per host", "conditions": {"event_type": "app_error"}, "time_window_minutes": 5,
     "threshold": 3, "group_by": ["host"], "cooldown_minutes": 60},
)  # fmt: skip


@pytest.fixture
async def redis_state() -> AsyncIterator[RedisStateBackend]:
    async for state in redis_backend(random_prefix()):
        yield state


async def test_a_storm_fires_once_per_host_and_the_firings_name_their_events(
    db_pool: asyncpg.Pool, redis_state: RedisStateBackend
) -> None:
    book = RuleBook(StaticRules([RULE]), RuleEngine(redis_state), utcnow, reload_seconds=60)
    stages: list[Stage] = [Normalize(), Correlate(), Rules(book, utcnow, RuleMetrics(CollectorRegistry()))]
    repository = EventRepository(db_pool, dedup_window=timedelta(minutes=5), writers=[FiringsWriter()])
    worker, _, _ = make_pipeline(db_pool, repository=repository, stages=stages)
    loop = asyncio.get_running_loop()
    # Four hosts, five distinct errors each, in two batches: each host reaches 3 in the first or second.
    events = [
        make_event(event_type="app_error", host=f"h{h}", title=f"error {n}")
        for n in range(5)
        for h in range(4)
    ]
    for part in (events[:10], events[10:]):
        await worker.process([Submission(e, loop.create_future()) for e in part])

    rows = await db_pool.fetch("SELECT * FROM rules.rule_firings ORDER BY group_key")
    assert [(r["rule_id"], r["group_key"]) for r in rows] == [(3, f"h{h}") for h in range(4)]
    by_id = {e.id: e for e in events}
    for row in rows:
        # The completing event (the host's third error) is last.
        assert [by_id[i].title for i in row["event_ids"]][-1] == "error 2"
        assert all(by_id[i].host == row["group_key"] for i in row["event_ids"])


class FailsOnce:
    """A stage after the rules with a bug that costs the first batch it sees."""

    name = "fails_once"

    def __init__(self) -> None:
        self.failed = False

    async def run(self, batch: Batch) -> None:
        if not self.failed and len(batch.events) == 1:
            self.failed = True
            raise RuntimeError("a bug")


@pytest.mark.parametrize(
    ("fault", "answer"),
    [
        (DatabaseUnavailableError, StoreUnavailableError),  # an outage: 503
        (StoreError, EventRefusedError),  # the database refused it: 500
        (None, StageError),  # a later stage failed: 500
    ],
)
async def test_an_event_never_stored_is_taken_back_from_the_windows_so_its_resend_fires(
    db_pool: asyncpg.Pool,
    redis_state: RedisStateBackend,
    fault: type[StoreError] | None,
    answer: type[Exception],
) -> None:
    registry = CollectorRegistry()
    book = RuleBook(StaticRules([RULE]), RuleEngine(redis_state), utcnow, reload_seconds=60)
    failing = FailsOnce()
    failing.failed = fault is not None
    stages: list[Stage] = [Normalize(), Correlate(), Rules(book, utcnow, RuleMetrics(registry)), failing]
    repository = Faults(db_pool, writers=[FiringsWriter()])
    worker, _, _ = make_pipeline(db_pool, repository=repository, stages=stages)
    loop = asyncio.get_running_loop()
    first_two = [make_event(event_type="app_error", host="h0", title=f"error {n}") for n in range(2)]
    await worker.process([Submission(e, None) for e in first_two])  # 2 of the rule's 3

    # The third error completes the rule, but is not stored: its caller gets an error, and sends it again.
    third = make_event(event_type="app_error", host="h0", title="error 2")
    repository.plan = [fault]
    caller = Submission(third, loop.create_future())
    await worker.process([caller])
    with pytest.raises(answer):
        await caller.future  # type: ignore[misc]
    # Its match and the cooldown of the firing it completed (which was not stored) are taken back.
    for _ in range(200):
        if registry.get_sample_value("opsresponder_rule_hits_taken_back_total") == 2:
            break
        await asyncio.sleep(0.01)
    assert registry.get_sample_value("opsresponder_rule_hits_taken_back_total") == 2
    assert await db_pool.fetchval("SELECT count(*) FROM rules.rule_firings") == 0

    again = make_event(event_type="app_error", host="h0", title="error 2")
    resent = Submission(again, loop.create_future())
    await worker.process([resent])
    await resent.future  # type: ignore[misc]

    # Three of three, not four held by a cooldown nobody's firing began: the rule fires for the resent one.
    [row] = await db_pool.fetch("SELECT event_ids FROM rules.rule_firings")
    assert row["event_ids"] == [again.id]  # a firing names the events of its own batch


COUNTING = RuleSpec.from_json(
    4,
    {"name": "errors counted", "conditions": {"event_type": "app_error"}, "time_window_minutes": 5,
     "threshold": 100, "group_by": ["host"]},
)  # fmt: skip


class Rig(NamedTuple):
    worker: PipelineWorker
    intake: Intake
    repository: Faults
    registry: CollectorRegistry


def rules_pipeline(db_pool: asyncpg.Pool, state: StateBackend, rule: RuleSpec = COUNTING) -> Rig:
    """The worker with the rules stage on `state` (one rule), over a store that fails as planned."""
    registry = CollectorRegistry()
    book = RuleBook(StaticRules([rule]), RuleEngine(state), utcnow, reload_seconds=60)
    stages: list[Stage] = [Normalize(), Correlate(), Rules(book, utcnow, RuleMetrics(registry))]
    repository = Faults(db_pool, writers=[FiringsWriter()])
    worker, intake, _ = make_pipeline(db_pool, repository=repository, stages=stages)
    return Rig(worker, intake, repository, registry)


async def refuse(rig: Rig, title: str) -> None:
    """An HTTP caller's event the database refuses: answered 500, never stored."""
    rig.repository.plan = [StoreError]
    refused = Submission(error(title), asyncio.get_running_loop().create_future())
    await rig.worker.process([refused])
    with pytest.raises(EventRefusedError):
        await refused.future  # type: ignore[misc]


async def counted(state: StateBackend) -> int:
    return await state.window_count(window_key(4, 5, "h0"), 300, time.time())


def taken_back(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("opsresponder_rule_hits_taken_back_total") or 0.0


def error(title: str) -> Event:
    return make_event(event_type="app_error", host="h0", title=title)


async def test_only_the_refused_event_of_a_batch_is_taken_back(
    db_pool: asyncpg.Pool, redis_state: RedisStateBackend
) -> None:
    worker, _, repository, registry = rules_pipeline(db_pool, redis_state)
    # The batch is refused, then stored one event at a time: the middle one is refused again.
    repository.plan = [StoreError, None, StoreError, None]
    await worker.process([Submission(error(t), None) for t in ("a", "b", "c")])
    await worker.process([])  # waits for the take-back (`_write_batch`)

    assert taken_back(registry) == 1
    assert await counted(redis_state) == 2  # a and c, stored


async def test_a_caller_answered_503_is_taken_back_and_the_events_kept_for_the_database_are_not(
    db_pool: asyncpg.Pool, redis_state: RedisStateBackend
) -> None:
    worker, _, repository, registry = rules_pipeline(db_pool, redis_state)
    loop = asyncio.get_running_loop()
    caller, kept = Submission(error("http"), loop.create_future()), Submission(error("syslog"), None)
    repository.plan = [DatabaseUnavailableError]
    await worker.process([caller, kept])
    with pytest.raises(StoreUnavailableError):
        await caller.future  # type: ignore[misc]

    await worker.process([Submission(error("later"), None)])  # the database is back: kept, then later

    assert taken_back(registry) == 1
    assert await counted(redis_state) == 2  # syslog and later
    assert kept.event.id is not None


@pytest.mark.parametrize(
    "fault",
    [
        EarlierBatchWithdrawnError,  # kept whole, callers waiting, and stored again
        CommitOutcomeUnknownError,  # answered 503, but the batch may have been stored
    ],
)
async def test_nothing_is_taken_back_for_a_batch_that_is_or_may_be_stored(
    db_pool: asyncpg.Pool, redis_state: RedisStateBackend, fault: type[StoreError]
) -> None:
    worker, _, repository, registry = rules_pipeline(db_pool, redis_state)
    loop = asyncio.get_running_loop()
    caller = Submission(error("http"), loop.create_future())
    repository.plan = [fault]
    await worker.process([caller])
    await worker.process([Submission(error("later"), None)])
    assert caller.future is not None
    answered = caller.future.exception()  # stored again for the first, 503 for the second
    assert (answered is None) is (fault is EarlierBatchWithdrawnError)

    assert taken_back(registry) == 0
    assert await counted(redis_state) == 2


class SlowTakeBack(MemoryStateBackend):
    """Its take-back answers only after a while, as a busy Redis would."""

    async def window_take_back_many(self, hits: Sequence[tuple[str, float]]) -> int:
        await asyncio.sleep(0.3)
        return await super().window_take_back_many(hits)


async def test_a_resend_right_after_the_error_waits_for_the_take_back(db_pool: asyncpg.Pool) -> None:
    rig = rules_pipeline(db_pool, SlowTakeBack(), RULE)
    await rig.worker.process([Submission(error(f"error {n}"), None) for n in range(2)])
    await refuse(rig, "error 2")  # the third, completing the rule

    resent = Submission(error("error 2"), asyncio.get_running_loop().create_future())
    await rig.worker.process([resent])  # at once, while the take-back is still on its way

    assert await db_pool.fetchval("SELECT count(*) FROM rules.rule_firings") == 1


class HungTakeBack(MemoryStateBackend):
    """Its take-back never answers (a half-open connection)."""

    async def window_take_back_many(self, hits: Sequence[tuple[str, float]]) -> int:
        await asyncio.sleep(3600)
        return 0


async def test_a_hung_take_back_delays_the_batches_after_it_by_a_second_at_most_in_all(
    db_pool: asyncpg.Pool,
) -> None:
    rig = rules_pipeline(db_pool, HungTakeBack())
    await refuse(rig, "refused")

    loop = asyncio.get_running_loop()
    started = loop.time()
    for n in range(6):
        await rig.worker.process([Submission(error(f"later {n}"), None)])
    # The first waits out the second the take-back is given; the others do not wait again (six seconds).
    assert loop.time() - started < 4.0


async def test_a_worker_stopped_while_waiting_for_a_take_back_gives_the_batch_it_took_back(
    db_pool: asyncpg.Pool,
) -> None:
    rig = rules_pipeline(db_pool, HungTakeBack())
    intake = rig.intake
    await refuse(rig, "refused")  # its take-back hangs

    assert intake.offer(error("taken"))
    running = asyncio.create_task(rig.worker.run())
    while intake.depth > 0:  # noqa: ASYNC110 - taken: the loop now waits for the take-back
        await asyncio.sleep(0.01)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running

    assert intake.depth == 1  # given back, not lost
    [back] = await intake.get_batch(10, 0)
    assert back.event.title == "taken"
