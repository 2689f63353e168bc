"""Stage 8, notify: committed events go out on the state backend's pub/sub for live stream clients.

The worker calls `CommitPublisher` synchronously after each commit. It encodes the batch once and queues
it; one publisher task sends it with ``StateBackend.publish`` (memory, or Redis so that every replica's
stream clients see every event). The worker never waits on pub/sub: when the queue is full the batch is
dropped and counted, and subscribers notice the lost message by its sequence number (see `StreamMessage`)
so that they can resynchronise from the database instead of missing events silently.
"""

from __future__ import annotations

import asyncio
import operator
import secrets
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final

import msgspec
import structlog
from prometheus_client import CollectorRegistry, Counter

from opsresponder.core.event import Event
from opsresponder.state.base import StateBackend
from opsresponder.state.errors import StateError

log = structlog.get_logger(__name__)

EVENTS_CHANNEL: Final = "events"
# Events encoded but not yet published. A batch is at most ``pipeline.batch_max_events`` (500 by default),
# so this holds about twenty batches: a second of ingest at 10k events/s while Redis answers slowly.
DEFAULT_MAX_PENDING_EVENTS: Final = 10_000
DEFAULT_STOP_TIMEOUT: Final = 5.0

# The fields of Event a subscriber sees: all but ``raw``, which can be large and is available per event
# through GET /api/v1/events/{id}. Derived from Event so that a new field is published without a change here.
_PUBLIC_FIELDS: Final = tuple(f for f in msgspec.structs.fields(Event) if f.name != "raw")
PublicEvent: Final[type[msgspec.Struct]] = msgspec.defstruct(
    "PublicEvent", [(f.name, f.type) for f in _PUBLIC_FIELDS]
)
_public_values = operator.attrgetter(*(f.name for f in _PUBLIC_FIELDS))
_encoder = msgspec.json.Encoder()


def encode_event(event: Event) -> bytes:
    """The JSON of `event` as stream clients receive it: every field except ``raw``, on one line.

    The live path and the replay from the database both use this, so a resumed client sees the same shape.
    """
    values: tuple[Any, ...] = _public_values(event)
    return _encoder.encode(PublicEvent(*values))


class StreamMessage(msgspec.Struct, frozen=True):
    """One published batch: ``{"p": publisher, "s": sequence, "e": [event, ...]}``.

    ``s`` counts every batch a publisher built, including those it dropped, from 1 upward; a subscriber
    that sees ``s`` jump for a publisher ``p`` knows it missed events. ``p`` is random per process start.
    Events are kept as raw JSON so subscribers can forward them without re-encoding.
    """

    p: str
    s: int
    e: list[msgspec.Raw]


def build_message(publisher: str, sequence: int, encoded_events: Sequence[bytes]) -> bytes:
    """The wire form of `StreamMessage` from already-encoded events (no decode and re-encode)."""
    head = _encoder.encode(publisher)
    return b'{"p":%b,"s":%d,"e":[%b]}' % (head, sequence, b",".join(encoded_events))


_message_decoder = msgspec.json.Decoder(StreamMessage)


def decode_message(data: bytes) -> StreamMessage:
    """Parse a published batch.

    Raises:
        msgspec.DecodeError: `data` is not a `StreamMessage` (a foreign publisher on the channel).
    """
    return _message_decoder.decode(data)


class PublishMetrics:
    """Metric families of the notify stage."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.published = Counter(
            "opsresponder_stream_published_events_total",
            "Committed events published to live stream subscribers.",
            registry=registry,
        )
        self.dropped = Counter(
            "opsresponder_stream_publish_dropped_total",
            "Committed events not published to live stream subscribers, by reason "
            "(publish_queue_full, publish_failed). Stream clients resynchronise from the database.",
            ["reason"],
            registry=registry,
        )


class CommitPublisher:
    """Commit listener that publishes each committed batch on `EVENTS_CHANNEL`, off the worker's path.

    Register ``publisher`` itself with ``PipelineWorker.add_commit_listener``. Call order: `start` before
    the worker runs, `stop` after the worker stopped (it drains what is queued within a timeout).

    Invariants: calling the publisher never awaits or raises; batches are published in commit order; a
    batch that does not fit in the queue (``max_pending_events``) or that the backend refuses is counted in
    ``opsresponder_stream_publish_dropped_total`` and still consumes a sequence number.

    Args:
        state: the backend to publish through (started by the caller).
        registry: where the notify metrics are registered.
        max_pending_events: events encoded but not yet published before new batches are dropped.
        audience: whether anyone can receive a batch now. Only for a backend that is not shared with other
            processes, where the only subscriber is this process's stream hub: while it has no client,
            batches are skipped without encoding (about 8% of the CPU of syslog ingest) and without a
            sequence number, so subscribers see no gap. A client that connects later gets what it missed
            from the database, by its resume cursor.
    """

    def __init__(
        self,
        state: StateBackend,
        registry: CollectorRegistry,
        *,
        max_pending_events: int = DEFAULT_MAX_PENDING_EVENTS,
        audience: Callable[[], bool] | None = None,
    ) -> None:
        if audience is not None and state.shared:
            raise ValueError("a shared state backend reaches other processes: every batch must be published")
        if max_pending_events < 1:
            raise ValueError(f"max_pending_events must be at least 1, got {max_pending_events}")
        self._state = state
        self._audience = audience
        self.metrics = PublishMetrics(registry)
        self._max_pending = max_pending_events
        self.publisher_id = secrets.token_hex(8)
        self._sequence = 0
        self._queue: deque[tuple[bytes, int]] = deque()
        self._pending_events = 0
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    @property
    def pending_events(self) -> int:
        """Events queued and not yet published."""
        return self._pending_events

    def __call__(self, events: list[Event]) -> None:
        if not events or (self._audience is not None and not self._audience()):
            return
        self._sequence += 1
        count = len(events)
        if self._pending_events + count > self._max_pending:
            self.metrics.dropped.labels("publish_queue_full").inc(count)
            return
        # Encoded now, on the worker's task, so subscribers see the events exactly as committed even if
        # something holds on to the objects and changes them later.
        message = build_message(self.publisher_id, self._sequence, [encode_event(e) for e in events])
        self._queue.append((message, count))
        self._pending_events += count
        self._idle.clear()
        self._ready.set()

    async def start(self) -> None:
        """Start the publisher task."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="stream-publisher")

    async def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Publish what is queued (at most `timeout` seconds), then stop the task. Idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning(
                "Live-stream batches were still queued at shutdown; they are not published.",
                events=self._pending_events,
            )
        task.cancel()
        # asyncio.wait does not raise the task's CancelledError, but does raise our own cancellation.
        await asyncio.wait([task])

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._queue:
                message, count = self._queue[0]
                await self._publish(message, count)
                self._queue.popleft()
                self._pending_events -= count
            self._idle.set()

    async def _publish(self, message: bytes, count: int) -> None:
        try:
            await self._state.publish(EVENTS_CHANNEL, message)
        except StateError as e:
            self.metrics.dropped.labels("publish_failed").inc(count)
            if not self._failing:
                self._failing = True
                log.warning("Publishing live events failed; stream clients will resynchronise.", error=str(e))
            return
        if self._failing:
            self._failing = False
            log.warning("Publishing live events works again.")
        self.metrics.published.inc(count)
