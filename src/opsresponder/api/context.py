"""What the HTTP handlers reach: built by the composition root, stored on each Litestar app's state.

Each app gets its own small context: `ServiceContext` holds what every port serves (health, readiness,
metrics, token auth and request limits); `EventsApiContext` adds what the Event Processing API needs;
`AutonomousApiContext` what the Autonomous Response API needs. No handler sees `Settings` as a whole.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from litestar import Request
from prometheus_client import CollectorRegistry

from opsresponder.api.bodies import ResponseProcessState
from opsresponder.config import ApiConfig, CorrelationConfig
from opsresponder.ingest.http.adapters import Adapter
from opsresponder.live.hub import StreamHub
from opsresponder.outbound.allowlist import UrlAllowlist
from opsresponder.pipeline.intake import Intake
from opsresponder.pipeline.metrics import PipelineMetrics
from opsresponder.pipeline.worker import PipelineWorker
from opsresponder.response.analysis import Analyzer
from opsresponder.response.approvals import ApprovalWorkflow
from opsresponder.response.executor.service import ExecutionService
from opsresponder.response.governor import SafetyGovernor
from opsresponder.response.learning import FeedbackService
from opsresponder.rules.templates import ScriptCatalog
from opsresponder.store.approvals import ApprovalRepository
from opsresponder.store.controls import PauseState
from opsresponder.store.correlations import CorrelationRepository
from opsresponder.store.decisions import DecisionRepository
from opsresponder.store.events import EventRepository
from opsresponder.store.firings import FiringRepository
from opsresponder.store.learning import LearningRepository
from opsresponder.store.patterns import PatternRepository
from opsresponder.store.response_templates import ResponseTemplateRepository
from opsresponder.store.rule_checks import TriggerRuleChecks
from opsresponder.store.silences import SilenceRepository
from opsresponder.store.subscriptions import SubscriptionRepository
from opsresponder.store.traces import TraceRepository
from opsresponder.store.trigger_rules import TriggerRuleRepository

CONTEXT_KEY = "opsresponder"


@dataclass(slots=True, kw_only=True)
class ServiceContext:
    """What every port serves.

    Attributes:
        api: tokens, body and request limits, ``Retry-After``.
        registry: the process's metrics, served at ``/metrics``.
        check_database: raises `DatabaseUnavailableError` when PostgreSQL does not answer (``/ready``).
        listeners: every bound listener by name (``events_api``, ``syslog_udp``...) as ``host:port``.
        refresh_metrics: brings gauges up to date right before a scrape.
    """

    api: ApiConfig
    registry: CollectorRegistry
    check_database: Callable[[], Awaitable[None]]
    listeners: dict[str, str] = field(default_factory=dict)
    refresh_metrics: Callable[[], None] = lambda: None
    automation: Callable[[], Awaitable[PauseState | None]] | None = None
    """The global pause of automatic execution, shown by ``/ready`` (None: no response side)."""
    response_process: Callable[[], ResponseProcessState] | None = None
    """The supervised response process's state, shown by ``/ready`` (None: there is none)."""


@dataclass(slots=True, kw_only=True)
class EventsApiContext(ServiceContext):
    """The Event Processing API (port 3009): ingest, event queries, the stream, subscriptions.

    Attributes:
        native_adapters: monitoring-system payload adapters by path suffix (``alertmanager``...).
        detect_native: recognises a native payload posted to the generic endpoint, or returns None.
        subscriptions, url_allowlist: None where subscriptions are disabled (their endpoints answer 503).
        stream_hub: None where this process serves no live stream (503).
        silences: the silences the noise stage reads; None answers 503.
        traces: the stored decision traces; None answers traces without entries.
        patterns: the message templates the patterns stage counts; None answers 503.
        correlations: stored correlations and the suggestions; None answers 503.
        correlation: the ``correlation`` section (the suggestions' defaults).
        trigger_rules, trigger_rule_checks: the trigger rules and their validation_result; None answers 503.
        firings: the rules' firings (``rules.rule_firings``); None answers 503.
        response_templates: response templates (None answers 503), checked against `script_catalog`.
    """

    intake: Intake
    worker: PipelineWorker
    events: EventRepository
    pipeline_metrics: PipelineMetrics
    native_adapters: Mapping[str, Adapter] = field(default_factory=dict)
    detect_native: Callable[[object], Adapter | None] = lambda _payload: None
    subscriptions: SubscriptionRepository | None = None
    url_allowlist: UrlAllowlist | None = None
    stream_hub: StreamHub | None = None
    silences: SilenceRepository | None = None
    traces: TraceRepository | None = None
    patterns: PatternRepository | None = None
    correlations: CorrelationRepository | None = None
    correlation: CorrelationConfig = field(default_factory=CorrelationConfig)
    trigger_rules: TriggerRuleRepository | None = None
    trigger_rule_checks: TriggerRuleChecks | None = None
    firings: FiringRepository | None = None
    response_templates: ResponseTemplateRepository | None = None
    script_catalog: ScriptCatalog = field(default_factory=ScriptCatalog)


@dataclass(slots=True, kw_only=True)
class AutonomousApiContext(ServiceContext):
    """The Autonomous Response API (port 3011): analysis, execution, execution control.

    Attributes:
        analyzer: decides about an event and stores the decision.
        decisions: the stored decisions (what ``execute`` runs).
        executions: the execution service (submit, watch, cancel, roll back).
        feedback: feedback on executions (learning); learning: its statistics and policies (insights).
        approvals, approval_records: the approval workflow and its stored requests.
        governor: the safety governor (pause and resume).
    Each is None where ``response.enabled`` is false: the endpoints then answer 503.
    """

    analyzer: Analyzer | None = None
    decisions: DecisionRepository | None = None
    executions: ExecutionService | None = None
    feedback: FeedbackService | None = None
    learning: LearningRepository | None = None
    approvals: ApprovalWorkflow | None = None
    approval_records: ApprovalRepository | None = None
    governor: SafetyGovernor | None = None


C = TypeVar("C", bound=ServiceContext)


def context_of(request: Request[Any, Any, Any], kind: type[C]) -> C:
    """The context of the app serving `request`, as the `kind` its handler needs."""
    ctx = request.app.state[CONTEXT_KEY]
    assert isinstance(ctx, kind), f"this handler needs a {kind.__name__}, the app has {type(ctx).__name__}"
    return ctx
