"""'The triggering condition has cleared', read from real stored events."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from opsresponder.core.clock import utcnow
from opsresponder.core.event import EventState
from opsresponder.response.clearance import check_cleared
from opsresponder.store.clearance import ClearanceRepository
from opsresponder.store.events import EventRepository
from tests.factories import make_event, prepared


async def test_a_resolve_clears_a_repeat_does_not_and_silence_clears_after_the_quiet_period(
    db_pool: asyncpg.Pool,
) -> None:
    events = EventRepository(db_pool, dedup_window=timedelta(minutes=5))
    source = ClearanceRepository(db_pool)
    problem = prepared(make_event(host="web-1", title="CPU high"))[0]
    await events.store_batch([problem])
    since = utcnow()  # the remediation ended

    pending = await check_cleared(source, problem.fingerprint, since, since, quiet_seconds=300)
    assert pending.cleared is None and "waiting until" in pending.reason
    quiet = await check_cleared(source, problem.fingerprint, since, since + timedelta(seconds=300), 300)
    assert quiet.cleared is True and "no new occurrence within 300 s" in quiet.reason

    await events.store_batch(prepared(make_event(host="web-1", title="CPU high")))  # a duplicate, later
    again = await check_cleared(source, problem.fingerprint, since, since + timedelta(seconds=300), 300)
    assert again.cleared is False and "seen again" in again.reason

    # Came back, then resolved again before the next check: the remediation did not hold.
    await events.store_batch(prepared(make_event(host="web-1", title="CPU high", state=EventState.RESOLVED)))
    flapped = await check_cleared(source, problem.fingerprint, since, since, 300)
    assert (
        flapped.cleared is False and "seen again" in flapped.reason and "before the resolve" in flapped.reason
    )

    # A remediation that ended after the recurrence: the resolve clears it.
    later = utcnow()
    await events.store_batch(prepared(make_event(host="web-1", title="CPU high")))
    await events.store_batch(prepared(make_event(host="web-1", title="CPU high", state=EventState.RESOLVED)))
    assert (await check_cleared(source, problem.fingerprint, later, later, 300)).cleared is False
    after_it = utcnow()
    await events.store_batch(prepared(make_event(host="web-1", title="CPU high", state=EventState.RESOLVED)))
    resolved = await check_cleared(source, problem.fingerprint, after_it, after_it, 300)
    assert resolved.cleared is True and "a resolve arrived" in resolved.reason

    unknown = await check_cleared(source, "no-such-fingerprint", since, since + timedelta(hours=1), 300)
    assert unknown.cleared is True
