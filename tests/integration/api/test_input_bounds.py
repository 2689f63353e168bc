"""Issue 14's inputs, over a real socket: each refused with a 4xx naming the field, nothing reaching the
database as a value it cannot hold, no database message in any answer; OPTIONS and /metrics headers; and an
unexpected error logged once, counted and answered 500 with the request id of its log line."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import structlog

from opsresponder.app import OpsResponder
from tests.integration.api.conftest import TOKENS, base_url

TOO_BIG = "9223372036854775808"  # 2^63: one past PostgreSQL's bigint
TOO_SMALL = "-9223372036854775809"
BIGGEST = "9223372036854775807"


def assert_refused(r: httpx.Response, field: str) -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["status_code"] == 400
    assert body["field"] == field, body
    assert body["detail"].startswith(f"{field}: "), body
    for driver_word in ("asyncpg", "DataError", "query argument", "int64"):
        assert driver_word not in r.text


@pytest.mark.parametrize("value", [TOO_BIG, TOO_SMALL])
async def test_ids_past_bigint_are_400_naming_the_id(client: httpx.AsyncClient, value: str) -> None:
    assert_refused(await client.get(f"/api/v1/events/{value}"), "event_id")
    subscription = f"/api/v1/subscriptions/{value}"
    assert_refused(await client.get(subscription), "subscription_id")
    assert_refused(await client.delete(subscription), "subscription_id")
    assert_refused(await client.post(subscription + "/redeliver"), "subscription_id")
    body = {"name": "n", "url": "http://127.0.0.1:9/hook"}
    assert_refused(await client.put(subscription, json=body), "subscription_id")
    silence = f"/api/v1/silences/{value}"
    assert_refused(await client.get(silence), "silence_id")
    assert_refused(await client.delete(silence), "silence_id")
    matchers = {"matchers": [{"field": "host", "value": "h"}]}
    assert_refused(await client.put(silence, json=matchers), "silence_id")


async def test_the_largest_bigint_id_is_only_not_found(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"/api/v1/events/{BIGGEST}")).status_code == 404
    assert (await client.get(f"/api/v1/subscriptions/{BIGGEST}")).status_code == 404
    assert (await client.post(f"/api/v1/subscriptions/{BIGGEST}/redeliver")).status_code == 404
    assert (await client.get(f"/api/v1/silences/{BIGGEST}")).status_code == 404


async def test_an_offset_past_bigint_is_400(client: httpx.AsyncClient) -> None:
    assert_refused(await client.get("/api/v1/events", params={"offset": TOO_BIG}), "offset")
    largest = await client.get("/api/v1/events", params={"offset": BIGGEST})
    assert largest.status_code == 200
    assert largest.json() == {"events": [], "total_count": 0, "has_more": False}


@pytest.mark.parametrize("field", ["event_type", "host", "service"])
async def test_nul_in_a_text_filter_is_400(client: httpx.AsyncClient, field: str) -> None:
    # httpx encodes "\x00" as %00, as in the issue.
    assert_refused(await client.get("/api/v1/events", params={field: "a\x00b"}), field)
    assert_refused(await client.get("/api/v1/events/stream", params={field: "\x00"}), field)


async def test_a_stream_cursor_past_bigint_is_400(client: httpx.AsyncClient) -> None:
    stream = "/api/v1/events/stream"
    assert_refused(await client.get(stream, params={"last_event_id": TOO_BIG}), "last_event_id")
    assert_refused(await client.get(stream, headers={"Last-Event-ID": TOO_BIG}), "last-event-id")


@pytest.mark.parametrize("value", ["0.5", "1e10", "1734690600"])
async def test_numbers_are_not_date_times(client: httpx.AsyncClient, value: str) -> None:
    assert_refused(await client.get("/api/v1/events", params={"start_time": value}), "start_time")
    assert_refused(await client.get("/api/v1/events", params={"end_time": value}), "end_time")


async def test_a_time_outside_what_utc_can_express_is_400(client: httpx.AsyncClient) -> None:
    # Year 1 at +05:00 is year 0 in UTC: Python's datetime raised OverflowError, answered 500 before.
    early, late = "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"
    assert_refused(await client.get("/api/v1/events", params={"start_time": early}), "start_time")
    assert_refused(await client.get("/api/v1/events", params={"end_time": late}), "end_time")
    event = {"source": "s", "event_type": "t", "severity": "high", "title": "t"}
    one = await client.post("/api/v1/events/webhook", json={**event, "timestamp": early})
    assert one.status_code == 400, one.text
    assert one.json()["field"] == "timestamp"
    both = await client.post("/api/v1/events/webhook", json=[event, {**event, "timestamp": late}])
    assert both.status_code == 207, both.text
    assert [r["status"] for r in both.json()["results"]] == ["accepted", "rejected"]
    assert both.json()["results"][1]["field"] == "[1].timestamp"


@pytest.mark.parametrize("path", ["/api/v1/events/webhook", "/api/v1/events/webhook/alertmanager"])
async def test_json_nested_thousands_deep_is_400(client: httpx.AsyncClient, path: str) -> None:
    # msgspec raises RecursionError (not a DecodeError) for it: that was a 500.
    deep = b'{"source": "s", "metadata": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}}"
    for body in (deep, b"[" * 3000 + b"]" * 3000):
        r = await client.post(path, content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text
        assert "nested too deeply" in r.text


async def test_an_rfc3339_time_is_still_accepted(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/events", params={"start_time": "2024-12-20T10:30:00+01:00"})
    assert r.status_code == 200, r.text


async def test_nul_in_a_subscription_is_422_naming_the_field(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/subscriptions", json={"name": "a\x00", "url": "http://127.0.0.1:9/x"})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "name"


async def test_nul_in_a_silence_is_422_naming_the_field(client: httpx.AsyncClient) -> None:
    matchers = [{"field": "metadata.a\x00", "value": "v"}]
    r = await client.post("/api/v1/silences", json={"matchers": matchers})
    assert (r.status_code, r.json()["field"]) == (422, "matchers[0].field"), r.text
    r = await client.post("/api/v1/silences", json={"matchers": [{"field": "host", "value": "v\x00"}]})
    assert (r.status_code, r.json()["field"]) == (422, "matchers[0].value"), r.text
    r = await client.post(
        "/api/v1/silences", json={"matchers": [{"field": "host", "value": "v"}], "comment": "\x00"}
    )
    assert (r.status_code, r.json()["field"]) == (422, "comment"), r.text


async def test_nul_in_a_webhook_source_is_stored_replaced(client: httpx.AsyncClient) -> None:
    # PostgreSQL refused it with a 500 before; normalize replaces NUL in identifiers like everywhere else.
    event = {"source": "a\x00b", "event_type": "t", "severity": "high", "title": "t", "fingerprint": "f\x00"}
    r = await client.post("/api/v1/events/webhook", json=event)
    assert r.status_code == 200, r.text
    stored = (await client.get(f"/api/v1/events/{r.json()['event_id']}")).json()
    assert stored["source"] == "a\ufffdb"
    assert stored["fingerprint"] == "f\ufffd"


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/api/v1/subscriptions", "GET, OPTIONS, POST"),
        ("/api/v1/subscriptions/1", "DELETE, GET, OPTIONS, PUT"),
        ("/api/v1/subscriptions/1/redeliver", "OPTIONS, POST"),
        ("/api/v1/events", "GET, OPTIONS"),
        ("/api/v1/events/webhook", "OPTIONS, POST"),
        ("/api/v1/silences", "GET, OPTIONS, POST"),
        ("/api/v1/silences/1", "DELETE, GET, OPTIONS, PUT"),
    ],
)
async def test_options_lists_every_method(client: httpx.AsyncClient, path: str, allow: str) -> None:
    r = await client.options(path)
    assert r.status_code == 204
    assert r.headers["allow"] == allow


async def test_metrics_name_their_charset_once(client: httpx.AsyncClient) -> None:
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=1.0.0; charset=utf-8"


@pytest.fixture
async def events_table_gone(db_pool: asyncpg.Pool) -> AsyncIterator[None]:
    """A real database failure no handler expects: the events table is renamed away for the test."""
    await db_pool.execute("ALTER TABLE events.events RENAME TO events_away")
    try:
        yield
    finally:
        await db_pool.execute("ALTER TABLE events.events_away RENAME TO events")


async def test_an_unexpected_error_is_logged_counted_and_answered_with_its_request_id(
    service: OpsResponder, events_table_gone: None
) -> None:
    url = base_url(service)
    token = TOKENS["read"]
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as c:
        with structlog.testing.capture_logs() as logs:
            r = await c.get("/api/v1/events/1", params={"note": "x"})
        metrics = (await c.get("/metrics")).text

    assert r.status_code == 500
    body = r.json()
    assert set(body) == {"status_code", "detail", "request_id"}
    assert "events_away" not in r.text and "UndefinedTable" not in r.text
    errors = [e for e in logs if e["log_level"] == "error"]
    assert len(errors) == 1, errors  # once
    line = errors[0]
    assert line["request_id"] == body["request_id"]
    assert (line["api"], line["method"], line["path"]) == ("events", "GET", "/api/v1/events/1")
    assert isinstance(line["exc_info"], asyncpg.UndefinedTableError)  # rendered as its traceback
    assert token not in repr(line) and "note" not in repr(line)  # no header, no query string
    assert 'opsresponder_http_unexpected_errors_total{api="events"} 1.0' in metrics
