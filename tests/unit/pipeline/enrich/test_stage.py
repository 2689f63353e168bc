"""The enrich stage over batches: metadata.asset, its trace, and the asset service over a real socket
(found, unknown, slow, failing, refused by the allowlist) never holding a batch back."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from opsresponder.config import AssetServiceConfig, EnrichmentConfig
from opsresponder.core.batch import Batch
from opsresponder.core.event import Event
from opsresponder.outbound.allowlist import UrlAllowlist
from opsresponder.outbound.transport import GuardedTransport
from opsresponder.pipeline.enrich import Enrich, build_enrich
from tests.factories import make_event
from tests.unit.pipeline.enrich.asset_server import Answer, AssetServer
from tests.unit.pipeline.enrich.files import rewrite
from tests.waiting import eventually

INVENTORY = """
assets:
  db-1:
    criticality: critical
    team: dba
    business_hours: {days: [mon], start: "09:00", end: "17:00", timezone: Europe/Paris}
  "web-*": {criticality: high, group: web}
  "10.0.0.0/8": {criticality: low}
"""
MONDAY_10_PARIS = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
MONDAY_20_PARIS = datetime(2025, 1, 6, 19, 0, tzinfo=UTC)
CMDB_ENTRY: dict[str, Any] = {
    "name": "web-7 (cmdb)",
    "criticality": "critical",
    "owner": "carol",
    "tags": ["cmdb"],
}


class Ticks:
    """An injected monotonic clock for the service cache's TTLs."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def inventory_file(tmp_path: Path) -> Path:
    path = tmp_path / "assets.yaml"
    path.write_text(INVENTORY)
    return path


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def server() -> AsyncIterator[AssetServer]:
    srv = AssetServer()
    await srv.start()
    yield srv
    await srv.stop()


def stage_for(
    path: Path, registry: CollectorRegistry, transport: httpx.AsyncBaseTransport | None = None, **service: Any
) -> Enrich:
    config = EnrichmentConfig(
        assets_file=str(path),
        asset_service=AssetServiceConfig(**service) if service else AssetServiceConfig(),
    )
    return build_enrich(config, registry, transport)


@pytest.fixture
async def stage(inventory_file: Path, registry: CollectorRegistry) -> AsyncIterator[Enrich]:
    enrich = stage_for(inventory_file, registry)
    await enrich.start()
    yield enrich
    await enrich.stop()


async def run(stage: Enrich, *events: Event) -> Batch:
    batch = Batch(list(events))
    await stage.run(batch)
    return batch


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_matched_events_get_metadata_asset_and_a_trace_entry_each(
    stage: Enrich, registry: CollectorRegistry
) -> None:
    at_work = make_event(host="db-1", now=MONDAY_10_PARIS)
    evening = make_event(host="db-1", now=MONDAY_20_PARIS, metadata={"keep": 1})
    web = make_event(host="web-3")
    by_address = make_event(host="printer", metadata={"address": "10.2.3.4"})
    nothing = make_event(host="mystery", metadata={"asset": {"sender": "own"}})
    no_host = make_event(host=None)
    batch = await run(stage, at_work, evening, web, by_address, nothing, no_host)

    assert at_work.metadata["asset"]["in_business_hours"] is True
    assert evening.metadata["asset"]["in_business_hours"] is False
    assert evening.metadata["keep"] == 1
    assert at_work.metadata["asset"]["business_hours"] == {
        "days": ["mon"], "start": "09:00", "end": "17:00", "timezone": "Europe/Paris"
    }  # fmt: skip
    assert web.metadata["asset"]["name"] == "web-*" and web.metadata["asset"]["in_business_hours"] is None
    assert by_address.metadata["asset"]["name"] == "10.0.0.0/8"
    assert nothing.metadata == {"asset": {"sender": "own"}}  # no match: left as it came
    assert no_host.metadata == {}
    assert [(t.event, t.stage, t.detail) for t in batch.trace] == [
        (at_work, "enrich", "asset 'db-1' matched host 'db-1' by exact name"),
        (evening, "enrich", "asset 'db-1' matched host 'db-1' by exact name"),
        (web, "enrich", "asset 'web-*' matched host 'web-3' by glob 'web-*'"),
        (by_address, "enrich", "asset '10.0.0.0/8' matched address '10.2.3.4' by network 10.0.0.0/8"),
        (nothing, "enrich", "no asset matched host 'mystery'"),
        (no_host, "enrich", "no asset matched (the event has no host or address)"),
    ]
    assert sample(registry, "opsresponder_asset_matches_total", source="inventory") == 4
    assert sample(registry, "opsresponder_asset_matches_total", source="none") == 2


