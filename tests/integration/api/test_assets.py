"""Enrichment end to end: an event through the real webhook gets ``metadata.asset`` from the inventory file,
is stored with it, read back by the API, and selected in PostgreSQL by a condition on that metadata."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from opsresponder.app import OpsResponder, running
from opsresponder.config import EnrichmentConfig
from opsresponder.rules.conditions import compile_conditions
from opsresponder.rules.sql import WhereClause
from tests.integration.api.conftest import api_settings
from tests.unit.pipeline.enrich.files import rewrite
from tests.waiting import eventually

INVENTORY = """
assets:
  db-1.example.com:
    criticality: critical
    environment: production
    team: dba
    tags: [database]
    group: db
    depends_on: [san-1.example.com]
    business_hours: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "18:00", timezone: Europe/Paris}
  "web-*.example.com": {criticality: high, environment: production, group: web}
"""
EVENT = {"source": "monitor", "event_type": "alert", "severity": "high", "title": "disk full"}


@pytest.fixture
async def service(database_url: str, db_pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[OpsResponder]:
    assets = tmp_path / "assets.yaml"
    assets.write_text(INVENTORY)
    settings = api_settings(database_url, tmp_path)
    settings = msgspec.structs.replace(
        settings, enrichment=EnrichmentConfig(assets_file=str(assets), reload_interval_seconds=0.05)
    )
    async with running(settings) as svc:
        yield svc


async def test_a_webhook_event_is_stored_with_its_asset_and_selectable_by_it(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    # Tuesday 14:00 in Paris (13:00 UTC): inside the calendar.
    body = {**EVENT, "host": "db-1.example.com", "timestamp": "2025-03-04T13:00:00Z"}
    posted = await client.post("/api/v1/events/webhook", json=body)
    assert posted.status_code == 200, posted.text
    other = await client.post("/api/v1/events/webhook", json={**EVENT, "host": "web-3.example.com"})
    unknown = await client.post("/api/v1/events/webhook", json={**EVENT, "host": "elsewhere"})
    event_id = posted.json()["event_id"]

    stored = (await client.get(f"/api/v1/events/{event_id}")).json()
    assert stored["metadata"]["asset"] == {
        "name": "db-1.example.com",
        "criticality": "critical",
        "environment": "production",
        "owner": None,
        "team": "dba",
        "tags": ["database"],
        "group": "db",
        "depends_on": ["san-1.example.com"],
        "business_hours": {
            "days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "18:00",
            "timezone": "Europe/Paris",
        },
        "in_business_hours": True,
    }  # fmt: skip
    listed = (await client.get("/api/v1/events", params={"host": "db-1.example.com"})).json()
    assert [e["metadata"]["asset"]["criticality"] for e in listed["events"]] == ["critical"]
    unknown_event = (await client.get(f"/api/v1/events/{unknown.json()['event_id']}")).json()
    assert "asset" not in unknown_event["metadata"]

    # Queryable like any metadata: the condition language's SQL selects by it in PostgreSQL.
    cases: list[tuple[dict[str, Any], set[int]]] = [
        ({"metadata.asset.criticality": "critical"}, {event_id}),
        ({"metadata.asset.environment": "production"}, {event_id, other.json()["event_id"]}),
        ({"metadata.asset.group": {"$in": ["web"]}}, {other.json()["event_id"]}),
    ]
    for conditions, expected in cases:
        where = WhereClause()
        compile_conditions(conditions).to_sql(where)
        rows = await db_pool.fetch(f"SELECT id FROM events.events{where.sql()}", *where.args)
        assert {r["id"] for r in rows} == expected, conditions


async def test_an_inventory_change_applies_to_the_next_events_and_a_bad_one_is_ignored(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    titles = iter(range(1_000_000))

    async def criticality_of_new_event() -> str:
        # A new title each time: the same event again would be a duplicate of the first one.
        body = {**EVENT, "host": "web-1.example.com", "title": f"disk full {next(titles)}"}
        posted = await client.post("/api/v1/events/webhook", json=body)
        stored = (await client.get(f"/api/v1/events/{posted.json()['event_id']}")).json()
        value = stored["metadata"]["asset"]["criticality"]
        assert isinstance(value, str)
        return value

    assert await criticality_of_new_event() == "high"
    rewrite(tmp_path / "assets.yaml", 'assets: {"web-*.example.com": {criticality: low}}\n')

    async def changed() -> bool:
        return await criticality_of_new_event() == "low"

    await eventually(changed, what="the reloaded inventory")
    rewrite(tmp_path / "assets.yaml", 'assets: {"web-*.example.com": {criticality: severe}}\n')
    metrics_text = ""

    async def failure_counted() -> bool:
        nonlocal metrics_text
        metrics_text = (await client.get("/metrics")).text
        return 'opsresponder_asset_inventory_reloads_total{outcome="failed"} 1.0' in metrics_text

    await eventually(failure_counted, what="the failed reload in /metrics")
    assert await criticality_of_new_event() == "low"  # the previous inventory stays in use
