"""Building the parts of the service from `Settings`: the first half of the composition root.

Only this module and `app` know every concrete class. `build_parts` makes every part and wires them (a
listener gets the intake as an `EventSink`, the worker gets its stages and commit listeners); nothing is
started or bound to a port here but the HTTP sockets, so that a taken port fails the start before anything
runs. `app.OpsResponder` starts and stops what this module built.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Protocol

import asyncpg
from prometheus_client import CollectorRegistry

from opsresponder.api.autonomous import build_autonomous_app
from opsresponder.api.context import AutonomousApiContext, EventsApiContext
from opsresponder.api.errors import ErrorGuard
from opsresponder.api.events import build_events_app
from opsresponder.api.ingest_asgi import IngestFront
from opsresponder.api.server import HttpServer, address_of, bind_tcp
from opsresponder.config import Settings
from opsresponder.core.clock import Clock, utcnow
from opsresponder.core.errors import ConfigError
from opsresponder.core.severity import Severity
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
from opsresponder.outbound.allowlist import UrlAllowlist, UrlNotAllowedError, parse_url
from opsresponder.outbound.delivery import DeliveryWorker
from opsresponder.outbound.metrics import SubscriptionMetrics
from opsresponder.outbound.transport import GuardedTransport
from opsresponder.pipeline.enrich import InventoryError, read_inventory
from opsresponder.pipeline.intake import Intake
from opsresponder.pipeline.metrics import PipelineMetrics
from opsresponder.pipeline.rules import AbsenceChecker, RuleBook, RuleEngine, RuleMetrics, Rules
from opsresponder.pipeline.stage import BackgroundStage
from opsresponder.pipeline.stages import StageDeps, build_stages
from opsresponder.pipeline.worker import PipelineWorker
from opsresponder.response.analysis import Analyzer
from opsresponder.response.approvals import ApprovalNotifyMetrics, ApprovalWorkflow
from opsresponder.response.executor.service import ExecutionService
from opsresponder.response.governor import SafetyGovernor
from opsresponder.response.learning import FeedbackService, Learning, PolicyBook
from opsresponder.response.loop import ResponseLoop
from opsresponder.response.notify.messages import load_message_templates
from opsresponder.response.notify.metrics import NotificationMetrics
from opsresponder.response.notify.service import NotificationService
from opsresponder.response.risk import RiskMatrix
from opsresponder.response.runners.dispatch import CatalogRunner
from opsresponder.response.runners.http import HttpRunner
from opsresponder.response.runners.script import ScriptRunner
from opsresponder.response.verification import Verifier
from opsresponder.rules.evaluation import CombinedRules, NoRules, RuleSource
from opsresponder.rules.evaluation.file_source import FileRuleSource
from opsresponder.rules.templates import ScriptCatalog, load_script_catalog
from opsresponder.rules.templates.files import read_template_files
from opsresponder.state import MemoryStateBackend, StateBackend
from opsresponder.store.approvals import ApprovalRepository
from opsresponder.store.clearance import ClearanceRepository
from opsresponder.store.controls import AutomationControls, PauseState
from opsresponder.store.correlations import CorrelationRepository, CorrelationWriter, correlation_rules
from opsresponder.store.decisions import DecisionRepository
from opsresponder.store.deliveries import DeliveryQueue
from opsresponder.store.events import EventRepository
from opsresponder.store.executions import ExecutionRepository
from opsresponder.store.feedback import FeedbackRepository
from opsresponder.store.firing_responses import FiringResponseRepository
from opsresponder.store.firings import FiringRepository, FiringsWriter, firing_rules
from opsresponder.store.learning import LearningRepository
from opsresponder.store.outcomes import OutcomeRepository
from opsresponder.store.patterns import PatternRepository, PatternWriter
from opsresponder.store.pool import connection
from opsresponder.store.response_retention import response_rules
from opsresponder.store.response_templates import ResponseTemplateRepository
from opsresponder.store.retention import RetentionJob, RetentionMetrics, event_rules
from opsresponder.store.rule_checks import TriggerRuleChecks
from opsresponder.store.rule_history import RuleHistory
from opsresponder.store.scheduler import ScheduledJob, Scheduler
from opsresponder.store.silences import SilenceRepository
from opsresponder.store.stream_cursor import StreamBacklog
from opsresponder.store.subscriptions import SubscriptionRepository
from opsresponder.store.traces import TraceRepository, TraceWriter
from opsresponder.store.trigger_rules import StoredRules, TriggerRuleRepository
from opsresponder.store.verifications import VerificationRepository
from opsresponder.store.writers import BatchWriter


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
    absence: AbsenceChecker | None
    check_database: Callable[[], Awaitable[None]] = field(repr=False)
    load_templates: Callable[[], Awaitable[dict[str, int]]] = field(repr=False)
    """Stores the templates of ``templates.directory`` (read at build); run once before serving."""
    background_stages: list[BackgroundStage] = field(default_factory=list)
    """Stages with work of their own (``enrich``'s file watcher): started before the worker, stopped
    after it, reloaded on SIGHUP."""
    executions: ExecutionService | None = None
    """The executor (response.enabled): started once the store is ready, stopped after the HTTP servers."""
    response_clients: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Close the response side's HTTP clients (notifications, the HTTP runner) once no execution runs."""
    loop: ResponseLoop | None = None
    """The rule-to-response loop (response.enabled and response.loop.enabled): started after the executor,
    stopped before it."""
    events_context: EventsApiContext | None = None
    """What port 3009's handlers reach (the app adds the response process's state to it, when any)."""


def build_parts(
    settings: Settings,
    pool: asyncpg.Pool,
    state: StateBackend,
    listeners: dict[str, str],
    clock: Clock,
    *,
    response_pool: asyncpg.Pool | None = None,
    response_here: bool = True,
) -> Parts:
    """Build and wire every part; bind the HTTP sockets (the only side effect).

    `listeners` is filled with the bound addresses by name as parts bind (the health endpoint shows it).
    `response_pool`: the response side's own connections (decisions, outcomes, executions); None: `pool`.
    `response_here`: False when the response side runs in its own process (`build_response_parts` there):
    nothing of it is built here, and port 3011 is that process's.

    Raises:
        ConfigError: a parsing rule, trap mapping, v3 user, allowlist entry or the script catalog is invalid.
        BindError: an HTTP port is taken.
    """
    registry = CollectorRegistry()
    pipeline_metrics = PipelineMetrics(registry)
    intake = Intake(settings.pipeline.intake_capacity, pipeline_metrics)
    url_allowlist = _url_allowlist(settings)
    subscriptions, delivery = _subscriptions(settings, pool, url_allowlist, registry, clock)
    writers: list[BatchWriter] = [subscriptions.outbox, PatternWriter(), CorrelationWriter(), FiringsWriter()]
    if settings.pipeline.trace:
        writers.append(TraceWriter())
    repository = EventRepository(
        pool,
        dedup_window=timedelta(seconds=settings.pipeline.dedup_window_seconds),
        writers=writers,  # in each batch's transaction, in this order
    )
    correlations = CorrelationRepository(pool)

    # The API's changes move its generation, so this process's noise stage reloads before the next batch.
    silences = SilenceRepository(pool)
    patterns = PatternRepository(pool)
    trigger_rules = TriggerRuleRepository(pool)
    rule_source = rule_source_of(settings, StoredRules(trigger_rules))
    script_catalog = load_script_catalog(settings.templates.scripts_file)
    response_templates = ResponseTemplateRepository(pool)
    template_files = read_template_files(settings.templates.directory, script_catalog)

    async def load_templates() -> dict[str, int]:
        return await response_templates.sync_files(template_files)

    check_database = _database_check(settings, pool)
    # The asset service is reached like every outbound destination: only where the allowlist permits.
    asset_transport = GuardedTransport(url_allowlist) if settings.enrichment.asset_service.url else None
    stages = build_stages(
        StageDeps(
            settings,
            state,
            clock,
            silences=silences,
            patterns=patterns,
            registry=registry,
            http_transport=asset_transport,
            correlation_history=correlations,
            rules=rule_source,
        )
    )
    for stage in stages:
        if isinstance(stage, Rules):
            trigger_rules.on_change.append(stage.book.reload_soon)
    worker = PipelineWorker(
        intake,
        repository,
        pipeline_metrics,
        stages=stages,
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
        traces=TraceRepository(pool),
        patterns=patterns,
        correlations=correlations,
        correlation=settings.correlation,
        trigger_rules=trigger_rules,
        trigger_rule_checks=_trigger_rule_checks(settings, pool, trigger_rules, clock),
        firings=FiringRepository(pool),
        response_templates=response_templates,
        script_catalog=script_catalog,
    )
    response = None
    if response_here:
        response = _response_side(
            settings,
            response_pool or pool,
            state,
            url_allowlist,
            script_catalog,
            registry,
            clock,
            events=repository,
            templates=response_templates,
            correlations=correlations,
            silences=silences,
        )
    if response is not None and response.loop is not None:
        worker.add_commit_listener(response.loop.on_commit)
    ctx.automation = _automation_state(settings, state, pool, response)
    servers: dict[str, HttpServer] = {}
    try:
        servers["events_api"] = HttpServer(
            ErrorGuard(IngestFront(build_events_app(ctx), ctx), registry, "events"),
            bind_tcp(settings.api.events.host, settings.api.events.port, "api.events"),
            settings.pipeline.drain_grace_seconds,
        )
        if response_here:
            servers["autonomous_api"] = _autonomous_server(
                settings, registry, check_database, listeners, refresh_metrics, response
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
        scheduler=Scheduler(
            pool,
            _scheduled_jobs(settings, pool, registry, clock) + (response.jobs if response else []),
            clock=clock,
        ),
        servers=servers,
        ingest_listeners=ingest_listeners,
        absence=_absence_checker(settings, pool, state, rule_source, registry, clock),
        check_database=check_database,
        background_stages=[s for s in stages if isinstance(s, BackgroundStage)],
        load_templates=load_templates,
        executions=response.executions if response else None,
        response_clients=response.closes if response else [],
        loop=response.loop if response else None,
        events_context=ctx,
    )


@dataclass(slots=True)
class ResponseParts:
    """The response side run in a process of its own (``response.process: separate``); built, not started.
    `app.OpsResponder` runs it with the role ``response``."""

    registry: CollectorRegistry
    servers: dict[str, HttpServer]
    """``autonomous_api`` (port 3011)."""
    scheduler: Scheduler
    """The response side's periodic jobs only (the events process runs retention and the others)."""
    executions: ExecutionService
    loop: ResponseLoop | None
    response_clients: list[Callable[[], Awaitable[None]]]


def build_response_parts(
    settings: Settings,
    pool: asyncpg.Pool,
    state: StateBackend,
    listeners: dict[str, str],
    clock: Clock,
    *,
    response_pool: asyncpg.Pool | None = None,
) -> ResponseParts:
    """Build the response side alone, as `build_parts` builds it in one process (same catalog checks, same
    wiring), and bind port 3011.

    Raises:
        ConfigError: ``response.enabled`` is false, or the catalog or a message template is invalid.
        BindError: the autonomous API's port is taken.
    """
    registry = CollectorRegistry()
    response = _response_side(
        settings,
        response_pool or pool,
        state,
        _url_allowlist(settings),
        load_script_catalog(settings.templates.scripts_file),
        registry,
        clock,
        events=EventRepository(pool, dedup_window=timedelta(seconds=settings.pipeline.dedup_window_seconds)),
        templates=ResponseTemplateRepository(pool),
        correlations=CorrelationRepository(pool),
        silences=SilenceRepository(pool),
    )
    if response is None:
        raise ConfigError("response.enabled is false: there is no response side to run")

    check_database = _database_check(settings, pool)
    server = _autonomous_server(settings, registry, check_database, listeners, lambda: None, response)
    listeners["autonomous_api"] = address_of(server.socket)
    return ResponseParts(
        registry=registry,
        servers={"autonomous_api": server},
        scheduler=Scheduler(pool, response.jobs, clock=clock),
        executions=response.executions,
        loop=response.loop,
        response_clients=response.closes,
    )


def _database_check(settings: Settings, pool: asyncpg.Pool) -> Callable[[], Awaitable[None]]:
    """One round trip within the connect timeout: /ready's database check and the pipeline's probe."""

    async def check_database() -> None:
        async with connection(pool, timeout=settings.database.connect_timeout_seconds) as conn:
            await conn.fetchval("SELECT 1")

    return check_database


def _automation_state(
    settings: Settings, state: StateBackend, pool: asyncpg.Pool, response: ResponseSide | None
) -> Callable[[], Awaitable[PauseState | None]] | None:
    """What /ready reports of the automation pause (kept in PostgreSQL, so readable from any process)."""
    if response is not None:
        return response.governor.paused
    if not settings.response.enabled:
        return None
    return SafetyGovernor(state, AutomationControls(pool), settings.response.governor).paused


def _autonomous_server(
    settings: Settings,
    registry: CollectorRegistry,
    check_database: Callable[[], Awaitable[None]],
    listeners: dict[str, str],
    refresh_metrics: Callable[[], None],
    response: ResponseSide | None,
) -> HttpServer:
    """Port 3011's server (its endpoints answer 503 without a response side)."""
    ctx = AutonomousApiContext(
        api=settings.api,
        registry=registry,
        check_database=check_database,
        listeners=listeners,
        refresh_metrics=refresh_metrics,
        analyzer=response.analyzer if response else None,
        decisions=response.decisions if response else None,
        executions=response.executions if response else None,
        feedback=response.feedback if response else None,
        learning=response.learning if response else None,
        approvals=response.approvals if response else None,
        approval_records=response.approval_records if response else None,
        governor=response.governor if response else None,
        automation=response.governor.paused if response else None,
    )
    return HttpServer(
        ErrorGuard(build_autonomous_app(ctx), registry, "autonomous"),
        bind_tcp(settings.api.autonomous.host, settings.api.autonomous.port, "api.autonomous"),
        settings.pipeline.drain_grace_seconds,
    )


@dataclass(slots=True)
class ResponseSide:
    """The autonomous response side's parts, built when ``response.enabled``."""

    analyzer: Analyzer
    decisions: DecisionRepository
    executions: ExecutionService
    closes: list[Callable[[], Awaitable[None]]]
    """Close the HTTP clients of the notification channels and the HTTP runner."""
    governor: SafetyGovernor
    approvals: ApprovalWorkflow
    approval_records: ApprovalRepository
    loop: ResponseLoop | None
    feedback: FeedbackService
    learning: LearningRepository
    jobs: list[ScheduledJob]
    """The response side's periodic jobs: closed-loop verification, approval expiry."""


def _response_side(
    settings: Settings,
    pool: asyncpg.Pool,
    state: StateBackend,
    allowlist: UrlAllowlist,
    catalog: ScriptCatalog,
    registry: CollectorRegistry,
    clock: Clock,
    *,
    events: EventRepository,
    templates: ResponseTemplateRepository,
    correlations: CorrelationRepository,
    silences: SilenceRepository,
) -> ResponseSide | None:
    """Runners over the catalog the templates were checked against, notifications, analysis and the
    executor; None when ``response.enabled`` is false (the autonomous endpoints then answer 503).

    Raises:
        ConfigError: a message template of ``response.notifications.directory`` is invalid.
    """
    config = settings.response
    if not config.enabled:
        return None
    # HTTP calls reach only what the one outbound allowlist permits, like every other outbound request.
    http_runner = HttpRunner(config.http, allowlist)
    runner = CatalogRunner(ScriptRunner(config.scripts, data_dir=settings.data_dir), http_runner)
    notifier = NotificationService(
        config.notifications,
        allowlist,
        load_message_templates(config.notifications.directory),
        metrics=NotificationMetrics(registry),
    )
    decisions = DecisionRepository(pool)
    outcomes = OutcomeRepository(pool)
    learned = LearningRepository(pool)
    policies = PolicyBook(learned, config.learning)
    verifications = VerificationRepository(pool)
    learning = Learning(
        outcomes=outcomes,
        repository=learned,
        verifications=verifications,
        policies=policies,
        verification=config.verification,
        clock=clock,
    )
    analyzer = Analyzer(
        events=events,
        templates=templates,
        firings=FiringRepository(pool),
        correlations=correlations,
        decisions=decisions,
        outcomes=outcomes,
        catalog=catalog,
        risk=RiskMatrix(config.risk),
        config=config.analysis,
        clock=clock,
        silences=silences,
        policies=policies,
    )
    governor = SafetyGovernor(state, AutomationControls(pool), config.governor)

    async def automation_paused() -> bool:
        return await governor.paused() is not None

    owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    execution_records = ExecutionRepository(pool)
    executions = ExecutionService(
        repository=execution_records,
        runner=runner,
        notifier=notifier,
        catalog=catalog,
        templates=templates,
        outcomes=learning,
        state=state,
        config=config.executor,
        # Unique per process start: a restarted process must not take its predecessor's claims for its own
        # (recovery tells a dead owner's executions by their expired lease).
        owner=owner,
        clock=clock,
        ended=learning,
        automation_paused=automation_paused,
        policies=policies,
    )
    feedback = FeedbackService(
        feedback=FeedbackRepository(pool),
        executions=execution_records,
        decisions=decisions,
        outcomes=outcomes,
        policies=policies,
        analysis=config.analysis,
        config=config.learning,
        clock=clock,
    )
    verifier = Verifier(
        repository=verifications,
        sightings=ClearanceRepository(pool),
        rollbacks=executions,
        verdicts=learning,
        config=config.verification,
        clock=clock,
    )
    approval_records = ApprovalRepository(pool)
    approvals = ApprovalWorkflow(
        approval_records,
        executions,
        notifier,
        config.approvals,
        config.analysis.approvers,
        clock=clock,
        metrics=ApprovalNotifyMetrics(registry),
    )
    executions.attach_approvals(approvals)
    loop = None
    if config.loop.enabled:
        loop = ResponseLoop(
            firings=FiringRepository(pool),
            responses=FiringResponseRepository(pool),
            analyzer=analyzer,
            decisions=decisions,
            executions=executions,
            governor=governor,
            notifier=notifier,
            catalog=catalog,
            config=config.loop,
            owner=owner,
            clock=clock,
        )

    # The sweep of unsent messages rides on the expiry job, so it runs wherever the response side runs,
    # once per period across replicas.
    jobs = [
        ScheduledJob(
            "approval_expiry",
            interval=timedelta(seconds=config.approvals.expiry_check_seconds),
            run=approvals.run_expiry_job,
            timeout=timedelta(minutes=5),
        )
    ]
    if config.verification.enabled:
        interval = timedelta(seconds=config.verification.check_interval_seconds)
        jobs.append(ScheduledJob("verification", interval=interval, run=verifier.run))
    return ResponseSide(
        analyzer,
        decisions,
        executions,
        [notifier.aclose, http_runner.aclose],
        governor=governor,
        approvals=approvals,
        approval_records=approval_records,
        loop=loop,
        feedback=feedback,
        learning=learned,
        jobs=jobs,
    )


def rule_source_of(settings: Settings, stored: RuleSource | None = None) -> RuleSource:
    """Where the ``rules`` stage reads its rules: the trigger rules API's (`stored`), then ``rules.file``
    when set (a file rule whose id the API already uses is left out and logged).

    Raises:
        ConfigError: the rules file does not load (naming ``rules.file``).
    """
    sources = [stored] if stored is not None else []
    if settings.rules.file:
        sources.append(FileRuleSource(Path(settings.rules.file)))
    if not sources:
        return NoRules()
    return sources[0] if len(sources) == 1 else CombinedRules(sources)


def _absence_checker(
    settings: Settings,
    pool: asyncpg.Pool,
    state: StateBackend,
    source: RuleSource,
    registry: CollectorRegistry,
    clock: Clock,
) -> AbsenceChecker | None:
    """The absence rules' checker, when the ``rules`` stage runs; it shares the stage's rule source."""
    if "rules" not in settings.pipeline.stages:
        return None
    config = settings.rules
    # The same counters as the stage (one set per registry: registering them twice would be refused).
    metrics = RuleMetrics.shared(registry)
    engine = RuleEngine(state, min_severity=Severity(config.min_severity))
    book = RuleBook(
        source, engine, clock, config.reload_seconds, on_failure=metrics.failures.labels("reload").inc
    )
    return AbsenceChecker(book, FiringRepository(pool), clock, config.absence_check_seconds, metrics)


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
    build_stages(StageDeps(settings, MemoryStateBackend(), utcnow, rules=rule_source_of(settings)))
    _ingest_listeners(settings, Intake(1, PipelineMetrics(registry)), registry, utcnow)
    _url_allowlist(settings)
    _check_enrichment(settings)
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
            )
            + correlation_rules(
                max_age=timedelta(days=retention_config.events_days), batch_size=retention_config.batch_size
            )
            + firing_rules(
                max_age=timedelta(days=retention_config.events_days), batch_size=retention_config.batch_size
            )
            + response_rules(
                max_age=timedelta(days=retention_config.response_days), batch_size=retention_config.batch_size
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


def _check_enrichment(settings: Settings) -> None:
    """Raises `ConfigError` for an inventory file that does not load or an asset service URL that is not
    an http(s) URL; a missing file is fine (it may come later)."""
    config = settings.enrichment
    if config.assets_file and Path(config.assets_file).exists():
        try:
            read_inventory(Path(config.assets_file))
        except InventoryError as e:
            raise ConfigError(f"invalid configuration: enrichment.assets_file: {e}") from None
    if config.asset_service.url is not None:
        try:
            parse_url(config.asset_service.url.replace("{host}", "host"))
        except UrlNotAllowedError as e:
            raise ConfigError(f"invalid configuration: enrichment.asset_service.url: {e}") from None


def _trigger_rule_checks(
    settings: Settings, pool: asyncpg.Pool, repository: TriggerRuleRepository, clock: Clock
) -> TriggerRuleChecks:
    """The warnings and estimated trigger rate the rules API answers (docs/rules.md)."""
    config = settings.rules
    history = RuleHistory(
        pool,
        days=config.estimate_days,
        timeout_seconds=config.estimate_timeout_seconds,
        field_sample_events=config.field_sample_events,
        min_severity=config.min_severity,
    )
    return TriggerRuleChecks(repository, history, clock)


def _url_allowlist(settings: Settings) -> UrlAllowlist:
    """Raises `ConfigError` naming a bad ``outbound.allowed_*`` entry."""
    return UrlAllowlist(settings.outbound.allowed_hosts, settings.outbound.allowed_networks)
