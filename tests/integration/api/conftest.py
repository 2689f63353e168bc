"""The whole service in-process on free ports against the test database, reached over real sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from opsresponder.app import OpsResponder, running
from opsresponder.config import Settings, settings_from_tree
from tests.integration.api.inbox import Inbox
from tests.integration.api.playbooks import Playbooks, write_playbooks

TOKENS = {
    "admin": "admin-token-0123456789",
    "ingest": "ingest-token-0123456789",
    "read": "read-token-0123456789ab",
}


def api_settings(database_url: str, data_dir: Path, **pipeline: object) -> Settings:
    return settings_from_tree(api_tree(database_url, data_dir, TOKENS, **pipeline))


def api_tree(database_url: str, data_dir: Path, tokens: dict[str, str], **pipeline: object) -> dict[str, Any]:
    """The settings tree of `api_settings`: one token per scope, named after it."""
    return {
        "data_dir": str(data_dir),
        "database": {"url": database_url},
        "api": {
            "events": {"host": "127.0.0.1", "port": 0},
            "autonomous": {"host": "127.0.0.1", "port": 0},
            "tokens": [{"name": name, "token": token, "scopes": [name]} for name, token in tokens.items()],
            "max_body_bytes": 65536,
        },
        "pipeline": {"drain_grace_seconds": 2, **pipeline},
        "syslog": {"udp": {"enabled": False}, "tcp": {"enabled": False}},
        "snmp": {"enabled": False},
        # The rule-to-response loop would consume the firings these tests inspect; its tests enable it.
        "response": {"loop": {"enabled": False}},
    }


@pytest.fixture
async def service(database_url: str, db_pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[OpsResponder]:
    async with running(api_settings(database_url, tmp_path)) as svc:
        yield svc


def base_url(svc: OpsResponder, name: str = "events_api") -> str:
    return f"http://{svc.listeners[name]}"


@pytest.fixture
async def client(service: OpsResponder) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=base_url(service), headers={"Authorization": f"Bearer {TOKENS['admin']}"}, timeout=10
    ) as c:
        yield c


@pytest.fixture
def playbooks(tmp_path: Path) -> Playbooks:
    """The response tests' catalog, templates and scripts (tests/integration/api/playbooks.py)."""
    return write_playbooks(tmp_path / "playbooks")


@pytest.fixture
async def inbox() -> AsyncIterator[Inbox]:
    """A local HTTP server receiving the webhook channel's notifications."""
    box = Inbox()
    await box.start()
    yield box
    await box.stop()
