"""Correlations (served on port 3009, scope ``read``): docs/correlation.md.

- ``GET /api/v1/events/{event_id}/correlations``: service-spec.md's shape. The stored correlations of the
  event in both directions (what it was correlated with when it came, and what later events were
  correlated with it: a root cause's dependents), one entry per kind and reason with the related events,
  best score first, and a summary.
- ``include_correlations=true`` on ``GET /api/v1/events``: the same entries for each listed event
  (`correlations_by_event`).
- ``GET /api/v1/correlations/suggestions``: learned lead-lag pairs from stored history, offered as
  dependencies to add to the asset inventory; they never change grouping by themselves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Any, Final

import msgspec
from litestar import Request, get
from litestar.exceptions import NotFoundException, ServiceUnavailableException
from litestar.params import QueryParameter
from litestar.response.base import ASGIResponse

from opsresponder.api.auth import scope_opt
from opsresponder.api.bodies import EventCorrelations, SuggestionList
from opsresponder.api.common import json_response
from opsresponder.api.context import EventsApiContext, context_of
from opsresponder.api.filters import InvalidParameterError, ResourceId
from opsresponder.api.openapi import DATABASE_DOWN, NOT_FOUND, Answer, documented
from opsresponder.config import CorrelationConfig
from opsresponder.core.clock import utcnow
from opsresponder.core.correlation import CORRELATION_TYPES
from opsresponder.core.event import Event
from opsresponder.store.correlations import CorrelationRepository, CorrelationRow, Suggestion

MAX_RELATED_SHOWN: Final = 100
"""Related events listed per correlation entry; ``related_event_count`` has the full number."""
MAX_SUGGESTIONS: Final = 500
_OMITTED: Final = ("raw",)
_KIND_ORDER: Final = {kind: i for i, kind in enumerate(CORRELATION_TYPES)}


@get(
    "/api/v1/events/{event_id:int}/correlations",
    opt={
        **scope_opt("read"),
        **documented(
            answers={
                200: Answer("The event, its correlations best first, and a summary.", EventCorrelations),
                404: NOT_FOUND,
                503: DATABASE_DOWN,
            }
        ),
    },
    summary="The correlations of one event",
)
async def event_correlations(request: Request[Any, Any, Any], event_id: ResourceId) -> ASGIResponse:
    ctx = context_of(request, EventsApiContext)
    repository = _repository(ctx)
    event = await ctx.events.get(event_id)
    if event is None:
        raise NotFoundException(f"event {event_id} does not exist")
    rows = await repository.rows_of([event_id])
    related = await repository.events(sorted({r.other_event_id for r in rows}))
    entries = _entries(rows, related)
    shown = [related[i] for i in {r.other_event_id for r in rows} if i in related]
    times = [e.occurred_at for e in (event, *shown)]
    span = (max(times) - min(times)).total_seconds() / 60
    return json_response(
        {
            "primary_event": _view(event),
            "correlations": entries,
            "correlation_summary": {
                "total_related_events": len(shown),
                "highest_correlation_score": max((e["correlation_score"] for e in entries), default=0.0),
                "correlation_timespan_minutes": round(span, 1),
            },
        }
    )


async def correlations_by_event(ctx: EventsApiContext, events: Sequence[Event]) -> dict[int, list[Any]]:
    """The correlation entries of each of `events` (by id), as ``include_correlations`` shows them.

    Raises:
        ServiceUnavailableException: this process serves no correlations.
        DatabaseUnavailableError: PostgreSQL cannot be reached.
    """
    repository = _repository(ctx)
    ids = [e.id for e in events if e.id is not None]
    rows = await repository.rows_of(ids)
    related = await repository.events(sorted({r.other_event_id for r in rows}))
    by_event: dict[int, list[CorrelationRow]] = {i: [] for i in ids}
    for row in rows:
        by_event[row.event_id].append(row)
    return {i: _entries(event_rows, related) for i, event_rows in by_event.items()}


@get(
    "/api/v1/correlations/suggestions",
    opt={
        **scope_opt("read"),
        **documented(
            answers={
                200: Answer("Learned lead-lag pairs, strongest first (suggestions only).", SuggestionList),
                503: DATABASE_DOWN,
            }
        ),
    },
    summary="Suggested dependencies learned from stored history (never applied by themselves)",
    description=(
        "Pairs where events of one kind on one host or service are followed by events of another kind on "
        "another host or service within the window far more often than chance. Add the ones you trust "
        "as `depends_on` in the asset inventory to make them causal correlations. Defaults come from "
        "`correlation.suggestions` and `correlation.window_minutes`."
    ),
)
async def correlation_suggestions(
    request: Request[Any, Any, Any],
    within_minutes: Annotated[
        float | None,
        QueryParameter(description="The lag: the effect follows within this many minutes (0 < x <= 1440)."),
    ] = None,
    lookback_days: Annotated[
        int | None, QueryParameter(description="History read, in days (1 to 365).")
    ] = None,
    min_support: Annotated[
        int | None, QueryParameter(description="Times the pair must have been seen (1 to 1,000,000).")
    ] = None,
    min_lift: Annotated[
        float | None,
        QueryParameter(description="How many times more often than chance (a finite number, >= 1)."),
    ] = None,
    limit: Annotated[
        int, QueryParameter(ge=1, le=MAX_SUGGESTIONS, description="Pairs returned at most.")
    ] = 50,
) -> ASGIResponse:
    ctx = context_of(request, EventsApiContext)
    repository = _repository(ctx)
    config: CorrelationConfig = ctx.correlation
    defaults = config.suggestions
    within = _bounded("within_minutes", within_minutes, config.window_minutes, 0.0, 1440.0, open_low=True)
    days = int(_bounded("lookback_days", lookback_days, defaults.lookback_days, 1, 365))
    support = int(_bounded("min_support", min_support, defaults.min_support, 1, 1_000_000))
    lift = _bounded("min_lift", min_lift, defaults.min_lift, 1.0, 1e9)
    found = await repository.suggestions(
        since=utcnow() - timedelta(days=days),
        within=timedelta(minutes=within),
        min_support=support,
        min_lift=lift,
        max_events=defaults.max_events,
        limit=limit,
    )
    return json_response(
        {
            "suggestions": [_suggestion(s, within) for s in found],
            "lookback_days": days,
            "within_minutes": within,
            "min_support": support,
            "min_lift": lift,
        }
    )


CORRELATION_HANDLERS: Final = (event_correlations, correlation_suggestions)
"""The route handlers to add to the events app (port 3009)."""


def _repository(ctx: EventsApiContext) -> CorrelationRepository:
    if ctx.correlations is None:
        raise ServiceUnavailableException("correlations are not served by this process")
    return ctx.correlations


def _bounded(
    name: str, value: float | None, default: float, low: float, high: float, *, open_low: bool = False
) -> float:
    """`value` (or `default` when absent) checked against its bounds.

    Raises:
        InvalidParameterError: out of bounds or not finite (answered 400 naming `name`).
    """
    if value is None:
        return float(default)
    below = value <= low if open_low else value < low
    if not math.isfinite(value) or below or value > high:
        side = ">" if open_low else ">="
        raise InvalidParameterError(name, f"expected a number {side} {low:g} and <= {high:g}, got {value!r}")
    return float(value)


def _entries(rows: Sequence[CorrelationRow], related: dict[int, Event]) -> list[dict[str, Any]]:
    """One entry per (kind, reason), related events best first, entries best score first."""
    grouped: dict[tuple[str, str], list[CorrelationRow]] = {}
    for row in rows:
        if row.other_event_id in related:
            grouped.setdefault((row.correlation_type, row.reason), []).append(row)
    entries: list[dict[str, Any]] = []
    for (kind, reason), members in grouped.items():
        members.sort(key=lambda r: (-r.score, r.other_event_id))
        ids = list(dict.fromkeys(r.other_event_id for r in members))
        entries.append(
            {
                "correlation_type": kind,
                "related_events": [_view(related[i]) for i in ids[:MAX_RELATED_SHOWN]],
                "correlation_score": round(float(members[0].score), 4),
                "correlation_reason": reason,
                "created_at": min(r.created_at for r in members),
                "related_event_count": len(ids),
            }
        )
    entries.sort(key=lambda e: (-e["correlation_score"], _KIND_ORDER.get(e["correlation_type"], 9)))
    return entries


def _view(event: Event) -> dict[str, Any]:
    view: dict[str, Any] = msgspec.to_builtins(event)
    for name in _OMITTED:
        view.pop(name, None)
    return view


def _suggestion(s: Suggestion, within: float) -> dict[str, Any]:
    return {
        "cause": {"what": s.cause, "template": s.cause_template, "on": s.cause_place},
        "effect": {"what": s.effect, "template": s.effect_template, "on": s.effect_place},
        "support": s.support,
        "cause_count": s.cause_count,
        "effect_count": s.effect_count,
        "confidence": round(s.support / s.cause_count, 4) if s.cause_count else 0.0,
        "lift": round(s.lift, 3),
        "within_minutes": within,
        "suggestion": f"add {s.cause_place!r} to depends_on of {s.effect_place!r} in the asset inventory",
    }
