"""Closed-loop verification's built-in criterion: "the triggering condition has cleared".

After a remediation ends at ``since``, the condition has cleared when a resolve with the event's
fingerprint arrived after ``since``, or when no new sighting of it arrived within ``quiet_seconds``. A
sighting of the problem after ``since`` means it did not clear, also when a resolve followed it (the
problem came back, then went away again: the remediation did not hold); before the quiet period is over
and without a resolve, the answer is not known yet (``cleared`` None: check again later).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

import msgspec

from opsresponder.store.clearance import Sighting


class SightingSource(Protocol):
    async def latest_sighting(self, fingerprint: str) -> Sighting | None: ...

    async def problem_seen_after(self, fingerprint: str, since: datetime) -> datetime | None: ...


class Clearance(msgspec.Struct, kw_only=True, frozen=True):
    cleared: bool | None
    """True cleared, False still there, None not known yet."""
    reason: str


async def check_cleared(
    source: SightingSource, fingerprint: str, since: datetime, now: datetime, quiet_seconds: float
) -> Clearance:
    sighting = await source.latest_sighting(fingerprint)
    quiet_until = since + timedelta(seconds=quiet_seconds)
    if sighting is not None and sighting.last_seen_at > since:
        if sighting.state == "resolved":
            again = await source.problem_seen_after(fingerprint, since)
            if again is not None:
                return Clearance(
                    cleared=False,
                    reason=f"the problem was seen again at {again.isoformat()}, after the remedy, before "
                    f"the resolve at {sighting.last_seen_at.isoformat()}",
                )
            return Clearance(cleared=True, reason=f"a resolve arrived at {sighting.last_seen_at.isoformat()}")
        return Clearance(
            cleared=False,
            reason=f"the problem was seen again at {sighting.last_seen_at.isoformat()}, after the remedy",
        )
    if now >= quiet_until:
        return Clearance(
            cleared=True, reason=f"no new occurrence within {quiet_seconds:g} s after the remediation"
        )
    return Clearance(cleared=None, reason=f"waiting until {quiet_until.isoformat()} for a resolve or silence")
