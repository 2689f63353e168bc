"""Outbound event subscriptions: ``/api/v1/subscriptions`` (served on port 3009).

Changes need the ``write`` scope, reads ``read``. Bodies are decoded with msgspec; an invalid body is
answered 422 with the offending field (``filters.severity[1]``), malformed JSON 400. The URL must pass the
allowlist of ``outbound.allowed_hosts`` / ``allowed_networks`` (422 naming ``url`` otherwise). The
signing secret is write-only: views say ``has_secret``. See docs/subscriptions.md.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Final

import msgspec
from litestar import Request, delete, get, post, put
from litestar.exceptions import NotFoundException, ServiceUnavailableException
from litestar.response.base import ASGIResponse

from opsresponder.api.auth import scope_opt
from opsresponder.api.bodies import Redelivery, SubscriptionList, SubscriptionView
from opsresponder.api.common import json_response
from opsresponder.api.context import EventsApiContext, context_of
from opsresponder.api.errors import error_response
from opsresponder.api.filters import NO_NUL_PATTERN, ResourceId
from opsresponder.api.json_body import MALFORMED_JSON, BodyError, decode_json_body, refuse
from opsresponder.api.openapi import NOT_FOUND, RETRY_AFTER, Answer, documented, error
from opsresponder.config import SubscriptionBatchDelayMs, SubscriptionBatchEvents, SubscriptionMaxAttempts
from opsresponder.core.clock import utcnow
from opsresponder.core.event import EVENT_TYPE_PATTERN
from opsresponder.core.severity import Severity
from opsresponder.outbound.allowlist import MAX_URL_LENGTH, UrlAllowlist, UrlNotAllowedError
from opsresponder.rules.filter import EventFilter
from opsresponder.store.subscriptions import (
    DeliveryStatus,
    Subscription,
    SubscriptionNameTakenError,
    SubscriptionRepository,
    SubscriptionSpec,
)

# PostgreSQL text holds no NUL: refused here (422 naming the field) rather than by the database.
_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=NO_NUL_PATTERN)]
# Short secrets are guessable offline from one signed request; 16 characters is the floor.
_Secret = Annotated[str, msgspec.Meta(min_length=16, max_length=512, pattern=NO_NUL_PATTERN)]


class FiltersBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which events to send; omitted or null means "any". Same semantics as ``GET /api/v1/events``."""

    severity: Annotated[list[Severity], msgspec.Meta(min_length=1)] | None = None
    event_type: Annotated[str, msgspec.Meta(pattern=EVENT_TYPE_PATTERN)] | None = None
    host: _Name | None = None
    service: _Name | None = None
    min_score: float | None = None
    pattern: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_NUL_PATTERN)] | None = None
    """A message template id (``metadata.pattern.id``, GET /api/v1/patterns): only that template's events."""
    include_suppressed: bool = False


class SubscriptionBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The body of POST and PUT. PUT replaces every field, except that an absent ``secret`` keeps the
    current one (``secret: null`` removes it): the secret cannot be read back to be sent again."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=NO_NUL_PATTERN)]
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_URL_LENGTH, pattern=NO_NUL_PATTERN)]
    filters: FiltersBody = msgspec.field(default_factory=FiltersBody)
    secret: _Secret | msgspec.UnsetType | None = msgspec.UNSET
    batch_max_events: SubscriptionBatchEvents | None = None
    batch_max_delay_ms: SubscriptionBatchDelayMs | None = None
    max_attempts: SubscriptionMaxAttempts | None = None
    active: bool = True


_INVALID_BODY: Final = error("The body is not valid: ``field`` names the wrong field (``url``: not allowed).")
_NAME_TAKEN: Final = error("Another subscription has this name (``field``: ``name``).")
_UNAVAILABLE: Final = error(
    "Outbound subscriptions are disabled in this process, or PostgreSQL is unavailable (with Retry-After).",
    RETRY_AFTER,
)
_BODY = (
    "Every field; ``filters`` use the semantics of ``GET /api/v1/events``. The ``url`` must pass the "
    "allowlist (subscriptions.allowed_hosts / allowed_networks). The secret is write-only."
)


_EXAMPLE: Final = {
    "name": "pager",
    "url": "http://localhost:9000/hooks/opsresponder",
    "filters": {"severity": ["critical", "high"], "host": "db-1"},
    "secret": "a-shared-secret-of-16-or-more-characters",
    "batch_max_delay_ms": 0,
}


def _doc(answers: dict[int, Answer], body: bool = False) -> dict[str, Any]:
    return documented(
        body=SubscriptionBody if body else None,
        body_description=_BODY if body else "",
        body_example=_EXAMPLE if body else None,
        answers={
            **answers,
            503: _UNAVAILABLE,
            **({400: MALFORMED_JSON, 422: _INVALID_BODY} if body else {}),
        },
    )


