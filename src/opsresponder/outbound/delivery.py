"""The delivery worker: sends each subscription's outbox rows to its URL, in batches, at least once.

Each poll asks PostgreSQL which subscriptions have a due batch (the oldest row reached its deadline, or a
full batch waits) and are not in backoff, then delivers them concurrently (one task per subscription, at
most ``concurrency``). A delivery holds its rows locked (``FOR UPDATE SKIP LOCKED``) in one transaction
for the length of one HTTP request: on a 2xx answer the rows are deleted, otherwise every row counts an
attempt, rows out of attempts go dead (dead-letter), and the subscription backs off with exponential
backoff and full jitter. A worker stopped or killed mid-request rolls back, so its rows are sent again
(at-least-once: receivers deduplicate by event ``id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
import typing
import uuid
from datetime import datetime, timedelta
from typing import Any, Final

import httpx
import msgspec
import structlog

from opsresponder import __version__
from opsresponder.config import SubscriptionsConfig
from opsresponder.core.clock import Clock, utcnow
from opsresponder.core.event import Event
from opsresponder.outbound import metrics as m
from opsresponder.outbound.allowlist import UrlAllowlist, UrlNotAllowedError, parse_url
from opsresponder.outbound.metrics import SubscriptionMetrics
from opsresponder.outbound.signing import SIGNATURE_HEADER, signature_header
from opsresponder.outbound.transport import guarded_client
from opsresponder.store.deliveries import Claim, DeliveryQueue
from opsresponder.store.errors import DatabaseUnavailableError

log = structlog.get_logger(__name__)

SUBSCRIPTION_HEADER: Final = "X-OpsResponder-Subscription"
DELIVERY_HEADER: Final = "X-OpsResponder-Delivery"
USER_AGENT: Final = f"OpsResponder/{__version__}"
# One subscription task sends at most this many batches before giving its slot back, so a large backlog
# of one subscription cannot hold a slot forever while others wait.
MAX_BATCHES_PER_TURN: Final = 50
# Only the start of an error answer is kept as last_error: enough to diagnose, bounded in size.
_ERROR_BODY_CHARS: Final = 200
_LIST_OMITS: Final = ("raw",)

_encoder = msgspec.json.Encoder()


def backoff_delay(failures: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait after the `failures`-th consecutive failure: full jitter over an exponential cap.

    Uniform in ``[0, min(cap, base * 2 ** (failures - 1))]`` (AWS "full jitter"): spreading retries over
    the whole interval keeps many subscriptions of one recovering receiver from retrying in step.
    """
    exponent = max(failures - 1, 0)
    # Past 2**63 the cap has won long ago; the bound keeps the float finite.
    ceiling = cap if exponent >= 63 else min(cap, base * (2**exponent))
    return rng.uniform(0, ceiling)


class _Outcome(typing.NamedTuple):
    ok: bool
    result: str
    error: str


