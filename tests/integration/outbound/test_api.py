"""The /api/v1/subscriptions routes, served by an app built like the events app, against PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import CollectorRegistry

from opsresponder.api.common import build_app
from opsresponder.api.context import EventsApiContext
from opsresponder.api.subscriptions import SUBSCRIPTION_HANDLERS
from opsresponder.config import settings_from_tree
from opsresponder.outbound.allowlist import UrlAllowlist
from opsresponder.pipeline.intake import Intake
from opsresponder.pipeline.metrics import PipelineMetrics
from opsresponder.pipeline.worker import PipelineWorker
from opsresponder.store.events import EventRepository
from opsresponder.store.subscriptions import SubscriptionRepository

TOKENS = {"write": "write-token-0123456789", "read": "read-token-0123456789ab"}
WRITE = {"Authorization": f"Bearer {TOKENS['write']}"}
READ = {"Authorization": f"Bearer {TOKENS['read']}"}
URL = "http://127.0.0.1:8999/hook"


async def _no_resolver(host: str, port: int) -> list[str]:
    table = {"hooks.internal": ["10.0.0.7"], "rebind.evil": ["169.254.169.254"]}
    return table.get(host, [])


@pytest.fixture
async def client(repo: SubscriptionRepository, sub_pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_from_tree(
        {"api": {"tokens": [{"name": n, "token": t, "scopes": [n]} for n, t in TOKENS.items()]}}
    )
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    intake = Intake(100, metrics)
    events = EventRepository(sub_pool, timedelta(minutes=5))

    async def probe() -> None:
        await sub_pool.fetchval("SELECT 1")

    worker = PipelineWorker(
        intake, events, metrics, stages=[], probe=probe, batch_max_events=10, batch_max_wait=0.001,
        retry_max_delay=1,
    )  # fmt: skip
    ctx = EventsApiContext(
        api=settings.api,
        intake=intake,
        worker=worker,
        events=events,
        registry=registry,
        pipeline_metrics=metrics,
        check_database=probe,
        subscriptions=repo,
        url_allowlist=UrlAllowlist(
            hosts=["*.hooks.example.com"], networks=["127.0.0.0/8", "10.0.0.0/8"], resolver=_no_resolver
        ),
    )
    app = build_app(ctx, title="test", description="test", handlers=list(SUBSCRIPTION_HANDLERS))
    # httpx's ASGI transport runs the app on this test's loop, where the asyncpg pool lives (Litestar's
    # AsyncTestClient runs it on a portal thread with a loop of its own).
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # Litestar's precise ASGI types
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def body(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": "pager",
        "url": URL,
        "filters": {"severity": ["critical", "high"], "host": "db-1", "min_score": 0.5},
        "secret": "s3cret-s3cret-s3cret",
        "batch_max_events": 50,
        "batch_max_delay_ms": 200,
    }
    fields.update(overrides)
    return fields


async def test_create_read_update_delete(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/v1/subscriptions", json=body(), headers=WRITE)
    assert created.status_code == 201, created.text
    view = created.json()
    assert "s3cret" not in created.text
    assert view["has_secret"] is True
    assert view["filters"] == {
        "severity": ["critical", "high"], "event_type": None, "host": "db-1", "service": None,
        "min_score": 0.5, "pattern": None, "include_suppressed": False,
    }  # fmt: skip
    assert (view["batch_max_events"], view["batch_max_delay_ms"], view["max_attempts"]) == (50, 200, 10)
    assert view["delivery"]["pending"] == 0 and view["delivery"]["delivered"] == 0
    sid = view["id"]

    got = await client.get(f"/api/v1/subscriptions/{sid}", headers=READ)
    assert got.status_code == 200
    assert got.json()["name"] == "pager"
    assert "s3cret" not in got.text
    listed = await client.get("/api/v1/subscriptions", headers=READ)
    assert [s["id"] for s in listed.json()["subscriptions"]] == [sid]

    # PUT replaces the definition; an absent secret is kept, null removes it.
    replaced = await client.put(
        f"/api/v1/subscriptions/{sid}", json={"name": "pager-2", "url": URL, "active": False}, headers=WRITE
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["has_secret"] is True
    assert replaced.json()["filters"]["severity"] is None
    assert replaced.json()["active"] is False
    removed = await client.put(
        f"/api/v1/subscriptions/{sid}", json={"name": "pager-2", "url": URL, "secret": None}, headers=WRITE
    )
    assert removed.json()["has_secret"] is False

    assert (await client.delete(f"/api/v1/subscriptions/{sid}", headers=WRITE)).status_code == 204
    assert (await client.get(f"/api/v1/subscriptions/{sid}", headers=READ)).status_code == 404
    assert (await client.delete(f"/api/v1/subscriptions/{sid}", headers=WRITE)).status_code == 404
    assert (await client.put(f"/api/v1/subscriptions/{sid}", json=body(), headers=WRITE)).status_code == 404


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data", "not in outbound.allowed_networks"),
        ("http://[::1]:3009/", "not in outbound.allowed_networks"),
        ("http://rebind.evil/hook", "resolves to 169.254.169.254"),
        ("https://hooks.example.com/", "does not resolve"),  # *.hooks.example.com is not the bare name
        ("gopher://127.0.0.1/", "scheme must be http or https"),
        ("http://user:pw@127.0.0.1/", "credentials"),
    ],
)
async def test_urls_outside_the_allowlist_are_422_naming_url(
    client: httpx.AsyncClient, url: str, reason: str
) -> None:
    response = await client.post("/api/v1/subscriptions", json=body(url=url), headers=WRITE)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "url"
    assert reason in response.json()["detail"]


async def test_allowed_names_and_networks_are_accepted(client: httpx.AsyncClient) -> None:
    for i, url in enumerate(["https://a.hooks.example.com/x", "http://hooks.internal:8080/x"]):
        response = await client.post("/api/v1/subscriptions", json=body(name=f"s{i}", url=url), headers=WRITE)
        assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"filters": {"severity": ["critical", "urgent"]}}, "filters.severity[1]"),
        ({"filters": {"severity": []}}, "filters.severity"),
        ({"filters": {"event_type": "Bad Type"}}, "filters.event_type"),
        ({"filters": {"hostname": "x"}}, "filters.hostname"),
        ({"batch_max_events": 0}, "batch_max_events"),
        ({"batch_max_events": 1001}, "batch_max_events"),
        ({"batch_max_delay_ms": -1}, "batch_max_delay_ms"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"secret": "short"}, "secret"),
        ({"name": ""}, "name"),
        ({"url": 5}, "url"),
        ({"active": "yes"}, "active"),
        ({"filters": {"pattern": "x" * 65}}, "filters.pattern"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_invalid_bodies_are_422_naming_the_field(
    client: httpx.AsyncClient, overrides: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/v1/subscriptions", json=body(**overrides), headers=WRITE)
    assert response.status_code == 422, response.text
    assert response.json().get("field") == field
    # The detail names the field too; an unknown one inside its parent's path ("filters: ... `hostname`").
    parent, _, name = field.rpartition(".")
    assert response.json()["detail"].startswith(field) or (
        name in response.json()["detail"] and response.json()["detail"].startswith(parent)
    )


async def test_a_pattern_filter_is_stored_and_shown(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/api/v1/subscriptions", json=body(filters={"pattern": "0123456789abcdef"}), headers=WRITE
    )
    assert created.status_code == 201, created.text
    assert created.json()["filters"]["pattern"] == "0123456789abcdef"
    shown = await client.get(f"/api/v1/subscriptions/{created.json()['id']}", headers=READ)
    assert shown.json()["filters"]["pattern"] == "0123456789abcdef"


async def test_missing_fields_malformed_json_and_names_in_use(client: httpx.AsyncClient) -> None:
    missing = await client.post("/api/v1/subscriptions", json={"name": "x"}, headers=WRITE)
    assert (missing.status_code, missing.json()["field"]) == (422, "url")
    malformed = await client.post("/api/v1/subscriptions", content=b"{nope", headers=WRITE)
    assert malformed.status_code == 400
    assert (await client.post("/api/v1/subscriptions", json=body(), headers=WRITE)).status_code == 201
    taken = await client.post("/api/v1/subscriptions", json=body(), headers=WRITE)
    assert (taken.status_code, taken.json()["field"]) == (409, "name")


async def test_scopes(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/v1/subscriptions", json=body(), headers=READ)).status_code == 403
    assert (await client.get("/api/v1/subscriptions")).status_code == 401
    sid = (await client.post("/api/v1/subscriptions", json=body(), headers=WRITE)).json()["id"]
    assert (await client.delete(f"/api/v1/subscriptions/{sid}", headers=READ)).status_code == 403
    assert (await client.post(f"/api/v1/subscriptions/{sid}/redeliver", headers=READ)).status_code == 403
    assert (await client.get(f"/api/v1/subscriptions/{sid}", headers=READ)).status_code == 200


async def test_redeliver_puts_dead_letters_back(client: httpx.AsyncClient, sub_pool: asyncpg.Pool) -> None:
    sid = (await client.post("/api/v1/subscriptions", json=body(), headers=WRITE)).json()["id"]
    await sub_pool.execute(
        """INSERT INTO events.subscription_outbox
               (subscription_id, event_id, status, attempts, next_attempt_at, dead_at, last_error)
           SELECT $1, g, 'dead', 10, now(), now(), 'HTTP 500' FROM generate_series(1, 3) AS g""",
        sid,
    )
    before = (await client.get(f"/api/v1/subscriptions/{sid}", headers=READ)).json()["delivery"]
    assert (before["dead"], before["pending"]) == (3, 0)
    response = await client.post(f"/api/v1/subscriptions/{sid}/redeliver", headers=WRITE)
    assert response.json() == {"subscription_id": sid, "requeued": 3}
    after = (await client.get(f"/api/v1/subscriptions/{sid}", headers=READ)).json()["delivery"]
    assert (after["dead"], after["pending"]) == (0, 3)
    assert (await client.post("/api/v1/subscriptions/999999/redeliver", headers=WRITE)).status_code == 404
