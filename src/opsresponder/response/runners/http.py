"""The HTTP runner: a catalog script with ``http`` is one call to an endpoint.

The call is the catalog's, not the caller's: only ``{{ name }}`` placeholders are filled, with the
checked parameter values (URL-quoted in the URL, as is in header values and the body's string leaves);
there are no expressions and no other templating. The URL passes ``outbound``'s allowlist before anything
is sent, and the request goes through `GuardedTransport`, which checks every address again at connect
time (no DNS rebinding), never follows a redirect and ignores proxies from the environment.

A 5xx answer or a connection error is retried with exponential backoff and full jitter
(`outbound.delivery.backoff_delay`), up to ``retries`` more times, all within the action's timeout;
a 4xx answer is final.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

import httpx
import msgspec
import structlog

from opsresponder import __version__
from opsresponder.config import HttpRunnerConfig
from opsresponder.outbound.allowlist import UrlAllowlist, UrlNotAllowedError
from opsresponder.outbound.delivery import backoff_delay, caused_by
from opsresponder.outbound.transport import guarded_client
from opsresponder.response.runners.base import ActionRequest, RunResult
from opsresponder.response.runners.parameters import ParameterError, check_parameters
from opsresponder.response.runners.results import structured
from opsresponder.rules.templates.scripts import HttpCall

log = structlog.get_logger(__name__)

USER_AGENT: Final = f"OpsResponder/{__version__}"
DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 1024
_PLACEHOLDER: Final = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")
_encoder = msgspec.json.Encoder()


class _Refused(Exception):
    """The call cannot be made as configured (a placeholder without a value, a header with a newline)."""


class HttpRunner:
    """Runs catalog scripts that have an ``http`` call (`Runner`).

    Keeps one HTTP client (its connection pool) for all runs; `aclose` closes it.
    """

    def __init__(
        self,
        config: HttpRunnerConfig,
        allowlist: UrlAllowlist,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._config = config
        self._allowlist = allowlist
        self._max_bytes = max_response_bytes
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def run(self, request: ActionRequest) -> RunResult:
        """Make the call (with its retries) within ``request.timeout_seconds``."""
        started = time.monotonic()
        call = request.script.http
        if call is None:
            return _failed(started, f"script {request.script.name} has no http call")
        try:
            values = check_parameters(request.script, request.parameters)
            url, headers, body = _render(call, values)
        except ParameterError as e:
            return _failed(started, str(e))
        except _Refused as e:
            return _failed(started, str(e))
        try:
            # Checked before anything is sent; the transport checks the addresses again when connecting.
            await self._allowlist.check_url(url)
        except UrlNotAllowedError as e:
            return _failed(started, f"URL not allowed: {e}")
        try:
            async with asyncio.timeout(request.timeout_seconds):
                return await self._attempts(request, call, url, headers, body, started)
        except TimeoutError:
            return RunResult(
                success=False,
                error=f"timed out after {request.timeout_seconds:g} s",
                timed_out=True,
                duration_seconds=time.monotonic() - started,
            )

    async def _attempts(
        self,
        request: ActionRequest,
        call: HttpCall,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        started: float,
    ) -> RunResult:
        client = self._ensure_client()
        timeout = httpx.Timeout(request.timeout_seconds)
        failures = 0
        while True:
            result: RunResult | None = None
            try:
                result, status = await self._send(client, call, url, headers, body, timeout, started)
            except httpx.TimeoutException:
                raise TimeoutError from None  # the request's timeout is the action's: nothing left to retry
            except httpx.ConnectError as e:
                if caused_by(e, UrlNotAllowedError):
                    return _failed(started, f"URL not allowed: {e}")
                error = f"connection failed: {e or type(e).__name__}"
            except httpx.TransportError as e:
                error = f"{type(e).__name__}: {e}"
            else:
                if result.success or status < 500:
                    return result
                error = result.error or f"HTTP {status}"
            failures += 1
            if failures > self._config.retries:
                if result is not None:
                    return result
                return _failed(started, f"{error} (after {failures} attempts)")
            delay = backoff_delay(
                failures, self._config.backoff_base_seconds, self._config.backoff_max_seconds, self._rng
            )
            log.info(
                "HTTP action failed; retrying.",
                execution_id=request.execution_id,
                action_id=request.action_id,
                attempt=failures,
                delay_seconds=round(delay, 3),
                error=error,
            )
            await asyncio.sleep(delay)

    async def _send(
        self,
        client: httpx.AsyncClient,
        call: HttpCall,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout: httpx.Timeout,
        started: float,
    ) -> tuple[RunResult, int]:
        received = bytearray()
        truncated = False
        request = client.build_request(call.method, url, headers=headers, content=body, timeout=timeout)
        response = await client.send(request, stream=True)
        try:
            # Read to the end, keeping the bound: the connection stays reusable, the memory bounded.
            async for chunk in response.aiter_bytes():
                room = self._max_bytes - len(received)
                if room > 0:
                    received += chunk[:room]
                truncated = truncated or len(chunk) > room
        finally:
            await response.aclose()
        status = response.status_code
        accepted = status in call.expected_status if call.expected_status else 200 <= status < 300
        data, metrics = structured(bytes(received)) if not truncated else (None, {})
        output = received.decode("utf-8", errors="replace")
        error = None
        if not accepted:
            error = f"HTTP {status} {response.reason_phrase}".strip()
            snippet = output[:200].strip()
            if snippet:
                error += f": {snippet}"
        result = RunResult(
            success=accepted,
            output=output,
            error=error,
            data=data,
            metrics=metrics,
            truncated=truncated,
            duration_seconds=time.monotonic() - started,
        )
        return result, status

    def _ensure_client(self) -> httpx.AsyncClient:
        if self._client is None:
            # Each request passes the action's own timeout; this one is only the client's default.
            self._client = guarded_client(self._allowlist, timeout=30.0, transport=self._transport)
        return self._client


def _render(call: HttpCall, values: Mapping[str, str]) -> tuple[str, dict[str, str], bytes | None]:
    """The URL, headers and body with their placeholders filled.

    Raises:
        _Refused: a placeholder names no given parameter, or a header value holds a line break.
    """
    url = _fill(call.url, values, quote_value=True)
    headers = {"User-Agent": USER_AGENT}
    for name, template in call.headers.items():
        value = _fill(template, values, quote_value=False)
        if "\r" in value or "\n" in value:
            raise _Refused(f"the header {name} would contain a line break")
        headers[name] = value
    if call.body is None:
        return url, headers, None
    headers.setdefault("Content-Type", "application/json")
    return url, headers, _encoder.encode(_fill_leaves(call.body, values))


def _fill(template: str, values: Mapping[str, str], *, quote_value: bool) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise _Refused(f"the placeholder {{{{ {name} }}}} has no value (parameter {name!r} not given)")
        return quote(values[name], safe="") if quote_value else values[name]

    return _PLACEHOLDER.sub(replace, template)


def _fill_leaves(node: Any, values: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return _fill(node, values, quote_value=False)
    if isinstance(node, list):
        return [_fill_leaves(item, values) for item in node]
    if isinstance(node, dict):
        return {key: _fill_leaves(item, values) for key, item in node.items()}
    return node


def _failed(started: float, error: str) -> RunResult:
    return RunResult(success=False, error=error, duration_seconds=time.monotonic() - started)
