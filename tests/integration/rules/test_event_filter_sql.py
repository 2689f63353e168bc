"""`EventFilter.matches` and `EventFilter.to_sql` select the same events, checked against PostgreSQL."""

from __future__ import annotations

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsresponder.core.event import Event
from opsresponder.core.severity import Severity
from opsresponder.rules.filter import EventFilter
from opsresponder.rules.sql import WhereClause
from opsresponder.store.event_columns import EVENT_COLUMNS
from tests.factories import make_event
from tests.integration.rules.selecting import selected_ids, stored

# Few values per field, so that filters and events meet often enough to test both outcomes.
_SEVERITIES = [s.value for s in Severity]
_TEXT = st.sampled_from(["a", "b", "B", "a "])
_SCORES = st.sampled_from([None, 0.0, 2.5, 5.0, 9.75, -1.0])
# What metadata.pattern may hold: the stage's shape, or what a sender put there without the stage.
_PATTERNS = st.sampled_from(
    [
        {},
        {"pattern": {"id": "p1", "template": "t"}},
        {"pattern": {"id": "p2"}},
        {"pattern": {"id": 5}},
        {"pattern": "p1"},
        {"pattern": {"id": None}},
        {"pattern": [1]},
    ]
)


@st.composite
def events(draw: st.DrawFn) -> Event:
    return make_event(
        severity=Severity(draw(st.sampled_from(_SEVERITIES))),
        event_type=draw(st.sampled_from(["disk_full", "cpu"])),
        host=draw(st.none() | _TEXT),
        service=draw(st.none() | _TEXT),
        score=draw(_SCORES),
        suppressed_reason=draw(st.sampled_from([None, "maintenance", ""])),
        metadata=draw(_PATTERNS),
    )


filters = st.builds(
    EventFilter,
    severity=st.none() | st.lists(st.sampled_from(_SEVERITIES), min_size=1, unique=True).map(tuple),
    event_type=st.none() | st.sampled_from(["disk_full", "cpu", "other"]),
    host=st.none() | _TEXT,
    service=st.none() | _TEXT,
    min_score=st.none() | st.sampled_from([0.0, 2.5, 5.0, 10.0, -3.0]),
    pattern=st.none() | st.sampled_from(["p1", "p2", "5"]),
    include_suppressed=st.booleans(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(events(), min_size=1, max_size=12), event_filter=filters)
async def test_matches_and_sql_agree(
    db_pool: asyncpg.Pool, batch: list[Event], event_filter: EventFilter
) -> None:
    rows = stored(batch)
    expected = {e.id for e in rows if event_filter.matches(e)}
    where = WhereClause()
    event_filter.to_sql(where)
    assert await selected_ids(db_pool, rows, where) == expected, (event_filter, [msg(e) for e in rows])


def msg(event: Event) -> tuple[object, ...]:
    return (event.id, event.severity, event.event_type, event.host, event.service, event.score,
            event.suppressed_reason, event.metadata)  # fmt: skip


async def test_the_table_has_a_column_for_every_event_field(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'events' AND table_name = 'events'"
        )
    assert set(EVENT_COLUMNS) <= {r["column_name"] for r in columns}
