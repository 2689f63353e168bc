"""Both APIs fuzzed from their own OpenAPI schemas with schemathesis, over real sockets.

The whole service runs (against the test PostgreSQL) in a thread of its own, because schemathesis' pytest
integration is synchronous. Each API's schema is loaded from ``GET /schema/openapi.json`` and every
operation in it is tested, so an endpoint added later is fuzzed by this same test from its first day. The
live stream is tested too: schemathesis reads a text/event-stream answer until its request timeout, which
is short for that one operation.

schemathesis' default checks all run: no 5xx, only documented status codes, content types and headers,
every answer valid against its schema, schema-valid requests accepted and schema-violating ones refused,
401 without a token or with a wrong one, 405 with a true ``Allow`` for undocumented methods. A body over
api.max_body_bytes may be refused with 413 whatever it holds. Where a rule of an endpoint is beyond what a
schema can state, the check's expected statuses say so, for that operation only:

- ``POST /api/v1/events/webhook`` refuses each invalid event of an array on its own and stores the others
  (207), as the spec asks; 207 therefore also answers an array that breaks the schema.
- ``GET /api/v1/events``: ``start_time`` after ``end_time`` is 400, as is a ``where`` the condition language
  refuses (any text of the right length in the schema).
- ``POST /api/v1/events/webhook/{source_type}``: native payloads are documented as objects (or arrays);
  each adapter refuses (400, naming the field) a payload its monitoring system would never send.
- ``POST`` and ``PUT /api/v1/subscriptions``: a well-formed ``url`` outside the allowlist is 422.
- ``POST`` and ``PUT /api/v1/silences``: a regex RE2 refuses, an unknown time zone, ``ends_at`` not after
  ``starts_at`` or a window whose start equals its end is 422.
- ``POST`` and ``PUT /api/v1/rules/triggers`` and ``POST .../test``: ``conditions`` are any JSON object in
  the schema; the condition language (docs/conditions.md) refuses most with 422, as it does a
  ``threshold`` above 1 without a window, or a test body with both or neither of ``rule``/``rule_id``.
- ``POST`` and ``PUT /api/v1/rules/responses``: a template whose actions name unknown scripts, actions or
  variables, whose dependencies form a cycle, or whose criteria the expression language refuses, is 422.
  Bodies are sent as JSON and as YAML (both documented).

Fixed seed and derandomized Hypothesis, 100 examples per operation: the same cases on every run, about a
minute for both APIs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx
import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.schemas import OpenApiSchema

from opsresponder.api.openapi import SECURITY_SCHEME
from opsresponder.api.stream import STREAM_PATH
from opsresponder.app import running
from opsresponder.config import Settings
from tests.conftest import empty_tables, strict_loop
from tests.integration.api.conftest import TOKENS, api_settings

AUTH: Final = {"Authorization": f"Bearer {TOKENS['admin']}"}
# Hypothesis's default; with the coverage phase's boundary cases the run takes about 55 s on 2 cores.
MAX_EXAMPLES: Final = 100
_DEFAULT_POSITIVE = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
_DEFAULT_NEGATIVE = ["400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429", "5xx"]

CONFIG: Final = {
    "seed": 14,
    "request-timeout": 10,
    # The admin token for the schema's bearer scheme; schemathesis also probes without it and with a bad one.
    "auth": {"openapi": {SECURITY_SCHEME: {"bearer": TOKENS["admin"]}}},
    # A body over api.max_body_bytes is refused with 413 whatever it holds.
    "checks": {"negative_data_rejection": {"expected-statuses": [*_DEFAULT_NEGATIVE, "413"]}},
    "operations": [
        # An endless event stream: read what arrives within this many seconds, then judge it.
        {"include-path": STREAM_PATH, "request-timeout": 0.3},
        {
            "include-path": "/api/v1/events/webhook",
            "include-method": "POST",
            "checks": {"negative_data_rejection": {"expected-statuses": [*_DEFAULT_NEGATIVE, "413", "207"]}},
        },
        {
            "include-path": "/api/v1/events",
            "include-method": "GET",
            "checks": {"positive_data_acceptance": {"expected-statuses": [*_DEFAULT_POSITIVE, "400"]}},
        },
        {
            "include-path": "/api/v1/events/webhook/{source_type}",
            "checks": {"positive_data_acceptance": {"expected-statuses": [*_DEFAULT_POSITIVE, "400"]}},
        },
        {
            "include-path-regex": "^/api/v1/subscriptions(/\\{subscription_id\\})?$",
            "include-method-regex": "^(POST|PUT)$",
            "checks": {"positive_data_acceptance": {"expected-statuses": [*_DEFAULT_POSITIVE, "422"]}},
        },
        {
            "include-path-regex": "^/api/v1/rules/triggers(/\\{rule_id\\}|/test)?$",
            "include-method-regex": "^(POST|PUT)$",
            "checks": {"positive_data_acceptance": {"expected-statuses": [*_DEFAULT_POSITIVE, "422"]}},
        },
        {
            "include-path-regex": "^/api/v1/silences(/\\{silence_id\\})?$",
            "include-method-regex": "^(POST|PUT)$",
            "checks": {"positive_data_acceptance": {"expected-statuses": [*_DEFAULT_POSITIVE, "422"]}},
        },
        {
            "include-path-regex": "^/api/v1/rules/responses(/\\{template_id\\})?$",
            "include-method-regex": "^(POST|PUT)$",
            "checks": {"positive_data_acceptance": {"expected-statuses": [*_DEFAULT_POSITIVE, "422"]}},
        },
    ],
}


class _ServiceThread:
    """The service on its own event loop in a thread, for synchronous tests."""

    def __init__(self, settings: Settings, database_url: str) -> None:
        self._settings = settings
        self._database_url = database_url
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.listeners: dict[str, str] = {}
        self._thread = threading.Thread(target=self._run, name="fuzzed-service", daemon=True)

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(60), "the service did not start within 60 s"
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        assert not self._thread.is_alive(), "the service did not stop within 60 s"
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        with asyncio.Runner(loop_factory=strict_loop) as runner:
            try:
                runner.run(self._serve())
            except BaseException as e:  # noqa: BLE001 - raised again in the test's thread by start/stop
                self._error = e
                self._ready.set()

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        conn = await asyncpg.connect(self._database_url)
        try:
            await empty_tables(conn)
        finally:
            await conn.close()
        async with running(self._settings) as service:
            self.listeners = dict(service.listeners)
            self._ready.set()
            await self._stop.wait()


@pytest.fixture(scope="module")
def fuzzed_service(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The running service's listeners (``events_api``, ``autonomous_api``: ``host:port``)."""
    data_dir: Path = tmp_path_factory.mktemp("fuzzed")
    settings = api_settings(database_url, data_dir)
    # The subscriptions' example URL (http://localhost:9000/...) is allowed, by name: no DNS lookup is made.
    allow = msgspec.structs.replace(settings.outbound, allowed_hosts=["localhost"])
    thread = _ServiceThread(msgspec.structs.replace(settings, outbound=allow), database_url)
    thread.start()
    try:
        yield thread.listeners
    finally:
        thread.stop()


