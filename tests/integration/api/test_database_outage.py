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
from tests.waiting import eventually


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


async def test_events_of_a_batch_cut_short_are_stored_with_what_the_stages_made_of_them(
    service: OpsResponder, proxy: CuttableProxy, db_pool: asyncpg.Pool
) -> None:
    # The stages run once per event: an event of a batch whose transaction the outage cut short is stored,
    # once the database is back, with its correlations and its whole trace from that run.
    headers = {"Authorization": f"Bearer {TOKENS['admin']}"}
    event = {"source": "s", "event_type": "alert", "severity": "high", "title": "disk full", "host": "db-9"}
    async with httpx.AsyncClient(base_url=base_url(service), headers=headers, timeout=10) as client:
        first = (await client.post("/api/v1/events/webhook", json=event)).json()

        proxy.cut()
        assert service.intake is not None and service.worker is not None
        worker = service.worker
        # A datagram listener's event, taken into a batch that runs its stages, then fails to commit.
        assert service.intake.offer(make_event(title="replication lag high", host="db-9", service=None))
        await eventually(lambda: not worker.database_available, what="the worker to see the outage")
        proxy.restore()
        await asyncio.wait_for(service.intake.wait_drained(), 15)

        row = await db_pool.fetchrow(
            "SELECT id, correlation_id FROM events.events WHERE title = 'replication lag high'"
        )
        assert row is not None and str(row["correlation_id"]) == first["correlation_id"]
        links = await db_pool.fetch(
            "SELECT event_id, related FROM events.event_correlations WHERE event_id = $1", row["id"]
        )
        assert [(r["event_id"], r["related"]) for r in links] == [(row["id"], [first["event_id"]])]
        trace = (await client.get(f"/api/v1/events/{row['id']}/trace")).json()
        stages = [e["stage"] for e in trace["entries"]]
        assert stages == ["normalize", "enrich", "noise", "patterns", "correlate", "score", "rules"]
        assert trace["entries"][4]["detail"].startswith(f"joined group {first['correlation_id']}")
