"""What the HTTP handlers reach: built by the composition root, stored on each Litestar app's state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from litestar import Request
from prometheus_client import CollectorRegistry

from opsresponder.config import Settings
from opsresponder.live.hub import StreamHub
from opsresponder.outbound.allowlist import UrlAllowlist
from opsresponder.pipeline.intake import Intake
from opsresponder.pipeline.metrics import PipelineMetrics
from opsresponder.pipeline.worker import PipelineWorker
from opsresponder.store.events import EventRepository
from opsresponder.store.subscriptions import SubscriptionRepository

CONTEXT_KEY = "opsresponder"


@dataclass(slots=True)
class ApiContext:
    """Services shared by both APIs.

    Attributes:
        check_database: raises `DatabaseUnavailableError` when PostgreSQL does not answer.
        listeners: every bound listener by name (``events_api``, ``syslog_udp``...) as ``host:port``.
        native_adapters: monitoring-system payload adapters by path suffix (``alertmanager``...).
        detect_native: recognises a native payload posted to the generic endpoint, or returns None.
    """

    settings: Settings
    intake: Intake
    worker: PipelineWorker
    events: EventRepository
    registry: CollectorRegistry
    pipeline_metrics: PipelineMetrics
    check_database: Callable[[], Awaitable[None]]
    listeners: dict[str, str] = field(default_factory=dict)
    native_adapters: dict[str, Any] = field(default_factory=dict)
    detect_native: Callable[[Any], Any] = lambda _payload: None
    subscriptions: SubscriptionRepository | None = None
    url_allowlist: UrlAllowlist | None = None
    stream_hub: StreamHub | None = None


def context_of(request: Request[Any, Any, Any]) -> ApiContext:
    ctx = request.app.state[CONTEXT_KEY]
    assert isinstance(ctx, ApiContext)
    return ctx
