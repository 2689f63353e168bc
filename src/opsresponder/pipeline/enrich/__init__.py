"""The ``enrich`` stage (stage 2): the asset inventory file, the optional asset service, and the stage
that writes ``metadata.asset`` (docs/assets.md)."""

from __future__ import annotations

from opsresponder.pipeline.enrich.inventory import (
    AssetEntry,
    Inventory,
    InventoryError,
    parse_inventory,
)
from opsresponder.pipeline.enrich.metrics import EnrichMetrics
from opsresponder.pipeline.enrich.service import AssetService
from opsresponder.pipeline.enrich.source import InventoryFile, read_inventory
from opsresponder.pipeline.enrich.stage import Enrich, build_enrich

__all__ = [
    "AssetEntry",
    "AssetService",
    "Enrich",
    "EnrichMetrics",
    "Inventory",
    "InventoryError",
    "InventoryFile",
    "build_enrich",
    "parse_inventory",
    "read_inventory",
]
