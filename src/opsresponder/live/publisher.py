"""Stage 8, notify: the commit publisher puts committed events on the state backend's pub/sub channel.

The worker calls `CommitPublisher` synchronously after each commit. It encodes the batch once and queues
it; one publisher task sends it with ``StateBackend.publish`` (memory, or Redis so that every replica's
stream clients see every event). The worker never waits on pub/sub: when the queue is full the batch is
dropped and counted, and subscribers notice the lost message by its sequence number (see `StreamMessage`)
so that they can resynchronise from the database instead of missing events silently.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import Callable
from typing import Final

import structlog
from prometheus_client import CollectorRegistry, Counter

from opsresponder.core.event import Event
from opsresponder.live.wire import EVENTS_CHANNEL, build_message, encode_event
from opsresponder.state.base import StateBackend
from opsresponder.state.errors import StateError

log = structlog.get_logger(__name__)

DEFAULT_STOP_TIMEOUT: Final = 5.0


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
        max_pending_events: int,
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
