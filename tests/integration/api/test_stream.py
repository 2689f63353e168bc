"""The live event stream over real sockets: filters, resume, heartbeats, slow clients, Redis, shutdown.

Until the composition root wires the stream, each test builds the parts it needs as app.py will: the
webhook and stream routes on one Litestar app served by uvicorn on port 0, a real PipelineWorker writing to
the test database, a CommitPublisher on a state backend, and a StreamHub reading from one.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from prometheus_client import CollectorRegistry

from opsresponder.api.common import build_app
from opsresponder.api.context import EventsApiContext
from opsresponder.api.events import get_event, list_events, webhook
from opsresponder.api.server import HttpServer, address_of, bind_tcp
from opsresponder.api.stream import stream_events
from opsresponder.config import StreamConfig
from opsresponder.core.batch import Batch
from opsresponder.live.hub import FLUSH_GROUPS, StreamClient, StreamHub
from opsresponder.live.publisher import CommitPublisher
from opsresponder.live.wire import EVENTS_CHANNEL
from opsresponder.pipeline.intake import Intake
from opsresponder.pipeline.metrics import PipelineMetrics
from opsresponder.pipeline.stages import Correlate, Normalize
from opsresponder.pipeline.worker import PipelineWorker
from opsresponder.rules.filter import EventFilter
from opsresponder.state import MemoryStateBackend, RedisStateBackend, StateBackend
from opsresponder.store.events import EventRepository
from opsresponder.store.stream_cursor import StreamBacklog
from tests.conftest import service_url
from tests.factories import make_event, prepared
from tests.integration.api.conftest import TOKENS, api_settings
from tests.waiting import eventually

AUTH = {"Authorization": f"Bearer {TOKENS['admin']}"}
WAIT = 10.0
QUEUE = StreamConfig().publish_queue_events


class ScoreFromMetadata:
    """A stand-in for the scoring stage: tests choose an event's score through ``metadata.score``."""

    name = "score"

    async def run(self, batch: Batch) -> None:
        for event in batch.events:
            score = event.metadata.get("score")
            if isinstance(score, int | float):
                event.score = float(score)


@dataclass
class Harness:
    url: str
    registry: CollectorRegistry
    publisher: CommitPublisher
    hub: StreamHub
    worker: PipelineWorker
    intake: Intake

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@contextlib.asynccontextmanager
async def serve(
    db_pool: asyncpg.Pool,
    tmp_path: Path,
    *,
    publish_state: StateBackend,
    hub_state: StateBackend | None = None,
    start_publisher: bool = True,
    max_pending_events: int = StreamConfig().publish_queue_events,
    max_body_bytes: int = 65536,
    **stream_options: Any,
) -> AsyncIterator[Harness]:
    """The webhook and the stream on one port, as the wired service will serve them."""
    settings = api_settings(str(tmp_path), tmp_path)
    settings = msgspec.structs.replace(
        settings, api=msgspec.structs.replace(settings.api, max_body_bytes=max_body_bytes)
    )
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    intake = Intake(10_000, metrics)
    repository = EventRepository(db_pool, timedelta(minutes=5))

    async def probe() -> None:
        async with db_pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    worker = PipelineWorker(
        intake,
        repository,
        metrics,
        stages=[Normalize(), Correlate(), ScoreFromMetadata()],
        probe=probe,
        batch_max_events=500,
        batch_max_wait=0.002,
        retry_max_delay=1.0,
    )
    publisher = CommitPublisher(publish_state, registry, max_pending_events=max_pending_events)
    worker.add_commit_listener(publisher)
    hub = StreamHub(
        hub_state or publish_state,
        StreamBacklog(db_pool),
        registry,
        config=StreamConfig(**stream_options),
        retry_after_seconds=5,
    )
    ctx = EventsApiContext(
        api=settings.api,
        intake=intake,
        worker=worker,
        events=repository,
        registry=registry,
        pipeline_metrics=metrics,
        check_database=probe,
        stream_hub=hub,
    )
    # The handlers of build_events_app plus the stream: /api/v1/events/{id} must not shadow it.
    app = build_app(ctx, "test", "stream test", [webhook, list_events, get_event, stream_events])
    server = HttpServer(app, bind_tcp("127.0.0.1", 0, "test"), graceful_seconds=2)
    url = f"http://{address_of(server.socket)}"
    await hub.start()
    if start_publisher:
        await publisher.start()
    worker_task = asyncio.create_task(worker.run())
    server_task = asyncio.create_task(server.serve())
    try:
        yield Harness(url, registry, publisher, hub, worker, intake)
    finally:
        # The composition root's order: end the streams, stop serving, then the pipeline and publisher.
        await hub.close()
        server.stop()
        await asyncio.wait([server_task])
        worker_task.cancel()
        await asyncio.wait([worker_task])
        await publisher.stop()
        server_task.result()


