"""The lean ASGI front of the webhook endpoints, over a real socket: it answers exactly like the Litestar
routes it stands in front of, and hands everything else to Litestar."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx

from opsresponder.app import OpsResponder
from tests.integration.api.conftest import TOKENS, base_url

EVENT = {"source": "s", "event_type": "alert", "severity": "high", "title": "disk full", "host": "db-1"}
LIMIT = 65536  # max_body_bytes of the test settings


async def chunks(total: int, size: int = 8192) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


async def raw_request(service: OpsResponder, request: bytes) -> bytes:
    """Send `request` as written (httpx would correct a bad header) and read the whole answer."""
    host, port = service.listeners["events_api"].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def test_a_chunked_body_over_the_limit_is_413_and_nothing_is_stored(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    r = await client.post("/api/v1/events/webhook", content=chunks(LIMIT + 1))
    assert r.status_code == 413
    # The webhook's own error shape (the spec's), like every other refusal of a webhook body.
    assert r.json()["status"] == "rejected"
    assert str(LIMIT) in r.json()["message"]
    assert await db_pool.fetchval("SELECT count(*) FROM events.events") == 0


async def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(
    service: OpsResponder,
) -> None:
    answer = await raw_request(
        service,
        b"POST /api/v1/events/webhook HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer " + TOKENS["ingest"].encode() + b"\r\n"
        b"Content-Length: " + str(LIMIT + 1).encode() + b"\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413")


async def test_authentication_comes_before_the_body(service: OpsResponder) -> None:
    url = base_url(service) + "/api/v1/events/webhook"
    async with httpx.AsyncClient(timeout=10) as c:
        no_token = await c.post(url, content=chunks(LIMIT + 1))
        assert no_token.status_code == 401
        assert no_token.headers["www-authenticate"].startswith("Bearer")
        wrong = await c.post(url, json=EVENT, headers={"Authorization": "Bearer not-a-configured-token"})
        assert wrong.status_code == 401
        read_only = await c.post(url, json=EVENT, headers={"Authorization": f"Bearer {TOKENS['read']}"})
        assert read_only.status_code == 403
        assert "ingest" in read_only.json()["detail"]


async def test_an_unknown_native_source_names_the_field(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/events/webhook/splunk", json={"anything": 1})
    assert r.status_code == 400
    assert r.json()["field"] == "source_type"
    assert "alertmanager" in r.json()["message"]


async def test_other_methods_and_paths_are_litestars(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/events/webhook")).status_code == 405
    assert (await client.post("/api/v1/events/webhook/a/b", json=EVENT)).status_code == 404
    # The routes stay in the OpenAPI schema, which Litestar serves.
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/api/v1/events/webhook" in schema["paths"]
    assert "/api/v1/events/webhook/{source_type}" in schema["paths"]


async def test_the_answer_is_the_documented_shape(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/events/webhook", json=EVENT)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert set(r.json()) == {
        "event_id",
        "status",
        "message",
        "correlation_id",
        "processing_time_ms",
        "duplicate",
    }
