"""The correlate stage with the real store: correlations written in the batch's transaction, and a restart
(a new stage instance) rebuilding its state from PostgreSQL so that a new event joins an old group."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from opsresponder.core.clock import utcnow
from opsresponder.core.event import Event
from opsresponder.pipeline.correlation import Correlate
from opsresponder.pipeline.stages import Normalize
from opsresponder.store.correlations import CorrelationRepository, CorrelationWriter
from opsresponder.store.events import EventRepository
from tests.conftest import CORRELATION_ROWS
from tests.correlation_scenarios import Scenario
from tests.factories import make_pipeline
from tests.integration.pipeline.test_stages import callers


def _storm(now_minus: timedelta, hosts: range) -> Scenario:
    s = Scenario()
    t = utcnow() - now_minus
    s.add("switch", t, "sw-core-1", "Interface GigabitEthernet0/1 linkDown", group="network-core", root=True)
    for n in hosts:
        s.add(
            "switch",
            t + timedelta(seconds=10 * n),
            f"app-{n:02d}",
            f"Connection timed out to 10.0.3.{n} port 5432",
            group="rack-12",
            depends_on=("sw-core-1",),
        )
    return s


async def _process(pool: asyncpg.Pool, stage: Correlate, events: list[Event]) -> None:
    repository = EventRepository(pool, dedup_window=timedelta(minutes=5), writers=[CorrelationWriter()])
    worker, _, _ = make_pipeline(pool, repository=repository, stages=[Normalize(), stage])
    batch = callers(events)
    await worker.process(batch)
    for submission in batch:
        assert submission.future is not None
        submission.future.result()


async def test_correlations_are_written_and_a_restarted_stage_joins_the_old_group(
    db_pool: asyncpg.Pool,
) -> None:
    history = CorrelationRepository(db_pool)
    first = Correlate(history=history)
    storm = _storm(timedelta(minutes=10), range(1, 4))
    # Two batches: the root first, then its dependents, as a switch's trap precedes the hosts' errors.
    await _process(db_pool, first, storm.events[:1])
    await _process(db_pool, first, storm.events[1:])
    root = storm.roots["switch"]
    assert root.id is not None and all(e.correlation_id == root.correlation_id for e in storm.events)

    rows = await db_pool.fetch(
        "SELECT event_id, related_event_id, correlation_type, score, reason, correlation_id "
        f"FROM {CORRELATION_ROWS} AS c ORDER BY event_id, correlation_type"
    )
    causal = [r for r in rows if r["correlation_type"] == "causal"]
    assert {r["event_id"] for r in causal} == {e.id for e in storm.events[1:]}
    assert {r["related_event_id"] for r in causal} == {root.id}
    assert all(r["correlation_id"] == root.correlation_id and 0 < r["score"] <= 1 for r in rows)
    # The root came in an earlier batch: the writer flagged its stored row.
    flagged = await db_pool.fetchval(
        "SELECT metadata->'correlation'->>'root_cause' FROM events.events WHERE id = $1", root.id
    )
    assert flagged == "true"

    # "Restart": a new stage, its state rebuilt from the stored events of the lookback window.
    restarted = Correlate(history=history)
    assert await restarted.load_history() == 4
    late = _storm(timedelta(minutes=8), range(9, 10)).events[1]  # app-09, two minutes after the others
    await _process(db_pool, restarted, [late])
    assert late.correlation_id == root.correlation_id
    assert late.metadata["correlation"]["group_size"] == 5
    assert "causal" in late.metadata["correlation"]["types"]
    related = await db_pool.fetch(
        f"SELECT related_event_id FROM {CORRELATION_ROWS} AS c "
        "WHERE event_id = $1 AND correlation_type = 'causal'",
        late.id,
    )
    assert [r["related_event_id"] for r in related] == [root.id]


async def test_a_stage_without_history_starts_empty_and_opens_a_new_group(db_pool: asyncpg.Pool) -> None:
    storm = _storm(timedelta(minutes=10), range(1, 3))
    await _process(db_pool, Correlate(history=CorrelationRepository(db_pool)), storm.events)
    late = _storm(timedelta(minutes=8), range(9, 10)).events[1]
    await _process(db_pool, Correlate(), [late])  # no history: nothing to join
    assert late.correlation_id != storm.events[0].correlation_id
    assert late.metadata["correlation"] == {"group_size": 1, "root_cause": False, "types": []}
