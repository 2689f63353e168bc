"""The HTTP runner against a real local HTTP server: templating, retries on 5xx only, the allowlist,
timeouts; and the catalog runner choosing between the HTTP and script runners."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from opsresponder.config import HttpRunnerConfig, ScriptRunnerConfig
from opsresponder.outbound.allowlist import UrlAllowlist
from opsresponder.response.runners.base import ActionRequest
from opsresponder.response.runners.dispatch import CatalogRunner
from opsresponder.response.runners.http import HttpRunner
from opsresponder.response.runners.script import ScriptRunner
from opsresponder.rules.templates import Script
from opsresponder.rules.templates.scripts import HttpCall, ScriptParameter
from tests.integration.outbound.conftest import Receiver
from tests.waiting import eventually

LOCAL = UrlAllowlist(networks=["127.0.0.0/8"])
FAST = HttpRunnerConfig(retries=2, backoff_base_seconds=0.01, backoff_max_seconds=0.05)


@pytest.fixture
async def runner() -> AsyncIterator[HttpRunner]:
    r = HttpRunner(FAST, LOCAL)
    yield r
    await r.aclose()


def call_request(
    call: HttpCall, parameters: dict[str, Any] | None = None, *, timeout: float = 10.0
) -> ActionRequest:
    script = Script(
        id=7,
        name="call_hook",
        risk_level="low",
        action_type="notification",
        http=call,
        parameters=[ScriptParameter(name="host"), ScriptParameter(name="count", type="integer")],
    )
    return ActionRequest(
        execution_id="e-1",
        action_id="a-1",
        script=script,
        parameters=parameters or {},
        timeout_seconds=timeout,
    )


async def test_placeholders_are_filled_and_a_json_answer_is_data(
    runner: HttpRunner, receiver: Receiver
) -> None:
    receiver.answer = b'{"queued": 3, "id": "x", "metrics": {"depth": 1.5}}'
    call = HttpCall(
        method="PUT",
        url=f"http://127.0.0.1:{receiver.port}/hosts/{{{{ host }}}}/x",
        headers={"X-Host": "{{host}}"},
        body={"text": "restart {{ host }} x{{ count }}", "{{ host }}": ["{{ host }}", 5, None], "n": 1},
    )
    result = await runner.run(call_request(call, {"host": "web 01/a?b", "count": 3}))
    assert result.success and result.error is None
    assert result.data == {"queued": 3, "id": "x", "metrics": {"depth": 1.5}}
    assert result.metrics == {"queued": 3.0, "depth": 1.5}
    (request,) = receiver.requests
    assert request.path == "/hosts/web%2001%2Fa%3Fb/x"
    assert request.headers["x-host"] == "web 01/a?b"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {
        "text": "restart web 01/a?b x3",
        "{{ host }}": ["web 01/a?b", 5, None],  # keys are not templated
        "n": 1,
    }


async def test_5xx_is_retried_then_succeeds(runner: HttpRunner, receiver: Receiver) -> None:
    receiver.statuses = [503, 502]
    result = await runner.run(call_request(HttpCall(url=receiver.url)))
    assert result.success and result.output == "ok"
    assert len(receiver.requests) == 3


async def test_retries_end_with_the_last_answer(runner: HttpRunner, receiver: Receiver) -> None:
    receiver.status = 503
    result = await runner.run(call_request(HttpCall(url=receiver.url)))
    assert not result.success and result.error == "HTTP 503 X: receiver says no"
    assert len(receiver.requests) == 3  # the first attempt and FAST.retries more


async def test_4xx_is_not_retried(runner: HttpRunner, receiver: Receiver) -> None:
    receiver.status = 404
    result = await runner.run(call_request(HttpCall(url=receiver.url)))
    assert not result.success and result.error == "HTTP 404 X: receiver says no"
    assert len(receiver.requests) == 1


async def test_expected_status(runner: HttpRunner, receiver: Receiver) -> None:
    receiver.status = 200
    assert not (await runner.run(call_request(HttpCall(url=receiver.url, expected_status=[202])))).success
    receiver.status = 503
    accepted = await runner.run(call_request(HttpCall(url=receiver.url, expected_status=[503])))
    assert accepted.success and len(receiver.requests) == 2  # an expected 503 is not retried


async def test_connection_errors_are_retried(receiver: Receiver) -> None:
    url = receiver.url
    await receiver.down()
    runner = HttpRunner(FAST, LOCAL)
    try:
        result = await runner.run(call_request(HttpCall(url=url)))
    finally:
        await runner.aclose()
    assert not result.success and result.error is not None
    assert result.error.startswith("connection failed") and result.error.endswith("(after 3 attempts)")


async def test_a_url_outside_the_allowlist_is_refused_unsent(receiver: Receiver) -> None:
    runner = HttpRunner(FAST, UrlAllowlist(hosts=["hooks.example.com"], networks=["10.0.0.0/8"]))
    try:
        result = await runner.run(call_request(HttpCall(url=receiver.url)))
        by_parameter = await runner.run(
            call_request(HttpCall(url="http://{{ host }}/x"), {"host": "169.254.169.254"})
        )
    finally:
        await runner.aclose()
    assert not result.success
    assert result.error == "URL not allowed: the address 127.0.0.1 is not in outbound.allowed_networks"
    assert by_parameter.error is not None and "169.254.169.254" in by_parameter.error
    assert receiver.requests == []


async def test_a_slow_endpoint_times_out(runner: HttpRunner, receiver: Receiver) -> None:
    receiver.delay = 5.0
    started = time.monotonic()
    result = await runner.run(call_request(HttpCall(url=receiver.url), timeout=0.3))
    assert time.monotonic() - started < 2
    assert result.timed_out and not result.success and result.error == "timed out after 0.3 s"
    await receiver.down()  # releases the held answer, so its handler ends before the loop does
    await eventually(lambda: receiver.in_flight == 0, what="the held request to end")


async def test_refusals_before_sending(runner: HttpRunner, receiver: Receiver) -> None:
    missing = await runner.run(call_request(HttpCall(url=receiver.url + "/{{ host }}")))
    assert missing.error == "the placeholder {{ host }} has no value (parameter 'host' not given)"
    newline = await runner.run(
        call_request(HttpCall(url=receiver.url, headers={"X-A": "{{ host }}"}), {"host": "a\r\nX-Evil: 1"})
    )
    assert newline.error == "the header X-A would contain a line break"
    wrong_type = await runner.run(call_request(HttpCall(url=receiver.url), {"count": "3"}))
    assert wrong_type.error == "parameter 'count' must be an integer, not string"
    assert receiver.requests == []


async def test_the_catalog_runner_dispatches(runner: HttpRunner, receiver: Receiver, tmp_path: Path) -> None:
    program = tmp_path / "hello.py"
    program.write_text(f'#!{sys.executable}\nprint(\'{{"from": "script"}}\')\n')
    program.chmod(0o755)
    catalog_runner = CatalogRunner(ScriptRunner(ScriptRunnerConfig(working_directory=str(tmp_path))), runner)
    receiver.answer = b'{"from": "http"}'
    by_http = await catalog_runner.run(call_request(HttpCall(url=receiver.url)))
    script = Script(id=8, name="hello", risk_level="low", command=[str(program)])
    by_script = await catalog_runner.run(
        ActionRequest(execution_id="e", action_id="a", script=script, parameters={}, timeout_seconds=10)
    )
    neither = await catalog_runner.run(
        ActionRequest(
            execution_id="e",
            action_id="a",
            script=Script(id=9, name="empty", risk_level="low"),
            parameters={},
            timeout_seconds=10,
        )
    )
    assert by_http.data == {"from": "http"} and by_script.data == {"from": "script"}
    assert not neither.success and neither.error == "script empty has neither command nor http"
