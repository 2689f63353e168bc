"""EventRepository against a real PostgreSQL: batch writes, dedup by fingerprint and state, queries."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from opsresponder.core.clock import utcnow
from opsresponder.core.event import EventState
from opsresponder.core.severity import Severity
from opsresponder.rules.filter import EventFilter
from opsresponder.store.events import EventQuery, EventRepository
from tests.factories import make_event, prepared

WINDOW = timedelta(minutes=5)


@pytest.fixture
def repo(db_pool: asyncpg.Pool) -> EventRepository:
    return EventRepository(db_pool, dedup_window=WINDOW)


async def test_a_batch_is_stored_and_read_back(repo: EventRepository) -> None:
    events = prepared(
        make_event(host="a", metadata={"cpu": 95.5, "nested": {"x": [1, 2]}}, tags=["prod", "web"]),
        make_event(host="b", severity=Severity.LOW, description="d"),
    )
    outcomes = await repo.store_batch(events)
    assert [o.duplicate for o in outcomes] == [False, False]
    assert outcomes[0].event_id != outcomes[1].event_id
    stored = await repo.get(outcomes[0].event_id)
    assert stored is not None
    assert stored.host == "a"
    assert stored.metadata == {"cpu": 95.5, "nested": {"x": [1, 2]}}
    assert stored.tags == ["prod", "web"]
    assert stored.correlation_id == outcomes[0].correlation_id
    assert stored.duplicate_count == 0
    assert stored.occurred_at.tzinfo is not None


async def test_a_repeat_within_the_window_is_folded_into_the_first(repo: EventRepository) -> None:
    first = await repo.store_batch(prepared(make_event()))
    second = await repo.store_batch(prepared(make_event(description="again")))
    assert second[0].duplicate
    assert second[0].event_id == first[0].event_id
    assert second[0].correlation_id == first[0].correlation_id
    stored = await repo.get(first[0].event_id)
    assert stored is not None and stored.duplicate_count == 1
    _, total = await repo.query(EventQuery())
    assert total == 1


async def test_repeats_inside_one_batch_count_towards_the_first(repo: EventRepository) -> None:
    outcomes = await repo.store_batch(
        prepared(make_event(), make_event(), make_event(), make_event(host="other"))
    )
    assert [o.duplicate for o in outcomes] == [False, True, True, False]
    assert outcomes[1].event_id == outcomes[0].event_id == outcomes[2].event_id
    stored = await repo.get(outcomes[0].event_id)
    assert stored is not None and stored.duplicate_count == 2


async def test_a_resolve_is_never_a_duplicate_of_its_problem(repo: EventRepository) -> None:
    batch = prepared(
        make_event(fingerprint="fp-1"),
        make_event(fingerprint="fp-1", state=EventState.RESOLVED, title="recovered"),
        make_event(fingerprint="fp-1"),
    )
    outcomes = await repo.store_batch(batch)
    assert [o.duplicate for o in outcomes] == [False, False, False]
    assert len({o.event_id for o in outcomes}) == 3
    again = await repo.store_batch(prepared(make_event(fingerprint="fp-1")))
    assert again[0].duplicate and again[0].event_id == outcomes[2].event_id


async def test_after_the_window_the_same_fingerprint_is_new(repo: EventRepository) -> None:
    long_ago = utcnow() - WINDOW - timedelta(seconds=1)
    first = await repo.store_batch(prepared(make_event(now=long_ago)))
    later = await repo.store_batch(prepared(make_event()))
    assert not later[0].duplicate
    assert later[0].event_id != first[0].event_id


async def test_two_writers_racing_on_one_fingerprint_store_it_once(db_pool: asyncpg.Pool) -> None:
    # Two repositories stand for two processes: separate id allocators, separate connections.
    writers = [EventRepository(db_pool, dedup_window=WINDOW) for _ in range(2)]
    results = await asyncio.gather(
        *(w.store_batch(prepared(make_event(), make_event(host=f"h{i}"))) for i, w in enumerate(writers * 5))
    )
    shared = [r[0] for r in results]
    assert sum(not o.duplicate for o in shared) == 1
    assert len({o.event_id for o in shared}) == 1
    stored = await writers[0].get(shared[0].event_id)
    assert stored is not None and stored.duplicate_count == 9


async def test_query_filters_order_and_paging(repo: EventRepository) -> None:
    base = utcnow() - timedelta(hours=1)
    events = [
        make_event(
            host=f"h{i % 2}",
            service="db" if i % 3 == 0 else "web",
            severity=Severity.CRITICAL if i % 2 else Severity.INFO,
            event_type="disk_full" if i < 3 else "cpu_high",
            title=f"event {i}",
            occurred_at=base + timedelta(minutes=i),
        )
        for i in range(10)
    ]
    await repo.store_batch(prepared(*events))

    page, total = await repo.query(EventQuery(limit=3))
    assert total == 10
    assert [e.title for e in page] == ["event 9", "event 8", "event 7"]
    page2, _ = await repo.query(EventQuery(limit=3, offset=3))
    assert [e.title for e in page2] == ["event 6", "event 5", "event 4"]

    crit, n = await repo.query(EventQuery(filter=EventFilter(severity=("critical",))))
    assert n == 5 and all(e.severity is Severity.CRITICAL for e in crit)
    _, n = await repo.query(EventQuery(filter=EventFilter(severity=("critical", "info"))))
    assert n == 10
    _, n = await repo.query(EventQuery(filter=EventFilter(host="h0", service="db")))
    assert n == 2  # i = 0 and 6
    _, n = await repo.query(EventQuery(filter=EventFilter(event_type="disk_full")))
    assert n == 3
    window, n = await repo.query(
        EventQuery(start_time=base + timedelta(minutes=2), end_time=base + timedelta(minutes=4))
    )
    assert n == 3 and {e.title for e in window} == {"event 2", "event 3", "event 4"}


async def test_get_of_an_unknown_id_is_none(repo: EventRepository) -> None:
    assert await repo.get(987654321) is None


async def test_text_postgres_cannot_hold_is_replaced_not_refused(repo: EventRepository) -> None:
    outcomes = await repo.store_batch(
        prepared(make_event(title="bad\x00title", metadata={"k\x00": "v\x00"}, raw="r\x00"))
    )
    stored = await repo.get(outcomes[0].event_id)
    assert stored is not None
    assert stored.title == "bad\ufffdtitle"
    assert stored.metadata == {"k\ufffd": "v\ufffd"}
