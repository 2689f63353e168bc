"""PostgreSQL lost while running: 503 with Retry-After, other events wait, everything resumes by itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from opsresponder.app import OpsResponder, running
from tests.factories import make_event
from tests.integration.api.conftest import TOKENS, api_settings, base_url
from tests.tcp_proxy import CuttableProxy


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[CuttableProxy]:
    p = CuttableProxy.for_database(database_url)
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def service(
    database_url: str, db_pool: asyncpg.Pool, proxy: CuttableProxy, tmp_path: Path
) -> AsyncIterator[OpsResponder]:
    settings = api_settings(proxy.url_for(database_url), tmp_path, db_retry_max_seconds=0.2)
    async with running(settings) as svc:
        yield svc


async def test_outage_answers_503_holds_other_events_and_recovers(
    service: OpsResponder, proxy: CuttableProxy, db_pool: asyncpg.Pool
) -> None:
    headers = {"Authorization": f"Bearer {TOKENS['admin']}"}
    event = {"source": "s", "event_type": "alert", "severity": "high", "title": "before"}
    async with httpx.AsyncClient(base_url=base_url(service), headers=headers, timeout=10) as client:
        assert (await client.post("/api/v1/events/webhook", json=event)).status_code == 200

        proxy.cut()
        r = await client.post("/api/v1/events/webhook", json={**event, "title": "during"})
        assert r.status_code == 503
        assert r.headers["retry-after"] == "5"
        assert r.json()["status"] == "rejected"
        ready = await client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"].startswith("unavailable")
        assert "Error" not in ready.text and "Errno" not in ready.text  # no driver message in an answer
        # A read during the outage is no bug: 503 with Retry-After, not a 500.
        listing = await client.get("/api/v1/events")
        assert listing.status_code == 503, listing.text
        assert listing.headers["retry-after"] == "5"
        assert listing.json() == {"status_code": 503, "detail": "the database is unavailable; retry later"}

        # A datagram listener's events (offer) wait in the intake during the outage...
        assert service.intake is not None
        for i in range(5):
            assert service.intake.offer(make_event(title=f"held {i}", host=f"h{i}"))
        r = await client.post("/api/v1/events/webhook", json={**event, "title": "still during"})
        assert r.status_code == 503

        # ...and are stored, in order, once PostgreSQL answers again; webhooks work again too.
        proxy.restore()
        await asyncio.wait_for(service.intake.wait_drained(), 15)
        assert service.worker is not None and service.worker.database_available
        assert (
            await client.post("/api/v1/events/webhook", json={**event, "title": "after"})
        ).status_code == 200

    titles = [r["title"] for r in await db_pool.fetch("SELECT title FROM events.events ORDER BY id")]
    assert titles == ["before", "held 0", "held 1", "held 2", "held 3", "held 4", "after"]