async def test_a_stage_never_started_loads_the_file_on_its_first_batch(
    inventory_file: Path, registry: CollectorRegistry
) -> None:
    enrich = stage_for(inventory_file, registry)
    event = make_event(host="db-1")
    await run(enrich, event)
    assert event.metadata["asset"]["criticality"] == "critical"
    await enrich.stop()


async def test_a_reload_empties_the_match_cache(
    stage: Enrich, inventory_file: Path, registry: CollectorRegistry
) -> None:
    first = make_event(host="web-3")
    await run(stage, first)
    assert first.metadata["asset"]["criticality"] == "high"
    rewrite(inventory_file, 'assets: {"web-*": {criticality: low}}\n')
    stage.reload()
    await eventually(
        lambda: sample(registry, "opsresponder_asset_inventory_reloads_total", outcome="loaded") == 2
    )
    second = make_event(host="web-3")
    await run(stage, second)
    assert second.metadata["asset"]["criticality"] == "low"


async def test_the_asset_service_answer_is_used_from_the_next_batch_on(
    inventory_file: Path, registry: CollectorRegistry, server: AssetServer
) -> None:
    server.answers["web-7"] = Answer(body=CMDB_ENTRY)
    enrich = stage_for(inventory_file, registry, url=server.url)
    await enrich.start()
    try:
        first = make_event(host="web-7")
        await run(enrich, first)
        # Not cached yet: the event went on with the file's entry, and the lookup runs in the background.
        assert first.metadata["asset"]["name"] == "web-*"
        assert sample(registry, "opsresponder_asset_service_lookups_total", outcome="cache_miss") == 1
        await eventually(
            lambda: sample(registry, "opsresponder_asset_service_lookups_total", outcome="found") == 1
        )

        second = make_event(host="web-7")
        batch = await run(enrich, second)
        assert second.metadata["asset"] == {
            "name": "web-7 (cmdb)", "criticality": "critical", "environment": None, "owner": "carol",
            "team": None, "tags": ["cmdb"], "group": None, "depends_on": [], "business_hours": None,
            "in_business_hours": None,
        }  # fmt: skip
        assert batch.trace[0].detail == "asset 'web-7 (cmdb)' for host 'web-7' from the asset service"
        assert sample(registry, "opsresponder_asset_service_lookups_total", outcome="cache_hit") == 1
        assert sample(registry, "opsresponder_asset_matches_total", source="service") == 1
        assert server.asked == ["web-7"]
    finally:
        await enrich.stop()


async def test_unknown_hosts_are_cached_negatively_then_asked_again_after_the_ttl(
    inventory_file: Path, registry: CollectorRegistry, server: AssetServer
) -> None:
    ticks = Ticks()
    enrich = stage_for(inventory_file, registry, url=server.url, negative_ttl_seconds=60)
    assert enrich.service is not None
    enrich.service._monotonic = ticks  # the TTLs on an injected clock
    enrich._monotonic = ticks
    try:
        await run(enrich, make_event(host="db-1"), make_event(host="db-1"))  # one lookup for both
        await eventually(
            lambda: sample(registry, "opsresponder_asset_service_lookups_total", outcome="not_found") == 1
        )
        event = make_event(host="db-1")
        await run(enrich, event)
        assert event.metadata["asset"]["name"] == "db-1"  # the file answers while the service said no
        assert server.asked == ["db-1"]
        ticks.now += 61
        await run(enrich, make_event(host="db-1"))
        await eventually(lambda: server.asked == ["db-1", "db-1"], what="a second lookup after the TTL")
    finally:
        await enrich.stop()


