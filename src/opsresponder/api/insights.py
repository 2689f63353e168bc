"""Learning insights: ``GET /api/v1/autonomous/insights`` (port 3011, scope ``read``).

Per template action: runs, success rate, mean success and efficiency scores, feedback counts, its
current policy; per template and per template and pattern: the execution scores; and every demotion
and promotion with its reason and time (docs/response.md "Feedback and learning"). ``template_id``
filters all of it; ``limit`` and ``offset`` page the actions.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from litestar import Request, get
from litestar.exceptions import ServiceUnavailableException
from litestar.params import QueryParameter
from litestar.response.base import ASGIResponse

from opsresponder.api.analysis import DISABLED, UNAVAILABLE
from opsresponder.api.auth import scope_opt
from opsresponder.api.common import json_response
from opsresponder.api.context import AutonomousApiContext, context_of
from opsresponder.api.filters import Offset
from opsresponder.api.openapi import Answer, documented
from opsresponder.store.learning import ActionStats, GroupStats, LearningRepository, PolicyChange

MAX_LIMIT: Final = 1000
GROUPS_LIMIT: Final = 1000
"""Templates and patterns answered at most (they are few; the actions are paged)."""


class Insights(msgspec.Struct, kw_only=True):
    """What learning knows.

    Attributes:
        actions: per template action, a page (``total_count``, ``has_more``).
        templates: execution scores per template; patterns: per template and event pattern.
        policy_changes: every demotion and promotion, newest first (``change``: demoted or promoted).
    """

    actions: list[ActionStats]
    total_count: int
    has_more: bool
    templates: list[GroupStats]
    patterns: list[GroupStats]
    policy_changes: list[PolicyChange]


@get(
    "/api/v1/autonomous/insights",
    opt={
        **scope_opt("read"),
        **documented(
            answers={200: Answer("Statistics, policies and their changes.", Insights), 503: UNAVAILABLE}
        ),
    },
    summary="What learning knows: statistics per action, template and pattern; demotions and promotions",
)
async def insights(
    request: Request[Any, Any, Any],
    template_id: Annotated[
        str | None, QueryParameter(max_length=200, description="Only this template's.")
    ] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="Actions per page.")] = 100,
    offset: Offset = 0,
) -> ASGIResponse:
    learning = _learning(request)
    actions, total = await learning.action_stats(template_id, limit, offset)
    return json_response(
        Insights(
            actions=actions,
            total_count=total,
            has_more=offset + len(actions) < total,
            templates=await learning.group_stats(template_id, by_pattern=False, limit=GROUPS_LIMIT),
            patterns=await learning.group_stats(template_id, by_pattern=True, limit=GROUPS_LIMIT),
            policy_changes=await learning.changes(template_id),
        )
    )


def _learning(request: Request[Any, Any, Any]) -> LearningRepository:
    learning = context_of(request, AutonomousApiContext).learning
    if learning is None:
        raise ServiceUnavailableException(DISABLED)
    return learning


INSIGHTS_HANDLERS: Final = (insights,)
"""The route handlers to add to the autonomous app (port 3011)."""
