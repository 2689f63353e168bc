"""The outbox on the ingest path: rows in the events' own transaction, filters, no cost without matches."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import asyncpg
import pytest

from opsresponder.core.batch import Batch
from opsresponder.core.event import Event
from opsresponder.core.severity import Severity
from opsresponder.rules.filter import EventFilter
from opsresponder.store.events import EventRepository
from opsresponder.store.subscription_outbox import SubscriptionOutbox
from opsresponder.store.subscriptions import SubscriptionRepository, SubscriptionSpec
from tests.factories import make_event, prepared


@pytest.fixture
def events_repo(repo: SubscriptionRepository, sub_pool: asyncpg.Pool) -> EventRepository:
    """The real repository, wired as the service does: its batch transaction writes the outbox rows too."""
    return EventRepository(sub_pool, dedup_window=timedelta(minutes=5), writers=[repo.outbox])


async def write(outbox: SubscriptionOutbox, conn: asyncpg.Connection, stored: list[Event]) -> None:
    await outbox.write(conn, Batch(stored), stored)


def spec(name: str, **filters: Any) -> SubscriptionSpec:
    return SubscriptionSpec(name=name, url="http://127.0.0.1:9/hook", filters=EventFilter(**filters))


async def outbox(pool: asyncpg.Pool) -> set[tuple[int, int]]:
    rows = await pool.fetch("SELECT subscription_id, event_id FROM events.subscription_outbox")
    return {(r["subscription_id"], r["event_id"]) for r in rows}


async def test_rows_follow_each_subscriptions_filters(
    repo: SubscriptionRepository, events_repo: EventRepository, sub_pool: asyncpg.Pool
) -> None:
    everything = await repo.create(spec("all"), None)
    critical_db = await repo.create(spec("critical-db", severity=("critical",), host="db-1"), None)
    disks = await repo.create(spec("disks", event_type="disk_full", service="pg"), None)
    scored = await repo.create(spec("scored", min_score=5.0), None)
    await repo.create(spec("inactive"), None)
    inactive = (await repo.list_all())[-1]
    await repo.update(inactive.id, SubscriptionSpec(name="inactive", url=inactive.url, active=False))

    batch = prepared(
        make_event(severity=Severity.CRITICAL, host="db-1", title="a"),
        make_event(severity=Severity.CRITICAL, host="db-2", title="b"),
        make_event(event_type="disk_full", service="pg", title="c", score=5.0),
        make_event(title="d", score=4.9),
        make_event(title="e", suppressed_reason="maintenance window"),
    )
    outcomes = await events_repo.store_batch(batch)
    a, b, c, d, _e = (o.event_id for o in outcomes)
    assert await outbox(sub_pool) == {
        (everything.id, a), (everything.id, b), (everything.id, c), (everything.id, d),
        (critical_db.id, a),
        (disks.id, c),
        (scored.id, c),
    }  # fmt: skip


async def test_duplicates_add_no_rows(repo: SubscriptionRepository, events_repo: EventRepository,
                                      sub_pool: asyncpg.Pool) -> None:  # fmt: skip
    await repo.create(spec("all"), None)
    first = await events_repo.store_batch(prepared(make_event(), make_event()))
    again = await events_repo.store_batch(prepared(make_event()))
    assert [o.duplicate for o in first] == [False, True]
    assert again[0].duplicate
    assert len(await outbox(sub_pool)) == 1


async def test_a_rolled_back_transaction_leaves_no_rows(
    repo: SubscriptionRepository, sub_pool: asyncpg.Pool
) -> None:
    await repo.create(spec("all"), None)
    events = prepared(make_event(), make_event(title="other"))
    for i, event in enumerate(events):
        event.id = 10_000 + i
    async with sub_pool.acquire() as proxy:
        conn = cast(asyncpg.Connection, proxy)

        async def fail_after_enqueue() -> None:
            async with conn.transaction():
                await write(repo.outbox, conn, events)
                assert len(await conn.fetch("SELECT 1 FROM events.subscription_outbox")) == 2
                raise RuntimeError("the batch failed after the outbox rows were written")

        with pytest.raises(RuntimeError):
            await fail_after_enqueue()
        assert await outbox(sub_pool) == set()
        # Committed with its transaction, the same call keeps its rows.
        async with conn.transaction():
            await write(repo.outbox, conn, events)
    assert len(await outbox(sub_pool)) == 2


class CountingConnection:
    """Counts the statements sent through a connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self.statements = 0

    async def fetch(self, *args: Any) -> Any:
        self.statements += 1
        return await self._conn.fetch(*args)

    async def execute(self, *args: Any) -> Any:
        self.statements += 1
        return await self._conn.execute(*args)


