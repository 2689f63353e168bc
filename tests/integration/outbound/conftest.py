"""Fixtures of the subscription tests: clean tables, a fake clock and a real local HTTP receiver."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg
import msgspec
import pytest
from prometheus_client import CollectorRegistry

from opsresponder.config import SubscriptionsConfig
from opsresponder.core.clock import utcnow
from opsresponder.outbound.allowlist import UrlAllowlist
from opsresponder.outbound.delivery import DeliveryWorker
from opsresponder.outbound.metrics import SubscriptionMetrics
from opsresponder.store.deliveries import DeliveryQueue
from opsresponder.store.subscriptions import SubscriptionRepository
from tests.waiting import WAIT_SECONDS

SECRET = "receiver-secret-0123456789"


class FakeClock:
    """Starts a second ahead of the real time and moves on demand.

    The outbox's own timestamps come from PostgreSQL's ``now()``; starting ahead keeps rows written during
    the test (with no batch delay) due at once, as they would be for a worker on the real clock.
    """

    def __init__(self) -> None:
        self.now = utcnow() + timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A small HTTP/1.1 server (keep-alive, Content-Length bodies) on 127.0.0.1, port chosen by the OS.

    ``status`` is the answer to every request (``statuses``, when not empty, gives the next ones first;
    ``answer``, when set, is every answer's body); ``delay`` holds each answer back; `down` closes the
    listening socket and every open connection so that clients get "connection refused", and `up` listens
    again on the same port.
    """

    status: int = 200
    statuses: list[int] = field(default_factory=list)
    answer: bytes | None = None
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    request_started: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def up(self) -> None:
        self._released.clear()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None
        # Server.wait_closed does not wait for the connection handlers (before Python 3.12.1): wait for
        # each to end on its own, so that none is left to be cancelled with the test's loop.
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=WAIT_SECONDS)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.in_flight += 1
                self.request_started.set()
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    if self.delay:
                        # Released early by `down`: a handler must end by itself, never cancelled (the
                        # stream server's callback reports a cancelled handler as an unobserved error).
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._released.wait(), self.delay)
                    self.requests.append(Received(request_line.split(" ")[1], headers, body))
                    status = self.statuses.pop(0) if self.statuses else self.status
                finally:
                    self.in_flight -= 1
                answer = (
                    self.answer if self.answer is not None else b"ok" if status < 300 else b"receiver says no"
                )
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Length: {len(answer)}\r\n\r\n".encode() + answer
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed its keep-alive connection
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.up()
    yield r
    await r.down()


@pytest.fixture
async def sub_pool(db_pool: asyncpg.Pool) -> asyncpg.Pool:
    """The test pool with the subscription tables emptied (db_pool empties only the event tables)."""
    async with db_pool.acquire() as conn:
        await conn.execute("TRUNCATE events.subscriptions, events.subscription_outbox")
    return db_pool


@pytest.fixture
def repo(sub_pool: asyncpg.Pool) -> SubscriptionRepository:
    return SubscriptionRepository(sub_pool, SubscriptionsConfig())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


LOCAL_ALLOWLIST = UrlAllowlist(networks=["127.0.0.0/8"])


def make_worker(
    repo: SubscriptionRepository,
    clock: FakeClock,
    registry: CollectorRegistry | None = None,
    **options: object,
) -> DeliveryWorker:
    """A delivery worker on the repository's pool; `options` are ``subscriptions`` config keys."""
    settings: dict[str, object] = {"retry_base_seconds": 1.0, "retry_max_seconds": 60.0}
    settings.update({"request_timeout_seconds": 5.0, **options})
    return DeliveryWorker(
        DeliveryQueue(repo.pool),
        LOCAL_ALLOWLIST,
        SubscriptionMetrics(registry or CollectorRegistry()),
        msgspec.convert(settings, SubscriptionsConfig),
        clock=clock,
    )


@pytest.fixture
async def worker(repo: SubscriptionRepository, clock: FakeClock) -> AsyncIterator[DeliveryWorker]:
    w = make_worker(repo, clock)
    yield w
    await w.aclose()
