"""Firings survive a kill -9 of the real service between commit and consumption.

The service runs as its own process with rules from ``rules.file``; the webhook answers after the commit
that stored the completing event and its firing, and the process is killed at once (SIGKILL: nothing
runs after). The firing is in PostgreSQL, is claimed exactly once by a consumer, and the restarted
service lists it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx

from opsresponder.core.clock import utcnow
from opsresponder.store.firings import FiringRepository
from tests.e2e.process import ServiceProcess

RULES = """
rules:
  - id: 41
    name: disk filling on one host
    conditions: {event_type: disk_full, severity: {$gte: high}}
    time_window_minutes: 10
    threshold: 2
    group_by: [host]
    cooldown_minutes: 30
"""


def service(tmp_path: Path, database_url: str, rules_file: Path) -> ServiceProcess:
    return ServiceProcess(
        tmp_path / "data",
        {
            "OPSRESPONDER_DATABASE__URL": database_url,
            "OPSRESPONDER_RULES__FILE": str(rules_file),
            # This test is the consumer: the service's own rule-to-response loop must not claim first.
            "OPSRESPONDER_RESPONSE__LOOP__ENABLED": "false",
        },
    )


async def test_a_committed_firing_outlives_a_kill_and_is_consumed_once(
    tmp_path: Path, database_url: str, db_pool: asyncpg.Pool
) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(RULES)
    first = service(tmp_path, database_url, rules_file)
    addresses = await first.start()
    headers = {"Authorization": f"Bearer {first.admin_token()}"}
    try:
        async with httpx.AsyncClient(
            base_url=f"http://{addresses['events_api']}", headers=headers, timeout=10
        ) as client:
            ids = []
            for title in ("/var at 91%", "/var at 97%"):
                event = {"source": "e2e", "event_type": "disk_full", "severity": "high", "title": title,
                         "host": "db-1"}  # fmt: skip
                answer = await client.post("/api/v1/events/webhook", json=event)
                assert answer.status_code == 200, answer.text
                ids.append(answer.json()["event_id"])
    finally:
        await first.kill()  # SIGKILL right after the commit: nothing of the process runs after this

    rows = await db_pool.fetch("SELECT * FROM rules.rule_firings")
    assert [(r["rule_id"], r["group_key"], r["kind"], r["status"]) for r in rows] == [
        (41, "db-1", "trigger", "new")
    ]
    assert rows[0]["event_ids"] == [ids[1]]  # the completing event (each was its own batch)

    # The response side claims it once, whoever asks and however often.
    consumers = FiringRepository(db_pool)
    claimed = await consumers.claim(10, "responder-a", timedelta(minutes=5), utcnow())
    assert [f.id for f in claimed] == [rows[0]["id"]]
    assert await consumers.claim(10, "responder-b", timedelta(minutes=5), utcnow()) == []
    assert await consumers.complete([rows[0]["id"]], "responder-a") == 1

    second = service(tmp_path, database_url, rules_file)
    addresses = await second.start()
    try:
        async with httpx.AsyncClient(
            base_url=f"http://{addresses['events_api']}", headers=headers, timeout=10
        ) as client:
            listed = (await client.get("/api/v1/rules/triggers/41/firings")).json()
        assert [(f["group_key"], f["status"]) for f in listed["firings"]] == [("db-1", "done")]
    finally:
        assert await second.stop() == 0