def _load(listener: str) -> OpenApiSchema:
    config = SchemathesisConfig.from_dict(CONFIG)
    return schemathesis.openapi.from_url(
        f"http://{listener}/schema/openapi.json", config=config, headers=AUTH
    )


@pytest.fixture
def events_api(fuzzed_service: dict[str, str]) -> OpenApiSchema:
    return _load(fuzzed_service["events_api"])


@pytest.fixture
def autonomous_api(fuzzed_service: dict[str, str]) -> OpenApiSchema:
    return _load(fuzzed_service["autonomous_api"])


_FUZZ_SETTINGS: Final = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)

events_schema = schemathesis.pytest.from_fixture("events_api")
autonomous_schema = schemathesis.pytest.from_fixture("autonomous_api")


# Every operation of the API in one test: with the rules and response template endpoints it takes over
# 2 minutes on a busy 2-core machine (161 s measured at load average 8), past the suite's per-test default.
@pytest.mark.timeout(600)
@events_schema.parametrize()
@_FUZZ_SETTINGS
def test_the_events_api_keeps_its_schema(case: Case[Any]) -> None:
    case.call_and_validate()


@autonomous_schema.parametrize()
@_FUZZ_SETTINGS
def test_the_autonomous_api_keeps_its_schema(case: Case[Any]) -> None:
    case.call_and_validate()


