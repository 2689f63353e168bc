"""Where each input of the risk matrix comes from (docs/response.md "Context resolution").

For each factor the first source that knows wins: what the pipeline stored with the event (its asset from
the inventory, the silences), then a default. The request's ``context`` may only make the answer
stricter (raise risk), never lower it below what the inventory, the asset's calendar and the silences
say: the higher criticality wins, business hours true wins, and maintenance counts only when an active
silence says so too. Where nothing knows the factor, the request's value is taken (criticality and
business hours; never maintenance). Each factor records what the request asked, what the sources said
and which was used. A trusted context (the rule-to-response loop's, from the operator's configuration) is
taken as given, as before.

The defaults are the careful side of each factor, except criticality: an event on a host the inventory
does not know is weighed as an average (``medium``, the inventory's own default for an entry without
one), not as the worst case, which would make every unknown host need approval.
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


_RANK: Final[dict[str, int]] = {"low": 0, "medium": 1, "high": 2, "critical": 3}


class Resolved(msgspec.Struct, frozen=True, kw_only=True):
    """One resolved input and where it came from; ``detail`` says more when the source needs it. When the
    request gave a value: ``requested`` is it, ``known`` what the event's sources said (None: nothing)
    and ``known_source`` which source; ``value`` is the stricter of the two."""

    value: Any
    source: Source
    detail: str | None = None
    requested: Any = None
    known: Any = None
    known_source: Source | None = None
    compared: bool = False


class ResolvedContext(msgspec.Struct, frozen=True, kw_only=True):
    criticality: Resolved
    business_hours: Resolved
    maintenance_window: Resolved

    def as_inputs(self) -> dict[str, Any]:
        built: dict[str, Any] = {
            name: _entry(getattr(self, name))
            for name in ("criticality", "business_hours", "maintenance_window")
        }
        return built


def _entry(resolved: Resolved) -> dict[str, Any]:
    entry: dict[str, Any] = msgspec.to_builtins(resolved)
    compared = entry.pop("compared")
    if not compared:
        for key in ("requested", "known", "known_source"):
            entry.pop(key)
    return entry


def resolve_context(
    given: AnalysisContext,
    event: Event,
    now: datetime,
    silences: Sequence[CompiledSilence] | None,
    *,
    trusted: bool = False,
) -> ResolvedContext:
    """The three matrix inputs for `event` at `now` (the actions would run now, so business hours and
    maintenance are read now; the event's own ``in_business_hours`` is the flag at ``occurred_at``, used
    only when the asset has no calendar to read again). `silences`: the current silences (maintenance
    windows), None when they are not known. `given` may only raise risk unless `trusted` (the operator's
    configured context), which is taken as given."""
    asset = event.metadata.get("asset")
    asset = asset if isinstance(asset, dict) else {}
    criticality = _criticality(asset)
    hours = _business_hours(asset, now)
    maintenance = _maintenance(event, now, silences)
    if trusted:
        return ResolvedContext(
            criticality=_as_given(given.system_criticality, criticality),
            business_hours=_as_given(given.business_hours, hours),
            maintenance_window=_as_given(given.maintenance_window, maintenance),
        )
    return ResolvedContext(
        criticality=_stricter_criticality(given.system_criticality, criticality),
        business_hours=_stricter_hours(given.business_hours, hours),
        maintenance_window=_stricter_maintenance(given.maintenance_window, maintenance),
    )


def _as_given(requested: Any, known: Resolved) -> Resolved:
    return known if requested is None else Resolved(value=requested, source="request")


def _compared(value: Any, source: Source, requested: Any, known: Resolved, detail: str | None) -> Resolved:
    known_value = None if known.source == "default" else known.value
    return Resolved(
        value=value,
        source=source,
        detail=detail,
        requested=requested,
        known=known_value,
        known_source=known.source,
        compared=True,
    )


def _stricter_criticality(requested: Criticality | None, known: Resolved) -> Resolved:
    if requested is None:
        return known
    if known.source == "default" or _RANK[requested] > _RANK[str(known.value)]:
        return _compared(requested, "request", requested, known, None)
    return _compared(known.value, known.source, requested, known, known.detail)


def _stricter_hours(requested: bool | None, known: Resolved) -> Resolved:
    if requested is None:
        return known
    if known.source == "default" or (requested and not known.value):
        return _compared(requested, "request", requested, known, None)
    return _compared(known.value, known.source, requested, known, known.detail)


def _stricter_maintenance(requested: bool | None, known: Resolved) -> Resolved:
    if requested is None:
        return known
    if not requested:  # "not in maintenance" is the careful side: always taken
        return _compared(False, "request", requested, known, None)
    if known.value is True:
        return _compared(True, known.source, requested, known, known.detail)
    detail = "the request said maintenance, but no active silence matches the event"
    return _compared(False, known.source, requested, known, detail)


def _criticality(asset: dict[str, Any]) -> Resolved:
    value = asset.get("criticality")
    if isinstance(value, str) and value in _CRITICALITIES:
        return Resolved(value=value, source="asset", detail=_asset_name(asset))
    return Resolved(value=DEFAULT_CRITICALITY, source="default")


def _business_hours(asset: dict[str, Any], now: datetime) -> Resolved:
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


def _maintenance(event: Event, now: datetime, silences: Sequence[CompiledSilence] | None) -> Resolved:
    if silences is None:
        return Resolved(value=DEFAULT_IN_MAINTENANCE, source="default")
    for silence in silences:
        if silence.active(now) and silence.matches(event):
            return Resolved(value=True, source="silence", detail=silence.reason)
    return Resolved(value=False, source="silence", detail="no active silence matches the event")


def _asset_name(asset: dict[str, Any]) -> str | None:
    name = asset.get("name")
    return name if isinstance(name, str) else None
