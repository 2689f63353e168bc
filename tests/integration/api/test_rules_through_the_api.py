"""A trigger rule created through the API fires on the next matching event through the webhook, in the
same process, without waiting for the rules' poll: the whole path from rule to firing over real sockets."""

from __future__ import annotations

import httpx

from opsresponder.app import OpsResponder

RULE = {
    "name": "Hot web servers",
    "conditions": {
        "event_type": "threshold_breach",
        "severity": ["critical", "high"],
        "metadata.cpu_usage": {"$gt": 90},
        "host": {"$regex": "web-server-.*"},
    },
    "time_window_minutes": 5,
    "threshold": 2,
    "group_by": ["host"],
    "max_triggers_per_hour": 3,
    "cooldown_minutes": 15,
    "active": True,
}


def event(host: str, cpu: float, title: str) -> dict[str, object]:
    return {
        "source": "nagios",
        "event_type": "threshold_breach",
        "severity": "high",
        "host": host,
        "title": title,
        "metadata": {"cpu_usage": cpu},
    }


async def test_a_rule_created_through_the_api_fires_on_the_next_matching_events(
    service: OpsResponder, client: httpx.AsyncClient
) -> None:
    created = await client.post("/api/v1/rules/triggers", json=RULE)
    assert created.status_code == 201, created.text
    rule_id = created.json()["rule_id"]

    first = await client.post("/api/v1/events/webhook", json=event("web-server-01", 95, "CPU 95%"))
    cold = await client.post("/api/v1/events/webhook", json=event("web-server-01", 40, "CPU 40%"))
    other = await client.post("/api/v1/events/webhook", json=event("db-01", 99, "CPU 99%"))
    second = await client.post("/api/v1/events/webhook", json=event("web-server-01", 97, "CPU 97%"))
    assert all(r.status_code == 200 for r in (first, cold, other, second))

    firings = (await client.get(f"/api/v1/rules/triggers/{rule_id}/firings")).json()
    assert firings["total_count"] == 1, firings
    firing = firings["firings"][0]
    assert firing["group_key"] == "web-server-01" and firing["kind"] == "trigger"
    assert second.json()["event_id"] in firing["event_ids"]

    trace = (await client.get(f"/api/v1/events/{second.json()['event_id']}/trace")).json()
    rules_entry = next(e["detail"] for e in trace["entries"] if e["stage"] == "rules")
    assert str(rule_id) in rules_entry and "fired" in rules_entry, rules_entry
    cold_trace = (await client.get(f"/api/v1/events/{cold.json()['event_id']}/trace")).json()
    cold_entry = next(e["detail"] for e in cold_trace["entries"] if e["stage"] == "rules")
    assert "fired" not in cold_entry, cold_entry

    # Deactivated through the API: evaluated no more, from the next batch on; its firings stay.
    body = {**RULE, "active": False}
    assert (await client.put(f"/api/v1/rules/triggers/{rule_id}", json=body)).status_code == 200
    for cpu in (96, 98, 99):
        await client.post("/api/v1/events/webhook", json=event("web-server-02", cpu, f"CPU {cpu}%"))
    after = (await client.get(f"/api/v1/rules/triggers/{rule_id}/firings")).json()
    assert after["total_count"] == 1
