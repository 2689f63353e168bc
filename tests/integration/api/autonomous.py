"""The service with the response side on test playbooks (tests/integration/api/playbooks.py), and the
steps the autonomous API tests share: store an event, analyze it, execute, wait for a status."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Final

import httpx
import msgspec

from opsresponder.api.analysis import AnalyzeAnswer
from opsresponder.config import Settings, settings_from_tree
from opsresponder.response.executor.service import ExecutionView
from tests.integration.api.conftest import TOKENS as BASE_TOKENS
from tests.integration.api.conftest import api_tree
from tests.integration.api.playbooks import LOW_RISK_CONTEXT, Playbooks, response_tree

TOKENS: Final = {
    **BASE_TOKENS,
    "execute": "execute-token-0123456789",
    "write": "write-token-0123456789ab",
}
DONE: Final = frozenset({"completed", "failed", "cancelled", "interrupted", "rolled_back", "dry_run"})


def autonomous_settings(
    database_url: str, data_dir: Path, playbooks: Playbooks, *, enabled: bool = True
) -> Settings:
    tree = {**api_tree(database_url, data_dir, TOKENS), **response_tree(playbooks)}
    tree["response"]["enabled"] = enabled
    return settings_from_tree(tree)


def auth(scope: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[scope]}"}


async def store_event(events: httpx.AsyncClient, event_type: str, host: str = "web-1") -> int:
    body = {"source": "tests", "event_type": event_type, "severity": "high", "host": host,
            "title": f"{event_type} on {host}"}  # fmt: skip
    answer = await events.post("/api/v1/events/webhook", json=body, headers=auth("ingest"))
    assert answer.status_code == 200, answer.text
    event_id: int = answer.json()["event_id"]
    return event_id


async def analyze(client: httpx.AsyncClient, event_id: int) -> dict[str, Any]:
    answer = await client.post(
        "/api/v1/autonomous/analyze", json={"event_id": event_id, "context": LOW_RISK_CONTEXT}
    )
    assert answer.status_code == 200, answer.text
    msgspec.json.decode(answer.content, type=AnalyzeAnswer)  # the shape the OpenAPI schema documents
    decision: dict[str, Any] = answer.json()
    return decision


async def execute(client: httpx.AsyncClient, decision_id: int, **body: Any) -> httpx.Response:
    answer = await client.post("/api/v1/autonomous/execute", json={"decision_id": decision_id, **body})
    if answer.status_code in (200, 202):
        msgspec.json.decode(answer.content, type=ExecutionView)  # the shape the OpenAPI schema documents
    return answer


async def wait_for(
    client: httpx.AsyncClient, execution_id: str, statuses: frozenset[str] | set[str], within: float = 20
) -> dict[str, Any]:
    """The execution once its status is one of `statuses` (fails the test after `within` seconds)."""
    seen: dict[str, Any] = {}
    try:
        async with asyncio.timeout(within):
            while True:
                answer = await client.get(f"/api/v1/autonomous/executions/{execution_id}")
                assert answer.status_code == 200, answer.text
                msgspec.json.decode(answer.content, type=ExecutionView)
                seen = answer.json()
                if seen["status"] in statuses:
                    return seen
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{execution_id} never reached {sorted(statuses)}: {seen}") from None