@pytest.fixture
async def memory_state() -> AsyncIterator[MemoryStateBackend]:
    async with MemoryStateBackend() as state:
        yield state


def body(title: str, **fields: Any) -> dict[str, Any]:
    return {
        "source": "stream-test",
        "event_type": "threshold_breach",
        "severity": "high",
        "title": title,
        "host": "web-1",
        **fields,
    }


async def post(client: httpx.AsyncClient, *events: dict[str, Any]) -> list[int]:
    """Ingest events through the webhook; returns their ids (the answer comes after the commit)."""
    response = await client.post("/api/v1/events/webhook", json=list(events), headers=AUTH)
    assert response.status_code == 200, response.text
    return [r["event_id"] for r in response.json()["results"]]


@dataclass
class Sse:
    id: int
    event: str
    data: dict[str, Any]


class SseReader:
    """Parses a text/event-stream response line by line; comments are kept apart."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()
        self.comments: list[str] = []

    async def next(self, timeout: float = WAIT) -> Sse | str | None:
        """The next message (Sse), comment (str), or None at the end of the stream."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if line.startswith(":"):
                    self.comments.append(line)
                    return line
                if line == "":
                    if fields:
                        return Sse(int(fields["id"]), fields["event"], msgspec.json.decode(fields["data"]))
                    continue
                name, _, value = line.partition(": ")
                fields[name] = value
        return None

    async def events(self, n: int, timeout: float = WAIT) -> list[Sse]:
        """The next `n` events, skipping comments."""
        out: list[Sse] = []
        async with asyncio.timeout(timeout):
            while len(out) < n:
                item = await self.next()
                assert item is not None, f"the stream ended after {len(out)} of {n} events"
                if isinstance(item, Sse):
                    out.append(item)
        return out

    async def until_comment(self, timeout: float = WAIT) -> list[Sse]:
        """The events before the next comment (a keepalive)."""
        out: list[Sse] = []
        async with asyncio.timeout(timeout):
            while True:
                item = await self.next()
                assert item is not None, "the stream ended"
                if isinstance(item, str):
                    return out
                out.append(item)


@contextlib.asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> AsyncIterator[SseReader]:
    """A stream whose response headers arrived: the server has registered it."""
    async with client.stream(
        "GET", "/api/v1/events/stream", params=params, headers={**AUTH, **(headers or {})}
    ) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SseReader(response)


