"""The optional HTTP asset service, read through a cache that the stage consults without waiting.

The stage calls `AssetService.cached` for each host (a dict lookup) and hands the hosts it did not find
to `AssetService.fetch`, which queues them for background lookups and returns at once. So a slow or dead
service never holds a batch back: an event whose host is not cached yet goes on with what the inventory
file says, and the next events of that host get the service's answer. Answers are kept
``ttl_seconds``; a 404, a failure or a timeout ``negative_ttl_seconds`` (the file answers meanwhile),
so a dead service is asked about each host at most once per negative TTL.

Contract (docs/assets.md): ``GET <url>/<host>`` (or the URL with ``{host}`` replaced), 200 with a JSON
object in the inventory entry's shape (plus an optional ``name``), 404 for a host it does not know.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Final
from urllib.parse import quote

import httpx
import msgspec
import structlog

from opsresponder.config import AssetServiceConfig
from opsresponder.core.json_errors import MALFORMED_JSON_ERRORS
from opsresponder.pipeline.enrich.inventory import AssetEntry, AssetSpec, InventoryError, Resolved
from opsresponder.pipeline.enrich.metrics import EnrichMetrics

log = structlog.get_logger(__name__)

MISSING: Final = Resolved(None, "not cached")
"""`AssetService.cached`'s answer for a host it holds no (fresh) answer about."""

_decode_spec = msgspec.json.Decoder(AssetSpec).decode


class AssetLookupError(Exception):
    """One lookup failed (status, body or connection); the message says how."""


class AssetService:
    """The cache of asset service answers and the background tasks that fill it."""

    def __init__(
        self,
        config: AssetServiceConfig,
        metrics: EnrichMetrics,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if config.url is None:
            raise ValueError("the asset service needs a URL")
        self._url = config.url
        self._config = config
        self._metrics = metrics
        self._transport = transport
        self._monotonic = monotonic
        # host -> (monotonic expiry, the answer: an entry, or None when the host is unknown or failed).
        self._cache: dict[str, tuple[float, Resolved]] = {}
        self._pending: dict[str, None] = {}  # an ordered set: the hosts to ask, oldest first
        self._asking: set[str] = set()
        self._workers: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._failing = False
        self._closed = False
        outcomes = ("found", "not_found", "failed", "timeout", "skipped")
        self._count = {o: metrics.service_lookups.labels(o) for o in outcomes}

    def cached(self, host: str, now: float) -> Resolved | None:
        """The cached answer for `host` at monotonic time `now`: an entry's `Resolved`, None when the
        service said no (or failed) recently, `MISSING` when it must be asked (again)."""
        held = self._cache.get(host)
        if held is None:
            return MISSING
        expires, answer = held
        if now >= expires:
            return MISSING
        return answer if answer.entry is not None else None

    def fetch(self, hosts: Iterable[str]) -> None:
        """Queue lookups of `hosts` (not already queued or in flight) and return at once."""
        if self._closed:
            return
        skipped = 0
        for host in hosts:
            if host in self._pending or host in self._asking:
                continue
            if len(self._pending) >= self._config.max_pending:
                skipped += 1
                continue
            self._pending[host] = None
        if skipped:
            self._count["skipped"].inc(skipped)
        while self._pending and len(self._workers) < self._config.concurrency:
            task = asyncio.create_task(self._work(), name="asset-service-lookup")
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)

    async def stop(self) -> None:
        """Cancel the lookups in flight and close the connections."""
        self._closed = True
        self._pending.clear()
        workers = list(self._workers)
        for task in workers:
            task.cancel()
        if workers:
            await asyncio.wait(workers)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _work(self) -> None:
        while self._pending:
            host = next(iter(self._pending))
            del self._pending[host]
            self._asking.add(host)
            try:
                await self._ask(host)
            except Exception:
                # A bug here must not end the lookups of the other hosts, nor go unseen.
                log.exception("An asset service lookup raised; the host is asked again later.", host=host)
                self._remember(host, None, self._config.negative_ttl_seconds)
                self._count["failed"].inc()
            finally:
                self._asking.discard(host)

    async def _ask(self, host: str) -> None:
        config = self._config
        try:
            async with asyncio.timeout(config.timeout_seconds):
                entry = await self._get(host)
        except TimeoutError:
            self._remember(host, None, config.negative_ttl_seconds)
            self._count["timeout"].inc()
            self._report_failure(host, f"no answer within {config.timeout_seconds} s")
            return
        except AssetLookupError as e:
            self._remember(host, None, config.negative_ttl_seconds)
            self._count["failed"].inc()
            self._report_failure(host, str(e))
            return
        if self._failing:
            self._failing = False
            log.warning("The asset service answers again.", url=self._url)
        if entry is None:
            self._remember(host, None, config.negative_ttl_seconds)
            self._count["not_found"].inc()
        else:
            self._remember(host, entry, config.ttl_seconds)
            self._count["found"].inc()

    async def _get(self, host: str) -> AssetEntry | None:
        """The service's entry for `host`, or None on 404.

        Raises:
            AssetLookupError: any other status, a body too large or not an entry, a connection error.
        """
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport,
                timeout=self._config.timeout_seconds,
                follow_redirects=False,
                trust_env=False,
            )
        url = self._lookup_url(host)
        try:
            async with self._client.stream("GET", url, headers={"Accept": "application/json"}) as response:
                if response.status_code == 404:
                    return None
                if response.status_code != 200:
                    raise AssetLookupError(f"status {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self._config.max_response_bytes:
                        raise AssetLookupError(
                            f"the answer is larger than {self._config.max_response_bytes} bytes"
                        )
        except (httpx.HTTPError, httpx.InvalidURL) as e:
            raise AssetLookupError(f"{type(e).__name__}: {e}") from None
        try:
            spec = _decode_spec(body)
            return AssetEntry(spec.name or host, spec)
        except (*MALFORMED_JSON_ERRORS, InventoryError) as e:
            raise AssetLookupError(f"the answer is not an asset entry: {e}") from None

    def _lookup_url(self, host: str) -> str:
        quoted = quote(host, safe="")
        if "{host}" in self._url:
            return self._url.replace("{host}", quoted)
        return f"{self._url.rstrip('/')}/{quoted}"

    def _remember(self, host: str, entry: AssetEntry | None, ttl: float) -> None:
        if entry is not None:
            answer = Resolved(entry, f"asset {entry.name!r} for host {host!r} from the asset service")
        else:
            answer = Resolved(None, "")
        self._cache.pop(host, None)  # re-inserted last: the oldest answers are forgotten first
        if len(self._cache) >= self._config.max_entries:
            del self._cache[next(iter(self._cache))]
        self._cache[host] = (self._monotonic() + ttl, answer)

    def _report_failure(self, host: str, why: str) -> None:
        # Once per outage, not per host: a dead service would otherwise log a line per host it is asked about.
        if not self._failing:
            self._failing = True
            log.warning(
                "The asset service lookup failed; events go on with the inventory file.",
                url=self._url,
                host=host,
                error=why,
            )