async def test_without_matching_subscriptions_no_query_is_sent(
    repo: SubscriptionRepository, sub_pool: asyncpg.Pool
) -> None:
    events = prepared(make_event())
    events[0].id = 1
    async with sub_pool.acquire() as raw:
        conn: Any = CountingConnection(cast(asyncpg.Connection, raw))
        await write(repo.outbox, conn, events)
        assert conn.statements == 1  # the first call loads the (empty) filters...
        for _ in range(100):
            await write(repo.outbox, conn, events)
        assert conn.statements == 1  # ...then no subscription costs nothing

        await repo.create(spec("elsewhere", host="no-such-host"), None)
        await write(repo.outbox, conn, events)
        await write(repo.outbox, conn, events)
        assert conn.statements == 2  # one reload after the change, and no insert: nothing matched
        await write(repo.outbox, conn, [])
        assert conn.statements == 2  # no new event (a batch of duplicates): not even a cache check

        await repo.create(spec("everything"), None)
        await write(repo.outbox, conn, events)
        assert conn.statements == 4  # a reload, and the one insert for the whole batch


async def test_a_subscription_deleted_behind_the_cache_gets_no_rows_and_fails_nothing(
    repo: SubscriptionRepository, sub_pool: asyncpg.Pool, events_repo: EventRepository
) -> None:
    await repo.create(spec("all"), None)
    await events_repo.store_batch(prepared(make_event(title="loads the cache")))
    # Another process deletes it: this process's cache still has it for up to FILTER_CACHE_SECONDS.
    await sub_pool.execute("TRUNCATE events.subscriptions")
    outcomes = await events_repo.store_batch(prepared(make_event(title="after the delete")))
    rows = await outbox(sub_pool)
    assert outcomes[0].event_id not in {event_id for _, event_id in rows}


async def test_deleting_a_subscription_removes_its_rows(
    repo: SubscriptionRepository, events_repo: EventRepository, sub_pool: asyncpg.Pool
) -> None:
    keep = await repo.create(spec("keep"), None)
    drop = await repo.create(spec("drop"), None)
    await events_repo.store_batch(prepared(make_event()))
    assert await repo.delete(drop.id)
    assert not await repo.delete(drop.id)
    assert {s for s, _ in await outbox(sub_pool)} == {keep.id}


async def test_a_pattern_filter_selects_the_events_of_one_template(
    repo: SubscriptionRepository, events_repo: EventRepository, sub_pool: asyncpg.Pool
) -> None:
    disk = {"id": "0123456789abcdef", "template": "Disk <PATH> full"}
    cpu = {"id": "fedcba9876543210", "template": "CPU high"}
    created = await repo.create(spec("disks", pattern=disk["id"]), None)
    assert created.filters.pattern == disk["id"]
    assert (await repo.get(created.id)).filters.pattern == disk["id"]  # type: ignore[union-attr]
    batch = prepared(
        make_event(title="Disk /a full", metadata={"pattern": disk}),
        make_event(title="CPU high", metadata={"pattern": cpu}),
        make_event(title="no template"),
    )
    outcomes = await events_repo.store_batch(batch)
    assert await outbox(sub_pool) == {(created.id, outcomes[0].event_id)}
    updated = await repo.update(created.id, spec("disks"))
    assert updated is not None and updated.filters.pattern is None
