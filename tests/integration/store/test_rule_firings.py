"""``rules.rule_firings``: written in the event's transaction (rolled back with it), claimed once by
concurrent consumers with SKIP LOCKED, re-claimed after an expired lease, listed newest first."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from opsresponder.core.batch import Batch
from opsresponder.core.event import Event
from opsresponder.rules.evaluation import FIRINGS, Firing
from opsresponder.store.errors import StoreError
from opsresponder.store.events import EventRepository
from opsresponder.store.firings import FiringRepository, FiringsWriter
from tests.factories import make_event, prepared

WINDOW = timedelta(minutes=5)
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class FailingWriter:
    async def write(self, conn: asyncpg.Connection, batch: Batch, stored: Sequence[Event]) -> None:
        await conn.execute("SELECT 1 / 0")


def firing(*events: Event, rule_id: int = 5, group: str = "") -> Firing:
    return Firing(rule_id, group, "trigger", NOW, events, {"rule_name": "cpu"})


async def rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(await pool.fetch("SELECT * FROM rules.rule_firings ORDER BY id"))


async def test_a_firing_commits_with_the_events_that_made_it(db_pool: asyncpg.Pool) -> None:
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[FiringsWriter()])
    events = prepared(make_event(host="a"), make_event(host="b"), make_event(host="c"))
    batch = Batch(events)
    batch.add(FIRINGS, [firing(events[0], events[1], group="g1"), firing(events[2], rule_id=6)])
    await repository.store_batch(events, batch=batch)
    found = await rows(db_pool)
    assert [(r["rule_id"], r["group_key"], r["event_ids"]) for r in found] == [
        (5, "g1", [events[0].id, events[1].id]),
        (6, "", [events[2].id]),
    ]
    assert found[0]["status"] == "new" and found[0]["kind"] == "trigger" and found[0]["fired_at"] == NOW
    assert found[0]["detail"] == {"rule_name": "cpu"}


async def test_a_rolled_back_batch_leaves_no_firing(db_pool: asyncpg.Pool) -> None:
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[FiringsWriter(), FailingWriter()])
    events = prepared(make_event())
    batch = Batch(events)
    batch.add(FIRINGS, [firing(events[0])])
    with pytest.raises(StoreError):
        await repository.store_batch(events, batch=batch)
    assert await rows(db_pool) == []
    assert await db_pool.fetchval("SELECT count(*) FROM events.events") == 0


async def test_a_firing_completed_by_a_duplicate_names_the_row_it_was_folded_into(
    db_pool: asyncpg.Pool,
) -> None:
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[FiringsWriter()])
    [first] = prepared(make_event(title="disk full"))
    await repository.store_batch([first])
    events = prepared(make_event(title="disk full"), make_event(title="other"))
    batch = Batch(events)
    batch.add(FIRINGS, [firing(events[0])])
    outcomes = await repository.store_batch(events, batch=batch)
    assert outcomes[0].duplicate and events[0].id is None
    assert [r["event_ids"] for r in await rows(db_pool)] == [[first.id]]


async def test_a_firing_is_written_only_in_the_transaction_of_its_completing_event(
    db_pool: asyncpg.Pool,
) -> None:
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[FiringsWriter()])
    [first] = prepared(make_event(title="disk full"))
    await repository.store_batch([first])
    repeat, answered_503, other = prepared(
        make_event(title="disk full"), make_event(title="cpu high"), make_event(title="other")
    )
    batch = Batch([repeat, answered_503, other])
    batch.add(FIRINGS, [firing(repeat, rule_id=5), firing(answered_503, rule_id=6)])
    # After an outage the worker stores what nobody was answered 503 for, one transaction per part here
    # (as after a refusal): the duplicate's firing goes with the duplicate, the other event's with none.
    await repository.store_batch([other], batch=batch)
    assert await rows(db_pool) == []
    await repository.store_batch([repeat], batch=batch)
    assert [(r["rule_id"], r["event_ids"]) for r in await rows(db_pool)] == [(5, [first.id])]


async def test_absence_firings_are_written_without_an_event(db_pool: asyncpg.Pool) -> None:
    firings = FiringRepository(db_pool)
    await firings.write_firings([Firing(9, "db-1", "absence", NOW, (), {"variant": "heartbeat"})])
    [row] = await rows(db_pool)
    assert (row["rule_id"], row["group_key"], row["kind"], row["event_ids"]) == (9, "db-1", "absence", [])


async def seed(pool: asyncpg.Pool, count: int, rule_id: int = 1) -> None:
    await FiringRepository(pool).write_firings(
        [Firing(rule_id, f"g{i}", "absence", NOW + timedelta(seconds=i)) for i in range(count)]
    )


async def test_two_consumers_claiming_at_once_take_each_firing_once(db_pool: asyncpg.Pool) -> None:
    await seed(db_pool, 60)
    repository = FiringRepository(db_pool)
    taken: dict[str, list[int]] = {"one": [], "two": []}
    has_claimed = {"one": asyncio.Event(), "two": asyncio.Event()}

    async def consume(owner: str, other: str) -> None:
        while claimed := await repository.claim(4, owner, timedelta(minutes=5), NOW):
            taken[owner] += [f.id for f in claimed]
            has_claimed[owner].set()
            # Hold these until the other consumer has claimed too: it must find other rows meanwhile.
            await asyncio.wait_for(has_claimed[other].wait(), 10)
            assert await repository.complete([f.id for f in claimed], owner) == len(claimed)

    await asyncio.gather(consume("one", "two"), consume("two", "one"))
    every = taken["one"] + taken["two"]
    assert len(every) == 60 and len(set(every)) == 60
    assert taken["one"] and taken["two"]  # both got work: SKIP LOCKED let them pass each other
    assert await db_pool.fetchval("SELECT count(*) FROM rules.rule_firings WHERE status = 'done'") == 60


async def test_a_claim_skips_rows_locked_by_another_transaction(db_pool: asyncpg.Pool) -> None:
    await seed(db_pool, 3)
    repository = FiringRepository(db_pool)
    async with db_pool.acquire() as other, other.transaction():
        # Another consumer's claim in progress holds the oldest row.
        await other.execute("SELECT id FROM rules.rule_firings ORDER BY id LIMIT 1 FOR UPDATE")
        claimed = await asyncio.wait_for(repository.claim(10, "me", timedelta(minutes=1), NOW), 5)
    assert [f.group_key for f in claimed] == ["g1", "g2"]


async def test_an_expired_lease_is_claimed_again_and_the_late_owner_cannot_complete(
    db_pool: asyncpg.Pool,
) -> None:
    await seed(db_pool, 1)
    repository = FiringRepository(db_pool)
    [first] = await repository.claim(10, "crashed", timedelta(minutes=1), NOW)
    assert first.attempts == 1 and first.claimed_by == "crashed"
    assert await repository.claim(10, "other", timedelta(minutes=1), NOW + timedelta(seconds=30)) == []
    [again] = await repository.claim(10, "other", timedelta(minutes=1), NOW + timedelta(minutes=2))
    assert again.id == first.id and again.attempts == 2
    assert await repository.complete([first.id], "crashed") == 0
    assert await repository.complete([first.id], "other") == 1
    assert await repository.claim(10, "third", timedelta(minutes=1), NOW + timedelta(hours=1)) == []


async def test_a_renewed_lease_is_not_claimed_again_and_a_lost_one_is_not_renewed(
    db_pool: asyncpg.Pool,
) -> None:
    await seed(db_pool, 2)
    repository = FiringRepository(db_pool)
    a, b = await repository.claim(10, "slow", timedelta(minutes=1), NOW)
    # The slow consumer renews both while handling the first; then both run out and another takes one.
    later = NOW + timedelta(seconds=50)
    assert await repository.renew([a.id, b.id], "slow", timedelta(minutes=1), later) == {a.id, b.id}
    assert await repository.claim(10, "other", timedelta(minutes=1), NOW + timedelta(seconds=90)) == []
    [taken] = await repository.claim(1, "other", timedelta(minutes=1), later + timedelta(minutes=2))
    assert taken.id in {a.id, b.id}
    rest = {a.id, b.id} - {taken.id}
    assert await repository.renew([a.id, b.id], "slow", timedelta(minutes=1), later) == rest


async def test_release_gives_a_firing_back_and_fail_gives_up(db_pool: asyncpg.Pool) -> None:
    await seed(db_pool, 2)
    repository = FiringRepository(db_pool)
    a, b = await repository.claim(10, "me", timedelta(minutes=1), NOW)
    assert await repository.release([a.id], "me", "executor busy") == 1
    assert await repository.fail([b.id], "me", "no template") == 1
    [retried] = await repository.claim(10, "me", timedelta(minutes=1), NOW)
    assert retried.id == a.id and retried.last_error == "executor busy"
    listed, total = await repository.list_for_rule(1, limit=10, offset=0)
    assert total == 2 and [(f.id, f.status) for f in listed] == [(b.id, "failed"), (a.id, "claimed")]


async def test_list_for_rule_pages_newest_first(db_pool: asyncpg.Pool) -> None:
    await seed(db_pool, 5, rule_id=3)
    await seed(db_pool, 2, rule_id=4)
    repository = FiringRepository(db_pool)
    page, total = await repository.list_for_rule(3, limit=2, offset=1)
    assert total == 5 and [f.group_key for f in page] == ["g3", "g2"]


async def test_a_firing_written_twice_is_stored_once(db_pool: asyncpg.Pool) -> None:
    repository = EventRepository(db_pool, dedup_window=WINDOW, writers=[FiringsWriter()])
    events = prepared(make_event())
    batch = Batch(events)
    batch.add(FIRINGS, [firing(events[0])])
    await repository.store_batch(events, batch=batch)
    [fired] = batch.get(FIRINGS) or []
    await FiringRepository(db_pool).write_firings([fired])  # the same firing, e.g. a retried write
    [row] = await rows(db_pool)
    assert row["firing_key"] == fired.key
