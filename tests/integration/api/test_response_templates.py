"""Response templates over real HTTP against PostgreSQL: CRUD in JSON and YAML, scopes, every refusal the
API adds to the model's (tests/unit/rules/templates), and the file templates loaded at start."""

from __future__ import annotations

import copy
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
import yaml
from structlog.testing import capture_logs

from opsresponder.app import OpsResponder, running
from opsresponder.config import Settings, TemplatesConfig
from tests.integration.api.conftest import TOKENS, api_settings, base_url

REPO = Path(__file__).parents[3]
PATH = "/api/v1/rules/responses"
SPEC_FILE = REPO / "config" / "templates" / "high_cpu_investigation.yaml"
API_BODY: dict[str, Any] = {
    "name": "CPU Investigation Playbook",
    "description": "Automated response for high CPU events",
    "response_type": "investigation",
    "actions": [
        {"type": "diagnostic", "name": "Check Process List", "automation_script_id": 123},
        {"type": "remediation", "name": "Kill High CPU Processes", "automation_script_id": 124},
        {"type": "notification", "name": "Alert Operations Team", "channels": ["email", "slack"]},
    ],
    "approval_required": False,
    "max_execution_time_minutes": 30,
}  # fmt: skip
YAML = {"Content-Type": "application/yaml"}


def settings_with_templates(database_url: str, data_dir: Path, directory: Path) -> Settings:
    templates = TemplatesConfig(directory=str(directory), scripts_file=str(REPO / "config" / "scripts.yaml"))
    return msgspec.structs.replace(api_settings(database_url, data_dir), templates=templates)


@pytest.fixture
def template_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "templates"
    shutil.copytree(REPO / "config" / "templates", directory)
    return directory


@pytest.fixture
async def service(
    database_url: str, db_pool: asyncpg.Pool, tmp_path: Path, template_dir: Path
) -> AsyncIterator[OpsResponder]:
    async with running(settings_with_templates(database_url, tmp_path, template_dir)) as svc:
        yield svc


async def test_create_list_get_replace_delete(client: httpx.AsyncClient) -> None:
    created = await client.post(PATH, json=API_BODY)
    assert created.status_code == 201, created.text
    stored = created.json()
    assert stored["key"] == "cpu_investigation_playbook" and stored["version"] == "1"
    assert stored["source"] == "api" and stored["file"] is None and stored["current"]
    assert stored["created_by"] == "admin"
    assert [a["depends_on"] for a in stored["template"]["actions"]] == [
        [],
        ["check_process_list"],
        ["kill_high_cpu_processes"],
    ]
    url = f"{PATH}/{stored['id']}"
    assert (await client.get(url)).json() == stored

    listed = (await client.get(PATH)).json()["templates"]
    assert [t["key"] for t in listed] == [
        "cpu_investigation_playbook",
        "disk_space_cleanup",
        "high_cpu_investigation",
        "service_restart_with_verify",
    ]

    changed = {**API_BODY, "id": "cpu_investigation_playbook", "version": "2", "description": "v2"}
    replaced = await client.put(url, json=changed)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["version"] == "2" and replaced.json()["template"]["description"] == "v2"
    assert replaced.json()["created_at"] == stored["created_at"]

    assert (await client.delete(url)).status_code == 204
    assert (await client.get(url)).status_code == 404
    assert (await client.delete(url)).status_code == 404
    assert (await client.put(url, json=API_BODY)).status_code == 404


async def test_yaml_in_and_out(client: httpx.AsyncClient) -> None:
    body = SPEC_FILE.read_text().replace("high_cpu_investigation", "high_cpu_copy")
    created = await client.post(PATH, content=body.encode(), headers={**YAML, "Accept": "application/yaml"})
    assert created.status_code == 201, created.text
    assert created.headers["content-type"].startswith("application/yaml")
    answer = yaml.safe_load(created.text)
    assert answer["key"] == "high_cpu_copy" and answer["version"] == "1.2"
    as_json = (await client.get(f"{PATH}/{answer['id']}")).json()
    # The YAML answer and the JSON answer say the same (datetimes aside: YAML writes them its own way).
    assert answer["template"] == as_json["template"]
    # What was answered can be sent back as it is, in either format.
    again = {**as_json["template"], "version": "1.3"}
    replaced = await client.put(f"{PATH}/{answer['id']}", content=yaml.safe_dump(again), headers=YAML)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["template"] == again


