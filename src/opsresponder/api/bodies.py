"""The shapes of the APIs' answers, as msgspec types: what the OpenAPI documents say each answer holds.

The handlers build their answers as plain dicts on the hot paths (api/ingest.py, api/events.py); these types
state the same shapes for the schema. The schemathesis run of the test suite checks every answer against
them, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import msgspec

from opsresponder.core.event import Event
from opsresponder.core.silence import Silence
from opsresponder.rules.filter import EventFilter
from opsresponder.store.response_templates import StoredTemplate
from opsresponder.store.subscriptions import DeliveryStatus


class Health(msgspec.Struct):
    """``GET /health``: the process is alive; every bound listener as ``host:port``."""

    status: Literal["ok"]
    version: str
    listeners: dict[str, str]


class Readiness(msgspec.Struct):
    """``GET /ready``: each check is ``ok`` or says what is wrong."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, str]
    listeners: dict[str, str]


class WebhookAccepted(msgspec.Struct):
    """One stored event (a duplicate too: its ``event_id`` is the existing event's)."""

    event_id: int
    status: Literal["accepted"]
    message: str
    correlation_id: uuid.UUID
    processing_time_ms: float
    duplicate: bool


class WebhookRejection(msgspec.Struct, omit_defaults=True):
    """The webhook's error shape, fixed by the spec: ``status: rejected`` and a ``message``.

    Attributes:
        field: the wrong field of the body (``severity``, ``[2].timestamp``, ``alerts[0].labels``).
        retryable: true when sending the same event again later may succeed (the database was down).
        request_id: on a 500, the id of the log line that describes it.
    """

    status: Literal["rejected"]
    message: str
    field: str | None = None
    retryable: bool | None = None
    request_id: str | None = None


class WebhookBatch(msgspec.Struct):
    """The answer to an array or a native payload: one result per event, in body order."""

    status: Literal["accepted", "partial", "rejected"]
    accepted: int
    rejected: int
    results: list[dict[str, Any]]
    """Each a `WebhookAccepted` or a `WebhookRejection` (api/openapi.py states it)."""
    processing_time_ms: float


class EventSummary(Event, kw_only=True):
    """An event in a listing: as stored, without ``raw``; ``correlations`` with ``include_correlations``."""

    correlations: list[dict[str, Any]] | msgspec.UnsetType = msgspec.UNSET


class EventList(msgspec.Struct):
    """``GET /api/v1/events``: a page of events, newest first."""

    events: list[EventSummary]
    total_count: int
    has_more: bool


class SubscriptionView(msgspec.Struct, kw_only=True):
    """A subscription as the API shows it (api/subscriptions.py answers this struct): the secret is never
    shown, ``has_secret`` says if one is set."""

    id: int
    name: str
    url: str
    filters: EventFilter
    has_secret: bool
    batch_max_events: int
    batch_max_delay_ms: int
    max_attempts: int
    active: bool
    created_at: datetime
    updated_at: datetime
    delivery: DeliveryStatus


class SubscriptionList(msgspec.Struct):
    subscriptions: list[SubscriptionView]


class Redelivery(msgspec.Struct):
    """``POST /api/v1/subscriptions/{id}/redeliver``: how many dead-letter deliveries were queued again."""

    subscription_id: int
    requeued: int


class SilenceList(msgspec.Struct):
    """``GET /api/v1/silences``: every silence, oldest first."""

    silences: list[Silence]


class TemplateList(msgspec.Struct):
    """``GET /api/v1/rules/responses``: the current version of every response template, by key."""

    templates: list[StoredTemplate]
