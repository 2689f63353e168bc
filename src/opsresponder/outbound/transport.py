"""The guarded HTTP transport: every outbound request (subscription deliveries, and the HTTP runner and
notification webhooks to come) connects only to addresses the URL allowlist accepts, checked at connect
time, so a name that resolved to an allowed address when a URL was saved cannot be rebound to another.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from opsresponder.outbound.allowlist import UrlAllowlist, UrlNotAllowedError


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the allowlist accepts, checked at connect time (no DNS rebinding)."""

    def __init__(self, allowlist: UrlAllowlist) -> None:
        self._allowlist = allowlist
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._allowlist.connect_addresses(host, port)
        except UrlNotAllowedError as e:
            raise httpcore.ConnectError(str(e)) from e
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                last = e
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("outbound requests never connect to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport whose every new connection goes through the allowlist.

    No proxies from the environment (``trust_env=False``): a proxy would connect on our behalf to
    addresses we never checked. TLS is verified against the URL's host name as usual: the connection is
    made to a checked address, but the TLS server name stays the name in the URL.
    """

    def __init__(self, allowlist: UrlAllowlist, *, verify: ssl.SSLContext | bool = True) -> None:
        super().__init__(verify=verify, trust_env=False)
        # httpx takes no network backend, so the pool it built is replaced by the same pool with ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_GuardedBackend(allowlist),
        )


def guarded_client(
    allowlist: UrlAllowlist, *, timeout: float, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The HTTP client of every outbound request: connections through `GuardedTransport` (or the given
    `transport`), no redirects (a redirect would lead to a URL the allowlist never saw; a 3xx is then an
    answer like any other), no proxies or credentials from the environment."""
    return httpx.AsyncClient(
        transport=transport or GuardedTransport(allowlist),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )
