"""GET /api/v1/events filters, paging and validation over a real socket."""

from __future__ import annotations

import httpx


async def _post(client: httpx.AsyncClient, **fields: object) -> int:
    event = {"source": "t", "event_type": "alert", "severity": "high", "title": "t", **fields}
    r = await client.post("/api/v1/events/webhook", json=event)
    assert r.status_code == 200, r.text
    event_id = r.json()["event_id"]
    assert isinstance(event_id, int)
    return event_id


async def test_filters_paging_and_order(client: httpx.AsyncClient) -> None:
    for i in range(6):
        await _post(
            client,
            title=f"e{i}",
            host=f"h{i % 2}",
            service="db" if i < 2 else "web",
            severity=["critical", "high", "info"][i % 3],
            event_type="disk_full" if i == 5 else "alert",
            timestamp=f"2024-12-20T10:0{i}:00Z",
        )
    listing = (await client.get("/api/v1/events", params={"limit": 4})).json()
    assert listing["total_count"] == 6 and listing["has_more"] is True
    assert [e["title"] for e in listing["events"]] == ["e5", "e4", "e3", "e2"]
    assert "raw" not in listing["events"][0]
    rest = (await client.get("/api/v1/events", params={"limit": 4, "offset": 4})).json()
    assert [e["title"] for e in rest["events"]] == ["e1", "e0"] and rest["has_more"] is False

    async def fetch(params: dict[str, str]) -> list[str]:
        r = await client.get("/api/v1/events", params=params)
        assert r.status_code == 200, r.text
        return [e["title"] for e in r.json()["events"]]

    assert await fetch({"severity": "critical"}) == ["e3", "e0"]
    assert await fetch({"severity": "critical,info"}) == ["e5", "e3", "e2", "e0"]
    assert await fetch({"host": "h1", "service": "web"}) == ["e5", "e3"]
    assert await fetch({"event_type": "disk_full"}) == ["e5"]
    assert await fetch({"start_time": "2024-12-20T10:01:00Z", "end_time": "2024-12-20T10:03:00Z"}) == [
        "e3",
        "e2",
        "e1",
    ]
    with_corr = (await client.get("/api/v1/events", params={"include_correlations": "true"})).json()
    assert all(isinstance(e["correlations"], list) for e in with_corr["events"])
    # e0, e1 (h0 and h1, service db) come first; e3 (h1, critical) joins e1 on its host; info events
    # (e2, e5) are never correlated.
    by_title = {e["title"]: e for e in with_corr["events"]}
    assert by_title["e2"]["correlations"] == [] and by_title["e5"]["correlations"] == []
    e3 = by_title["e3"]["correlations"]
    assert any(
        c["correlation_type"] == "host_based" and [r["title"] for r in c["related_events"]] == ["e1"]
        for c in e3
    ), e3


async def test_invalid_query_parameters_are_400(client: httpx.AsyncClient) -> None:
    for params in (
        {"limit": "1001"},
        {"limit": "0"},
        {"offset": "-1"},
        {"severity": "urgent"},
        {"severity": "high,bogus"},
        {"start_time": "not-a-time"},
        {"start_time": "2024-12-21T00:00:00Z", "end_time": "2024-12-20T00:00:00Z"},
    ):
        r = await client.get("/api/v1/events", params=params)
        assert r.status_code == 400, (params, r.text)
    assert (await client.get("/api/v1/events", params={"limit": "1000"})).status_code == 200


async def test_an_unknown_event_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/events/123456789")).status_code == 404


async def test_where_selects_by_metadata_with_the_condition_language(client: httpx.AsyncClient) -> None:
    await _post(client, title="a", metadata={"asset": {"criticality": "critical"}, "cpu_usage": 95})
    await _post(client, title="b", metadata={"asset": {"criticality": "critical"}, "cpu_usage": 40})
    await _post(client, title="c", metadata={"asset": {"criticality": "low"}, "cpu_usage": 99})
    await _post(client, title="d", metadata={"cpu_usage": "high"})  # a string: no match for $gt, no error

    async def titles(where: str) -> list[str]:
        r = await client.get("/api/v1/events", params={"where": where})
        assert r.status_code == 200, r.text
        assert r.json()["total_count"] == len(r.json()["events"])
        return sorted(e["title"] for e in r.json()["events"])

    assert await titles('{"metadata.asset.criticality": "critical"}') == ["a", "b"]
    assert await titles('{"metadata.cpu_usage": {"$gt": 90}}') == ["a", "c"]
    critical_and_hot = '{"metadata.asset.criticality": "critical", "metadata.cpu_usage": {"$gte": 95}}'
    assert await titles(critical_and_hot) == ["a"]
    assert await titles('{"$or": [{"title": "d"}, {"metadata.asset.criticality": "low"}]}') == ["c", "d"]


async def test_a_bad_where_is_400_naming_the_parameter_and_the_reason(client: httpx.AsyncClient) -> None:
    for where, reason in (
        ("not json", "is not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"host": {"$bogus": 1}}', "$bogus"),
        ('{"metadata.x": {"$gt": "ten"}}', "$gt"),
    ):
        r = await client.get("/api/v1/events", params={"where": where})
        assert r.status_code == 400, (where, r.text)
        assert r.json()["detail"].startswith("where: ") and reason in r.json()["detail"], r.json()