@post(
    "/api/v1/subscriptions",
    opt={
        **scope_opt("write"),
        **_doc({201: Answer("Created.", SubscriptionView), 409: _NAME_TAKEN}, body=True),
    },
    summary="Create an outbound event subscription",
)
async def create_subscription(request: Request[Any, Any, Any]) -> ASGIResponse:
    repository, allowlist = _services(request)
    try:
        body = await _read_body(request, allowlist)
    except BodyError as e:
        return refuse(e)
    try:
        secret = None if isinstance(body.secret, msgspec.UnsetType) else body.secret
        created = await repository.create(_spec(body), secret)
    except SubscriptionNameTakenError as e:
        return error_response(409, str(e), "name")
    statuses = await repository.statuses([created.id])
    return json_response(_view(created, statuses.get(created.id)), status_code=201)


@get(
    "/api/v1/subscriptions",
    opt={**scope_opt("read"), **_doc({200: Answer("Every subscription.", SubscriptionList)})},
    summary="List subscriptions with their delivery status",
)
async def list_subscriptions(request: Request[Any, Any, Any]) -> ASGIResponse:
    repository, _ = _services(request)
    subscriptions = await repository.list_all()
    statuses = await repository.statuses([s.id for s in subscriptions])
    return json_response(SubscriptionList([_view(s, statuses.get(s.id)) for s in subscriptions]))


@get(
    "/api/v1/subscriptions/{subscription_id:int}",
    opt={**scope_opt("read"), **_doc({200: Answer("The subscription.", SubscriptionView), 404: NOT_FOUND})},
    summary="One subscription with its delivery status (pending, dead, delivered, last error...)",
)
async def get_subscription(request: Request[Any, Any, Any], subscription_id: ResourceId) -> ASGIResponse:
    repository, _ = _services(request)
    subscription = await repository.get(subscription_id)
    if subscription is None:
        raise NotFoundException(f"subscription {subscription_id} does not exist")
    statuses = await repository.statuses([subscription_id])
    return json_response(_view(subscription, statuses.get(subscription_id)))


@put(
    "/api/v1/subscriptions/{subscription_id:int}",
    opt={
        **scope_opt("write"),
        **_doc({200: Answer("Replaced.", SubscriptionView), 404: NOT_FOUND, 409: _NAME_TAKEN}, body=True),
    },
    summary="Replace a subscription (an absent secret is kept)",
)
async def replace_subscription(request: Request[Any, Any, Any], subscription_id: ResourceId) -> ASGIResponse:
    repository, allowlist = _services(request)
    try:
        body = await _read_body(request, allowlist)
    except BodyError as e:
        return refuse(e)
    try:
        updated = await repository.update(subscription_id, _spec(body), body.secret)
    except SubscriptionNameTakenError as e:
        return error_response(409, str(e), "name")
    if updated is None:
        raise NotFoundException(f"subscription {subscription_id} does not exist")
    statuses = await repository.statuses([subscription_id])
    return json_response(_view(updated, statuses.get(subscription_id)))


@delete(
    "/api/v1/subscriptions/{subscription_id:int}",
    opt={**scope_opt("write"), **_doc({204: Answer("Deleted."), 404: NOT_FOUND})},
    summary="Delete a subscription and its undelivered events",
    status_code=204,
)
async def delete_subscription(request: Request[Any, Any, Any], subscription_id: ResourceId) -> None:
    repository, _ = _services(request)
    if not await repository.delete(subscription_id):
        raise NotFoundException(f"subscription {subscription_id} does not exist")


@post(
    "/api/v1/subscriptions/{subscription_id:int}/redeliver",
    opt={
        **scope_opt("write"),
        **_doc({200: Answer("The dead-letter events are queued again.", Redelivery), 404: NOT_FOUND}),
    },
    summary="Send a subscription's dead-letter events again",
    status_code=200,
)
async def redeliver_subscription(
    request: Request[Any, Any, Any], subscription_id: ResourceId
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
    ctx = context_of(request, EventsApiContext)
    if ctx.subscriptions is None or ctx.url_allowlist is None:
        raise ServiceUnavailableException("outbound subscriptions are disabled in this process")
    return ctx.subscriptions, ctx.url_allowlist


async def _read_body(request: Request[Any, Any, Any], allowlist: UrlAllowlist) -> SubscriptionBody:
    body = decode_json_body(await request.body(), SubscriptionBody)
    if body.filters.min_score is not None and not math.isfinite(body.filters.min_score):
        raise BodyError(422, "filters.min_score: must be a finite number", "filters.min_score")
    try:
        await allowlist.check_url(body.url)
    except UrlNotAllowedError as e:
        raise BodyError(422, f"url: {e}", "url") from e
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
            pattern=f.pattern,
            include_suppressed=f.include_suppressed,
        ),
        batch_max_events=body.batch_max_events,
        batch_max_delay_ms=body.batch_max_delay_ms,
        max_attempts=body.max_attempts,
        active=body.active,
    )


def _view(subscription: Subscription, status: DeliveryStatus | None) -> SubscriptionView:
    return SubscriptionView(
        id=subscription.id,
        name=subscription.name,
        url=subscription.url,
        filters=subscription.filters,
        has_secret=subscription.secret is not None,
        batch_max_events=subscription.batch_max_events,
        batch_max_delay_ms=subscription.batch_max_delay_ms,
        max_attempts=subscription.max_attempts,
        active=subscription.active,
        created_at=subscription.created_at,
        updated_at=subscription.updated_at,
        delivery=status or DeliveryStatus(),
    )
