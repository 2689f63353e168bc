"""``GET /api/v1/rules/triggers/{rule_id}/firings`` over a real socket: pages, newest first, scope read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from opsresponder.app import OpsResponder
from opsresponder.rules.evaluation import Firing
from opsresponder.store.firings import FiringRepository
from tests.integration.api.conftest import TOKENS, base_url

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def test_a_rules_firings_page_newest_first(
    service: OpsResponder, client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    firings = FiringRepository(db_pool)
    await firings.write_firings(
        [Firing(7, f"web-{i}", "absence", NOW + timedelta(minutes=i), (), {"n": i}) for i in range(5)]
    )
    await firings.write_firings([Firing(8, "", "absence", NOW)])
    async with httpx.AsyncClient(
        base_url=base_url(service), headers={"Authorization": f"Bearer {TOKENS['read']}"}
    ) as reader:
        answer = await reader.get("/api/v1/rules/triggers/7/firings", params={"limit": 2, "offset": 1})
    assert answer.status_code == 200
    body = answer.json()
    assert body["total_count"] == 5 and body["has_more"] is True
    assert [f["group_key"] for f in body["firings"]] == ["web-3", "web-2"]
    first = body["firings"][0]
    assert first["rule_id"] == 7 and first["kind"] == "absence" and first["status"] == "new"
    assert first["detail"] == {"n": 3} and first["event_ids"] == [] and first["attempts"] == 0
    assert datetime.fromisoformat(first["fired_at"]) == NOW + timedelta(minutes=3)

    last = (await client.get("/api/v1/rules/triggers/7/firings", params={"offset": 4})).json()
    assert last["has_more"] is False and [f["group_key"] for f in last["firings"]] == ["web-0"]
    none = (await client.get("/api/v1/rules/triggers/99/firings")).json()
    assert none == {"firings": [], "total_count": 0, "has_more": False}


async def test_bad_paging_and_no_token_are_refused(service: OpsResponder, client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/rules/triggers/7/firings", params={"limit": 0})).status_code == 400
    assert (await client.get("/api/v1/rules/triggers/0/firings")).status_code in (400, 404)
    async with httpx.AsyncClient(base_url=base_url(service)) as anonymous:
        assert (await anonymous.get("/api/v1/rules/triggers/7/firings")).status_code == 401
    async with httpx.AsyncClient(
        base_url=base_url(service), headers={"Authorization": f"Bearer {TOKENS['ingest']}"}
    ) as ingest_only:
        assert (await ingest_only.get("/api/v1/rules/triggers/7/firings")).status_code == 403