async def test_a_slow_service_never_holds_a_batch_back(
    inventory_file: Path, registry: CollectorRegistry, server: AssetServer
) -> None:
    server.answers["web-1"] = Answer(body=CMDB_ENTRY, delay=5)
    enrich = stage_for(inventory_file, registry, url=server.url, timeout_seconds=0.2)
    with capture_logs() as logs:
        try:
            event = make_event(host="web-1")
            started = time.perf_counter()
            await run(enrich, event)
            assert time.perf_counter() - started < 0.1
            assert event.metadata["asset"]["name"] == "web-*"
            await eventually(
                lambda: sample(registry, "opsresponder_asset_service_lookups_total", outcome="timeout") == 1
            )
            # Within the negative TTL the host is not asked again, and its events still go on at once.
            again = make_event(host="web-1")
            started = time.perf_counter()
            await run(enrich, again)
            assert time.perf_counter() - started < 0.1
            assert again.metadata["asset"]["name"] == "web-*" and server.asked == ["web-1"]
        finally:
            await enrich.stop()
    warnings = [r for r in logs if r["log_level"] == "warning"]
    assert [r["event"] for r in warnings] == [
        "The asset service lookup failed; events go on with the inventory file."
    ]
    assert warnings[0]["error"] == "no answer within 0.2 s"


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (Answer(status=500, body={"error": "boom"}), "status 500"),
        (Answer(raw=b"<html>"), "the answer is not an asset entry"),
        (Answer(raw=b'{"criticality": "\x80"}'), "the answer is not an asset entry"),
        (Answer(body={"criticality": "urgent"}), "the answer is not an asset entry"),
        (Answer(body={"criticality": "low", "tags": ["x" * 70_000]}), "larger than 65536 bytes"),
    ],
)
async def test_a_failing_answer_is_counted_and_the_file_answers(
    inventory_file: Path, registry: CollectorRegistry, server: AssetServer, answer: Answer, error: str
) -> None:
    server.answers["web-2"] = answer
    enrich = stage_for(inventory_file, registry, url=server.url)
    with capture_logs() as logs:
        try:
            await run(enrich, make_event(host="web-2"))
            await eventually(
                lambda: sample(registry, "opsresponder_asset_service_lookups_total", outcome="failed") == 1
            )
            event = make_event(host="web-2")
            await run(enrich, event)
            assert event.metadata["asset"]["name"] == "web-*"
        finally:
            await enrich.stop()
    assert error in next(r for r in logs if r["log_level"] == "warning")["error"]


async def test_a_service_that_is_down_is_a_failure(inventory_file: Path, registry: CollectorRegistry) -> None:
    down = AssetServer()
    await down.start()
    url = down.url
    await down.stop()  # nothing listens on the port any more
    enrich = stage_for(inventory_file, registry, url=url)
    try:
        await run(enrich, make_event(host="web-2"))
        await eventually(
            lambda: sample(registry, "opsresponder_asset_service_lookups_total", outcome="failed") == 1
        )
    finally:
        await enrich.stop()


async def test_the_host_can_go_in_a_query_parameter(
    inventory_file: Path, registry: CollectorRegistry, server: AssetServer
) -> None:
    server.answers["a b/c"] = Answer(body={"criticality": "low"})
    enrich = stage_for(inventory_file, registry, url=f"http://127.0.0.1:{server.port}/lookup?host={{host}}")
    try:
        await run(enrich, make_event(host="a b/c"))
        await eventually(
            lambda: sample(registry, "opsresponder_asset_service_lookups_total", outcome="found") == 1
        )
        event = make_event(host="a b/c")
        await run(enrich, event)
        assert event.metadata["asset"]["name"] == "a b/c"  # no name in the answer: the host
    finally:
        await enrich.stop()


async def test_lookups_go_through_the_transport_given_so_the_allowlist_applies(
    inventory_file: Path, registry: CollectorRegistry, server: AssetServer
) -> None:
    server.answers["web-7"] = Answer(body=CMDB_ENTRY)
    refused = GuardedTransport(UrlAllowlist(networks=["192.0.2.0/24"]))
    enrich = stage_for(inventory_file, registry, refused, url=server.url)
    try:
        await run(enrich, make_event(host="web-7"))
        await eventually(
            lambda: sample(registry, "opsresponder_asset_service_lookups_total", outcome="failed") == 1
        )
        assert server.asked == []  # never connected
    finally:
        await enrich.stop()

    allowed = GuardedTransport(UrlAllowlist(networks=["127.0.0.0/8"]))
    enrich = stage_for(inventory_file, CollectorRegistry(), allowed, url=server.url)
    try:
        await run(enrich, make_event(host="web-7"))
        await eventually(lambda: server.asked == ["web-7"], what="the allowed lookup")
    finally:
        await enrich.stop()


async def test_the_queue_and_the_cache_are_bounded(
    inventory_file: Path, registry: CollectorRegistry, server: AssetServer
) -> None:
    for i in range(6):
        server.answers[f"h{i}"] = Answer(body={"criticality": "low"}, delay=0.05)
    enrich = stage_for(inventory_file, registry, url=server.url, max_pending=3, max_entries=2, concurrency=1)
    assert enrich.service is not None
    try:
        await run(enrich, *(make_event(host=f"h{i}") for i in range(6)))
        # Three queued, the other three skipped (they are asked when a later batch brings them again).
        assert sample(registry, "opsresponder_asset_service_lookups_total", outcome="skipped") == 3
        await eventually(
            lambda: sample(registry, "opsresponder_asset_service_lookups_total", outcome="found") == 3
        )
        assert list(enrich.service._cache) == ["h1", "h2"]  # the oldest answer (h0) forgotten
        await run(enrich, make_event(host="h5"))
        await eventually(
            lambda: sample(registry, "opsresponder_asset_service_lookups_total", outcome="found") == 4
        )
        assert list(enrich.service._cache) == ["h2", "h5"]
    finally:
        await enrich.stop()
