"""Delivery against a real local HTTP receiver that fails, refuses connections, then recovers."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import msgspec
import pytest
from prometheus_client import CollectorRegistry

from opsresponder.config import SubscriptionsConfig
from opsresponder.core.clock import utcnow
from opsresponder.outbound.allowlist import UrlAllowlist
from opsresponder.outbound.delivery import DELIVERY_HEADER, SUBSCRIPTION_HEADER, DeliveryWorker
from opsresponder.outbound.metrics import SubscriptionMetrics
from opsresponder.outbound.signing import verify_signature
from opsresponder.store.deliveries import DeliveryQueue
from opsresponder.store.events import EventRepository
from opsresponder.store.subscriptions import SubscriptionRepository, SubscriptionSpec
from tests.factories import make_event, prepared
from tests.integration.outbound.conftest import SECRET, FakeClock, Receiver, make_worker


async def store_events(
    subscriptions: SubscriptionRepository, pool: asyncpg.Pool, n: int, prefix: str = "event"
) -> list[int]:
    """Store `n` new events and their outbox rows in one transaction, as the ingest path does."""
    repository = EventRepository(pool, dedup_window=timedelta(minutes=5), writers=[subscriptions.outbox])
    events = prepared(*(make_event(title=f"{prefix} {i}") for i in range(n)))
    outcomes = await repository.store_batch(events)
    return [o.event_id for o in outcomes]


def delivered_ids(receiver: Receiver) -> list[int]:
    return [e["id"] for r in receiver.requests for e in msgspec.json.decode(r.body)["events"]]


async def subscribe(repo: SubscriptionRepository, receiver: Receiver, **options: object) -> int:
    settings: dict[str, object] = {"batch_max_events": 3, "batch_max_delay_ms": 0, "max_attempts": 10}
    settings.update(options)
    spec = SubscriptionSpec(name="receiver", url=receiver.url, **settings)  # type: ignore[arg-type]
    return (await repo.create(spec, SECRET)).id


async def test_every_event_arrives_signed_after_errors_and_refused_connections(
    repo: SubscriptionRepository, worker: DeliveryWorker, receiver: Receiver, clock: FakeClock,
    sub_pool: asyncpg.Pool,
) -> None:  # fmt: skip
    sid = await subscribe(repo, receiver)
    stored = await store_events(repo, sub_pool, 7)

    receiver.status = 500
    assert await worker.run_once() == 1  # the first batch fails; the subscription backs off
    status = (await repo.statuses([sid]))[sid]
    assert (status.pending, status.delivered, status.consecutive_failures) == (7, 0, 1)
    assert status.last_error is not None and status.last_error.startswith("HTTP 500")
    assert status.retry_at is not None and status.retry_at <= clock.now + timedelta(seconds=1)

    assert await worker.run_once() == 0 or status.retry_at <= clock.now  # nothing before the retry time

    await receiver.down()
    clock.advance(61)
    assert await worker.run_once() == 1
    status = (await repo.statuses([sid]))[sid]
    assert status.last_error is not None and status.last_error.startswith("connection failed")
    assert status.consecutive_failures == 2

    await receiver.up()
    receiver.status = 200
    clock.advance(61)
    assert await worker.run_once() == 3  # 3 + 3 + 1, in one turn
    assert sorted(set(delivered_ids(receiver))) == sorted(stored)
    successful = receiver.requests[-3:]
    assert sorted(
        i for r in successful for i in (e["id"] for e in msgspec.json.decode(r.body)["events"])
    ) == (sorted(stored))
    for request in receiver.requests:
        assert verify_signature(SECRET, request.headers["x-opsresponder-signature"], request.body)
        assert request.headers[SUBSCRIPTION_HEADER.lower()] == str(sid)
        assert request.headers[DELIVERY_HEADER.lower()]
        assert request.headers["content-type"] == "application/json"
        assert msgspec.json.decode(request.body)["subscription_id"] == sid
    status = (await repo.statuses([sid]))[sid]
    assert (status.pending, status.dead, status.delivered, status.consecutive_failures) == (0, 0, 7, 0)
    assert status.failed_attempts == 2
    assert status.last_success_at is not None and status.retry_at is None


async def test_events_go_dead_after_max_attempts_and_can_be_redelivered(
    repo: SubscriptionRepository, receiver: Receiver, clock: FakeClock, sub_pool: asyncpg.Pool
) -> None:
    registry = CollectorRegistry()
    worker = make_worker(repo, clock, registry)
    try:
        sid = await subscribe(repo, receiver, max_attempts=3, batch_max_events=10)
        stored = await store_events(repo, sub_pool, 4)
        receiver.status = 503
        for attempt in range(1, 4):
            assert await worker.run_once() == 1, attempt
            clock.advance(61)
        assert await worker.run_once() == 0  # dead rows are not sent again
        status = (await repo.statuses([sid]))[sid]
        assert (status.pending, status.dead, status.dead_lettered, status.failed_attempts) == (0, 4, 4, 3)
        assert len(receiver.requests) == 3
        assert (
            registry.get_sample_value(
                "opsresponder_subscription_events_total", {"subscription": str(sid), "result": "dead"}
            )
            == 4
        )
        assert (
            registry.get_sample_value(
                "opsresponder_subscription_deliveries_total",
                {"subscription": str(sid), "result": "http_error"},
            )
            == 3
        )

        receiver.status = 204
        assert await repo.redeliver(sid, clock.now) == 4
        assert await worker.run_once() == 1
        assert sorted(set(delivered_ids(receiver))) == sorted(stored)
        status = (await repo.statuses([sid]))[sid]
        assert (status.pending, status.dead, status.delivered) == (0, 0, 4)
    finally:
        await worker.aclose()


async def test_a_batch_waits_until_full_or_its_delay_has_passed(
    repo: SubscriptionRepository, worker: DeliveryWorker, receiver: Receiver, clock: FakeClock,
    sub_pool: asyncpg.Pool,
) -> None:  # fmt: skip
    await subscribe(repo, receiver, batch_max_events=5, batch_max_delay_ms=60_000)
    first = await store_events(repo, sub_pool, 3, "first")
    assert await worker.run_once() == 0  # three of five, and a minute to wait
    second = await store_events(repo, sub_pool, 2, "second")
    assert await worker.run_once() == 1  # full: sent at once
    assert sorted(delivered_ids(receiver)) == sorted(first + second)
    last = await store_events(repo, sub_pool, 1, "last")
    assert await worker.run_once() == 0
    clock.advance(61)
    assert await worker.run_once() == 1
    assert delivered_ids(receiver)[-1:] == last


async def test_two_workers_never_send_the_same_row_at_the_same_time(
    repo: SubscriptionRepository, receiver: Receiver, clock: FakeClock, sub_pool: asyncpg.Pool
) -> None:
    await subscribe(repo, receiver, batch_max_events=5)
    stored = await store_events(repo, sub_pool, 40)
    receiver.delay = 0.05  # long enough that both workers' requests overlap
    workers = [make_worker(repo, clock), make_worker(repo, clock)]
    try:
        while True:
            sent = await asyncio.gather(*(w.run_once() for w in workers))
            if sum(sent) == 0:
                break
    finally:
        for w in workers:
            await w.aclose()
    ids = delivered_ids(receiver)
    assert sorted(ids) == sorted(stored)  # every event once: no row was sent by both
    assert receiver.max_in_flight == 2  # and they did work at the same time


async def test_stopping_mid_request_leaves_the_rows_pending_for_the_next_worker(
    repo: SubscriptionRepository, receiver: Receiver, clock: FakeClock, sub_pool: asyncpg.Pool
) -> None:
    sid = await subscribe(repo, receiver)
    await store_events(repo, sub_pool, 2)
    receiver.delay = 30
    worker = make_worker(repo, clock, poll_interval_ms=10)
    await worker.start()
    await receiver.request_started.wait()
    await worker.stop(grace=0.05)
    status = (await repo.statuses([sid]))[sid]
    assert (status.pending, status.delivered, status.failed_attempts) == (2, 0, 0)
    attempts = await sub_pool.fetch("SELECT attempts FROM events.subscription_outbox")
    assert [r["attempts"] for r in attempts] == [0, 0]

    receiver.delay = 0
    again = make_worker(repo, clock)
    try:
        assert await again.run_once() == 1
    finally:
        await again.aclose()
    assert (await repo.statuses([sid]))[sid].delivered == 2


async def test_a_destination_outside_the_allowlist_is_refused_at_connect_time(
    repo: SubscriptionRepository, receiver: Receiver, clock: FakeClock, sub_pool: asyncpg.Pool
) -> None:
    registry = CollectorRegistry()
    # Saved while allowed, then the allowlist changed (or the name now resolves elsewhere).
    sid = await subscribe(repo, receiver)
    await store_events(repo, sub_pool, 1)
    worker = DeliveryWorker(
        DeliveryQueue(sub_pool),
        UrlAllowlist(networks=["10.0.0.0/8"]),
        SubscriptionMetrics(registry),
        SubscriptionsConfig(),
        clock=clock,
    )
    try:
        assert await worker.run_once() == 1
    finally:
        await worker.aclose()
    assert receiver.requests == []
    status = (await repo.statuses([sid]))[sid]
    assert status.last_error is not None and "not in outbound.allowed_networks" in status.last_error
    assert (
        registry.get_sample_value(
            "opsresponder_subscription_deliveries_total", {"subscription": str(sid), "result": "not_allowed"}
        )
        == 1
    )


async def test_rows_of_removed_events_expire_and_metrics_show_the_backlog(
    repo: SubscriptionRepository, receiver: Receiver, clock: FakeClock, sub_pool: asyncpg.Pool
) -> None:
    registry = CollectorRegistry()
    worker = make_worker(repo, clock, registry)
    try:
        sid = await subscribe(repo, receiver, batch_max_events=10, batch_max_delay_ms=60_000)
        kept, removed = await store_events(repo, sub_pool, 2)
        await sub_pool.execute("DELETE FROM events.events WHERE id = $1", removed)  # as retention does
        assert await worker.run_once() == 0  # not due yet; the maintenance pass ran
        assert registry.get_sample_value("opsresponder_subscription_pending", {"subscription": str(sid)}) == 2
        clock.advance(61)
        assert await worker.run_once() == 1
        assert delivered_ids(receiver) == [kept]
        assert (
            registry.get_sample_value(
                "opsresponder_subscription_events_total", {"subscription": str(sid), "result": "expired"}
            )
            == 1
        )
        assert (await repo.statuses([sid]))[sid].pending == 0
    finally:
        await worker.aclose()


@pytest.mark.parametrize("deleted_first", [True, False])
async def test_orphan_rows_are_swept(
    repo: SubscriptionRepository, worker: DeliveryWorker, receiver: Receiver, sub_pool: asyncpg.Pool,
    deleted_first: bool,
) -> None:  # fmt: skip
    sid = await subscribe(repo, receiver, batch_max_delay_ms=60_000)
    await store_events(repo, sub_pool, 2)
    # A batch committed rows for a subscription that another process deleted meanwhile.
    await sub_pool.execute("DELETE FROM events.subscriptions WHERE id = $1", sid)
    if deleted_first:
        assert await worker.run_once() == 0
    else:
        assert await DeliveryQueue(sub_pool).sweep(dead_before=utcnow()) == (2, 0)
    assert await sub_pool.fetchval("SELECT count(*) FROM events.subscription_outbox") == 0
