"""Subscriptions in the running service: created over the API, fed by ingest, delivered signed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import msgspec
import pytest

from opsresponder.app import OpsResponder, running
from opsresponder.config import settings_from_tree
from opsresponder.outbound.signing import SIGNATURE_HEADER, verify_signature
from tests.integration.api.conftest import TOKENS, base_url
from tests.integration.outbound.conftest import Receiver

SECRET = "a-receiver-secret-0123456789"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.up()
    yield r
    await r.down()


@pytest.fixture
async def service(database_url: str, db_pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[OpsResponder]:
    listen = {"host": "127.0.0.1", "port": 0}
    settings = settings_from_tree(
        {
            "data_dir": str(tmp_path),
            "database": {"url": database_url},
            "api": {
                "events": listen,
                "autonomous": listen,
                "tokens": [{"name": n, "token": t, "scopes": [n]} for n, t in TOKENS.items()],
            },
            "syslog": {"udp": {"enabled": False}, "tcp": {"enabled": False}},
            "snmp": {"enabled": False},
            "outbound": {"allowed_networks": ["127.0.0.0/8"]},
            "subscriptions": {"poll_interval_ms": 50},
        }
    )
    async with running(settings) as svc:
        yield svc


async def test_a_subscription_receives_matching_events_signed(
    service: OpsResponder, receiver: Receiver
) -> None:
    admin = {"Authorization": f"Bearer {TOKENS['admin']}"}
    async with httpx.AsyncClient(base_url=base_url(service), headers=admin, timeout=10) as client:
        r = await client.post(
            "/api/v1/subscriptions",
            json={
                "name": "pager",
                "url": receiver.url,
                "secret": SECRET,
                "filters": {"severity": ["critical"]},
                "batch_max_delay_ms": 0,
            },
        )
        assert r.status_code == 201, r.text
        subscription = r.json()
        assert "secret" not in subscription and subscription["has_secret"] is True

        event = {"source": "s", "event_type": "alert", "title": "disk full", "host": "db-1"}
        critical = await client.post("/api/v1/events/webhook", json={**event, "severity": "critical"})
        low = await client.post("/api/v1/events/webhook", json={**event, "severity": "low", "title": "noise"})
        assert critical.status_code == low.status_code == 200

        await asyncio.wait_for(receiver.request_started.wait(), 15)
        request = receiver.requests[0]
        delivered = msgspec.json.decode(request.body)
        assert [e["id"] for e in delivered["events"]] == [critical.json()["event_id"]]
        assert verify_signature(SECRET, request.headers[SIGNATURE_HEADER.lower()], request.body)

        outside = await client.post(
            "/api/v1/subscriptions", json={"name": "x", "url": "http://192.0.2.10/hook"}
        )
        assert outside.status_code == 422
        assert outside.json()["field"] == "url"
