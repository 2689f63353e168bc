"""Every endpoint of the autonomous API asks for its scope (401 without a token, 403 with a token that
lacks it: ``execute`` to analyze and execute, ``read`` to view, ``write`` to cancel and roll back), and
answers 503 where ``response.enabled`` is false."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import asyncpg
import httpx
import pytest

from opsresponder.app import running
from tests.integration.api.autonomous import TOKENS, auth, autonomous_settings
from tests.integration.api.conftest import base_url
from tests.integration.api.playbooks import write_playbooks

ENDPOINTS: Final = [
    ("POST", "/api/v1/autonomous/analyze", {"event_id": 1}, "execute"),
    ("POST", "/api/v1/autonomous/execute", {"decision_id": 1}, "execute"),
    ("GET", "/api/v1/autonomous/executions", None, "read"),
    ("GET", "/api/v1/autonomous/executions/exec_1", None, "read"),
    ("POST", "/api/v1/autonomous/executions/exec_1/cancel", None, "write"),
    ("POST", "/api/v1/autonomous/executions/exec_1/rollback", None, "write"),
]


@pytest.mark.parametrize("enabled", [True, False], ids=["enabled", "disabled"])
async def test_each_endpoint_needs_its_scope_and_a_disabled_side_answers_503(
    database_url: str, db_pool: asyncpg.Pool, tmp_path: Path, enabled: bool
) -> None:
    settings = autonomous_settings(
        database_url, tmp_path / "data", write_playbooks(tmp_path), enabled=enabled
    )
    async with (
        running(settings) as service,
        httpx.AsyncClient(base_url=base_url(service, "autonomous_api"), timeout=10) as client,
    ):
        for method, path, body, scope in ENDPOINTS:
            assert (await client.request(method, path, json=body)).status_code == 401, path
            for other in TOKENS:
                if other in (scope, "admin"):
                    continue
                answer = await client.request(method, path, json=body, headers=auth(other))
                assert answer.status_code == 403, (path, other, answer.text)
            allowed = await client.request(method, path, json=body, headers=auth(scope))
            if enabled:
                assert allowed.status_code in (200, 404), (path, allowed.text)
            else:
                assert allowed.status_code == 503, (path, allowed.text)
                assert "response.enabled" in allowed.json()["detail"]
