"""Builders of test data with sensible defaults; tests override what they care about."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from opsresponder.core.clock import utcnow
from opsresponder.core.event import Event, EventState
from opsresponder.core.severity import Severity
from opsresponder.pipeline.stages import correlate, normalize


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
