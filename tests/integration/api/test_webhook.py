"""POST /api/v1/events/webhook over a real socket: committed before the answer, validated, authenticated."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from opsresponder.app import OpsResponder
from tests.integration.api.conftest import TOKENS, base_url


def body(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "source": "nagios-prod",
        "source_type": "nagios",
        "event_type": "threshold_breach",
        "severity": "critical",
        "timestamp": "2024-12-20T10:30:00Z",
        "host": "  web-server-01 ",
        "service": "nginx",
        "title": "High CPU Usage",
        "description": "CPU usage exceeded 95% threshold",
        "metadata": {"custom_field_1": "value1", "metrics": {"cpu_usage": 95.5}},
        "tags": ["production", "web-server"],
    }
    event.update(overrides)
    return event


async def test_an_accepted_event_is_committed_before_the_answer(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    r = await client.post("/api/v1/events/webhook", json=body())
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["status"] == "accepted"
    assert answer["duplicate"] is False
    assert isinstance(answer["event_id"], int)
    assert answer["processing_time_ms"] >= 0
    # Read the row directly, not through the API: the answer promised it is committed.
    row = await db_pool.fetchrow("SELECT * FROM events.events WHERE id = $1", answer["event_id"])
    assert row is not None
    assert row["host"] == "web-server-01"
    assert str(row["correlation_id"]) == answer["correlation_id"]
    assert row["metadata"]["metrics"]["cpu_usage"] == 95.5

    got = await client.get(f"/api/v1/events/{answer['event_id']}")
    assert got.status_code == 200
    event = got.json()
    assert event["title"] == "High CPU Usage"
    assert event["occurred_at"] == "2024-12-20T10:30:00Z"
    assert event["tags"] == ["production", "web-server"]
    assert event["severity"] == "critical"


async def test_a_duplicate_returns_the_existing_ids(client: httpx.AsyncClient) -> None:
    first = (await client.post("/api/v1/events/webhook", json=body())).json()
    second = (await client.post("/api/v1/events/webhook", json=body(description="again"))).json()
    assert second["status"] == "accepted"
    assert second["duplicate"] is True
    assert second["event_id"] == first["event_id"]
    assert second["correlation_id"] == first["correlation_id"]
    event = (await client.get(f"/api/v1/events/{first['event_id']}")).json()
    assert event["duplicate_count"] == 1


async def test_an_array_gets_one_result_per_event_in_order(client: httpx.AsyncClient) -> None:
    events = [body(host=f"h{i}") for i in range(3)] + [body(severity="urgent")]
    r = await client.post("/api/v1/events/webhook", json=events)
    assert r.status_code == 207
    answer = r.json()
    assert answer["accepted"] == 3 and answer["rejected"] == 1
    assert [x["status"] for x in answer["results"]] == ["accepted"] * 3 + ["rejected"]
    assert answer["results"][3]["field"] == "[3].severity"
    ids = [x["event_id"] for x in answer["results"][:3]]
    hosts = [(await client.get(f"/api/v1/events/{i}")).json()["host"] for i in ids]
    assert hosts == ["h0", "h1", "h2"]


async def test_all_valid_array_is_200(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/events/webhook", json=[body(host=f"h{i}") for i in range(100)])
    assert r.status_code == 200
    assert r.json()["accepted"] == 100


async def test_bad_input_is_rejected_naming_the_field(client: httpx.AsyncClient) -> None:
    cases: list[tuple[Any, str | None]] = [
        (body(severity="urgent"), "severity"),
        (body(event_type="Not An Identifier"), "event_type"),
        ({k: v for k, v in body().items() if k != "title"}, "title"),
        (body(host=42), "host"),
        (body(timestamp="yesterday"), "timestamp"),
        (body(tags="prod"), "tags"),
        (body(metadata=[1, 2]), "metadata"),
    ]
    for payload, field in cases:
        r = await client.post("/api/v1/events/webhook", json=payload)
        assert r.status_code == 400, (payload, r.text)
        answer = r.json()
        assert answer["status"] == "rejected"
        assert answer["field"] == field, answer
        assert field in answer["message"]
    r = await client.post(
        "/api/v1/events/webhook", content=b'{"source": ', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["status"] == "rejected"
    assert "malformed JSON" in r.json()["message"]
    for path in ("/api/v1/events/webhook", "/api/v1/events/webhook/alertmanager"):
        # Bytes that are not UTF-8 inside a JSON string: malformed too, never a 500.
        r = await client.post(
            path, content=b'{"source": "s\x80"}', headers={"content-type": "application/json"}
        )
        assert r.status_code == 400, (path, r.text)
        assert r.json()["status"] == "rejected" and "JSON" in r.json()["message"], r.json()
    # Nothing of the rejected bodies was stored.
    listing = (await client.get("/api/v1/events")).json()
    assert listing["total_count"] == 0


async def test_generic_kinds_and_specific_types_are_both_valid(client: httpx.AsyncClient) -> None:
    for event_type in ("alert", "metric", "log", "notification", "disk_space_critical", "k8s.pod-crash"):
        r = await client.post("/api/v1/events/webhook", json=body(event_type=event_type, title=event_type))
        assert r.status_code == 200, r.text


async def test_a_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/events/webhook", json=body(description="x" * 70_000))
    assert r.status_code == 413


async def test_tokens_and_scopes(service: OpsResponder) -> None:
    url = base_url(service) + "/api/v1/events/webhook"
    async with httpx.AsyncClient(timeout=10) as c:
        assert (await c.post(url, json=body())).status_code == 401
        wrong = {"Authorization": "Bearer not-a-token-at-all-really"}
        assert (await c.post(url, json=body(), headers=wrong)).status_code == 401
        read_only = {"Authorization": f"Bearer {TOKENS['read']}"}
        assert (await c.post(url, json=body(), headers=read_only)).status_code == 403
        ingest = {"Authorization": f"Bearer {TOKENS['ingest']}"}
        assert (await c.post(url, json=body(), headers=ingest)).status_code == 200
        assert (await c.get(base_url(service) + "/api/v1/events", headers=ingest)).status_code == 403
        assert (await c.get(base_url(service) + "/api/v1/events", headers=read_only)).status_code == 200
        # health and ready are open; metrics and the schema need a token with read.
        for name in ("events_api", "autonomous_api"):
            root = base_url(service, name)
            assert (await c.get(root + "/health")).status_code == 200
            assert (await c.get(root + "/ready")).status_code == 200
            assert (await c.get(root + "/metrics")).status_code == 401
            assert (await c.get(root + "/metrics", headers=ingest)).status_code == 403
            assert (await c.get(root + "/metrics", headers=read_only)).status_code == 200
            assert (await c.get(root + "/schema/openapi.json")).status_code == 401
            assert (await c.get(root + "/schema/openapi.json", headers=ingest)).status_code == 403
            assert (await c.get(root + "/schema/openapi.json", headers=read_only)).status_code == 200


async def test_alertmanager_payload_by_path_and_by_source_type(client: httpx.AsyncClient) -> None:
    alert: dict[str, Any] = {
        "status": "firing",
        "labels": {"alertname": "HighCPU", "instance": "web-01:9100", "job": "node", "severity": "critical"},
        "annotations": {"summary": "CPU above 90%", "description": "cpu is 95%"},
        "startsAt": "2024-12-20T10:30:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": "a1b2c3d4e5f60718",
    }
    payload = {
        "version": "4",
        "groupKey": '{}:{alertname="HighCPU"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "opsresponder",
        "groupLabels": {"alertname": "HighCPU"},
        "commonLabels": alert["labels"],
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            alert,
            {**alert, "labels": {**alert["labels"], "instance": "web-02:9100"}, "fingerprint": "ff"},
        ],
    }
    r = await client.post("/api/v1/events/webhook/alertmanager", json=payload)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 2
    first = (await client.get(f"/api/v1/events/{results[0]['event_id']}")).json()
    assert first["host"] == "web-01"
    assert first["severity"] == "critical"
    assert first["source_type"] == "prometheus"

    resolved = {
        **payload,
        "status": "resolved",
        "alerts": [{**alert, "status": "resolved", "endsAt": "2024-12-20T10:45:00Z"}],
    }
    r = await client.post("/api/v1/events/webhook", json={**resolved, "source_type": "prometheus"})
    assert r.status_code == 200, r.text
    res = r.json()["results"][0]
    assert res["duplicate"] is False
    cleared = (await client.get(f"/api/v1/events/{res['event_id']}")).json()
    assert cleared["state"] == "resolved"
    assert cleared["fingerprint"] == first["fingerprint"]


async def test_unknown_native_source_is_400(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/events/webhook/splunk", json={})
    assert r.status_code == 400
    assert r.json()["field"] == "source_type"


async def test_metrics_count_what_happened(client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/events/webhook", json=body())
    await client.post("/api/v1/events/webhook", json=body())  # a duplicate
    await client.post("/api/v1/events/webhook", json=body(severity="urgent"))  # rejected
    text = (await client.get("/metrics")).text
    assert 'opsresponder_events_received_total{source="nagios"} 2.0' in text
    assert 'opsresponder_events_accepted_total{source="nagios"} 1.0' in text
    assert 'opsresponder_events_deduplicated_total{source="nagios"} 1.0' in text
    assert 'opsresponder_events_rejected_total{source="webhook"} 1.0' in text
    for family in (
        "opsresponder_intake_depth",
        "opsresponder_pipeline_batch_size_bucket",
        "opsresponder_pipeline_latency_seconds_bucket",
        "opsresponder_db_write_errors_total",
        "opsresponder_events_dropped_total",
    ):
        assert family in text, family


async def test_native_endpoints_have_the_generic_auth_and_limits(service: OpsResponder) -> None:
    url = base_url(service) + "/api/v1/events/webhook/zabbix"
    async with httpx.AsyncClient(timeout=10) as c:
        assert (await c.post(url, json={})).status_code == 401
        read_only = {"Authorization": f"Bearer {TOKENS['read']}"}
        assert (await c.post(url, json={}, headers=read_only)).status_code == 403
        ingest = {"Authorization": f"Bearer {TOKENS['ingest']}"}
        too_big = await c.post(url, content=b"{" + b" " * 70_000 + b"}", headers=ingest)
        assert too_big.status_code == 413
        bad = await c.post(url, json={"event": {}}, headers=ingest)
        assert bad.status_code == 400
        assert bad.json()["status"] == "rejected"
        assert bad.json()["field"]
