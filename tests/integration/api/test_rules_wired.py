"""The rules as the service wires them (rules.file, the rules stage, the absence checker task), through
the real webhook, with the service's clock injected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import msgspec

from opsresponder.app import running
from tests.integration.api.conftest import TOKENS, api_settings, base_url
from tests.waiting import eventually

RULES = """
rules:
  - id: 5
    name: two disk alerts per host
    conditions: {event_type: disk_full}
    time_window_minutes: 10
    threshold: 2
    group_by: [host]
  - id: 6
    name: nightly backup
    conditions: {event_type: backup_done}
    group_by: [host]
    absence: {within_minutes: 60, expected_groups: [db-1, db-2]}
"""


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_rules_from_the_file_fire_through_the_webhook_and_the_absence_checker(
    database_url: str, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(RULES)
    settings = api_settings(database_url, tmp_path)
    rules = msgspec.structs.replace(settings.rules, file=str(rules_file), absence_check_seconds=0.05)
    clock = Clock()
    async with running(msgspec.structs.replace(settings, rules=rules), clock=clock) as service:
        headers = {"Authorization": f"Bearer {TOKENS['admin']}"}
        async with httpx.AsyncClient(base_url=base_url(service), headers=headers, timeout=10) as client:
            body = [
                {
                    "source": "t",
                    "event_type": "disk_full",
                    "severity": "high",
                    "title": f"disk {n}",
                    "host": "a",
                }
                for n in range(2)
            ]
            answer = await client.post("/api/v1/events/webhook", json=body)
            assert answer.status_code == 200, answer.text
            ids = [r["event_id"] for r in answer.json()["results"]]

            triggered = (await client.get("/api/v1/rules/triggers/5/firings")).json()["firings"]
            assert [(f["group_key"], f["kind"], len(f["event_ids"])) for f in triggered] == [
                ("a", "trigger", 2)
            ]
            assert triggered[0]["event_ids"] == ids

            # Half an hour on, db-2's backup reports (its next one is due in an hour); db-1 never reports.
            clock.now += timedelta(minutes=30)
            backup = {
                "source": "t",
                "event_type": "backup_done",
                "severity": "low",
                "title": "ok",
                "host": "db-2",
            }
            assert (await client.post("/api/v1/events/webhook", json=backup)).status_code == 200
            clock.now += timedelta(minutes=31)

            async def absence_fired() -> bool:
                return bool(
                    await db_pool.fetchval("SELECT count(*) FROM rules.rule_firings WHERE rule_id = 6")
                )

            await eventually(absence_fired, what="the absence checker fired")
            missing = (await client.get("/api/v1/rules/triggers/6/firings")).json()["firings"]
            assert [(f["group_key"], f["kind"]) for f in missing] == [("db-1", "absence")]
