"""RuleHistory against PostgreSQL: group keys of several fields, absence with `after` through the Python
path, the timeout, and which fields the latest events have."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import msgspec
import pytest

from opsresponder.core.clock import utcnow
from opsresponder.core.event import Event
from opsresponder.rules.triggers import CompiledTriggerRule, TriggerRuleBody, compile_rule
from opsresponder.store.errors import DatabaseUnavailableError
from opsresponder.store.event_columns import EVENT_COLUMNS, event_record
from opsresponder.store.pool import create_pool
from opsresponder.store.rule_checks import TriggerRuleChecks
from opsresponder.store.rule_history import RuleHistory
from opsresponder.store.trigger_rules import TriggerRuleRepository
from tests.factories import make_event, prepared


def rule(**fields: Any) -> CompiledTriggerRule:
    return compile_rule(msgspec.convert({"name": "r", **fields}, TriggerRuleBody))


def history(pool: asyncpg.Pool, **options: Any) -> RuleHistory:
    settings: dict[str, Any] = {"days": 7, "timeout_seconds": 30, "field_sample_events": 100, **options}
    return RuleHistory(pool, **settings)


async def store(pool: asyncpg.Pool, events: list[Event]) -> None:
    batch = prepared(*events)
    for i, event in enumerate(batch, start=1):
        event.id = i
        event.last_seen_at = event.received_at
    await pool.copy_records_to_table(
        "events", schema_name="events", columns=EVENT_COLUMNS, records=[event_record(e) for e in batch]
    )


@pytest.mark.parametrize(("group_by", "fired"), [(["host", "service"], 2), (["host"], 1), ([], 1)])
async def test_group_keys_of_several_fields(db_pool: asyncpg.Pool, group_by: list[str], fired: int) -> None:
    now = utcnow()
    await store(
        db_pool,
        [
            make_event(now=now - timedelta(minutes=m), host="a", service=service)
            for m, service in [(60, "x"), (59, "y"), (58, "x"), (57, "y")]
        ],
    )
    estimate = await history(db_pool).estimate(
        rule(conditions={}, group_by=group_by, cooldown_minutes=60), now
    )
    assert estimate.firings == fired
    assert estimate.text == f"{fired} per day, from 4 events over 1 day"


@pytest.mark.parametrize("title", [{"$regex": "^resolved"}, {"$regex": r"^resolved \d"}])
async def test_absence_after_pushed_down_or_matched_in_python(
    db_pool: asyncpg.Pool, title: dict[str, str]
) -> None:
    now = utcnow()
    await store(
        db_pool,
        [
            make_event(now=now - timedelta(hours=3), host="a", event_type="system_restart", title="restart"),
            make_event(now=now - timedelta(hours=2), host="b", event_type="system_restart", title="restart"),
            make_event(now=now - timedelta(minutes=115), host="b", title="resolved 1"),
            make_event(now=now - timedelta(minutes=110), host="c", title="resolved 2"),  # nothing open
        ],
    )
    absence_rule = rule(
        conditions={"title": title},
        group_by=["host"],
        absence={"within_minutes": 15, "after": {"event_type": "system_restart"}},
    )
    estimate = await history(db_pool).estimate(absence_rule, now)
    # a restarted and never resolved: one firing; b resolved within 5 minutes.
    assert (estimate.firings, estimate.replayed_rows >= 3) == (1, True)
    assert estimate.text == "1 per day, from 4 events over 1 day"


async def test_a_replay_past_its_timeout_says_so(db_pool: asyncpg.Pool) -> None:
    await store(db_pool, [make_event()])
    estimate = await history(db_pool, timeout_seconds=1e-9).estimate(rule(conditions={}), utcnow())
    assert estimate.text == "not estimated: replaying 7 days took longer than 1e-09 s"


async def test_missing_fields_look_at_the_latest_events(db_pool: asyncpg.Pool) -> None:
    paths = ["metadata.cpu", "metadata.disk.free", "metadata.disk.used", "metadata.none", "service", "tags"]
    assert await history(db_pool).missing_fields(paths) is None  # nothing stored: nothing to say
    now = utcnow()
    await store(
        db_pool,
        [
            make_event(
                now=now - timedelta(days=1), metadata={"none": 1}, tags=["x"]
            ),  # older than the sample
            make_event(now=now, metadata={"cpu": 5, "disk": {"free": 1}, "none": None}, service=None),
        ],
    )
    missing = await history(db_pool, field_sample_events=1).missing_fields(paths)
    assert missing == ["metadata.disk.used", "metadata.none", "service", "tags"]
    assert await history(db_pool).missing_fields(paths) == ["metadata.disk.used"]


async def test_an_unreachable_database_is_one_error_for_the_api(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1, connect_timeout=5, command_timeout=5)
    await pool.close()
    checks = TriggerRuleChecks(TriggerRuleRepository(pool), history(pool), utcnow)
    # Three reads run at once; the API's handler for DatabaseUnavailableError (503) must see it as such.
    with pytest.raises(DatabaseUnavailableError):
        await checks.validation_result(rule(conditions={"metadata.cpu": {"$gt": 1}}), None)
