"""Silences over real HTTP against PostgreSQL: CRUD, every refusal, and the noise stage behind the webhook."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from opsresponder.app import OpsResponder, running
from opsresponder.config import OutboundConfig
from tests.integration.api.conftest import TOKENS, api_settings, base_url

SILENCE: dict[str, Any] = {
    "matchers": [{"field": "host", "value": "db-1"}, {"field": "title", "op": "regex", "value": "disk .*"}],
    "starts_at": "2020-01-01T00:00:00Z",
    "comment": "db-1 maintenance",
}
EVENT: dict[str, Any] = {"source": "s", "event_type": "alert", "severity": "high", "title": "disk full"}


@pytest.fixture
async def service(database_url: str, db_pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[OpsResponder]:
    # Subscriptions need an allowed URL; the test reads their outbox rows, nothing is delivered.
    settings = msgspec.structs.replace(
        api_settings(database_url, tmp_path), outbound=OutboundConfig(allowed_networks=["127.0.0.0/8"])
    )
    async with running(settings) as svc:
        yield svc


async def test_create_list_get_replace_delete(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/v1/silences", json={**SILENCE, "ends_at": "2099-01-01T00:00:00+01:00"})
    assert created.status_code == 201, created.text
    silence = created.json()
    assert silence["created_by"] == "admin"  # the token's name
    assert silence["matchers"] == [
        {"field": "host", "op": "equal", "value": "db-1"},
        {"field": "title", "op": "regex", "value": "disk .*"},
    ]
    assert silence["ends_at"] == "2098-12-31T23:00:00Z" and silence["windows"] == []
    url = f"/api/v1/silences/{silence['id']}"

    assert (await client.get("/api/v1/silences")).json() == {"silences": [silence]}
    assert (await client.get(url)).json() == silence

    window = {"weekdays": ["monday"], "start": "22:00", "end": "02:00", "time_zone": "Europe/Berlin"}
    tags = [{"field": "tags", "value": "x"}]
    replaced = await client.put(url, json={"matchers": tags, "windows": [window]})
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["windows"] == [window] and body["ends_at"] is None and body["comment"] == ""
    assert body["created_by"] == "admin" and body["created_at"] == silence["created_at"]

    assert (await client.delete(url)).status_code == 204
    assert (await client.get(url)).status_code == 404
    assert (await client.delete(url)).status_code == 404
    assert (await client.put(url, json=SILENCE)).status_code == 404


@pytest.mark.parametrize(
    ("change", "field", "detail"),
    [
        ({"matchers": []}, "matchers", "length >= 1"),
        ({"matchers": [{"field": "state", "value": "x"}]}, "matchers[0].field", "matching regex"),
        ({"matchers": [{"field": "host", "op": "regex", "value": "(db"}]}, "matchers[0].value",
         "invalid regex: missing ): (db"),
        ({"matchers": [{"field": "host", "value": "a", "name": "b"}]}, "matchers[0].name", "unknown field"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"ends_at": "2019-12-31T00:00:00Z"}, "ends_at", "must be after starts_at"),
        ({"starts_at": "2020-01-01T00:00:00"}, "starts_at", "timezone"),
        ({"windows": [{"start": "01:00", "end": "02:00", "time_zone": "Nowhere/Atlantis"}]},
         "windows[0].time_zone", "unknown IANA time zone"),
        ({"windows": [{"start": "25:00", "end": "02:00"}]}, "windows[0].start", "matching regex"),
        ({"windows": [{"weekdays": ["someday"], "start": "01:00", "end": "02:00"}]},
         "windows[0].weekdays[0]", "Invalid enum value"),
    ],
)  # fmt: skip
async def test_bad_input_is_refused_naming_the_field(
    client: httpx.AsyncClient, change: dict[str, Any], field: str, detail: str
) -> None:
    r = await client.post("/api/v1/silences", json={**SILENCE, **change})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert detail in r.json()["detail"], r.json()["detail"]
    assert (await client.get("/api/v1/silences")).json() == {"silences": []}


async def test_malformed_json_and_missing_scopes(service: OpsResponder, client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/v1/silences", content=b"{")).status_code == 400
    not_utf8 = await client.post("/api/v1/silences", content=b'{"comment": "\x80"}')
    assert not_utf8.status_code == 400 and "malformed JSON" in not_utf8.json()["detail"]
    read = {"Authorization": f"Bearer {TOKENS['read']}"}
    async with httpx.AsyncClient(base_url=base_url(service), headers=read, timeout=10) as reader:
        assert (await reader.post("/api/v1/silences", json=SILENCE)).status_code == 403
        assert (await reader.get("/api/v1/silences")).status_code == 200


async def test_a_silenced_event_is_stored_suppressed_and_left_out_unless_asked_for(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    hook = "http://127.0.0.1:9/hook"
    plain = await client.post("/api/v1/subscriptions", json={"name": "plain", "url": hook})
    everything = await client.post(
        "/api/v1/subscriptions",
        json={"name": "all", "url": hook, "filters": {"include_suppressed": True}},
    )
    silence = (await client.post("/api/v1/silences", json=SILENCE)).json()

    # No wait for a refresh: a change through this process's API reaches its stage at once.
    muted = await client.post("/api/v1/events/webhook", json={**EVENT, "host": "db-1"})
    loud = await client.post("/api/v1/events/webhook", json={**EVENT, "host": "db-2"})
    assert muted.status_code == loud.status_code == 200
    muted_id, loud_id = muted.json()["event_id"], loud.json()["event_id"]

    listed = (await client.get("/api/v1/events")).json()["events"]
    assert [e["id"] for e in listed] == [loud_id]
    stored = (await client.get(f"/api/v1/events/{muted_id}")).json()
    assert stored["suppressed_reason"] == f"silenced:{silence['id']}"
    all_listed = (await client.get("/api/v1/events", params={"include_suppressed": "true"})).json()["events"]
    assert {e["id"] for e in all_listed} == {muted_id, loud_id}

    outbox = await db_pool.fetch("SELECT subscription_id, event_id FROM events.subscription_outbox")
    plain_id, everything_id = plain.json()["id"], everything.json()["id"]
    assert sorted((r["subscription_id"], r["event_id"]) for r in outbox) == sorted(
        [(plain_id, loud_id), (everything_id, loud_id), (everything_id, muted_id)]
    )

    metrics = (await client.get("/metrics")).text
    assert 'opsresponder_events_suppressed_total{reason="silenced"} 1.0' in metrics

    # Deleting the silence takes effect for the very next event.
    assert (await client.delete(f"/api/v1/silences/{silence['id']}")).status_code == 204
    again = await client.post("/api/v1/events/webhook", json={**EVENT, "host": "db-1", "title": "disk 2"})
    again_stored = (await client.get(f"/api/v1/events/{again.json()['event_id']}")).json()
    assert again_stored["suppressed_reason"] is None


async def first_streamed_id(stream: httpx.Response) -> int:
    async for line in stream.aiter_lines():
        if line.startswith("data:"):
            data: dict[str, Any] = json.loads(line[5:])
            return int(data["id"])
    raise AssertionError("the stream ended")


async def test_the_stream_leaves_a_silenced_event_out_unless_asked_for(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/v1/silences", json=SILENCE)).status_code == 201
    async with (
        client.stream("GET", "/api/v1/events/stream") as plain,
        client.stream("GET", "/api/v1/events/stream", params={"include_suppressed": "true"}) as everything,
    ):
        assert plain.status_code == everything.status_code == 200
        muted = await client.post("/api/v1/events/webhook", json={**EVENT, "host": "db-1"})
        loud = await client.post("/api/v1/events/webhook", json={**EVENT, "host": "db-2"})
        assert await asyncio.wait_for(first_streamed_id(plain), 10) == loud.json()["event_id"]
        assert await asyncio.wait_for(first_streamed_id(everything), 10) == muted.json()["event_id"]
