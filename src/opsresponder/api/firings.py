"""A trigger rule's firings: ``GET /api/v1/rules/triggers/{rule_id}/firings`` (port 3009, scope ``read``).

Newest first, paged with ``limit`` and ``offset``. Firings are history: a rule that was deleted (or never
fired) lists what it has, possibly nothing: 200, not 404. See docs/rules-evaluation.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

import msgspec
from litestar import Request, get
from litestar.exceptions import ServiceUnavailableException
from litestar.params import QueryParameter
from litestar.response.base import ASGIResponse

from opsresponder.api.auth import scope_opt
from opsresponder.api.common import json_response
from opsresponder.api.context import EventsApiContext, context_of
from opsresponder.api.filters import Offset, ResourceId
from opsresponder.api.openapi import DATABASE_DOWN, Answer, documented, error
from opsresponder.store.firings import StoredFiring

MAX_LIMIT: Final = 1000


class FiringView(msgspec.Struct, kw_only=True):
    """One firing of the rule, and where the response side is with it."""

    id: int
    rule_id: int
    group_key: str
    kind: str
    event_ids: list[int]
    fired_at: datetime
    detail: dict[str, Any]
    status: str
    claimed_by: str | None
    claimed_at: datetime | None
    attempts: int
    last_error: str | None


class FiringList(msgspec.Struct, kw_only=True):
    """``GET /api/v1/rules/triggers/{rule_id}/firings``: one page, newest first."""

    firings: list[FiringView]
    total_count: int
    has_more: bool


def _view(f: StoredFiring) -> FiringView:
    return FiringView(
        id=f.id, rule_id=f.rule_id, group_key=f.group_key, kind=f.kind, event_ids=f.event_ids,
        fired_at=f.fired_at, detail=f.detail, status=f.status, claimed_by=f.claimed_by,
        claimed_at=f.claimed_at, attempts=f.attempts, last_error=f.last_error,
    )  # fmt: skip


_NO_SUCH_PATH: Final = error("No such path: the rule id is not an integer. (A rule without firings is 200.)")


@get(
    "/api/v1/rules/triggers/{rule_id:int}/firings",
    opt={
        **scope_opt("read"),
        **documented(
            answers={
                200: Answer("A page of the rule's firings, newest first.", FiringList),
                404: _NO_SUCH_PATH,
                503: DATABASE_DOWN,
            }
        ),
    },
    summary="A trigger rule's firings, newest first",
)
async def list_firings(
    request: Request[Any, Any, Any],
    rule_id: ResourceId,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="Firings per page.")] = 100,
    offset: Offset = 0,
) -> ASGIResponse:
    firings = context_of(request, EventsApiContext).firings
    if firings is None:
        raise ServiceUnavailableException("rule firings are not served by this process")
    page, total = await firings.list_for_rule(rule_id, limit=limit, offset=offset)
    body = FiringList(
        firings=[_view(f) for f in page], total_count=total, has_more=offset + len(page) < total
    )
    return json_response(body)


FIRING_HANDLERS: Final = (list_firings,)
"""The route handlers to add to the events app (port 3009)."""
