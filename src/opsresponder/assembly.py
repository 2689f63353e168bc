"""Building the parts of the service from `Settings`: the first half of the composition root.

Only this module and `app` know every concrete class. `build_parts` makes every part and wires them (a
listener gets the intake as an `EventSink`, the worker gets its stages and commit listeners); nothing is
started or bound to a port here but the HTTP sockets, so that a taken port fails the start before anything
runs. `app.OpsResponder` starts and stops what this module built.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

import asyncpg
from prometheus_client import CollectorRegistry

from opsresponder.api.autonomous import build_autonomous_app
from opsresponder.api.context import EventsApiContext, ServiceContext
from opsresponder.api.errors import ErrorGuard
from opsresponder.api.events import build_events_app
from opsresponder.api.ingest_asgi import IngestFront
from opsresponder.api.server import HttpServer, address_of, bind_tcp
from opsresponder.config import Settings
from opsresponder.core.clock import Clock, utcnow
from opsresponder.ingest.http.adapters import ADAPTERS, detect_adapter
from opsresponder.ingest.snmp.metrics import SnmpMetrics
from opsresponder.ingest.snmp.receiver import SnmpTrapReceiver
from opsresponder.ingest.syslog.decode import SyslogDecoder
from opsresponder.ingest.syslog.metrics import SyslogMetrics
from opsresponder.ingest.syslog.tcp import SyslogTcpListener
from opsresponder.ingest.syslog.tls import SyslogTlsListener, build_server_context
from opsresponder.ingest.syslog.udp import SyslogUdpListener
from opsresponder.live.hub import StreamHub
from opsresponder.live.publisher import CommitPublisher
from opsresponder.outbound.allowlist import UrlAllowlist
from opsresponder.outbound.delivery import DeliveryWorker
from opsresponder.outbound.metrics import SubscriptionMetrics
from opsresponder.pipeline.intake import Intake
from opsresponder.pipeline.metrics import PipelineMetrics
from opsresponder.pipeline.stages import StageDeps, build_stages
from opsresponder.pipeline.worker import PipelineWorker
from opsresponder.rules.templates import load_script_catalog
from opsresponder.rules.templates.files import read_template_files
from opsresponder.state import MemoryStateBackend, StateBackend
from opsresponder.store.deliveries import DeliveryQueue
from opsresponder.store.events import EventRepository
from opsresponder.store.pool import connection
from opsresponder.store.response_templates import ResponseTemplateRepository
from opsresponder.store.retention import RetentionJob, RetentionMetrics, event_rules
from opsresponder.store.scheduler import ScheduledJob, Scheduler
from opsresponder.store.silences import SilenceRepository
from opsresponder.store.stream_cursor import StreamBacklog
from opsresponder.store.subscriptions import SubscriptionRepository


@dataclass(slots=True)
class Parts:
    """Everything `app.OpsResponder` starts, runs and stops; built, not started."""

    registry: CollectorRegistry
    intake: Intake
    worker: PipelineWorker
    publisher: CommitPublisher
    hub: StreamHub
    delivery: DeliveryWorker | None
    scheduler: Scheduler
    servers: dict[str, HttpServer]
    ingest_listeners: dict[str, ListenerPart]
    check_database: Callable[[], Awaitable[None]] = field(repr=False)
    load_templates: Callable[[], Awaitable[dict[str, int]]] = field(repr=False)
    """Stores the templates of ``templates.directory`` (read at build); run once before serving."""


def build_parts(
    settings: Settings, pool: asyncpg.Pool, state: StateBackend, listeners: dict[str, str], clock: Clock
) -> Parts:
    """Build and wire every part; bind the HTTP sockets (the only side effect).

    `listeners` is filled with the bound addresses by name as parts bind (the health endpoint shows it).

    Raises:
        ConfigError: a parsing rule, trap mapping, v3 user, allowlist entry or the script catalog is invalid.
        BindError: an HTTP port is taken.
    """
    registry = CollectorRegistry()
    pipeline_metrics = PipelineMetrics(registry)
    intake = Intake(settings.pipeline.intake_capacity, pipeline_metrics)
    url_allowlist = _url_allowlist(settings)
    subscriptions, delivery = _subscriptions(settings, pool, url_allowlist, registry, clock)
    repository = EventRepository(
        pool,
        dedup_window=timedelta(seconds=settings.pipeline.dedup_window_seconds),
        writers=[subscriptions.outbox],  # in each batch's transaction, in this order
    )

    # The API's changes move its generation, so this process's noise stage reloads before the next batch.
    silences = SilenceRepository(pool)
    script_catalog = load_script_catalog(settings.templates.scripts_file)
    response_templates = ResponseTemplateRepository(pool)
    template_files = read_template_files(settings.templates.directory, script_catalog)

    async def load_templates() -> dict[str, int]:
        return await response_templates.sync_files(template_files)

    async def check_database() -> None:
        async with connection(pool, timeout=settings.database.connect_timeout_seconds) as conn:
            await conn.fetchval("SELECT 1")

    worker = PipelineWorker(
        intake,
        repository,
        pipeline_metrics,
        stages=build_stages(StageDeps(settings, state, clock, silences=silences, registry=registry)),
        probe=check_database,
        batch_max_events=settings.pipeline.batch_max_events,
        batch_max_wait=settings.pipeline.batch_max_wait_ms / 1000,
        retry_max_delay=settings.pipeline.db_retry_max_seconds,
        concurrent_batches=settings.pipeline.concurrent_batches,
        clock=clock,
    )
    publisher, hub = _live_stream(settings, state, pool, registry)
    worker.add_commit_listener(publisher)
    ingest_listeners = _ingest_listeners(settings, intake, registry, clock)

    def refresh_metrics() -> None:
        pipeline_metrics.intake_depth.set(intake.depth)

    ctx = EventsApiContext(
        api=settings.api,
        registry=registry,
        check_database=check_database,
        listeners=listeners,
        refresh_metrics=refresh_metrics,
        intake=intake,
        worker=worker,
        events=repository,
        pipeline_metrics=pipeline_metrics,
        native_adapters=ADAPTERS,
        detect_native=detect_adapter,
        subscriptions=subscriptions if settings.subscriptions.enabled else None,
        url_allowlist=url_allowlist,
        stream_hub=hub,
        silences=silences,
        response_templates=response_templates,
        script_catalog=script_catalog,
    )
    autonomous_ctx = ServiceContext(
        api=settings.api,
        registry=registry,
        check_database=check_database,
        listeners=listeners,
        refresh_metrics=refresh_metrics,
    )
    grace = settings.pipeline.drain_grace_seconds
    servers: dict[str, HttpServer] = {}
    try:
        servers["events_api"] = HttpServer(
            ErrorGuard(IngestFront(build_events_app(ctx), ctx), registry, "events"),
            bind_tcp(settings.api.events.host, settings.api.events.port, "api.events"),
            grace,
        )
        servers["autonomous_api"] = HttpServer(
            ErrorGuard(build_autonomous_app(autonomous_ctx), registry, "autonomous"),
            bind_tcp(settings.api.autonomous.host, settings.api.autonomous.port, "api.autonomous"),
            grace,
        )
    except BaseException:
        for server in servers.values():
            server.close_socket()
        raise
    for name, server in servers.items():
        listeners[name] = address_of(server.socket)
    return Parts(
        registry=registry,
        intake=intake,
        worker=worker,
        publisher=publisher,
        hub=hub,
        delivery=delivery if settings.subscriptions.enabled else None,
        scheduler=Scheduler(pool, _scheduled_jobs(settings, pool, registry, clock), clock=clock),
        servers=servers,
        ingest_listeners=ingest_listeners,
        check_database=check_database,
        load_templates=load_templates,
    )


class ListenerPart(Protocol):
    """What the composition root needs of a syslog or SNMP listener."""

    @property
    def address(self) -> tuple[str, int]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def _ingest_listeners(
    settings: Settings, intake: Intake, registry: CollectorRegistry, clock: Clock
) -> dict[str, ListenerPart]:
    """The enabled protocol listeners by name, built from their config; none is bound yet.

    Raises:
        ConfigError: a parsing rule, trap mapping, v3 user or engine ID is invalid.
    """
    listeners: dict[str, ListenerPart] = {}
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
    """Check what the settings types cannot: stage names, parsing rules, SNMP users and mapping, TLS files.

    Builds the stages and listeners without binding anything, as the start does.

    Raises:
        ConfigError: naming the key that is wrong (``templates.scripts_file`` too).
        OpsResponderError: a TLS certificate or key cannot be loaded.
    """
    registry = CollectorRegistry()
    # Building a stage does no I/O (see `Stage`), so an unstarted in-memory backend stands in for Redis.
    build_stages(StageDeps(settings, MemoryStateBackend(), utcnow))
    _ingest_listeners(settings, Intake(1, PipelineMetrics(registry)), registry, utcnow)
    _url_allowlist(settings)
    # An invalid template file is logged and skipped, at check-config as at start.
    read_template_files(settings.templates.directory, load_script_catalog(settings.templates.scripts_file))
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
        config=config,
        retry_after_seconds=settings.api.retry_after_seconds,
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
    repository = SubscriptionRepository(pool, config)
    delivery = DeliveryWorker(
        DeliveryQueue(pool), allowlist, SubscriptionMetrics(registry), config, clock=clock
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
    """Raises `ConfigError` naming a bad ``outbound.allowed_*`` entry."""
    return UrlAllowlist(settings.outbound.allowed_hosts, settings.outbound.allowed_networks)
