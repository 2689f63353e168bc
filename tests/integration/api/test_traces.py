"""The decision trace over real HTTP: events in through the real webhook, their traces out of
``GET /api/v1/events/{id}/trace`` with what normalize, noise and score decided."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import httpx

from opsresponder.app import running
from tests.integration.api.conftest import TOKENS, api_settings, base_url

EVENT: dict[str, Any] = {
    "source": "nagios-prod",
    "event_type": "threshold_breach",
    "severity": "high",
    "host": "web-server-01",
    "title": "High CPU Usage",
    "metadata": {
        "asset": {"name": "web-server-01", "criticality": "critical", "environment": "production"},
    },
}


async def test_an_event_in_through_the_webhook_has_its_trace_out(client: httpx.AsyncClient) -> None:
    answer = await client.post("/api/v1/events/webhook", json=EVENT)
    assert answer.status_code == 200, answer.text
    event_id = answer.json()["event_id"]
    for _ in range(2):  # folded into it as duplicates
        again = await client.post("/api/v1/events/webhook", json=EVENT)
        assert again.json()["event_id"] == event_id and again.json()["duplicate"] is True

    trace = await client.get(f"/api/v1/events/{event_id}/trace")
    assert trace.status_code == 200, trace.text
    body = trace.json()
    stored = (await client.get(f"/api/v1/events/{event_id}")).json()
    assert body["event_id"] == event_id
    assert body["source_type"] == "custom" and body["ingest"] == "generic webhook"
    assert body["fingerprint"] == stored["fingerprint"]
    assert body["duplicate_count"] == 2 and body["last_seen_at"] == stored["last_seen_at"]
    assert body["suppressed_reason"] is None
    assert body["asset"] == "web-server-01"
    assert body["correlation_id"] == answer.json()["correlation_id"] and body["correlation"] == {
        "types": [],
        "group_size": 1,
        "root_cause": False,
    }
    assert body["score"] == 65
    assert body["score_factors"] == {
        "severity": 30,
        "criticality": 25,
        "environment": 10,
        "correlation": 0,
        "repetition": 0,
        "business_hours": 0,
    }
    assert body["score_missing"] == ["business_hours"]
    assert body["traced"] is True
    entries = {e["stage"]: e["detail"] for e in body["entries"]}
    assert list(entries) == ["normalize", "enrich", "noise", "patterns", "correlate", "score", "rules"]
    assert entries["normalize"] == "fingerprint computed from source, host, service, event_type, title"
    assert entries["enrich"] == "no asset matched host 'web-server-01'"
    assert entries["noise"] == "passed: no active silence, not flapping"
    assert entries["patterns"].endswith(": High CPU Usage")
    assert entries["score"] == (
        "score 65: severity high +30, criticality critical +25, environment production +10, "
        "correlation 1 event +0, repetition 0 earlier +0; missing: business_hours"
    )


async def test_a_silenced_events_trace_names_the_silence(client: httpx.AsyncClient) -> None:
    silence = await client.post(
        "/api/v1/silences",
        json={"matchers": [{"field": "host", "value": "db-1"}], "starts_at": "2020-01-01T00:00:00Z"},
    )
    silence_id = silence.json()["id"]
    answer = await client.post("/api/v1/events/webhook", json={**EVENT, "host": "db-1", "metadata": {}})
    body = (await client.get(f"/api/v1/events/{answer.json()['event_id']}/trace")).json()
    assert body["suppressed_reason"] == f"silenced:{silence_id}"
    assert {"stage": "noise", "detail": f"silenced:{silence_id}: matched the silence"} in body["entries"]
    # A suppressed event is neither correlated with others nor evaluated by rules (their entries say so).
    assert [e["stage"] for e in body["entries"]][:3] == ["normalize", "enrich", "noise"]
    assert body["asset"] is None and body["score_missing"] == [
        "criticality",
        "environment",
        "business_hours",
    ]


async def test_a_native_adapters_event_names_its_adapter(client: httpx.AsyncClient) -> None:
    payload = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "HighLoad", "instance": "web-1:9100", "severity": "critical"},
                "annotations": {"summary": "load is high"},
                "startsAt": "2030-01-01T00:00:00Z",
            }
        ],
    }
    answer = await client.post("/api/v1/events/webhook/alertmanager", json=payload)
    assert answer.status_code == 200, answer.text
    event_id = answer.json()["results"][0]["event_id"]
    body = (await client.get(f"/api/v1/events/{event_id}/trace")).json()
    assert body["source_type"] == "prometheus" and body["ingest"] == "alertmanager adapter"
    assert body["entries"][0] == {"stage": "normalize", "detail": "fingerprint given by the sender"}


async def test_an_unknown_event_is_404_and_the_read_scope_is_needed(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/events/999999999/trace")
    assert missing.status_code == 404 and "999999999" in missing.json()["detail"]
    ingest_only = await client.get(
        "/api/v1/events/1/trace", headers={"Authorization": f"Bearer {TOKENS['ingest']}"}
    )
    assert ingest_only.status_code == 403


async def test_with_tracing_off_the_answer_has_no_entries(
    database_url: str, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    async with (
        running(api_settings(database_url, tmp_path, trace=False)) as svc,
        httpx.AsyncClient(
            base_url=base_url(svc), headers={"Authorization": f"Bearer {TOKENS['admin']}"}, timeout=10
        ) as client,
    ):
        answer = await client.post("/api/v1/events/webhook", json=EVENT)
        body = (await client.get(f"/api/v1/events/{answer.json()['event_id']}/trace")).json()
    assert body["traced"] is False and body["entries"] == []
    assert body["score"] == 65  # scoring does not depend on the trace
    assert await db_pool.fetchval("SELECT count(*) FROM events.event_traces") == 0