async def test_filters_match_live_events(
    db_pool: asyncpg.Pool, tmp_path: Path, memory_state: MemoryStateBackend
) -> None:
    async with (
        serve(db_pool, tmp_path, publish_state=memory_state, heartbeat_seconds=0.3) as h,
        httpx.AsyncClient(base_url=h.url, timeout=WAIT) as client,
        open_stream(client) as everything,
        open_stream(client, {"severity": "critical,high", "host": "web-1"}) as severe_web1,
        open_stream(client, {"event_type": "disk_space_critical", "service": "db"}) as disk_db,
        open_stream(client, {"min_score": "0.5"}) as scored,
    ):
        sent = [
            body("a", severity="critical"),
            body("b", severity="low"),
            body("c", severity="high", host="web-2"),
            body("d", event_type="disk_space_critical", service="db", severity="medium"),
            body("e", event_type="disk_space_critical", service="web"),
            body("f", metadata={"score": 0.9}, severity="info"),
            body("g", metadata={"score": 0.2}),
            body("h", metadata={"score": 0.5}, event_type="disk_space_critical", service="db"),
        ]
        ids = await post(client, *sent)
        by_title = dict(zip("abcdefgh", ids, strict=True))

        all_events = await everything.events(len(sent))
        assert [e.id for e in all_events] == ids
        assert {e.event for e in all_events} == {"event"}
        first = all_events[0].data
        assert first["title"] == "a" and first["severity"] == "critical" and "raw" not in first
        assert first["processed_at"] is not None and first["correlation_id"]

        # Every stream saw the same fan-out; what it wrote before its next keepalive is all it matched.
        assert [e.data["title"] for e in await severe_web1.until_comment()] == ["a", "e", "g", "h"]
        assert [e.data["title"] for e in await disk_db.until_comment()] == ["d", "h"]
        # Unscored events never match min_score; 0.5 itself does.
        got = await scored.until_comment()
        assert [(e.data["title"], e.data["score"]) for e in got] == [("f", 0.9), ("h", 0.5)]
        assert by_title["f"] == got[0].id


async def test_bad_filters_and_missing_token_are_refused(
    db_pool: asyncpg.Pool, tmp_path: Path, memory_state: MemoryStateBackend
) -> None:
    async with (
        serve(db_pool, tmp_path, publish_state=memory_state) as h,
        httpx.AsyncClient(base_url=h.url, timeout=WAIT) as client,
    ):
        path = "/api/v1/events/stream"
        assert (await client.get(path)).status_code == 401
        assert (await client.get(path, params={"severity": "urgent"}, headers=AUTH)).status_code == 400
        assert (await client.get(path, params={"min_score": "high"}, headers=AUTH)).status_code == 400
        bad_cursor = await client.get(path, headers={**AUTH, "Last-Event-ID": "abc"})
        assert bad_cursor.status_code == 400
        assert bad_cursor.json()["field"] == "last-event-id"
        assert bad_cursor.json()["detail"].startswith("last-event-id: ")
        assert (await client.get(path, params={"last_event_id": "-1"}, headers=AUTH)).status_code == 400
        ingest_only = {"Authorization": f"Bearer {TOKENS['ingest']}"}
        assert (await client.get(path, headers=ingest_only)).status_code == 403
        assert h.hub.client_count == 0


async def test_resume_replays_what_was_missed_then_goes_live(
    db_pool: asyncpg.Pool, tmp_path: Path, memory_state: MemoryStateBackend
) -> None:
    # A page of 2 makes the replay several queries long, with live events arriving meanwhile.
    async with (
        serve(db_pool, tmp_path, publish_state=memory_state, replay_page=2) as h,
        httpx.AsyncClient(base_url=h.url, timeout=WAIT) as client,
    ):
        async with open_stream(client) as first:
            before = await post(client, body("1"), body("2"))
            seen = await first.events(2)
        assert [e.id for e in seen] == before
        last_id = seen[-1].id
        await eventually(lambda: h.hub.client_count == 0)

        missed = await post(client, body("3"), body("4"), body("5", severity="low"), body("6"))
        async with open_stream(client, headers={"Last-Event-ID": str(last_id)}) as resumed:
            live = await post(client, body("7"), body("8"))
            got = await resumed.events(len(missed) + len(live))
            later = await post(client, body("9"))
            got += await resumed.events(1)
        assert [e.id for e in got] == missed + live + later
        assert [e.data["title"] for e in got] == ["3", "4", "5", "6", "7", "8", "9"]
        assert h.metric("opsresponder_stream_events_replayed_total") == len(missed)

        # Filters apply to the replay too; the query parameter works where a header cannot be set.
        async with open_stream(client, {"severity": "low", "last_event_id": str(last_id)}) as low:
            assert [e.data["title"] for e in await low.events(1)] == ["5"]


