"""Trigger rules over real HTTP against PostgreSQL: CRUD with scopes, every refusal, warnings, the estimated
trigger rate against a seeded history with a known answer, and the test endpoint."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from opsresponder.app import OpsResponder
from opsresponder.core.clock import utcnow
from opsresponder.core.event import Event
from opsresponder.store.event_columns import EVENT_COLUMNS, event_record
from opsresponder.store.trigger_rules import TriggerRuleRepository
from tests.factories import make_event, prepared
from tests.integration.api.conftest import TOKENS, base_url

PATH = "/api/v1/rules/triggers"
RULE: dict[str, Any] = {
    "name": "High CPU Alert Rule",
    "description": "Trigger when CPU usage exceeds 90%",
    "conditions": {
        "event_type": "threshold_breach",
        "severity": ["critical", "high"],
        "metadata.cpu_usage": {"$gt": 90},
        "host": {"$regex": "web-server-.*"},
    },
    "time_window_minutes": 5,
    "max_triggers_per_hour": 3,
    "cooldown_minutes": 15,
    "active": True,
}
DAY = timedelta(days=1)


async def store(pool: asyncpg.Pool, events: list[Event]) -> list[int]:
    """Store `events` as the pipeline would (ids from 1, prepared), by COPY; returns their ids."""
    batch = prepared(*events)
    for i, event in enumerate(batch, start=1):
        event.id = i
        event.last_seen_at = event.received_at
    await pool.copy_records_to_table(
        "events", schema_name="events", columns=EVENT_COLUMNS, records=[event_record(e) for e in batch]
    )
    return [i for i in range(1, len(batch) + 1)]


async def test_create_get_list_replace_delete(client: httpx.AsyncClient) -> None:
    created = await client.post(PATH, json=RULE)
    assert created.status_code == 201, created.text
    answer = created.json()
    assert answer["status"] == "created" and answer["validation_result"]["valid"] is True
    assert answer["validation_result"]["estimated_trigger_rate"] == (
        "no history: no events stored in the last 7 days"
    )
    url = f"{PATH}/{answer['rule_id']}"

    rule = (await client.get(url)).json()
    assert rule == {
        **RULE,
        "threshold": 1,
        "group_by": [],
        "absence": None,
        "rule_id": answer["rule_id"],
        "created_by": "admin",  # the token's name
        "created_at": rule["created_at"],
        "updated_at": rule["created_at"],
        "version": 1,
    }
    listed = (await client.get(PATH)).json()
    assert listed == {"rules": [rule], "total_count": 1, "has_more": False}

    replaced = await client.put(url, json={**RULE, "active": False, "group_by": ["host"], "threshold": 2})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["status"] == "updated" and replaced.json()["rule_id"] == answer["rule_id"]
    assert "active: false, so the rule is never evaluated" in replaced.json()["validation_result"]["warnings"]
    after = (await client.get(url)).json()
    assert after["version"] == 2 and after["created_at"] == rule["created_at"]
    assert after["active"] is False and after["group_by"] == ["host"] and after["threshold"] == 2

    assert (await client.delete(url)).status_code == 204
    assert (await client.get(url)).status_code == 404
    assert (await client.delete(url)).status_code == 404
    assert (await client.put(url, json=RULE)).status_code == 404


async def test_paging_and_the_active_filter(client: httpx.AsyncClient) -> None:
    ids = []
    for i in range(5):
        r = await client.post(PATH, json={**RULE, "name": f"r{i}", "active": i % 2 == 0})
        ids.append(r.json()["rule_id"])
    page = (await client.get(PATH, params={"limit": 2, "offset": 1})).json()
    assert [r["rule_id"] for r in page["rules"]] == ids[1:3]
    assert page["total_count"] == 5 and page["has_more"] is True
    active = (await client.get(PATH, params={"active": "true"})).json()
    assert [r["rule_id"] for r in active["rules"]] == ids[0::2] and active["total_count"] == 3
    inactive = (await client.get(PATH, params={"active": "false", "offset": 1})).json()
    assert [r["rule_id"] for r in inactive["rules"]] == [ids[3]] and inactive["has_more"] is False
    assert (await client.get(PATH, params={"limit": 0})).status_code == 400


@pytest.mark.parametrize(
    ("change", "field", "detail"),
    [
        ({"conditions": {"host": {"$gtt": 1}}}, "conditions.host.$gtt", "unknown operator $gtt"),
        ({"conditions": {"host": {"$regex": "(web"}}}, "conditions.host.$regex",
         "invalid regular expression: missing ): (web"),
        ({"conditions": {"metadata.cpu": {"$gt": "90"}}}, "conditions.metadata.cpu.$gt",
         "$gt needs a number, not text"),
        ({"conditions": {"hostname": "x"}}, "conditions.hostname", "unknown field 'hostname'"),
        ({"conditions": []}, "conditions", "Expected `object`"),
        ({"cooldown_minutes": -1}, "cooldown_minutes", ">= 0"),
        ({"threshold": 0}, "threshold", ">= 1"),
        ({"threshold": 2, "time_window_minutes": None}, "threshold", "set it"),
        ({"group_by": ["hostname"]}, "group_by[0]", "unknown field 'hostname'"),
        ({"group_by": ["tags"]}, "group_by[0]", "cannot group events"),
        ({"absence": {"within_minutes": 0}}, "absence.within_minutes", ">= 1"),
        ({"absence": {"within_minutes": 5, "after": {"state": "closed"}}}, "absence.after.state",
         "'closed' is not a state"),
        ({"absence": {"within_minutes": 5, "lateness": 1}}, "absence.lateness", "unknown field"),
        ({"name": ""}, "name", "length >= 1"),
        ({"colour": "red"}, "colour", "unknown field"),
    ],
)  # fmt: skip
async def test_invalid_rules_are_refused_naming_the_field(
    client: httpx.AsyncClient, change: dict[str, Any], field: str, detail: str
) -> None:
    r = await client.post(PATH, json={**RULE, **change})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and r.json()["status_code"] == 422
    assert detail in r.json()["detail"], r.json()["detail"]
    assert (await client.get(PATH)).json()["total_count"] == 0
    created = (await client.post(PATH, json=RULE)).json()
    put = await client.put(f"{PATH}/{created['rule_id']}", json={**RULE, **change})
    assert put.status_code == 422 and put.json()["field"] == field


async def test_malformed_json_tokens_and_scopes(service: OpsResponder, client: httpx.AsyncClient) -> None:
    assert (await client.post(PATH, content=b"{")).status_code == 400
    rule_id = (await client.post(PATH, json=RULE)).json()["rule_id"]
    read = {"Authorization": f"Bearer {TOKENS['read']}"}
    async with httpx.AsyncClient(base_url=base_url(service), headers=read, timeout=10) as reader:
        assert (await reader.post(PATH, json=RULE)).status_code == 403
        assert (await reader.put(f"{PATH}/{rule_id}", json=RULE)).status_code == 403
        assert (await reader.delete(f"{PATH}/{rule_id}")).status_code == 403
        assert (await reader.get(PATH)).status_code == 200
        assert (await reader.get(f"{PATH}/{rule_id}")).status_code == 200
        sample = {
            "rule_id": rule_id,
            "event": {"source": "s", "event_type": "x", "severity": "low", "title": "t"},
        }
        assert (await reader.post(f"{PATH}/test", json=sample)).status_code == 200
    ingest = {"Authorization": f"Bearer {TOKENS['ingest']}"}
    async with httpx.AsyncClient(base_url=base_url(service), headers=ingest, timeout=10) as other:
        assert (await other.get(PATH)).status_code == 403
    async with httpx.AsyncClient(base_url=base_url(service), timeout=10) as anonymous:
        assert (await anonymous.get(PATH)).status_code == 401


def _history(now: datetime) -> tuple[list[Event], int]:
    """Seven days of events with a known answer for the CPU rule of `test_estimated_trigger_rate`:
    2 firings on even days, 3 on odd days; and the number of events a replay samples."""
    start = now - 7 * DAY
    events: list[Event] = []

    def add(at: datetime, **fields: Any) -> None:
        events.append(make_event(now=at, **fields))

    hot = {"event_type": "threshold_breach", "metadata": {"cpu_usage": 95}}
    for day in range(7):
        base = start + day * DAY + timedelta(hours=2)
        add(base, host="web-server-1", **hot)  # fires
        add(base + timedelta(minutes=10), host="web-server-1", **hot)  # within the 60-minute cooldown
        add(base + timedelta(hours=3), host="web-server-1", **hot)  # fires
        if day % 2:
            add(base + timedelta(minutes=5), host="web-server-2", **hot)  # another group: fires
        # Near misses: too cool, another type, another host pattern, text instead of a number.
        add(base, host="web-server-1", event_type="threshold_breach", metadata={"cpu_usage": 50})
        add(base, host="web-server-1", event_type="disk_full", metadata={"cpu_usage": 99})
        add(base, host="db-1", **hot)
        add(base, host="web-server-3", event_type="threshold_breach", metadata={"cpu_usage": "95"})
    sampled = len(events)
    # Suppressed events and those below rules.min_severity (low) are never evaluated, nor sampled; events
    # older than 7 days are not replayed. Each would make day 1 fire a fourth time.
    add(start + DAY + timedelta(hours=12), host="web-server-9", suppressed_reason="silenced", **hot)
    add(start + DAY + timedelta(hours=12), host="web-server-8", severity="info", **hot)
    add(start - timedelta(hours=1), host="web-server-9", **hot)
    return events, sampled


@pytest.mark.parametrize(
    "host_condition",
    [
        {"$regex": "^web-server-[0-9]$"},  # pushed down to PostgreSQL: sql_exact
        {"$regex": r"^web-server-\d$"},  # \d stays with RE2: a superset from SQL, matched in Python
    ],
)
async def test_estimated_trigger_rate(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, host_condition: dict[str, str]
) -> None:
    events, sampled = _history(utcnow())
    await store(db_pool, events)
    rule = {
        "name": "cpu",
        "conditions": {
            "event_type": "threshold_breach",
            "metadata.cpu_usage": {"$gt": 90},
            "host": host_condition,
        },
        "group_by": ["host"],
        "cooldown_minutes": 60,
    }
    r = await client.post(PATH, json=rule)
    assert r.status_code == 201, r.text
    assert r.json()["validation_result"]["estimated_trigger_rate"] == (
        f"2-3 per day, from {sampled:,} events over 7 days"
    )
    # A threshold of 3 within 4 hours per host: web-server-1 reaches it once a day (2 h, 2 h 10, 5 h).
    rule.update(threshold=3, time_window_minutes=240)
    r = await client.put(f"{PATH}/{r.json()['rule_id']}", json=rule)
    assert r.json()["validation_result"]["estimated_trigger_rate"] == (
        f"1 per day, from {sampled:,} events over 7 days"
    )


async def test_estimated_rate_of_absence_rules(client: httpx.AsyncClient, db_pool: asyncpg.Pool) -> None:
    now = utcnow()
    start = now - 2 * DAY + timedelta(minutes=30)
    # A heartbeat every 10 minutes until now but for one 3-hour gap on the second day.
    beats = [start + timedelta(minutes=10 * i) for i in range(2 * 144 - 3)]
    assert now - timedelta(minutes=30) < beats[-1] < now
    beats = [t for t in beats if not (start + timedelta(hours=30) < t < start + timedelta(hours=33))]
    await store(db_pool, [make_event(now=t, event_type="heartbeat", host="db-1") for t in beats])
    rule = {
        "name": "db-1 heartbeat",
        "conditions": {"event_type": "heartbeat"},
        "group_by": ["host"],
        "absence": {"within_minutes": 30, "expected_groups": ["db-2"]},
    }
    r = await client.post(PATH, json=rule)
    # db-2 never beat: once, 30 minutes after the history starts; db-1 fell silent once on the second day.
    assert r.json()["validation_result"]["estimated_trigger_rate"] == (
        f"1 per day, from {len(beats):,} events over 2 days"
    )


async def test_warnings(client: httpx.AsyncClient, db_pool: asyncpg.Pool) -> None:
    await store(db_pool, [make_event(metadata={"cpu_usage": 95})])
    first = await client.post(PATH, json=RULE)
    assert first.json()["validation_result"]["warnings"] == []
    first_id = first.json()["rule_id"]

    copy = await client.post(PATH, json={**RULE, "name": "copy"})
    assert copy.json()["validation_result"]["warnings"] == [
        f"overlaps active rule {first_id} ('High CPU Alert Rule'): the same conditions, so both fire on the "
        "same events"
    ]
    narrower = {**RULE["conditions"], "severity": "critical", "metadata.cpu": {"$gt": 5, "$lt": 3}}
    r = await client.post(
        PATH, json={**RULE, "name": "odd", "conditions": narrower, "group_by": ["metadata.dc"]}
    )
    warnings = r.json()["validation_result"]["warnings"]
    assert warnings[0] == (
        "metadata.cpu: can never be true, these conditions exclude each other: "
        "conditions.metadata.cpu.$gt, conditions.metadata.cpu.$lt"
    )
    assert warnings[1:3] == [
        "metadata.cpu: none of the latest stored events has this field",
        "metadata.dc: none of the latest stored events has this field",
    ]
    assert (
        f"overlaps active rule {first_id} ('High CPU Alert Rule'): every event this rule matches"
        in warnings[3]
    )
    assert len(warnings) == 5  # and the copy
    # An inactive rule overlaps nothing; a rule's own earlier version is no overlap either.
    await client.put(f"{PATH}/{first_id}", json={**RULE, "active": False})
    await client.delete(f"{PATH}/{r.json()['rule_id']}")
    own = await client.put(f"{PATH}/{copy.json()['rule_id']}", json={**RULE, "name": "copy"})
    assert own.json()["validation_result"]["warnings"] == []


async def test_the_test_endpoint(client: httpx.AsyncClient, db_pool: asyncpg.Pool) -> None:
    sample = {
        "source": "nagios",
        "event_type": "threshold_breach",
        "severity": "critical",
        "title": "High CPU",
        "host": "web-server-01",
        "metadata": {"cpu_usage": "95.5"},
    }
    r = await client.post(f"{PATH}/test", json={"rule": RULE, "event": sample})
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["matched"] is False and result["after"] is None
    assert result["rule_id"] is None and result["event_id"] is None
    assert [(c["path"], c["matched"], c["reason"]) for c in result["conditions"]] == [
        ("event_type", True, None),
        ("severity", True, None),
        ("metadata.cpu_usage", False, "text value, needs number"),  # the type mismatch, and why
        ("host", True, None),
    ]
    assert result["conditions"][2]["actual"] == "95.5" and result["conditions"][2]["at"] == (
        "conditions.metadata.cpu_usage.$gt"
    )

    # A saved rule against a stored event.
    rule_id = (await client.post(PATH, json={**RULE, "group_by": ["host"]})).json()["rule_id"]
    (event_id,) = await store(
        db_pool, [make_event(severity="high", host="web-server-07", metadata={"cpu_usage": 97})]
    )
    r = await client.post(f"{PATH}/test", json={"rule_id": rule_id, "event_id": event_id})
    result = r.json()
    assert result["matched"] is True and all(c["matched"] for c in result["conditions"])
    assert result["rule_id"] == rule_id and result["event_id"] == event_id
    assert result["notes"] == ["counted per group of host"]

    absence = {
        "name": "resolve after restart",
        "conditions": {"state": "resolved"},
        "group_by": ["host"],
        "absence": {"within_minutes": 15, "after": {"event_type": "system_restart"}},
    }
    restart = {**sample, "event_type": "system_restart"}
    result = (await client.post(f"{PATH}/test", json={"rule": absence, "event": restart})).json()
    assert result["matched"] is False and result["after"]["matched"] is True
    assert result["after"]["conditions"][0]["at"] == "conditions.event_type"

    for body, status, field in [
        ({"rule": RULE}, 422, "event"),
        ({"event": sample}, 422, "rule"),
        ({"rule": RULE, "rule_id": rule_id, "event": sample}, 422, "rule"),
        ({"rule": {**RULE, "threshold": 0}, "event": sample}, 422, "rule.threshold"),
        ({"rule": {**RULE, "conditions": {"a": 1}}, "event": sample}, 422, "rule.conditions.a"),
        ({"rule": RULE, "event": {**sample, "severity": "urgent"}}, 422, "event.severity"),
        ({"rule_id": rule_id + 100, "event": sample}, 404, None),
        ({"rule": RULE, "event_id": event_id + 100}, 404, None),
    ]:
        r = await client.post(f"{PATH}/test", json=body)
        assert r.status_code == status, (body, r.text)
        assert r.json().get("field") == field, r.text


async def test_the_stage_source_and_its_change_marker(
    db_pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    repository = TriggerRuleRepository(db_pool)
    marker = await repository.change_marker()
    active = (await client.post(PATH, json=RULE)).json()["rule_id"]
    inactive = (await client.post(PATH, json={**RULE, "active": False})).json()["rule_id"]
    assert await repository.change_marker() == marker + 2
    assert await repository.active_rules_json() == [
        (active, {**RULE, "threshold": 1, "group_by": [], "absence": None})
    ]
    await client.put(f"{PATH}/{inactive}", json=RULE)
    await client.delete(f"{PATH}/{active}")
    assert await repository.change_marker() == marker + 4
    assert [rule_id for rule_id, _ in await repository.active_rules_json()] == [inactive]
    # A refused change and a missing rule move nothing.
    await client.put(f"{PATH}/{active}", json=RULE)
    await client.post(PATH, json={**RULE, "threshold": 0})
    assert await repository.change_marker() == marker + 4
