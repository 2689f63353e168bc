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
from opsresponder.store.patterns import Pattern
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
    automation: AutomationState | None = None
    """Where the response side runs: whether automatic execution is paused (paused is still ready)."""
    response_process: ResponseProcessState | None = None
    """On port 3009 with ``response.process: separate``: the response process (down is still ready: the
    events side takes events meanwhile)."""


class ResponseProcessState(msgspec.Struct):
    """The response process seen from the events process that supervises it."""

    running: bool
    """It serves port 3011 now (False while it is being started again)."""
    restarts: int
    """Times it died and was started again since the service started."""


class AutomationState(msgspec.Struct):
    """The global pause of automatic execution (``POST /api/v1/autonomous/pause`` and ``/resume``)."""

    paused: bool
    by: str | None = None
    reason: str | None = None
    since: datetime | None = None


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

    correlations: list[CorrelationView] | msgspec.UnsetType = msgspec.UNSET


class CorrelationView(msgspec.Struct):
    """One correlation of an event (api/correlations.py): one kind and reason, with the related events.

    Attributes:
        correlation_score: the best score (0-1) among the related events of this kind and reason.
        created_at: when the first of them was correlated.
        related_events: the related events, best score first (at most 100; ``related_event_count`` says
            how many there are).
    """

    correlation_type: Literal["time_based", "host_based", "pattern_based", "causal"]
    related_events: list[EventSummary]
    correlation_score: float
    correlation_reason: str
    created_at: datetime
    related_event_count: int


class CorrelationSummary(msgspec.Struct):
    """``total_related_events``: distinct related events; ``correlation_timespan_minutes``: from the
    earliest to the latest ``occurred_at`` of the event and its related events."""

    total_related_events: int
    highest_correlation_score: float
    correlation_timespan_minutes: float


class EventCorrelations(msgspec.Struct):
    """``GET /api/v1/events/{event_id}/correlations`` (service-spec.md), correlations best first."""

    primary_event: EventSummary
    correlations: list[CorrelationView]
    correlation_summary: CorrelationSummary


class SuggestionSide(msgspec.Struct):
    """One side of a learned lead-lag pair: what (a pattern id, or the event type without one), its
    template (or the event type), and where (host, or service without a host)."""

    what: str
    template: str
    on: str


class SuggestedDependency(msgspec.Struct):
    """``cause`` is followed by ``effect`` within ``within_minutes`` ``support`` times (``confidence``:
    the share of the cause's events), ``lift`` times more often than chance; ``suggestion`` says what to
    add to the asset inventory to make it a causal correlation."""

    cause: SuggestionSide
    effect: SuggestionSide
    support: int
    cause_count: int
    effect_count: int
    confidence: float
    lift: float
    within_minutes: float
    suggestion: str


class SuggestionList(msgspec.Struct):
    """``GET /api/v1/correlations/suggestions``: learned lead-lag pairs, strongest first, with the
    parameters they were computed with. Suggestions never change grouping by themselves."""

    suggestions: list[SuggestedDependency]
    lookback_days: int
    within_minutes: float
    min_support: int
    min_lift: float


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


class PatternList(msgspec.Struct, kw_only=True):
    """``GET /api/v1/patterns``: a page of message templates in the order asked for."""

    patterns: list[Pattern]
    total_count: int
    has_more: bool


class SilenceList(msgspec.Struct):
    """``GET /api/v1/silences``: every silence, oldest first."""

    silences: list[Silence]


class TemplateList(msgspec.Struct):
    """``GET /api/v1/rules/responses``: the current version of every response template, by key."""

    templates: list[StoredTemplate]
