"""One JSON POST to an allowlisted URL, for the Slack and webhook channels.

The URL is checked against ``outbound``'s allowlist before anything is sent (a refused URL makes no
request at all) and again by `GuardedTransport` when the connection is made (no DNS rebinding in
between). The URL's path is treated as a secret (a Slack incoming-webhook URL is its own credential):
errors name only the scheme and host.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

import httpx

from opsresponder.outbound.allowlist import UrlAllowlist, UrlNotAllowedError
from opsresponder.response.notify.channel import NOT_ALLOWED, TIMEOUT, ChannelError, redact

# Only the start of an error answer is quoted: enough to diagnose, bounded in size.
_ERROR_BODY_CHARS: Final = 200


def display_url(url: str) -> str:
    """`url` without its path, query and credentials: safe to log (``https://hooks.slack.com/…``)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}/…"


class JsonEndpoint:
    """One allowlisted URL that JSON is POSTed to, over the shared client (closed by its owner)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        allowlist: UrlAllowlist,
        client: httpx.AsyncClient,
        secrets: tuple[str | None, ...] = (),
    ) -> None:
        self._url = url
        self._timeout = timeout
        self._allowlist = allowlist
        self._client = client
        self._shown = display_url(url)
        path = urlsplit(url).path
        # The path is the token of a Slack URL; "/" alone is no secret (and redacting it would mangle
        # every message).
        self._hidden = (url, path if len(path) > 1 else None, *secrets)

    async def post(self, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        """POST `body` (JSON); return on a 2xx answer.

        Raises:
            ChannelError: the URL is not allowed (``not_allowed``, nothing sent), the request timed out
                (``timeout``), the connection failed or the answer was not 2xx; the message names the URL
                only by `display_url` and never contains the URL's path or the secrets.
        """
        shown, timeout = self._shown, self._timeout
        try:
            # The whole exchange, lookup included, within `timeout`: httpx's own timeouts bound each read
            # and write, not a server that trickles its answer.
            async with asyncio.timeout(timeout):
                await self._allowlist.check_url(self._url)
                response = await self._client.post(
                    self._url,
                    content=body,
                    headers={"Content-Type": "application/json", **(headers or {})},
                    timeout=timeout,
                )
        except UrlNotAllowedError as e:
            raise ChannelError(self._safe(f"{shown}: URL not allowed: {e}"), NOT_ALLOWED) from e
        except (TimeoutError, httpx.TimeoutException) as e:
            raise ChannelError(f"{shown}: timed out after {timeout:g} s", TIMEOUT) from e
        except httpx.HTTPError as e:
            raise ChannelError(self._safe(f"{shown}: {type(e).__name__}: {e}")) from e
        if not 200 <= response.status_code < 300:
            snippet = " ".join(response.text[:_ERROR_BODY_CHARS].split())
            answer = f"HTTP {response.status_code} {response.reason_phrase}".strip()
            raise ChannelError(self._safe(f"{shown}: {answer}" + (f": {snippet}" if snippet else "")))

    def _safe(self, text: str) -> str:
        return redact(text, self._hidden)
