"""The live stream in the running service: a committed webhook event reaches a connected SSE client."""

from __future__ import annotations

import asyncio
import json

import httpx

from opsresponder.app import OpsResponder
from tests.integration.api.conftest import TOKENS, base_url


async def test_an_ingested_event_reaches_a_stream_client(service: OpsResponder) -> None:
    headers = {"Authorization": f"Bearer {TOKENS['admin']}"}
    async with (
        httpx.AsyncClient(base_url=base_url(service), headers=headers, timeout=10) as client,
        client.stream("GET", "/api/v1/events/stream", params={"severity": "critical"}) as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        event = {"source": "s", "event_type": "alert", "title": "t", "host": "h"}
        low = await client.post("/api/v1/events/webhook", json={**event, "severity": "low"})
        critical = await client.post(
            "/api/v1/events/webhook", json={**event, "severity": "critical", "title": "c"}
        )
        assert low.status_code == critical.status_code == 200

        async def first_event() -> dict[str, object]:
            event_id = None
            async for line in stream.aiter_lines():
                if line.startswith("id:"):
                    event_id = int(line[3:].strip())
                elif line.startswith("data:"):
                    data: dict[str, object] = json.loads(line[5:])
                    assert data["id"] == event_id
                    return data
            raise AssertionError("the stream ended")

        received = await asyncio.wait_for(first_event(), 10)
        assert received["id"] == critical.json()["event_id"]
        assert received["severity"] == "critical"
        assert "raw" not in received
