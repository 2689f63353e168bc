"""Outbound event subscriptions: ``/api/v1/subscriptions`` (served on port 3009).

Changes need the ``write`` scope, reads ``read``. Bodies are decoded with msgspec; an invalid body is
answered 422 with the offending field (``filters.severity[1]``), malformed JSON 400. The URL must pass the
allowlist of ``outbound.allowed_hosts`` / ``allowed_networks`` (422 naming ``url`` otherwise). The
signing secret is write-only: views say ``has_secret``. See docs/subscriptions.md.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Final

import msgspec
from litestar import Request, delete, get, post, put
from litestar.exceptions import NotFoundException, ServiceUnavailableException
from litestar.params import FromPath
from litestar.response.base import ASGIResponse

from opsresponder.api.auth import scope_opt
from opsresponder.api.common import json_response
from opsresponder.api.context import context_of
from opsresponder.config import SubscriptionBatchDelayMs, SubscriptionBatchEvents, SubscriptionMaxAttempts
from opsresponder.core.clock import utcnow
from opsresponder.core.event import EVENT_TYPE_PATTERN
from opsresponder.core.severity import Severity
from opsresponder.ingest.http.generic import validation_error
from opsresponder.outbound.allowlist import MAX_URL_LENGTH, UrlAllowlist, UrlNotAllowedError
from opsresponder.rules.filter import EventFilter
from opsresponder.store.subscriptions import (
    DeliveryStatus,
    Subscription,
    SubscriptionNameTakenError,
    SubscriptionRepository,
    SubscriptionSpec,
)

_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
# Short secrets are guessable offline from one signed request; 16 characters is the floor.
_Secret = Annotated[str, msgspec.Meta(min_length=16, max_length=512)]


class FiltersBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which events to send; omitted or null means "any". Same semantics as ``GET /api/v1/events``."""

    severity: Annotated[list[Severity], msgspec.Meta(min_length=1)] | None = None
    event_type: Annotated[str, msgspec.Meta(pattern=EVENT_TYPE_PATTERN)] | None = None
    host: _Name | None = None
    service: _Name | None = None
    min_score: float | None = None
    include_suppressed: bool = False


class SubscriptionBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The body of POST and PUT. PUT replaces every field, except that an absent ``secret`` keeps the
    current one (``secret: null`` removes it): the secret cannot be read back to be sent again."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_URL_LENGTH)]
    filters: FiltersBody = msgspec.field(default_factory=FiltersBody)
    secret: _Secret | msgspec.UnsetType | None = msgspec.UNSET
    batch_max_events: SubscriptionBatchEvents | None = None
    batch_max_delay_ms: SubscriptionBatchDelayMs | None = None
    max_attempts: SubscriptionMaxAttempts | None = None
    active: bool = True


class _BodyError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


@post("/api/v1/subscriptions", opt=scope_opt("write"), summary="Create an outbound event subscription")
async def create_subscription(request: Request[Any, Any, Any]) -> ASGIResponse:
    repository, allowlist = _services(request)
    try:
        body = await _read_body(request, allowlist)
    except _BodyError as e:
        return _error(e.status, e.message, e.field)
    try:
        secret = None if isinstance(body.secret, msgspec.UnsetType) else body.secret
        created = await repository.create(_spec(body), secret)
    except SubscriptionNameTakenError as e:
        return _error(409, str(e), "name")
    statuses = await repository.statuses([created.id])
    return json_response(_view(created, statuses.get(created.id)), status_code=201)


@get("/api/v1/subscriptions", opt=scope_opt("read"), summary="List subscriptions with their delivery status")
async def list_subscriptions(request: Request[Any, Any, Any]) -> ASGIResponse:
    repository, _ = _services(request)
    subscriptions = await repository.list_all()
    statuses = await repository.statuses([s.id for s in subscriptions])
    return json_response({"subscriptions": [_view(s, statuses.get(s.id)) for s in subscriptions]})


@get(
    "/api/v1/subscriptions/{subscription_id:int}",
    opt=scope_opt("read"),
    summary="One subscription with its delivery status (pending, dead, delivered, last error...)",
)
async def get_subscription(request: Request[Any, Any, Any], subscription_id: FromPath[int]) -> ASGIResponse:
    repository, _ = _services(request)
    subscription = await repository.get(subscription_id)
    if subscription is None:
        raise NotFoundException(f"subscription {subscription_id} does not exist")
    statuses = await repository.statuses([subscription_id])
    return json_response(_view(subscription, statuses.get(subscription_id)))


