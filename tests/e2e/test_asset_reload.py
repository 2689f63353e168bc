"""SIGHUP to the real process rereads the asset inventory; a bad file is refused and the old one kept."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.e2e.process import ServiceProcess
from tests.unit.pipeline.enrich.files import rewrite
from tests.waiting import eventually

LOADED = "The asset inventory was loaded."
REFUSED = "The asset inventory file could not be loaded; the previous inventory stays in use."


async def test_sighup_reloads_the_inventory_and_a_bad_file_keeps_the_previous(
    database_url: str, db_pool: asyncpg.Pool, service_data_dir: Path
) -> None:
    assets = service_data_dir / "assets.yaml"
    rewrite(assets, "assets: {db-1: {criticality: critical, team: dba}}\n")
    service = ServiceProcess(
        service_data_dir,
        env={
            "OPSRESPONDER_DATABASE__URL": database_url,
            "OPSRESPONDER_ENRICHMENT__ASSETS_FILE": str(assets),
            # An hour: only the signal can make this process see the change within the test.
            "OPSRESPONDER_ENRICHMENT__RELOAD_INTERVAL_SECONDS": "3600",
        },
    )
    addresses = await service.start()
    titles = iter(range(1000))
    try:
        headers = {"Authorization": f"Bearer {service.admin_token()}"}
        async with httpx.AsyncClient(
            base_url=f"http://{addresses['events_api']}", headers=headers, timeout=10
        ) as client:

            async def asset_of_new_event() -> dict[str, Any]:
                body = {"source": "e2e", "event_type": "alert", "severity": "high", "host": "db-1",
                        "title": f"event {next(titles)}"}  # fmt: skip
                posted = await client.post("/api/v1/events/webhook", json=body)
                assert posted.status_code == 200, posted.text
                stored = (await client.get(f"/api/v1/events/{posted.json()['event_id']}")).json()
                asset = stored["metadata"]["asset"]
                assert isinstance(asset, dict)
                return asset

            def logged(message: str) -> int:
                return sum(1 for r in service.records if r.get("event") == message)

            assert (await asset_of_new_event())["criticality"] == "critical"
            assert logged(LOADED) == 1

            rewrite(assets, "assets: {db-1: {criticality: low, team: dba}}\n")
            service.process.send_signal(signal.SIGHUP)
            await eventually(lambda: logged(LOADED) == 2, what="the reload after SIGHUP")
            assert (await asset_of_new_event())["criticality"] == "low"

            rewrite(assets, "assets: {db-1: {criticality: low, team: [dba}\n")
            service.process.send_signal(signal.SIGHUP)
            await eventually(lambda: logged(REFUSED) == 1, what="the refused reload")
            refused = next(r for r in service.records if r.get("event") == REFUSED)
            assert refused["level"] == "error" and "not valid YAML" in refused["error"]
            assert (await asset_of_new_event())["criticality"] == "low"
    finally:
        code = await service.stop(signal.SIGTERM)
    assert code == 0
