"""Composition root: reads settings, builds every part, owns the task group and the shutdown order.

Only this module knows every concrete class. ``ingest``, ``pipeline`` and ``response`` never import each
other; they meet here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Protocol

import asyncpg
import msgspec
import structlog
from prometheus_client import CollectorRegistry

from opsresponder.api.autonomous import build_autonomous_app
from opsresponder.api.context import ApiContext
from opsresponder.api.errors import ErrorGuard
from opsresponder.api.events import build_events_app
from opsresponder.api.ingest_asgi import IngestFront
from opsresponder.api.server import HttpServer, address_of, bind_tcp
from opsresponder.api.stream import StreamHub
from opsresponder.config import Settings, TokenConfig
from opsresponder.core.clock import Clock, utcnow
from opsresponder.ingest.http.adapters import ADAPTERS, detect_adapter
from opsresponder.ingest.snmp.metrics import SnmpMetrics
from opsresponder.ingest.snmp.receiver import SnmpTrapReceiver
from opsresponder.ingest.syslog.decode import SyslogDecoder
from opsresponder.ingest.syslog.metrics import SyslogMetrics
from opsresponder.ingest.syslog.tcp import SyslogTcpListener
from opsresponder.ingest.syslog.tls import SyslogTlsListener, build_server_context
from opsresponder.ingest.syslog.udp import SyslogUdpListener
from opsresponder.outbound.allowlist import UrlAllowlist
from opsresponder.outbound.delivery import DeliveryWorker
from opsresponder.outbound.metrics import SubscriptionMetrics
from opsresponder.pipeline.intake import Intake
from opsresponder.pipeline.metrics import PipelineMetrics
from opsresponder.pipeline.notify import CommitPublisher
from opsresponder.pipeline.stages import correlate, normalize
from opsresponder.pipeline.worker import PipelineWorker
from opsresponder.state import StateBackend, build_state_backend
from opsresponder.store.embedded import EmbeddedPostgres, ensure_database
from opsresponder.store.events import EventRepository
from opsresponder.store.migrations import migrate
from opsresponder.store.pool import connection, create_pool
from opsresponder.store.retention import RetentionJob, RetentionMetrics, event_rules
from opsresponder.store.scheduler import ScheduledJob, Scheduler
from opsresponder.store.stream_cursor import StreamBacklog
from opsresponder.store.subscriptions import SubscriptionDefaults, SubscriptionRepository

log = structlog.get_logger(__name__)

BOOTSTRAP_TOKEN_FILE = "admin-token"  # noqa: S105 - a file name, not a secret


class OpsResponder:
    """The whole service. `run` starts everything, serves until `stop` is set, then shuts down in order.

    Shutdown order, and why: stop the listeners and HTTP servers from accepting (no new work); let in-flight
    HTTP requests finish, which needs the worker still running; close the intake and drain it within the
    grace period; cancel the worker; close the pool; stop the embedded PostgreSQL.
    """

    def __init__(self, settings: Settings, *, clock: Clock = utcnow) -> None:
        self.settings = _with_bootstrap_token(settings)
        self._clock = clock
        self.started = asyncio.Event()
        self.listeners: dict[str, str] = {}
        self.intake: Intake | None = None
        self.worker: PipelineWorker | None = None
        self.state: StateBackend | None = None
        self.pool: asyncpg.Pool | None = None

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        async with database_session(settings) as pool:
            self.pool = pool
            async with connection(pool) as conn:
                await migrate(conn)
            # Started before anything serves, so an unreachable Redis fails the start, not a request.
            state = build_state_backend(settings.redis.url, settings.redis.key_prefix)
            await state.start()
            self.state = state
            try:
                await self._serve(pool, state, stop)
            finally:
                await state.stop()
        log.info("OpsResponder stopped.")

    async def _serve(self, pool: asyncpg.Pool, state: StateBackend, stop: asyncio.Event) -> None:
        settings = self.settings
        registry = CollectorRegistry()
        pipeline_metrics = PipelineMetrics(registry)
        intake = Intake(settings.pipeline.intake_capacity, pipeline_metrics)
        repository = EventRepository(
            pool, dedup_window=timedelta(seconds=settings.pipeline.dedup_window_seconds)
        )

        async def check_database() -> None:
            async with connection(pool, timeout=settings.database.connect_timeout_seconds) as conn:
                await conn.fetchval("SELECT 1")

        worker = PipelineWorker(
            intake,
            repository,
            pipeline_metrics,
            stages=[normalize, correlate],
            probe=check_database,
            batch_max_events=settings.pipeline.batch_max_events,
            batch_max_wait=settings.pipeline.batch_max_wait_ms / 1000,
            retry_max_delay=settings.pipeline.db_retry_max_seconds,
            concurrent_batches=settings.pipeline.concurrent_batches,
            clock=self._clock,
        )
        self.intake, self.worker = intake, worker
        publisher, hub = _live_stream(settings, state, pool, registry)
        worker.add_commit_listener(publisher)
        subscriptions_enabled = settings.subscriptions.enabled
        url_allowlist = _url_allowlist(settings)
        subscriptions, delivery = _subscriptions(settings, pool, url_allowlist, registry, self._clock)
        ctx = ApiContext(
            settings=settings,
            intake=intake,
            worker=worker,
            events=repository,
            registry=registry,
            pipeline_metrics=pipeline_metrics,
            check_database=check_database,
            listeners=self.listeners,
            native_adapters=dict(ADAPTERS),
            detect_native=detect_adapter,
            subscriptions=subscriptions if subscriptions_enabled else None,
            url_allowlist=url_allowlist,
            stream_hub=hub,
        )
        scheduler = Scheduler(pool, _scheduled_jobs(settings, pool, registry, self._clock), clock=self._clock)
        grace = settings.pipeline.drain_grace_seconds
        servers = {
            "events_api": HttpServer(
                ErrorGuard(IngestFront(build_events_app(ctx), ctx), registry, "events"),
                bind_tcp(settings.api.events.host, settings.api.events.port, "api.events"),
                grace,
            ),
            "autonomous_api": HttpServer(
                ErrorGuard(build_autonomous_app(ctx), registry, "autonomous"),
                bind_tcp(settings.api.autonomous.host, settings.api.autonomous.port, "api.autonomous"),
                grace,
            ),
        }
        for name, server in servers.items():
            self.listeners[name] = address_of(server.socket)

        async with (
            contextlib.AsyncExitStack() as sockets,
            contextlib.AsyncExitStack() as stream,
            contextlib.AsyncExitStack() as ingest,
        ):
            for server in servers.values():
                sockets.callback(server.close_socket)  # after uvicorn has closed it; a no-op then
            for name, listener in _ingest_listeners(settings, intake, registry, self._clock).items():
                await listener.start()
                ingest.push_async_callback(listener.stop)
                host, port = listener.address
                self.listeners[name] = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            log.info("OpsResponder is listening.", **self.listeners)
            if subscriptions_enabled:
                await delivery.start()
                # Stopped after the task group (no more commits), before the pool closes; a delivery cut
                # short rolls back, so its rows stay pending for the next start or another replica.
                sockets.push_async_callback(delivery.stop, grace)
            # Both are idempotent: the stack matters only when the start fails half-way.
            await publisher.start()
            stream.push_async_callback(publisher.stop)
            await hub.start()
            stream.push_async_callback(hub.close)

            async with asyncio.TaskGroup() as tasks:
                worker_task = tasks.create_task(worker.run(), name="pipeline-worker")
                scheduler_task = tasks.create_task(scheduler.run(), name="scheduler")
                server_tasks = [tasks.create_task(s.serve(), name=name) for name, s in servers.items()]
                self.started.set()
                await stop.wait()
                log.info("Shutting down.", grace_seconds=grace)
                # Periodic jobs need no drain: a retention batch in flight rolls back by itself and the
                # job's lease is released, so another replica or the next start picks it up.
                scheduler_task.cancel()
                # Stop taking new work first: syslog and SNMP listeners, then the HTTP servers, which
                # finish their in-flight requests (those need the worker, still running).
                await ingest.aclose()
                # Live streams never end by themselves; end them so uvicorn's graceful wait is not held.
                await hub.close()
                for server in servers.values():
                    server.stop()
                await asyncio.wait(server_tasks)
                intake.close()
                try:
                    await asyncio.wait_for(intake.wait_drained(), grace)
                except TimeoutError:
                    log.error(
                        "The intake did not drain within the grace period; queued events are lost.",
                        lost=intake.depth,
                    )
                worker_task.cancel()
                await asyncio.wait([worker_task])
                # Publish the last commits: clients of other replicas are still listening.
                await publisher.stop()


class _Listener(Protocol):
    """What the composition root needs of a syslog or SNMP listener."""

    @property
    def address(self) -> tuple[str, int]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def _ingest_listeners(
    settings: Settings, intake: Intake, registry: CollectorRegistry, clock: Clock
) -> dict[str, _Listener]:
    """The enabled protocol listeners by name, built from their config; none is bound yet.

    Raises:
        ConfigError: a parsing rule, trap mapping, v3 user or engine ID is invalid.
    """
    listeners: dict[str, _Listener] = {}
    syslog = settings.syslog
    if syslog.udp.enabled or syslog.tcp.enabled or syslog.tls.enabled:
        # One decoder for every transport: the parsing rules are compiled once, at start.
        decode = SyslogDecoder(syslog.parsing_rules).decode
        syslog_metrics = SyslogMetrics(registry)
        if syslog.udp.enabled:
            listeners["syslog_udp"] = SyslogUdpListener(syslog.udp, intake, decode, syslog_metrics, clock)
        if syslog.tcp.enabled:
            listeners["syslog_tcp"] = SyslogTcpListener(syslog.tcp, intake, decode, syslog_metrics, clock)
        if syslog.tls.enabled:
            listeners["syslog_tls"] = SyslogTlsListener(syslog.tls, intake, decode, syslog_metrics, clock)
    if settings.snmp.enabled:
        listeners["snmp"] = SnmpTrapReceiver(settings.snmp, intake, SnmpMetrics(registry), clock=clock)
    return listeners


def validate(settings: Settings) -> None:
    """Check what the settings types cannot: parsing rules, SNMP users and mapping, TLS files.

    Builds the listeners without binding anything, as the start does.

    Raises:
        ConfigError: naming the key that is wrong.
        OpsResponderError: a TLS certificate or key cannot be loaded.
    """
    registry = CollectorRegistry()
    _ingest_listeners(settings, Intake(1, PipelineMetrics(registry)), registry, utcnow)
    _url_allowlist(settings)
    if settings.syslog.tls.enabled:
        build_server_context(settings.syslog.tls)


def _live_stream(
    settings: Settings, state: StateBackend, pool: asyncpg.Pool, registry: CollectorRegistry
) -> tuple[CommitPublisher, StreamHub]:
    """The commit publisher (stage 8) and this process's SSE hub; both meet through `state` pub/sub."""
    config = settings.stream
    hub = StreamHub(
        state,
        StreamBacklog(pool),
        registry,
        heartbeat_seconds=config.heartbeat_seconds,
        client_buffer=config.client_buffer,
        max_clients=config.max_clients,
        hub_buffer=config.hub_buffer,
        replay_page=config.replay_page,
        retry_after_seconds=settings.api.retry_after_seconds,
        flush_interval_seconds=config.flush_interval_ms / 1000,
    )
    publisher = CommitPublisher(
        state,
        registry,
        max_pending_events=config.publish_queue_events,
        audience=None if state.shared else (lambda: hub.client_count > 0),
    )
    return publisher, hub


