"""The inventory file kept loaded: reloaded when it changes and on request; a bad file keeps the previous."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from opsresponder.pipeline.enrich import EnrichMetrics, InventoryFile
from tests.unit.pipeline.enrich.files import rewrite
from tests.waiting import eventually

FIRST = "assets: {db-1: {criticality: critical}}\n"
SECOND = "assets: {db-1: {criticality: low}, db-2: {criticality: high}}\n"


def criticality(source: InventoryFile, host: str) -> str | None:
    entry = source.current.resolve(host, None).entry
    if entry is None:
        return None
    value = entry.metadata_at(datetime(2025, 1, 1, tzinfo=UTC))["criticality"]
    assert isinstance(value, str)
    return value


def reloads(registry: CollectorRegistry, outcome: str) -> float:
    return (
        registry.get_sample_value("opsresponder_asset_inventory_reloads_total", {"outcome": outcome}) or 0.0
    )


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def watched(tmp_path: Path, registry: CollectorRegistry) -> AsyncIterator[InventoryFile]:
    path = tmp_path / "assets.yaml"
    path.write_text(FIRST)
    source = InventoryFile(path, 0.02, EnrichMetrics(registry))
    await source.start()
    yield source
    await source.stop()


async def test_the_file_is_loaded_at_start(watched: InventoryFile, registry: CollectorRegistry) -> None:
    assert criticality(watched, "db-1") == "critical"
    assert reloads(registry, "loaded") == 1
    assert registry.get_sample_value("opsresponder_asset_inventory_entries") == 1


async def test_a_changed_file_is_reloaded_by_the_poll(
    watched: InventoryFile, registry: CollectorRegistry
) -> None:
    assert watched.path is not None
    rewrite(watched.path, SECOND)
    await eventually(lambda: criticality(watched, "db-2") == "high", what="the new inventory")
    assert criticality(watched, "db-1") == "low"
    assert reloads(registry, "loaded") == 2


async def test_a_file_replaced_by_rename_with_the_same_size_and_mtime_is_reloaded(
    watched: InventoryFile, tmp_path: Path
) -> None:
    assert watched.path is not None
    stat = watched.path.stat()
    other = tmp_path / "assets.yaml.new"
    other.write_text("assets: {db-1: {criticality: high}}    \n")
    assert other.stat().st_size == stat.st_size
    os.utime(other, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    other.replace(watched.path)  # a new inode: what editors and config management tools do
    await eventually(lambda: criticality(watched, "db-1") == "high", what="the renamed file")


async def test_a_bad_file_keeps_the_previous_inventory_logs_why_and_counts(
    watched: InventoryFile, registry: CollectorRegistry
) -> None:
    assert watched.path is not None
    with capture_logs() as logs:
        rewrite(watched.path, "assets: {db-1: {criticality: urgent}}\n")
        await eventually(lambda: reloads(registry, "failed") == 1, what="the failed reload")
    assert criticality(watched, "db-1") == "critical"
    failed = [r for r in logs if r["log_level"] == "error"]
    assert len(failed) == 1, logs
    assert failed[0]["event"].startswith("The asset inventory file could not be loaded")
    assert "assets['db-1']: criticality: Invalid enum value 'urgent'" in failed[0]["error"]
    assert failed[0]["entries_in_use"] == 1
    # YAML that does not parse is the same: still the first inventory, one more failure, said once.
    rewrite(watched.path, "assets: {db-1: [\n")
    await eventually(lambda: reloads(registry, "failed") == 2, what="the second failed reload")
    assert criticality(watched, "db-1") == "critical"
    # A fixed file is taken again.
    rewrite(watched.path, SECOND)
    await eventually(lambda: criticality(watched, "db-2") == "high", what="the fixed file")
    assert reloads(registry, "failed") == 2


async def test_a_deleted_file_keeps_the_previous_inventory(
    watched: InventoryFile, registry: CollectorRegistry
) -> None:
    assert watched.path is not None
    watched.path.unlink()
    await eventually(lambda: reloads(registry, "failed") == 1, what="the failed reload")
    assert criticality(watched, "db-1") == "critical"


async def test_reload_rereads_at_once_without_the_poll(tmp_path: Path, registry: CollectorRegistry) -> None:
    path = tmp_path / "assets.yaml"
    path.write_text(FIRST)
    source = InventoryFile(path, 3600, EnrichMetrics(registry))  # the poll would take an hour
    await source.start()
    try:
        rewrite(path, SECOND)
        source.reload()
        source.reload()  # a second request while the first runs is not lost, nor run in parallel
        await eventually(lambda: criticality(source, "db-2") == "high", what="the reload")
        await eventually(lambda: reloads(registry, "loaded") >= 2, what="the count")
    finally:
        await source.stop()


async def test_a_missing_file_is_an_empty_inventory_until_it_appears(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    path = tmp_path / "assets.yaml"
    source = InventoryFile(path, 0.02, EnrichMetrics(registry))
    with capture_logs() as logs:
        await source.start()
    try:
        assert source.current.size == 0
        assert [r["event"] for r in logs] == ["The asset inventory file does not exist; no asset matches."]
        rewrite(path, FIRST)
        await eventually(lambda: criticality(source, "db-1") == "critical", what="the new file")
        assert reloads(registry, "failed") == 0
    finally:
        await source.stop()


async def test_no_path_is_no_inventory(registry: CollectorRegistry) -> None:
    source = InventoryFile(None, 0.02, EnrichMetrics(registry))
    await source.start()
    assert source.current.size == 0 and source.loaded
    await source.stop()
