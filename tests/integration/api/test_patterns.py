"""GET /api/v1/patterns and GET /api/v1/events?pattern= over a real socket, fed through the webhook."""

from __future__ import annotations

import httpx

from opsresponder.app import OpsResponder
from opsresponder.pipeline.patterns import template_id
from tests.integration.api.conftest import TOKENS, base_url

DISK = "Disk <PATH> full on db-<NUM>"
LOGIN = "Invalid user <*> from <IP>"


async def _post(client: httpx.AsyncClient, title: str, host: str = "h") -> dict[str, object]:
    event = {"source": "t", "event_type": "alert", "severity": "high", "title": title, "host": host}
    r = await client.post("/api/v1/events/webhook", json=event)
    assert r.status_code == 200, r.text
    answer: dict[str, object] = r.json()
    return answer


async def test_templates_are_listed_with_counts_and_their_events_found_by_id(
    client: httpx.AsyncClient,
) -> None:
    await _post(client, "Disk /var full on db-1", host="db-1")
    await _post(client, "Disk /srv full on db-2", host="db-2")
    await _post(client, "Disk /srv full on db-2", host="db-2")  # a duplicate still counts
    await _post(client, "Invalid user admin from 10.0.0.1")
    await _post(client, "Invalid user oracle from 10.0.0.2")

    r = await client.get("/api/v1/patterns", params={"sort": "count"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total_count"] == 3 and body["has_more"] is False
    top = body["patterns"][0]
    assert (top["template"], top["count"], top["id"]) == (DISK, 3, template_id(DISK))
    assert top["first_seen"] <= top["last_seen"]
    # The first login failure got its own text before the second one showed the user name varies.
    assert {p["template"] for p in body["patterns"][1:]} == {"Invalid user admin from <IP>", LOGIN}

    events = (await client.get("/api/v1/events", params={"pattern": template_id(DISK)})).json()
    assert events["total_count"] == 2  # the duplicate was folded into its event
    assert {e["metadata"]["pattern"]["template"] for e in events["events"]} == {DISK}
    assert {e["host"] for e in events["events"]} == {"db-1", "db-2"}
    none = await client.get("/api/v1/events", params={"pattern": "0000000000000000"})
    assert none.json()["total_count"] == 0


async def test_what_is_new_since_a_time_sorting_and_paging(client: httpx.AsyncClient) -> None:
    await _post(client, "Fan 3 failed")
    listing = (await client.get("/api/v1/patterns")).json()
    since = listing["patterns"][0]["last_seen"]
    await _post(client, "Power supply 2 lost input")
    await _post(client, "Fan 4 failed")

    new = (await client.get("/api/v1/patterns", params={"since": since, "sort": "first_seen"})).json()
    templates = [p["template"] for p in new["patterns"]]
    assert "Power supply <NUM> lost input" in templates
    assert new["patterns"][0]["template"] == "Power supply <NUM> lost input"
    by_last = (await client.get("/api/v1/patterns", params={"sort": "last_seen"})).json()
    assert by_last["patterns"][0]["template"] == "Fan <NUM> failed"
    page = (await client.get("/api/v1/patterns", params={"limit": 1, "offset": 1})).json()
    assert len(page["patterns"]) == 1 and page["total_count"] == 2 and page["has_more"] is False


async def test_bad_parameters_are_refused_naming_them(client: httpx.AsyncClient) -> None:
    for params, field in (
        ({"sort": "newest"}, "sort"),
        ({"since": "yesterday"}, "since"),
        ({"limit": "0"}, "limit"),
        ({"offset": "-1"}, "offset"),
    ):
        r = await client.get("/api/v1/patterns", params=params)
        assert r.status_code == 400, (params, r.text)
        assert field in r.text
    r = await client.get("/api/v1/events", params={"pattern": "x" * 65})
    assert r.status_code == 400 and "pattern" in r.text


async def test_reading_needs_the_read_scope(service: OpsResponder) -> None:
    async with httpx.AsyncClient(base_url=base_url(service), timeout=10) as anonymous:
        assert (await anonymous.get("/api/v1/patterns")).status_code == 401
        reader = {"Authorization": f"Bearer {TOKENS['read']}"}
        assert (await anonymous.get("/api/v1/patterns", headers=reader)).status_code == 200
        ingester = {"Authorization": f"Bearer {TOKENS['ingest']}"}
        assert (await anonymous.get("/api/v1/patterns", headers=ingester)).status_code == 403