def _subscriptions(
    settings: Settings,
    pool: asyncpg.Pool,
    allowlist: UrlAllowlist,
    registry: CollectorRegistry,
    clock: Clock,
) -> tuple[SubscriptionRepository, DeliveryWorker]:
    """The subscription repository (the API's) and the delivery worker (started only when enabled)."""
    config = settings.subscriptions
    repository = SubscriptionRepository(
        pool,
        SubscriptionDefaults(
            batch_max_events=config.batch_max_events,
            batch_max_delay_ms=config.batch_max_delay_ms,
            max_attempts=config.max_attempts,
        ),
    )
    delivery = DeliveryWorker(
        repository,
        allowlist,
        SubscriptionMetrics(registry),
        concurrency=config.concurrency,
        poll_interval=config.poll_interval_ms / 1000,
        request_timeout=config.request_timeout_seconds,
        retry_base=config.retry_base_seconds,
        retry_max=config.retry_max_seconds,
        dead_letter_retention=timedelta(days=config.dead_letter_retention_days),
        maintenance_interval=config.maintenance_interval_seconds,
        clock=clock,
    )
    return repository, delivery


def _scheduled_jobs(
    settings: Settings, pool: asyncpg.Pool, registry: CollectorRegistry, clock: Clock
) -> list[ScheduledJob]:
    """The periodic jobs; each runs once per interval across every replica (see store/scheduler.py)."""
    jobs: list[ScheduledJob] = []
    retention_config = settings.retention
    if retention_config.enabled:
        retention = RetentionJob(
            pool,
            event_rules(
                events_max_age=timedelta(days=retention_config.events_days),
                dedup_window=timedelta(seconds=settings.pipeline.dedup_window_seconds),
                batch_size=retention_config.batch_size,
            ),
            RetentionMetrics(registry),
            clock=clock,
            max_run_duration=timedelta(seconds=retention_config.max_run_seconds),
        )
        jobs.append(
            ScheduledJob(
                "retention",
                interval=timedelta(seconds=retention_config.interval_seconds),
                run=retention.run,
                jitter=timedelta(seconds=retention_config.jitter_seconds),
                # max_run_seconds is checked between batches; this timeout is the hard stop behind it.
                timeout=timedelta(seconds=2 * retention_config.max_run_seconds),
            )
        )
    return jobs