def _operations(listener: str) -> dict[str, dict[str, Any]]:
    document = httpx.get(f"http://{listener}/schema/openapi.json", headers=AUTH, timeout=10).json()
    assert document["components"]["securitySchemes"][SECURITY_SCHEME]["scheme"] == "bearer"
    return {
        f"{method.upper()} {path}": operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


def test_every_operation_documents_its_body_and_answers(fuzzed_service: dict[str, str]) -> None:
    events = _operations(fuzzed_service["events_api"])
    for label, operation in [*events.items(), *_operations(fuzzed_service["autonomous_api"]).items()]:
        answers = operation["responses"]
        success = [code for code in answers if code.startswith("2")]
        assert success, label
        for code in success:
            assert code == "204" or answers[code].get("content"), (label, code)
        assert "500" in answers, label
        if label not in ("GET /health", "GET /ready"):
            assert operation["security"] == [{SECURITY_SCHEME: []}], label
            assert {"401", "403"} <= set(answers), label
        if operation.get("parameters"):
            assert "400" in answers, label
        # Actions on a resource (redeliver, cancel, rollback) take no body.
        if label.startswith(("POST", "PUT")) and not label.endswith(("/redeliver", "/cancel", "/rollback")):
            assert operation["requestBody"]["content"]["application/json"]["schema"], label
            assert "413" in answers, label

    webhook = events["POST /api/v1/events/webhook"]["responses"]
    assert webhook["400"]["content"]["application/json"]["schema"]["anyOf"][0] == {
        "$ref": "#/components/schemas/WebhookRejection"
    }
    assert set(webhook) >= {"200", "207", "400", "413", "503"}
    assert "text/event-stream" in events["GET /api/v1/events/stream"]["responses"]["200"]["content"]
    not_found = events["GET /api/v1/events/{event_id}"]["responses"]["404"]
    assert not_found["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert {"409", "422"} <= set(events["POST /api/v1/subscriptions"]["responses"])
    silences = events["POST /api/v1/silences"]
    assert {"201", "400", "422", "503"} <= set(silences["responses"])
    assert silences["requestBody"]["content"]["application/json"]["example"]["matchers"]
    assert {"200", "404"} <= set(events["PUT /api/v1/silences/{silence_id}"]["responses"])
    triggers = events["POST /api/v1/rules/triggers"]
    assert {"201", "400", "422", "503"} <= set(triggers["responses"])
    assert triggers["requestBody"]["content"]["application/json"]["example"]["conditions"]
    assert {"200", "404", "422"} <= set(events["POST /api/v1/rules/triggers/test"]["responses"])

    autonomous = _operations(fuzzed_service["autonomous_api"])
    assert {"200", "400", "404", "422", "503"} <= set(
        autonomous["POST /api/v1/autonomous/analyze"]["responses"]
    )
    execute = autonomous["POST /api/v1/autonomous/execute"]
    assert {"200", "202", "400", "404", "422", "503"} <= set(execute["responses"])
    assert execute["requestBody"]["content"]["application/json"]["example"]["decision_id"]
    for control in ("cancel", "rollback"):
        answers = autonomous[f"POST /api/v1/autonomous/executions/{{execution_id}}/{control}"]["responses"]
        assert {"200", "404", "409"} <= set(answers), control
    assert "400" in autonomous["GET /api/v1/autonomous/executions"]["responses"]
