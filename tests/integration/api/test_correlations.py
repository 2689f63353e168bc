"""Correlation through the whole service: the scenario storms posted in time order to the real webhook,
grouped by the correlate stage, written by the batch writer, and read back through the correlations API
in service-spec.md's shape."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import asyncpg
import httpx

from opsresponder.core.clock import utcnow
from tests import correlation_scenarios as scenarios
from tests.conftest import CORRELATION_ROWS

BATCH = 25
F1_FLOOR = 0.9
ROOT_TOP1_FLOOR = 0.8


async def _post_in_time_order(
    client: httpx.AsyncClient, scenario: scenarios.Scenario
) -> list[dict[str, Any]]:
    """Every event, in arrays of `BATCH`, one array after the other; the webhook's result of each."""
    results: list[dict[str, Any]] = []
    for start in range(0, len(scenario.events), BATCH):
        chunk = scenario.events[start : start + BATCH]
        r = await client.post("/api/v1/events/webhook", json=[scenarios.webhook_body(e) for e in chunk])
        assert r.status_code == 200, r.text
        results.extend(r.json()["results"])
    return results


async def test_the_storms_are_grouped_stored_and_explained(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    scenario = scenarios.build()
    results = await _post_in_time_order(client, scenario)
    assert all(r["status"] == "accepted" for r in results)
    ids = [r["event_id"] for r in results]
    groups = [r["correlation_id"] for r in results]

    # Dedup: the two repeated disk warnings were folded into their events and kept their group.
    duplicates = [i for i, r in enumerate(results) if r["duplicate"]]
    assert len(duplicates) == 2
    assert {scenario.labels[i] for i in duplicates} == {"disk"}
    disk_rows = await db_pool.fetch(
        "SELECT duplicate_count FROM events.events WHERE host = 'db-7' ORDER BY occurred_at"
    )
    assert len(disk_rows) == 11 and sum(r["duplicate_count"] for r in disk_rows) == 2

    # Every stored correlation joins two stored events of one group: none for the folded duplicates.
    dangling = await db_pool.fetchval(
        f"""SELECT count(*) FROM {CORRELATION_ROWS} AS c
           LEFT JOIN events.events AS e ON e.id = c.event_id
           LEFT JOIN events.events AS r ON r.id = c.related_event_id
           WHERE e.id IS NULL OR r.id IS NULL OR e.correlation_id <> c.correlation_id
              OR r.correlation_id <> c.correlation_id"""
    )
    assert dangling == 0
    assert await db_pool.fetchval(f"SELECT count(*) FROM {CORRELATION_ROWS} AS c") > 100

    # The grouping, measured as the unit test does, from what the service stored and answered.
    stored = await db_pool.fetch("SELECT id, correlation_id, metadata FROM events.events")
    by_id = {r["id"]: r for r in stored}
    assert all(str(by_id[i]["correlation_id"]) == g for i, g in zip(ids, groups, strict=True))
    hits = 0
    for label, root in scenario.roots.items():
        root_id = ids[scenario.events.index(root)]
        group = scenarios.majority_group(scenario.labels, groups, label)
        assert str(by_id[root_id]["correlation_id"]) == group
        # The root's stored row says it is the root, whether it came first (flagged by the batch writer
        # once its dependents came) or last (flagged by the stage itself).
        hits += by_id[root_id]["metadata"]["correlation"]["root_cause"] is True
    measures = scenarios.measure(scenario.labels, groups, hits, len(scenario.roots))
    print(measures.line())  # the figures the report quotes (pytest -s)
    assert measures.f1 >= F1_FLOOR, measures.line()
    assert measures.root_top1 >= ROOT_TOP1_FLOOR, measures.line()

    # The switch's linkDown: its correlations are its 25 dependent events, named by causal correlations.
    root_id = ids[scenario.events.index(scenario.roots["switch"])]
    answer = (await client.get(f"/api/v1/events/{root_id}/correlations")).json()
    assert set(answer) == {"primary_event", "correlations", "correlation_summary"}
    assert answer["primary_event"]["id"] == root_id and "raw" not in answer["primary_event"]
    first = answer["correlations"][0]
    assert first["correlation_type"] == "causal"
    assert first["correlation_reason"].startswith("Depends on sw-core-1")
    assert len(first["related_events"]) == 25 and first["related_event_count"] == 25
    assert {e["host"] for e in first["related_events"]} == {f"app-{n:02d}" for n in range(1, 21)}
    scores = [c["correlation_score"] for c in answer["correlations"]]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1
    summary = answer["correlation_summary"]
    assert summary["total_related_events"] == 25
    assert summary["highest_correlation_score"] == scores[0]
    assert 2 <= summary["correlation_timespan_minutes"] <= 4  # the storm lasted about 3.5 minutes
    assert {
        "correlation_type",
        "related_events",
        "correlation_score",
        "correlation_reason",
        "created_at",
    } <= set(first)

    # One dependent: its causal correlation names the root.
    dependent = next(i for e, i in zip(scenario.events, ids, strict=True) if e.host == "app-07")
    answer = (await client.get(f"/api/v1/events/{dependent}/correlations")).json()
    causal = [c for c in answer["correlations"] if c["correlation_type"] == "causal"]
    assert [e["id"] for e in causal[0]["related_events"]] == [root_id]
    assert answer["correlations"][0]["correlation_type"] == "causal"  # the best reason comes first

    # include_correlations fills the same entries in the listing.
    listing = (
        await client.get("/api/v1/events", params={"host": "app-07", "include_correlations": "true"})
    ).json()
    kinds = Counter(c["correlation_type"] for e in listing["events"] for c in e["correlations"])
    assert kinds["causal"] >= 1

    # An event never correlated has an empty answer, still in shape.
    noise_id = next(
        i
        for i, e, lab in zip(ids, scenario.events, scenario.labels, strict=True)
        if lab.startswith("noise") and e.severity.value == "info"
    )
    empty = (await client.get(f"/api/v1/events/{noise_id}/correlations")).json()
    assert empty["correlations"] == []
    assert empty["correlation_summary"] == {
        "total_related_events": 0,
        "highest_correlation_score": 0.0,
        "correlation_timespan_minutes": 0.0,
    }


async def test_correlations_of_an_unknown_event_are_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/events/987654321/correlations")).status_code == 404


async def test_suggestions_learn_a_lead_lag_pair_from_history(client: httpx.AsyncClient) -> None:
    """storage-01 fails, and 2 minutes later backup-7 reports a failed job, eight times in two days; other
    hosts report errors at other times: the pair is suggested, with its support and lift."""
    start = utcnow() - timedelta(days=2)
    bodies: list[dict[str, Any]] = []
    for n in range(8):
        at = start + timedelta(hours=5 * n)
        # Titles differ: posted at once, equal ones would be folded into one event by dedup.
        bodies.append(_body("storage-01", f"NFS export /srv/backup not responding (outage {n})", at))
        bodies.append(
            _body("backup-7", f"Backup job {n} failed: target unreachable", at + timedelta(minutes=2))
        )
    for n in range(20):  # unrelated chatter at other times
        bodies.append(
            _body(f"web-{n}", f"Request queue above {n} items", start + timedelta(hours=2 * n, minutes=37))
        )
    bodies.sort(key=lambda b: b["timestamp"])
    r = await client.post("/api/v1/events/webhook", json=bodies)
    assert r.status_code == 200, r.text

    answer = (
        await client.get("/api/v1/correlations/suggestions", params={"min_support": 5, "within_minutes": 5})
    ).json()
    assert answer["min_support"] == 5 and answer["within_minutes"] == 5
    pairs = [(s["cause"]["on"], s["effect"]["on"]) for s in answer["suggestions"]]
    assert ("storage-01", "backup-7") in pairs
    best = answer["suggestions"][pairs.index(("storage-01", "backup-7"))]
    assert best["support"] == 8 and best["lift"] >= 3 and best["confidence"] == 1.0
    assert "depends_on of 'backup-7'" in best["suggestion"]
    assert ("backup-7", "storage-01") not in pairs  # the lag has a direction

    bad = await client.get("/api/v1/correlations/suggestions", params={"within_minutes": "0"})
    assert bad.status_code == 400 and "within_minutes" in bad.text


def _body(host: str, title: str, at: Any) -> dict[str, Any]:
    return {
        "source": "history",
        "event_type": "log_error",
        "severity": "high",
        "title": title,
        "timestamp": at.isoformat(),
        "host": host,
    }