def _url_allowlist(settings: Settings) -> UrlAllowlist:
    """Raises `ConfigError` naming a bad ``subscriptions.allowed_*`` entry."""
    return UrlAllowlist(settings.subscriptions.allowed_hosts, settings.subscriptions.allowed_networks)


@contextlib.asynccontextmanager
async def database_session(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the configured database, or on the embedded PostgreSQL (started here, stopped after)."""
    async with contextlib.AsyncExitStack() as stack:
        dsn = settings.database.url
        if not dsn:
            embedded = EmbeddedPostgres(Path(settings.data_dir))
            maintenance_dsn = await asyncio.to_thread(embedded.start)
            stack.push_async_callback(asyncio.to_thread, embedded.stop)
            dsn = await ensure_database(maintenance_dsn)
        pool = await create_pool(
            dsn,
            min_size=settings.database.pool_min_size,
            max_size=settings.database.pool_max_size,
            connect_timeout=settings.database.connect_timeout_seconds,
            command_timeout=settings.database.command_timeout_seconds,
        )
        stack.push_async_callback(pool.close)
        yield pool


@contextlib.asynccontextmanager
async def running(settings: Settings, *, clock: Clock = utcnow) -> AsyncIterator[OpsResponder]:
    """Run the service in the background for the duration of the block (tests, embedding)."""
    service = OpsResponder(settings, clock=clock)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop), name="opsresponder")
    started = asyncio.create_task(service.started.wait())
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        started.cancel()
        task.result()  # raises the start failure
    try:
        yield service
    finally:
        stop.set()
        await task


def _with_bootstrap_token(settings: Settings) -> Settings:
    """With no tokens configured, create (once) an admin token in ``<data_dir>/admin-token``.

    Every endpoint but health needs a token, so a fresh install must have one; it is written to a file
    readable only by us and never logged.
    """
    if settings.api.tokens:
        return settings
    path = Path(settings.data_dir) / BOOTSTRAP_TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        log.warning("No API tokens are configured; created an admin token.", token_file=str(path))
    token = path.read_text().strip()
    api = msgspec.structs.replace(
        settings.api, tokens=[TokenConfig(name="bootstrap-admin", token=token, scopes=["admin"])]
    )
    return msgspec.structs.replace(settings, api=api)
