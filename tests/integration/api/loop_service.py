"""The service with the rule-to-response loop on, for tests/integration/api/test_autonomous_loop*.py: a
trigger rule on ``test_loop`` events, the playbooks (tests/integration/api/playbooks.py), people's tokens,
and notifications sent as JSON to a local HTTP server (`Inbox`) that records them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import httpx

from opsresponder.config import Settings, settings_from_tree
from tests.integration.api.autonomous import TOKENS
from tests.integration.api.conftest import api_tree
from tests.integration.api.inbox import Inbox
from tests.integration.api.playbooks import LOOP_CONTEXT, Playbooks, response_tree

REPO: Final = Path(__file__).resolve().parents[3]

PEOPLE: Final = {
    # name: (token, scopes)
    "alice": ("alice-token-0123456789abcdef", ["read", "execute", "approve"]),
    "bob": ("bob-token-0123456789abcdef0", ["read", "approve"]),
    "carol": ("carol-token-0123456789abcdef", ["read", "approve"]),
}
APPROVERS: Final = ["alice", "bob", "rules"]
"""carol may approve (scope) but is not listed; "rules" is listed, and is the loop's own identity (a name no
token may bear, so nobody can approve as the loop)."""

RULES: Final = """
rules:
  - id: 77
    name: every test_loop event
    conditions: {event_type: test_loop}
"""


def as_person(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {PEOPLE[name][0]}"}


def loop_settings(
    database_url: str,
    data_dir: Path,
    playbooks: Playbooks,
    inbox: Inbox,
    *,
    approvers: list[str] | None = None,
    loop: dict[str, Any] | None = None,
    governor: dict[str, Any] | None = None,
    approvals: dict[str, Any] | None = None,
) -> Settings:
    data_dir.mkdir(parents=True, exist_ok=True)
    rules_file = data_dir / "rules.yaml"
    rules_file.write_text(RULES)
    tree = {**api_tree(database_url, data_dir, TOKENS), **response_tree(playbooks)}
    tree["api"]["tokens"] += [
        {"name": name, "token": token, "scopes": scopes} for name, (token, scopes) in PEOPLE.items()
    ]
    tree["rules"] = {"file": str(rules_file)}
    tree["outbound"] = {"allowed_networks": ["127.0.0.1/32"]}
    response = tree["response"]
    response["notifications"] = {
        "directory": str(REPO / "config" / "notifications"),
        "webhook": {"url": inbox.url},
        "default_channels": ["webhook"],
    }
    response["analysis"] = {"approvers": APPROVERS if approvers is None else approvers}
    response["loop"] = {"poll_interval_ms": 50, **LOOP_CONTEXT, **(loop or {})}
    response["governor"] = {"pause_refresh_seconds": 0.1, **(governor or {})}
    response["approvals"] = approvals or {}
    return settings_from_tree(tree)


async def executions_of(client: httpx.AsyncClient, event_id: int) -> list[dict[str, Any]]:
    answer = await client.get("/api/v1/autonomous/executions", params={"event_id": event_id})
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["executions"]
    return sorted(found, key=lambda e: int(e["execution_id"].removeprefix("exec_")))
