"""Builders of test data with sensible defaults; tests override what they care about."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry

from opsresponder.core.clock import utcnow
from opsresponder.core.event import Event, EventState
from opsresponder.core.severity import Severity
from opsresponder.pipeline.intake import Intake
from opsresponder.pipeline.metrics import PipelineMetrics
from opsresponder.pipeline.stage import Stage
from opsresponder.pipeline.stages import Correlate, Normalize, correlate, normalize
from opsresponder.pipeline.worker import PipelineWorker
from opsresponder.store.events import EventRepository


def make_event(**overrides: Any) -> Event:
    now: datetime = overrides.pop("now", None) or utcnow()
    fields: dict[str, Any] = {
        "source": "test",
        "source_type": "custom",
        "event_type": "threshold_breach",
        "severity": Severity.HIGH,
        "title": "High CPU usage",
        "occurred_at": now,
        "received_at": now,
        "host": "web-01",
        "service": "nginx",
        "state": EventState.PROBLEM,
    }
    fields.update(overrides)
    return Event(**fields)


def prepared(*events: Event) -> list[Event]:
    """Events as the worker hands them to the store: normalized, correlated, processed_at set."""
    batch = list(events)
    normalize(batch)
    correlate(batch)
    for event in batch:
        event.processed_at = event.received_at
    return batch


def make_pipeline(
    pool: asyncpg.Pool,
    *,
    repository: EventRepository | None = None,
    stages: Sequence[Stage] | None = None,
    registry: CollectorRegistry | None = None,
    intake_capacity: int = 1000,
    **options: Any,
) -> tuple[PipelineWorker, Intake, CollectorRegistry]:
    """A worker and its intake on `pool`, as the service wires them; not started.

    By default: the real repository (no writers), the default stages, batches of up to 100 that never
    linger. `options` go to `PipelineWorker` (``concurrent_batches``, ``batch_max_wait``...).
    """
    registry = registry or CollectorRegistry()
    metrics = PipelineMetrics(registry)
    intake = Intake(intake_capacity, metrics)

    async def probe() -> None:
        await pool.fetchval("SELECT 1")

    settings: dict[str, Any] = {"batch_max_events": 100, "batch_max_wait": 0.0, "retry_max_delay": 0.1}
    settings.update(options)
    worker = PipelineWorker(
        intake,
        repository or EventRepository(pool, dedup_window=timedelta(minutes=5)),
        metrics,
        stages=[Normalize(), Correlate()] if stages is None else stages,
        probe=probe,
        **settings,
    )
    return worker, intake, registry