@pytest.mark.parametrize(
    ("body", "headers", "status", "field", "detail"),
    [
        (b"{", {}, 400, None, "malformed JSON"),
        (b'{"key": "\x80"}', {}, 400, None, "malformed JSON"),
        (b"a: [1", YAML, 400, None, "malformed YAML"),
        (b"a: &x 1\nb: *x", YAML, 400, None, "anchors and aliases"),
        (b"<template/>", {"Content-Type": "application/xml"}, 415, None, "application/yaml"),
        (b"[]", {}, 422, None, "object"),
        (msgspec.json.encode({**API_BODY, "actions": [{**API_BODY["actions"][0], "automation_script_id": 9}]}
                             ),
         {}, 422, "actions[0].automation_script_id", "unknown automation script 9"),
        (msgspec.json.encode({**API_BODY, "success_criteria": ["check_process_list.result.exists(x, true)"]}),
         {}, 422, "success_criteria[0]", "function calls are not allowed"),
        (msgspec.json.encode({**API_BODY, "colour": "red"}), {}, 422, "colour", "unknown field"),
    ],
)  # fmt: skip
async def test_refusals(
    client: httpx.AsyncClient,
    body: bytes,
    headers: dict[str, str],
    status: int,
    field: str | None,
    detail: str,
) -> None:
    r = await client.post(PATH, content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field if field else "field" not in r.json()
    assert detail in r.json()["detail"], r.json()["detail"]


async def test_an_id_in_use_is_a_conflict(client: httpx.AsyncClient) -> None:
    assert (await client.post(PATH, json=API_BODY)).status_code == 201
    again = await client.post(PATH, json={**API_BODY, "version": "2"})
    assert again.status_code == 409 and "taken" in again.json()["detail"]
    taken_by_file = await client.post(PATH, json={**API_BODY, "id": "high_cpu_investigation"})
    assert taken_by_file.status_code == 409


async def test_file_templates_are_read_only(client: httpx.AsyncClient) -> None:
    listed = (await client.get(PATH)).json()["templates"]
    spec = next(t for t in listed if t["key"] == "high_cpu_investigation")
    assert spec["source"] == "file" and spec["file"].endswith("high_cpu_investigation.yaml")
    assert spec["created_by"] == "config"
    url = f"{PATH}/{spec['id']}"
    put = await client.put(url, json=API_BODY)
    assert put.status_code == 409 and "comes from a file" in put.json()["detail"]
    deleted = await client.delete(url)
    assert deleted.status_code == 409 and "comes from a file" in deleted.json()["detail"]
    assert (await client.get(url)).json() == spec


async def test_trigger_rule_id_must_name_a_trigger_rule(client: httpx.AsyncClient) -> None:
    missing = await client.post(PATH, json={**API_BODY, "trigger_rule_id": 999999})
    assert missing.status_code == 422, missing.text
    assert missing.json()["field"] == "trigger_rule_id"
    assert missing.json()["detail"] == "no trigger rule has id 999999"
    rule = await client.post(
        "/api/v1/rules/triggers",
        json={"name": "High CPU", "conditions": {"event_type": "threshold_breach"}},
    )
    assert rule.status_code == 201, rule.text
    ok = await client.post(PATH, json={**API_BODY, "trigger_rule_id": rule.json()["rule_id"]})
    assert ok.status_code == 201, ok.text


async def test_scopes(service: OpsResponder) -> None:
    url = base_url(service)
    read = {"Authorization": f"Bearer {TOKENS['read']}"}
    ingest = {"Authorization": f"Bearer {TOKENS['ingest']}"}
    async with httpx.AsyncClient(base_url=url, timeout=10) as anonymous:
        assert (await anonymous.get(PATH)).status_code == 401
        assert (await anonymous.post(PATH, json=API_BODY)).status_code == 401
        assert (await anonymous.get(PATH, headers=ingest)).status_code == 403
        assert (await anonymous.get(PATH, headers=read)).status_code == 200
        assert (await anonymous.post(PATH, json=API_BODY, headers=read)).status_code == 403
        assert (await anonymous.put(f"{PATH}/1", json=API_BODY, headers=read)).status_code == 403
        assert (await anonymous.delete(f"{PATH}/1", headers=read)).status_code == 403


async def stored_rows(db_pool: asyncpg.Pool) -> list[tuple[str, str, bool]]:
    rows = await db_pool.fetch(
        "SELECT template_key, version, current FROM rules.response_templates WHERE source = 'file' "
        "ORDER BY template_key, version"
    )
    return [(r["template_key"], r["version"], r["current"]) for r in rows]


async def test_the_file_loader_across_restarts(
    database_url: str, db_pool: asyncpg.Pool, tmp_path: Path, template_dir: Path
) -> None:
    settings = settings_with_templates(database_url, tmp_path, template_dir)
    (template_dir / "broken.yaml").write_text(
        "response_template:\n  id: broken\n  name: Broken\n  actions: []\n"
    )
    (template_dir / "zz_duplicate.yml").write_text(SPEC_FILE.read_text())
    with capture_logs() as logs:
        async with running(settings):
            pass
    assert await stored_rows(db_pool) == [
        ("disk_space_cleanup", "1.0", True),
        ("high_cpu_investigation", "1.2", True),
        ("service_restart_with_verify", "1.0", True),
    ]
    errors = {(e["event"], Path(e["path"]).name) for e in logs if e["log_level"] == "error"}
    assert errors == {
        ("A template file is invalid; skipped.", "broken.yaml"),
        ("Two template files have the same id; the second is skipped.", "zz_duplicate.yml"),
    }

    # A new version becomes current, the old one stays; a comment is no change; a removed file retires.
    spec = yaml.safe_load(SPEC_FILE.read_text())
    spec["response_template"]["version"] = "1.3"
    (template_dir / "high_cpu_investigation.yaml").write_text(yaml.safe_dump(spec))
    (template_dir / "disk_space_cleanup.yaml").write_text(
        "# a comment\n" + (template_dir / "disk_space_cleanup.yaml").read_text()
    )
    (template_dir / "service_restart_with_verify.yaml").unlink()
    async with running(settings):
        pass
    assert await stored_rows(db_pool) == [
        ("disk_space_cleanup", "1.0", True),
        ("high_cpu_investigation", "1.2", False),
        ("high_cpu_investigation", "1.3", True),
        ("service_restart_with_verify", "1.0", False),
    ]

    # Changed without a new version: refused with an ERROR, the stored 1.3 stays in force.
    changed = copy.deepcopy(spec)
    changed["response_template"]["description"] = "edited in place"
    (template_dir / "high_cpu_investigation.yaml").write_text(yaml.safe_dump(changed))
    with capture_logs() as logs:
        async with (
            running(settings) as svc,
            httpx.AsyncClient(
                base_url=base_url(svc), headers={"Authorization": f"Bearer {TOKENS['admin']}"}, timeout=10
            ) as client,
        ):
            listed = (await client.get(PATH)).json()["templates"]
    changed_errors = [
        e for e in logs if e["event"].startswith("A template file changed without a new version")
    ]
    assert len(changed_errors) == 1 and changed_errors[0]["version"] == "1.3"
    spec_now = next(t for t in listed if t["key"] == "high_cpu_investigation")
    assert spec_now["version"] == "1.3" and spec_now["template"]["description"] != "edited in place"
    assert "service_restart_with_verify" not in {t["key"] for t in listed}