class DeliveryWorker:
    """Delivers subscription outboxes until stopped. Several workers (processes) may run together.

    `start`/`stop` run it in the background; `run_once` does one poll and waits for its deliveries
    (tests drive it this way, advancing an injected clock instead of sleeping).
    """

    def __init__(
        self,
        queue: DeliveryQueue,
        allowlist: UrlAllowlist,
        metrics: SubscriptionMetrics,
        config: SubscriptionsConfig,
        *,
        clock: Clock = utcnow,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._queue = queue
        self._allowlist = allowlist
        self._metrics = metrics
        self._concurrency = config.concurrency
        self._poll_interval = config.poll_interval_ms / 1000
        self._request_timeout = config.request_timeout_seconds
        self._retry_base = config.retry_base_seconds
        self._retry_max = config.retry_max_seconds
        self._dead_retention = timedelta(days=config.dead_letter_retention_days)
        self._maintenance_interval = config.maintenance_interval_seconds
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._busy: dict[int, asyncio.Task[int]] = {}  # subscription id -> its delivery task
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._next_maintenance = 0.0
        self._database_down = False

    async def start(self) -> None:
        """Start polling in the background."""
        self._ensure_client()
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="subscription-delivery")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop polling; let deliveries in flight finish within `grace`, cancel the rest, close the client.

        A cancelled delivery rolls its transaction back, so its rows stay pending and are sent again by
        the next worker: nothing is lost, a receiver may see that batch twice.
        """
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        in_flight = list(self._busy.values())
        if in_flight:
            _done, pending = await asyncio.wait(in_flight, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
                log.warning(
                    "Cancelled subscription deliveries at shutdown; they will be sent again.",
                    cancelled=len(pending),
                )
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client (its connections)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def run_once(self) -> int:
        """One poll: deliver every due batch (several per subscription if due), wait for them.

        Returns how many batches were sent (successfully or not).
        """
        tasks = await self._dispatch()
        results = await asyncio.gather(*tasks)
        return sum(results)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._dispatch()
            except DatabaseUnavailableError as e:
                self._database_unavailable(e)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                # A finished task wakes the loop early, so a freed slot is refilled without a full poll.
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)

    async def _dispatch(self) -> list[asyncio.Task[int]]:
        now = self._clock()
        await self._maybe_maintain(now)
        candidates = await self._queue.candidates(now)
        if self._database_down:
            self._database_down = False
            log.warning("PostgreSQL is reachable again; resuming subscription deliveries.")
        started: list[asyncio.Task[int]] = []
        for subscription in candidates:
            if len(self._busy) >= self._concurrency:
                break
            if subscription.id in self._busy:
                continue
            task = asyncio.create_task(
                self._deliver_subscription(subscription.id), name=f"subscription-{subscription.id}"
            )
            self._busy[subscription.id] = task
            task.add_done_callback(functools.partial(self._task_done, subscription.id))
            started.append(task)
        return started

    def _task_done(self, subscription_id: int, task: asyncio.Task[int]) -> None:
        self._busy.pop(subscription_id, None)
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            # In the background nobody awaits the task: retrieving and logging the error here keeps a bug
            # visible while the worker goes on (`run_once` also re-raises it through gather).
            log.error(
                "A subscription delivery failed unexpectedly.",
                subscription_id=subscription_id,
                exc_info=task.exception(),
            )

    async def _deliver_subscription(self, subscription_id: int) -> int:
        sent = 0
        try:
            for _ in range(MAX_BATCHES_PER_TURN):
                now = self._clock()
                async with self._queue.claim(subscription_id, now) as claim:
                    if claim is None:
                        return sent
                    if claim.expired:
                        self._metrics.events.labels(str(subscription_id), m.EVENT_EXPIRED).inc(claim.expired)
                    if not claim.events:
                        continue
                    ok = await self._deliver(claim)
                    sent += 1
                if not ok:
                    return sent
        except DatabaseUnavailableError as e:
            self._database_unavailable(e)
        return sent

    async def _deliver(self, claim: Claim) -> bool:
        subscription = claim.subscription
        label = str(subscription.id)
        started = time.monotonic()
        outcome = await self._post(claim)
        self._metrics.delivery_duration.labels(label).observe(time.monotonic() - started)
        self._metrics.deliveries.labels(label, outcome.result).inc()
        now = self._clock()
        if outcome.ok:
            await claim.delivered(now)
            self._metrics.events.labels(label, m.EVENT_DELIVERED).inc(len(claim.rows))
            return True
        failures = claim.consecutive_failures + 1
        retry_at = now + timedelta(
            seconds=backoff_delay(failures, self._retry_base, self._retry_max, self._rng)
        )
        dead = await claim.failed(outcome.error, now, retry_at)
        if len(claim.rows) > dead:
            self._metrics.events.labels(label, m.EVENT_RETRIED).inc(len(claim.rows) - dead)
        log.warning(
            "A subscription delivery failed; it will be retried.",
            subscription_id=subscription.id,
            subscription=subscription.name,
            error=outcome.error,
            events=len(claim.rows),
            consecutive_failures=failures,
            retry_at=retry_at.isoformat(),
        )
        if dead:
            self._metrics.events.labels(label, m.EVENT_DEAD).inc(dead)
            log.error(
                "Subscription events reached their attempt limit and were dead-lettered; "
                "redeliver them with POST /api/v1/subscriptions/{id}/redeliver.",
                subscription_id=subscription.id,
                subscription=subscription.name,
                dead=dead,
                max_attempts=subscription.max_attempts,
                error=outcome.error,
            )
        return False

    async def _post(self, claim: Claim) -> _Outcome:
        subscription = claim.subscription
        try:
            parse_url(subscription.url)
        except UrlNotAllowedError as e:
            return _Outcome(False, m.RESULT_NOT_ALLOWED, f"URL not allowed: {e}")
        body = encode_payload(subscription.id, claim.events)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SUBSCRIPTION_HEADER: str(subscription.id),
            DELIVERY_HEADER: str(uuid.uuid4()),
        }
        if subscription.secret is not None:
            # Wall-clock time, not the injected clock: receivers compare it with their own clock.
            headers[SIGNATURE_HEADER] = signature_header(subscription.secret.value, int(time.time()), body)
        client = self._ensure_client()
        try:
            response = await client.post(subscription.url, content=body, headers=headers)
        except httpx.TimeoutException as e:
            error = f"timed out after {self._request_timeout:g}s: {e.__class__.__name__}"
            return _Outcome(False, m.RESULT_TIMEOUT, error)
        except httpx.ConnectError as e:
            if caused_by(e, UrlNotAllowedError):
                return _Outcome(False, m.RESULT_NOT_ALLOWED, f"URL not allowed: {e}")
            return _Outcome(
                False, m.RESULT_CONNECTION_ERROR, f"connection failed: {e or e.__class__.__name__}"
            )
        except httpx.TransportError as e:
            return _Outcome(False, m.RESULT_CONNECTION_ERROR, f"{e.__class__.__name__}: {e}")
        if 200 <= response.status_code < 300:
            return _Outcome(True, m.RESULT_SUCCESS, "")
        snippet = response.text[:_ERROR_BODY_CHARS].strip()
        error = f"HTTP {response.status_code} {response.reason_phrase}".strip()
        return _Outcome(False, m.RESULT_HTTP_ERROR, f"{error}: {snippet}" if snippet else error)

    def _ensure_client(self) -> httpx.AsyncClient:
        if self._client is None:
            # No redirects: a 3xx counts as a failure.
            self._client = guarded_client(
                self._allowlist, timeout=self._request_timeout, transport=self._transport
            )
        return self._client

    async def _maybe_maintain(self, now: datetime) -> None:
        if time.monotonic() < self._next_maintenance:
            return
        self._next_maintenance = time.monotonic() + self._maintenance_interval
        orphans, expired = await self._queue.sweep(now - self._dead_retention)
        if orphans:
            self._metrics.orphans_removed.labels("subscription_deleted").inc(orphans)
        if expired:
            self._metrics.orphans_removed.labels("dead_expired").inc(expired)
            log.info("Removed expired dead-letter rows.", rows=expired)
        self._metrics.set_backlog(await self._queue.backlog())

    def _database_unavailable(self, error: DatabaseUnavailableError) -> None:
        if not self._database_down:
            self._database_down = True
            log.warning("PostgreSQL is unavailable; subscription deliveries wait.", error=str(error))


def caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    """True when `kind` is in the chain of `error` (httpx and httpcore re-raise, keeping it as context)."""
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def encode_payload(subscription_id: int, events: list[Event]) -> bytes:
    """The JSON body of one delivery: ``{"subscription_id", "events"}``, events as the API lists them."""
    views = []
    for event in events:
        view: dict[str, Any] = msgspec.to_builtins(event)
        for name in _LIST_OMITS:
            view.pop(name, None)
        views.append(view)
    return _encoder.encode({"subscription_id": subscription_id, "events": views})
