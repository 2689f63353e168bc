"""Where each input of the risk matrix comes from (docs/response.md "Context resolution").

For each factor the first source that knows wins: the request's ``context``, then what the pipeline
stored with the event (its asset from the inventory, the silences), then a default. The defaults are the
careful side of each factor, except criticality: an event on a host the inventory does not know is
weighed as an average (``medium``, the inventory's own default for an entry without one), not as the
worst case, which would make every unknown host need approval.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, Literal, get_args

import msgspec

from opsresponder.core.event import Event
from opsresponder.pipeline.enrich.hours import BusinessHours, BusinessHoursError
from opsresponder.pipeline.noise.matcher import CompiledSilence
from opsresponder.response.analysis.request import AnalysisContext, Criticality

Source = Literal["request", "asset", "asset_calendar", "event", "silence", "default"]

DEFAULT_CRITICALITY: Final[Criticality] = "medium"
DEFAULT_BUSINESS_HOURS: Final = True
"""Unknown: assume people are at work (adds the business-hours weight): the careful side."""
DEFAULT_IN_MAINTENANCE: Final = False
"""Unknown: assume no maintenance window (adds the outside-maintenance weight): the careful side."""
_CRITICALITIES: Final = frozenset(get_args(Criticality))


class Resolved(msgspec.Struct, frozen=True, kw_only=True):
    """One resolved input and where it came from; ``detail`` says more when the source needs it."""

    value: Any
    source: Source
    detail: str | None = None


class ResolvedContext(msgspec.Struct, frozen=True, kw_only=True):
    criticality: Resolved
    business_hours: Resolved
    maintenance_window: Resolved

    def as_inputs(self) -> dict[str, Any]:
        built: dict[str, Any] = msgspec.to_builtins(self)
        return built


def resolve_context(
    given: AnalysisContext, event: Event, now: datetime, silences: Sequence[CompiledSilence] | None
) -> ResolvedContext:
    """The three matrix inputs for `event` at `now` (the actions would run now, so business hours and
    maintenance are read now; the event's own ``in_business_hours`` is the flag at ``occurred_at``, used
    only when the asset has no calendar to read again). `silences`: the current silences (maintenance
    windows), None when they are not known."""
    asset = event.metadata.get("asset")
    asset = asset if isinstance(asset, dict) else {}
    return ResolvedContext(
        criticality=_criticality(given, asset),
        business_hours=_business_hours(given, asset, now),
        maintenance_window=_maintenance(given, event, now, silences),
    )


def _criticality(given: AnalysisContext, asset: dict[str, Any]) -> Resolved:
    if given.system_criticality is not None:
        return Resolved(value=given.system_criticality, source="request")
    value = asset.get("criticality")
    if isinstance(value, str) and value in _CRITICALITIES:
        return Resolved(value=value, source="asset", detail=_asset_name(asset))
    return Resolved(value=DEFAULT_CRITICALITY, source="default")


def _business_hours(given: AnalysisContext, asset: dict[str, Any], now: datetime) -> Resolved:
    if given.business_hours is not None:
        return Resolved(value=given.business_hours, source="request")
    calendar = asset.get("business_hours")
    if isinstance(calendar, dict):
        try:
            hours = BusinessHours(
                list(calendar.get("days") or []),
                calendar.get("start", ""),
                calendar.get("end", ""),
                str(calendar.get("timezone", "UTC")),
            )
        except (BusinessHoursError, TypeError):
            hours = None  # a sender's own metadata.asset of another shape: fall through
        if hours is not None:
            return Resolved(value=hours.contains(now), source="asset_calendar", detail=_asset_name(asset))
    flag = asset.get("in_business_hours")
    if isinstance(flag, bool):
        return Resolved(value=flag, source="event", detail="metadata.asset.in_business_hours")
    return Resolved(value=DEFAULT_BUSINESS_HOURS, source="default")


def _maintenance(
    given: AnalysisContext, event: Event, now: datetime, silences: Sequence[CompiledSilence] | None
) -> Resolved:
    if given.maintenance_window is not None:
        return Resolved(value=given.maintenance_window, source="request")
    if silences is None:
        return Resolved(value=DEFAULT_IN_MAINTENANCE, source="default")
    for silence in silences:
        if silence.active(now) and silence.matches(event):
            return Resolved(value=True, source="silence", detail=silence.reason)
    return Resolved(value=False, source="silence", detail="no active silence matches the event")


def _asset_name(asset: dict[str, Any]) -> str | None:
    name = asset.get("name")
    return name if isinstance(name, str) else None
