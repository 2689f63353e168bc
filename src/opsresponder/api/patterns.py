"""Message templates: ``GET /api/v1/patterns`` (served on port 3009, scope ``read``).

Lists the templates the ``patterns`` stage gave to event titles, with how often and when each was seen:
``?since=<midnight>&sort=first_seen`` answers "what is new today". The events of one template are
``GET /api/v1/events?pattern=<id>``. See docs/patterns.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from litestar import Request, get
from litestar.exceptions import ServiceUnavailableException
from litestar.params import QueryParameter
from litestar.response.base import ASGIResponse

from opsresponder.api.auth import scope_opt
from opsresponder.api.bodies import PatternList
from opsresponder.api.common import json_response
from opsresponder.api.context import EventsApiContext, context_of
from opsresponder.api.filters import Offset, TimeFilter, parse_time
from opsresponder.api.openapi import DATABASE_DOWN, Answer, documented
from opsresponder.store.patterns import PatternQuery, PatternRepository

MAX_LIMIT: Final = 1000

Sort = Annotated[
    Literal["last_seen", "first_seen", "count"],
    QueryParameter(
        description="Order: most recently seen first (``last_seen``, the default), newest template first "
        "(``first_seen``), or most frequent first (``count``)."
    ),
]


@get(
    "/api/v1/patterns",
    opt={
        **scope_opt("read"),
        **documented(answers={200: Answer("A page of templates.", PatternList), 503: DATABASE_DOWN}),
    },
    summary="List message templates with their counts, first and last seen",
)
async def list_patterns(
    request: Request[Any, Any, Any],
    since: Annotated[
        TimeFilter,
        QueryParameter(
            format="date-time",
            description="Only templates first seen at or after this RFC 3339 date-time (what is new since).",
        ),
    ] = None,
    sort: Sort = "last_seen",
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = 100,
    offset: Offset = 0,
) -> ASGIResponse:
    query = PatternQuery(since=parse_time(since, "since"), sort=sort, limit=limit, offset=offset)
    patterns, total = await _repository(request).query(query)
    return json_response(
        PatternList(patterns=patterns, total_count=total, has_more=offset + len(patterns) < total)
    )


PATTERN_HANDLERS: Final = (list_patterns,)
"""The route handlers to add to the events app (port 3009)."""


def _repository(request: Request[Any, Any, Any]) -> PatternRepository:
    repository = context_of(request, EventsApiContext).patterns
    if repository is None:
        raise ServiceUnavailableException("patterns are not served by this process")
    return repository