@put(
    "/api/v1/subscriptions/{subscription_id:int}",
    opt=scope_opt("write"),
    summary="Replace a subscription (an absent secret is kept)",
)
async def replace_subscription(
    request: Request[Any, Any, Any], subscription_id: FromPath[int]
) -> ASGIResponse:
    repository, allowlist = _services(request)
    try:
        body = await _read_body(request, allowlist)
    except _BodyError as e:
        return _error(e.status, e.message, e.field)
    try:
        updated = await repository.update(subscription_id, _spec(body), body.secret)
    except SubscriptionNameTakenError as e:
        return _error(409, str(e), "name")
    if updated is None:
        raise NotFoundException(f"subscription {subscription_id} does not exist")
    statuses = await repository.statuses([subscription_id])
    return json_response(_view(updated, statuses.get(subscription_id)))


@delete(
    "/api/v1/subscriptions/{subscription_id:int}",
    opt=scope_opt("write"),
    summary="Delete a subscription and its undelivered events",
    status_code=204,
)
async def delete_subscription(request: Request[Any, Any, Any], subscription_id: FromPath[int]) -> None:
    repository, _ = _services(request)
    if not await repository.delete(subscription_id):
        raise NotFoundException(f"subscription {subscription_id} does not exist")


@post(
    "/api/v1/subscriptions/{subscription_id:int}/redeliver",
    opt=scope_opt("write"),
    summary="Send a subscription's dead-letter events again",
    status_code=200,
)
async def redeliver_subscription(
    request: Request[Any, Any, Any], subscription_id: FromPath[int]
) -> ASGIResponse:
    repository, _ = _services(request)
    if await repository.get(subscription_id) is None:
        raise NotFoundException(f"subscription {subscription_id} does not exist")
    requeued = await repository.redeliver(subscription_id, utcnow())
    return json_response({"subscription_id": subscription_id, "requeued": requeued})


SUBSCRIPTION_HANDLERS: Final = (
    create_subscription,
    list_subscriptions,
    get_subscription,
    replace_subscription,
    delete_subscription,
    redeliver_subscription,
)
"""The route handlers to add to the events app (port 3009)."""


def _services(request: Request[Any, Any, Any]) -> tuple[SubscriptionRepository, UrlAllowlist]:
    ctx = context_of(request)
    if ctx.subscriptions is None or ctx.url_allowlist is None:
        raise ServiceUnavailableException("outbound subscriptions are disabled in this process")
    return ctx.subscriptions, ctx.url_allowlist


async def _read_body(request: Request[Any, Any, Any], allowlist: UrlAllowlist) -> SubscriptionBody:
    raw = await request.body()
    try:
        body = msgspec.json.decode(raw, type=SubscriptionBody)
    except msgspec.ValidationError as e:
        error = validation_error(e)
        raise _BodyError(422, error.message, error.field) from e
    except msgspec.DecodeError as e:
        raise _BodyError(400, f"malformed JSON: {e}") from e
    if body.filters.min_score is not None and not math.isfinite(body.filters.min_score):
        raise _BodyError(422, "filters.min_score: must be a finite number", "filters.min_score")
    try:
        await allowlist.check_url(body.url)
    except UrlNotAllowedError as e:
        raise _BodyError(422, f"url: {e}", "url") from e
    return body


def _spec(body: SubscriptionBody) -> SubscriptionSpec:
    f = body.filters
    return SubscriptionSpec(
        name=body.name,
        url=body.url,
        filters=EventFilter(
            severity=None if f.severity is None else tuple(s.value for s in f.severity),
            event_type=f.event_type,
            host=f.host,
            service=f.service,
            min_score=f.min_score,
            include_suppressed=f.include_suppressed,
        ),
        batch_max_events=body.batch_max_events,
        batch_max_delay_ms=body.batch_max_delay_ms,
        max_attempts=body.max_attempts,
        active=body.active,
    )


def _view(subscription: Subscription, status: DeliveryStatus | None) -> dict[str, Any]:
    status = status or DeliveryStatus()
    return {
        "id": subscription.id,
        "name": subscription.name,
        "url": subscription.url,
        "filters": msgspec.to_builtins(subscription.filters),
        "has_secret": subscription.secret is not None,
        "batch_max_events": subscription.batch_max_events,
        "batch_max_delay_ms": subscription.batch_max_delay_ms,
        "max_attempts": subscription.max_attempts,
        "active": subscription.active,
        "created_at": _iso(subscription.created_at),
        "updated_at": _iso(subscription.updated_at),
        "delivery": msgspec.to_builtins(status),
    }


def _iso(value: datetime) -> str:
    return value.isoformat()


def _error(status: int, message: str, field: str | None = None) -> ASGIResponse:
    body: dict[str, Any] = {"status_code": status, "detail": message}
    if field is not None:
        body["field"] = field
    return json_response(body, status_code=status)
