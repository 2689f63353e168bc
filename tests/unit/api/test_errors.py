"""ErrorGuard, the outermost layer of each port: what escapes every handler is logged once, counted and
answered 500 with the request id of its log line (or, once the answer started, the body is ended)."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar.types import Receive, Scope, Send
from prometheus_client import CollectorRegistry

from opsresponder.api.errors import ErrorGuard


class Broken(RuntimeError):
    pass


def http_scope(path: str = "/api/v1/anything") -> dict[str, Any]:
    headers = [(b"authorization", b"Bearer secret-token-0123456789")]
    return {"type": "http", "method": "GET", "path": path, "query_string": b"q=1", "headers": headers}


async def call(app: ErrorGuard, scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app(scope, receive, send)  # type: ignore[arg-type]
    return sent


async def fails_at_once(scope: Scope, receive: Receive, send: Send) -> None:
    raise Broken("a bug")


async def fails_mid_answer(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
    raise Broken("a bug in a stream")


def unexpected_count(registry: CollectorRegistry, api: str) -> float:
    return registry.get_sample_value("opsresponder_http_unexpected_errors_total", {"api": api}) or 0.0


async def test_an_escaped_error_is_answered_500_with_the_request_id_of_its_log_line() -> None:
    registry = CollectorRegistry()
    guard = ErrorGuard(fails_at_once, registry, "autonomous")
    with structlog.testing.capture_logs() as logs:
        sent = await call(guard, http_scope())
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 500
    body = msgspec.json.decode(sent[1]["body"])
    assert body["status_code"] == 500 and body["request_id"]
    assert [line["request_id"] for line in logs if line["log_level"] == "error"] == [body["request_id"]]
    line = logs[0]
    assert (line["api"], line["method"], line["path"]) == ("autonomous", "GET", "/api/v1/anything")
    assert isinstance(line["exc_info"], Broken)
    assert "secret-token" not in repr(logs)
    assert unexpected_count(registry, "autonomous") == 1


async def test_an_error_after_the_answer_started_ends_the_body_and_is_reported_once() -> None:
    registry = CollectorRegistry()
    guard = ErrorGuard(fails_mid_answer, registry, "events")
    with structlog.testing.capture_logs() as logs:
        sent = await call(guard, http_scope("/api/v1/events/stream"))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body", "http.response.body"]
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert len([line for line in logs if line["log_level"] == "error"]) == 1
    assert unexpected_count(registry, "events") == 1


async def test_answers_without_errors_pass_untouched() -> None:
    async def fine(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    registry = CollectorRegistry()
    sent = await call(ErrorGuard(fine, registry, "events"), http_scope())
    assert [m.get("status") for m in sent] == [204, None]
    assert unexpected_count(registry, "events") == 0
