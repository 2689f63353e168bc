"""The ``enrich`` stage: each event's host (or address) looked up in the asset inventory, the entry
written to ``metadata.asset``, and a trace line naming what matched.

CPU only on the batch's path: the inventory is matched in memory (each distinct host once per inventory,
then a dict lookup), and the asset service is read from its cache; hosts the cache lacks are queued for
a background lookup and their events go on with the inventory file's answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import httpx
from prometheus_client import CollectorRegistry

from opsresponder.config import EnrichmentConfig
from opsresponder.core.batch import Batch, TraceEntry
from opsresponder.pipeline.enrich.inventory import Resolved
from opsresponder.pipeline.enrich.metrics import EnrichMetrics
from opsresponder.pipeline.enrich.service import MISSING, AssetService
from opsresponder.pipeline.enrich.source import InventoryFile


class Enrich:
    """Sets ``metadata.asset`` (docs/assets.md) on every event whose host or address has an entry.

    An entry from the asset service, when cached, wins over the file's; an event with no match is left
    as it came (a sender's own ``metadata.asset`` included) and traced as "no asset matched".
    """

    name: Final = "enrich"

    def __init__(
        self,
        inventory: InventoryFile,
        service: AssetService | None,
        address_field: str,
        metrics: EnrichMetrics,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inventory = inventory
        self.service = service
        self._address_field = address_field
        self._monotonic = monotonic
        self._matched = {s: metrics.matches.labels(s) for s in ("inventory", "service", "none")}
        self._cache_hits = metrics.service_lookups.labels("cache_hit")
        self._cache_misses = metrics.service_lookups.labels("cache_miss")

    async def start(self) -> None:
        """Load the inventory and start watching its file (the app calls it before serving)."""
        await self.inventory.start()

    async def stop(self) -> None:
        """Stop watching the file and cancel the asset service's lookups (after the worker stopped)."""
        await self.inventory.stop()
        if self.service is not None:
            await self.service.stop()

    def reload(self) -> None:
        """Reread the inventory file now (SIGHUP); the asset service cache is kept (it has its TTLs)."""
        self.inventory.reload()

    async def run(self, batch: Batch) -> None:
        if not self.inventory.loaded:
            # Built without `start` (a worker without the app around it): load once, on this batch.
            await self.inventory.load()
        inventory = self.inventory.current
        service = self.service
        now = self._monotonic()
        address_field = self._address_field
        trace = batch.trace
        missing: list[str] = []
        from_service = from_inventory = asked = 0
        for event in batch.events:
            host = event.host
            found: Resolved | None = None
            if service is not None and host is not None:
                asked += 1
                found = service.cached(host, now)
                if found is MISSING:
                    missing.append(host)
                    found = None
                elif found is not None:
                    from_service += 1
            if found is None:
                address = event.metadata.get(address_field) if event.metadata else None
                found = inventory.resolve(host, address if isinstance(address, str) else None)
                if found.entry is not None:
                    from_inventory += 1
            entry = found.entry
            if entry is not None:
                event.metadata["asset"] = entry.metadata_at(event.occurred_at)
            trace.append(TraceEntry(event, "enrich", found.detail))
        self._matched["inventory"].inc(from_inventory)
        self._matched["service"].inc(from_service)
        self._matched["none"].inc(len(batch.events) - from_inventory - from_service)
        if service is not None:
            self._cache_misses.inc(len(missing))
            self._cache_hits.inc(asked - len(missing))
            if missing:
                service.fetch(missing)


def build_enrich(
    config: EnrichmentConfig, registry: CollectorRegistry, transport: httpx.AsyncBaseTransport | None = None
) -> Enrich:
    """The stage from its config section; does no I/O (the file is read by `Enrich.start` or the first
    batch)."""
    metrics = EnrichMetrics(registry)
    path = Path(config.assets_file) if config.assets_file else None
    inventory = InventoryFile(path, config.reload_interval_seconds, metrics, config.cache_size)
    service = None
    if config.asset_service.url is not None:
        service = AssetService(config.asset_service, metrics, transport=transport)
    return Enrich(inventory, service, config.address_field, metrics)
