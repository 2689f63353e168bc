"""The notify stage: encoding, sequence numbers, the bounded queue, and stopping."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from opsresponder.config import StreamConfig
from opsresponder.core.event import Event
from opsresponder.core.severity import Severity
from opsresponder.live.publisher import CommitPublisher
from opsresponder.live.wire import EVENTS_CHANNEL, StreamMessage, build_message, decode_message, encode_event
from opsresponder.state import MemoryStateBackend, RedisStateBackend, Subscription

_next_id = iter(range(1, 1_000_000))
QUEUE = StreamConfig().publish_queue_events


def committed(title: str = "disk full", **fields: object) -> Event:
    now = datetime.now(UTC)
    values: dict[str, object] = {
        "source": "test",
        "source_type": "webhook",
        "event_type": "disk_space_critical",
        "severity": Severity.HIGH,
        "title": title,
        "occurred_at": now,
        "received_at": now,
        "processed_at": now,
        "id": next(_next_id),
        "fingerprint": uuid.uuid4().hex,
        "correlation_id": uuid.uuid4(),
        "raw": "the raw input\nwith a newline",
        **fields,
    }
    return msgspec.convert(values, Event, from_attributes=False, strict=False)


def dropped(registry: CollectorRegistry, reason: str) -> float:
    value = registry.get_sample_value("opsresponder_stream_publish_dropped_total", {"reason": reason})
    return value or 0.0


@pytest.fixture
async def state() -> AsyncIterator[MemoryStateBackend]:
    async with MemoryStateBackend() as backend:
        yield backend


async def received(sub: Subscription, n: int) -> list[StreamMessage]:
    messages: list[StreamMessage] = []
    async with asyncio.timeout(5):
        async for _channel, data in sub:
            messages.append(decode_message(data))
            if len(messages) == n:
                break
    return messages


def test_encoded_event_has_every_field_but_raw_on_one_line() -> None:
    event = committed(description="line one\nline two", metadata={"raw": "kept", "n": 1})
    data = encode_event(event)
    assert b"\n" not in data  # one SSE data: line
    decoded = msgspec.json.decode(data)
    assert "raw" not in decoded
    assert decoded["metadata"] == {"raw": "kept", "n": 1}
    assert decoded["id"] == event.id
    assert set(decoded) == set(Event.__struct_fields__) - {"raw"}
    expected = msgspec.to_builtins(event)
    del expected["raw"]
    assert decoded == expected


def test_message_round_trip_keeps_events_as_raw_json() -> None:
    events = [committed(), committed()]
    data = build_message("abc", 7, [encode_event(e) for e in events])
    message = decode_message(data)
    assert (message.p, message.s) == ("abc", 7)
    assert [msgspec.json.decode(raw)["id"] for raw in message.e] == [e.id for e in events]


async def test_batches_are_published_in_commit_order_with_consecutive_sequences(
    state: MemoryStateBackend,
) -> None:
    registry = CollectorRegistry()
    publisher = CommitPublisher(state, registry, max_pending_events=QUEUE)
    batches = [[committed(), committed()], [committed()], [committed(), committed(), committed()]]
    async with state.subscribe([EVENTS_CHANNEL]) as sub:
        await publisher.start()
        for batch in batches:
            publisher(batch)
        publisher([])  # a batch of only duplicates publishes nothing and takes no sequence number
        messages = await received(sub, 3)
        await publisher.stop()
    assert [m.s for m in messages] == [1, 2, 3]
    assert {m.p for m in messages} == {publisher.publisher_id}
    ids = [msgspec.json.decode(raw)["id"] for m in messages for raw in m.e]
    assert ids == [e.id for batch in batches for e in batch]
    assert registry.get_sample_value("opsresponder_stream_published_events_total") == 6


async def test_a_full_queue_drops_and_counts_without_waiting(state: MemoryStateBackend) -> None:
    registry = CollectorRegistry()
    publisher = CommitPublisher(state, registry, max_pending_events=3)
    async with state.subscribe([EVENTS_CHANNEL]) as sub:
        # Not started: nothing drains the queue, so the second batch cannot fit. The call is synchronous:
        # that it returns at all is the proof that the worker never waits on it.
        publisher([committed(), committed()])
        publisher([committed(), committed()])
        publisher([committed()])
        assert publisher.pending_events == 3
        assert dropped(registry, "publish_queue_full") == 2
        await publisher.start()
        messages = await received(sub, 2)
        await publisher.stop()
    # The dropped batch still took sequence number 2: subscribers see the hole and resynchronise.
    assert [m.s for m in messages] == [1, 3]


async def test_stop_publishes_what_is_queued(state: MemoryStateBackend) -> None:
    publisher = CommitPublisher(state, CollectorRegistry(), max_pending_events=QUEUE)
    async with state.subscribe([EVENTS_CHANNEL]) as sub:
        await publisher.start()
        publisher([committed()])
        publisher([committed()])
        await publisher.stop()
        assert publisher.pending_events == 0
        messages = await received(sub, 2)
    assert [m.s for m in messages] == [1, 2]
    await publisher.stop()  # idempotent


async def test_backend_failures_are_counted_and_publishing_goes_on() -> None:
    registry = CollectorRegistry()
    # Never started: every publish fails with StateError, as when Redis is unreachable.
    backend = RedisStateBackend("redis://127.0.0.1:1/0")
    publisher = CommitPublisher(backend, registry, max_pending_events=QUEUE)
    await publisher.start()
    publisher([committed(), committed()])
    publisher([committed()])
    await publisher.stop()
    assert dropped(registry, "publish_failed") == 3
    assert publisher.pending_events == 0


async def test_stop_gives_up_after_its_timeout() -> None:
    class _Stuck(MemoryStateBackend):
        """A backend whose publish never returns, like a Redis that stopped answering."""

        async def publish(self, channel: str, message: bytes) -> None:
            await asyncio.Event().wait()

    publisher = CommitPublisher(_Stuck(), CollectorRegistry(), max_pending_events=QUEUE)
    await publisher.start()
    publisher([committed()])
    async with asyncio.timeout(5):
        await publisher.stop(timeout=0.05)
    assert publisher.pending_events == 1


def test_rejects_a_queue_without_room() -> None:
    with pytest.raises(ValueError, match="max_pending_events"):
        CommitPublisher(MemoryStateBackend(), CollectorRegistry(), max_pending_events=0)


async def test_without_an_audience_batches_are_skipped_without_a_gap_in_sequences(
    state: MemoryStateBackend,
) -> None:
    listening = False
    publisher = CommitPublisher(
        state, CollectorRegistry(), max_pending_events=QUEUE, audience=lambda: listening
    )
    await publisher.start()
    async with state.subscribe([EVENTS_CHANNEL]) as sub:
        publisher([committed("nobody listens")])
        listening = True
        publisher([committed("someone listens")])
        [message] = await received(sub, 1)
    await publisher.stop()
    # The skipped batch took no sequence number: a subscriber sees no gap and does not resynchronise.
    assert message.s == 1
    assert [msgspec.json.decode(e)["title"] for e in message.e] == ["someone listens"]


def test_an_audience_is_refused_for_a_shared_backend() -> None:
    with pytest.raises(ValueError, match="shared"):
        CommitPublisher(
            RedisStateBackend("redis://127.0.0.1:1/0"),
            CollectorRegistry(),
            max_pending_events=QUEUE,
            audience=lambda: False,
        )