async def test_events_both_replayed_and_published_late_are_sent_once(
    db_pool: asyncpg.Pool, tmp_path: Path, memory_state: MemoryStateBackend
) -> None:
    # With the publisher held back, committed events are in the database but not yet published: a client
    # resuming now gets them from the replay, then again from pub/sub, and must see each once.
    async with (
        serve(
            db_pool, tmp_path, publish_state=memory_state, start_publisher=False, heartbeat_seconds=0.3
        ) as h,
        httpx.AsyncClient(base_url=h.url, timeout=WAIT) as client,
    ):
        ids = await post(client, body("1"), body("2"), body("3"))
        async with open_stream(client, headers={"Last-Event-ID": str(ids[0])}) as resumed:
            replayed = await resumed.events(2)
            await h.publisher.start()
            newer = await post(client, body("4"))
            got = replayed + await resumed.until_comment()
        assert [e.id for e in got] == ids[1:] + newer


async def test_idle_stream_gets_heartbeats(
    db_pool: asyncpg.Pool, tmp_path: Path, memory_state: MemoryStateBackend
) -> None:
    async with (
        serve(db_pool, tmp_path, publish_state=memory_state, heartbeat_seconds=0.1) as h,
        httpx.AsyncClient(base_url=h.url, timeout=WAIT) as client,
        open_stream(client) as stream,
    ):
        started = time.monotonic()
        assert await stream.next() == ": keepalive"
        assert await stream.next() == ": keepalive"
        assert time.monotonic() - started >= 0.15
        assert h.metric("opsresponder_stream_clients") == 1


