"""Metrics of the enrich stage: inventory reloads, matches, and asset service lookups."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from opsresponder.counters import FastCounter


class EnrichMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.reloads = FastCounter(
            "opsresponder_asset_inventory_reloads_total",
            "Loads of the asset inventory file by outcome: loaded, or failed (the previous one stayed).",
            ["outcome"],
            registry=registry,
        )
        self.entries = Gauge(
            "opsresponder_asset_inventory_entries",
            "Entries in the asset inventory in use.",
            registry=registry,
        )
        self.matches = FastCounter(
            "opsresponder_asset_matches_total",
            "Events the enrich stage saw, by where their asset came from: inventory, service or none.",
            ["source"],
            registry=registry,
        )
        self.service_lookups = FastCounter(
            "opsresponder_asset_service_lookups_total",
            "Asset service lookups by outcome: cache_hit, cache_miss (the event went on without waiting), "
            "found, not_found, failed, timeout, skipped (the queue of hosts to ask was full).",
            ["outcome"],
            registry=registry,
        )