def _slow_client(url: str, path: str) -> socket.socket:
    """A client that sends its request and then never reads: a tiny receive buffer fills at once."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {AUTH['Authorization']}\r\n\r\n"
    sock.sendall(request.encode())
    return sock


async def test_slow_client_is_cut_off_without_slowing_anyone(
    db_pool: asyncpg.Pool, tmp_path: Path, memory_state: MemoryStateBackend
) -> None:
    async with (
        serve(db_pool, tmp_path, publish_state=memory_state, client_buffer=20, max_body_bytes=1 << 20) as h,
        httpx.AsyncClient(base_url=h.url, timeout=WAIT) as client,
        open_stream(client) as reader,
    ):
        slow = await asyncio.to_thread(_slow_client, h.url, "/api/v1/events/stream")
        try:
            await eventually(lambda: h.hub.client_count == 2)
            # Large events fill the kernel's socket buffers quickly; keep ingesting until the server gives
            # up on the client that does not read. Every POST is answered: the pipeline never waits on it.
            padding = "x" * 60_000
            ids: list[int] = []
            received: list[Sse] = []
            for round_ in range(200):
                ids += await post(client, *(body(f"{round_}-{i}", description=padding) for i in range(10)))
                received += await reader.events(len(ids) - len(received))
                if h.metric("opsresponder_stream_clients_disconnected_total", reason="slow"):
                    break
            assert h.metric("opsresponder_stream_clients_disconnected_total", reason="slow") == 1
            await eventually(lambda: h.hub.client_count == 1)
            assert h.metric("opsresponder_stream_clients") == 1
            ids += await post(client, body("after"))
            received += await reader.events(1)
            assert [e.id for e in received] == ids  # the reading client missed nothing
            # The cut-off client's connection is closed: after what was buffered, it reads the end.
            slow.settimeout(WAIT)
            while await asyncio.to_thread(slow.recv, 1 << 20):
                pass
        finally:
            slow.close()


async def test_hub_sees_events_published_by_another_process_through_redis(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    redis_url = service_url("OPSRESPONDER_TEST_REDIS_URL", "Redis")
    prefix = f"opsresponder-test-{uuid.uuid4().hex[:8]}:"
    # Two backends, two connections: process A ingests and publishes, process B's hub serves the client.
    async with (
        RedisStateBackend(redis_url, prefix) as state_a,
        RedisStateBackend(redis_url, prefix) as state_b,
        serve(db_pool, tmp_path, publish_state=state_a, hub_state=state_b) as h,
        httpx.AsyncClient(base_url=h.url, timeout=WAIT) as client,
        open_stream(client) as stream,
    ):
        ids = await post(client, body("1"), body("2", severity="critical"))
        ids += await post(client, body("3"))
        assert [e.id for e in await stream.events(3)] == ids
        assert h.metric("opsresponder_stream_published_events_total") == 3


async def test_a_lost_batch_makes_clients_resume_from_the_database(
    db_pool: asyncpg.Pool, tmp_path: Path, memory_state: MemoryStateBackend
) -> None:
    async with (
        serve(db_pool, tmp_path, publish_state=memory_state, max_pending_events=1) as h,
        httpx.AsyncClient(base_url=h.url, timeout=WAIT) as client,
    ):
        async with open_stream(client) as stream:
            first = await post(client, body("1"))
            assert [e.id for e in await stream.events(1)] == first
            # With publishing paused, the queue (room for one event) takes "2" and must drop "3".
            await h.publisher.stop()
            second = await post(client, body("2"))
            lost = await post(client, body("3"))
            await h.publisher.start()
            assert [e.id for e in await stream.events(1)] == second
            after = await post(client, body("4"))
            # The hub sees the publisher's sequence jump and ends the stream instead of leaving a hole.
            assert await stream.next() is None
        assert h.metric("opsresponder_stream_publish_dropped_total", reason="publish_queue_full") == 1
        assert h.metric("opsresponder_stream_resyncs_total", reason="publisher_gap") == 1
        assert h.metric("opsresponder_stream_clients_disconnected_total", reason="resync") == 1
        async with open_stream(client, headers={"Last-Event-ID": str(second[0])}) as resumed:
            assert [e.id for e in await resumed.events(2)] == lost + after


async def test_close_ends_every_stream_and_refuses_new_ones(
    db_pool: asyncpg.Pool, tmp_path: Path, memory_state: MemoryStateBackend
) -> None:
    async with (
        serve(db_pool, tmp_path, publish_state=memory_state) as h,
        httpx.AsyncClient(base_url=h.url, timeout=WAIT) as client,
    ):
        async with open_stream(client) as one, open_stream(client, {"severity": "info"}) as two:
            started = time.monotonic()
            await h.hub.close()
            assert await one.next() is None
            assert await two.next() is None
            assert time.monotonic() - started < 2
        assert h.metric("opsresponder_stream_clients_disconnected_total", reason="shutdown") == 2
        refused = await client.get("/api/v1/events/stream", headers=AUTH)
        assert refused.status_code == 503
        assert refused.headers["retry-after"]


async def test_clients_beyond_the_limit_are_refused(
    db_pool: asyncpg.Pool, tmp_path: Path, memory_state: MemoryStateBackend
) -> None:
    async with (
        serve(db_pool, tmp_path, publish_state=memory_state, max_clients=1) as h,
        httpx.AsyncClient(base_url=h.url, timeout=WAIT) as client,
        open_stream(client),
    ):
        refused = await client.get("/api/v1/events/stream", headers=AUTH)
        assert refused.status_code == 503
        assert h.metric("opsresponder_stream_clients_refused_total", reason="max_clients") == 1


async def test_commits_within_a_flush_interval_reach_a_client_in_one_write(
    db_pool: asyncpg.Pool, memory_state: MemoryStateBackend
) -> None:
    # The client's group is flushed 1/FLUSH_GROUPS of the interval after the first commit: 0.2 s here.
    hub = StreamHub(
        memory_state,
        StreamBacklog(db_pool),
        CollectorRegistry(),
        config=StreamConfig(flush_interval_ms=1000),
        retry_after_seconds=5,
    )
    publisher = CommitPublisher(memory_state, CollectorRegistry(), max_pending_events=QUEUE)
    await hub.start()
    await publisher.start()
    try:
        client = hub.connect(EventFilter(include_suppressed=True))
        for event_id in (1, 2):
            [event] = prepared(make_event(title=f"commit {event_id}", host=f"h{event_id}"))
            event.id = event_id
            publisher([event])
            await eventually(lambda: publisher.pending_events == 0)
        # Published and buffered, but not flushed yet: the response task is not woken for each commit.
        assert not await client.wait(0.05)
        assert await client.wait(2)
        batches = client.take()
        assert [h.id for b in batches for h in b.headers] == [1, 2]  # both commits, one socket write
    finally:
        await publisher.stop()
        await hub.close()


async def test_client_groups_are_flushed_in_turn_each_within_one_interval(
    db_pool: asyncpg.Pool, memory_state: MemoryStateBackend
) -> None:
    interval = 1.0
    backlog = StreamBacklog(db_pool)
    hub = StreamHub(
        memory_state,
        backlog,
        CollectorRegistry(),
        config=StreamConfig(flush_interval_ms=interval * 1000),
        retry_after_seconds=5,
    )
    publisher = CommitPublisher(memory_state, CollectorRegistry(), max_pending_events=QUEUE)
    await hub.start()
    await publisher.start()
    try:
        clients = [hub.connect(EventFilter(include_suppressed=True)) for _ in range(FLUSH_GROUPS)]
        assert sorted(c.flush_group for c in clients) == list(range(FLUSH_GROUPS))  # one per group
        loop = asyncio.get_running_loop()
        [event] = prepared(make_event(title="one commit for every client"))
        event.id = 1
        published_at = loop.time()
        publisher([event])

        async def woken_after(client: StreamClient) -> float:
            assert await client.wait(2 * interval)
            return loop.time() - published_at

        delays = sorted(await asyncio.gather(*(woken_after(c) for c in clients)))
        # Each group at its own tick, the last one within the interval: never all sockets at once.
        tick = interval / FLUSH_GROUPS
        for i, delay in enumerate(delays):
            assert delay >= (i + 1) * tick - 0.02, delays
        assert delays[-1] <= interval + 0.3, delays
        assert all([h.id for b in c.take() for h in b.headers] == [1] for c in clients)
    finally:
        await publisher.stop()
        await hub.close()


async def test_a_message_that_is_not_a_published_batch_is_counted_and_ignored(
    db_pool: asyncpg.Pool, memory_state: MemoryStateBackend
) -> None:
    # Anyone who can publish on the state backend's channel can send anything; the hub goes on.
    registry = CollectorRegistry()
    hub = StreamHub(
        memory_state, StreamBacklog(db_pool), registry, config=StreamConfig(), retry_after_seconds=5
    )
    publisher = CommitPublisher(memory_state, CollectorRegistry(), max_pending_events=QUEUE)
    await hub.start()
    await publisher.start()
    try:
        client = hub.connect(EventFilter(include_suppressed=True))
        for garbage in (b"not json", b'{"p": "\x80"}'):  # the second is not UTF-8 inside a string
            await memory_state.publish(EVENTS_CHANNEL, garbage)
        await eventually(
            lambda: registry.get_sample_value("opsresponder_stream_bad_messages_total") == 2,
            what="both messages counted",
        )
        [event] = prepared(make_event(title="after the garbage"))
        event.id = 1
        publisher([event])
        assert await client.wait(5)
        assert [h.id for b in client.take() for h in b.headers] == [1]
    finally:
        await publisher.stop()
        await hub.close()
