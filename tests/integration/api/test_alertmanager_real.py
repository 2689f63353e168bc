"""A real Prometheus Alertmanager (Debian ``prometheus-alertmanager``) notifying OpsResponder's webhook.

Alerts are posted to Alertmanager's API v2; Alertmanager groups them and posts its webhook v4 payload to
``/api/v1/events/webhook/alertmanager`` with the ingest token, as docs/integrations.md tells an admin to set
it up. The events are then read back through ``GET /api/v1/events`` with a read token.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from opsresponder.app import OpsResponder
from opsresponder.core.event import Event, EventState
from tests.alertmanager_process import AlertmanagerProcess, webhook_config
from tests.conftest import require_program
from tests.integration.api.conftest import TOKENS, base_url
from tests.integration.api.test_ingest_paths import CommitWatcher

COMMIT_TIMEOUT: Final = 30.0
RECEIVER: Final = "opsresponder"
GENERATOR_URL: Final = "http://prometheus.test:9090/graph?g0.expr=cpu_usage+%3E+90&g0.tab=1"


@pytest.fixture
def watcher(service: OpsResponder) -> CommitWatcher:
    w = CommitWatcher()
    assert service.worker is not None
    service.worker.add_commit_listener(w)
    return w


@pytest.fixture
async def alertmanager(service: OpsResponder, tmp_path: Path) -> AsyncIterator[AlertmanagerProcess]:
    binary = shutil.which("prometheus-alertmanager") or require_program(
        "alertmanager", "prometheus-alertmanager"
    )
    workdir = tmp_path / "alertmanager"
    workdir.mkdir()
    config = webhook_config(
        f"{base_url(service)}/api/v1/events/webhook/alertmanager",
        TOKENS["ingest"],
        receiver=RECEIVER,
        group_by=["alertname"],
        group_wait="1s",
        group_interval="1s",
        repeat_interval="1h",
    )
    am = AlertmanagerProcess(binary, workdir, config)
    try:
        await am.start()
        yield am
    finally:
        await am.stop()


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _alert(
    alertname: str,
    instance: str,
    *,
    severity: str,
    starts_at: datetime,
    ends_at: datetime | None = None,
) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "labels": {
            "alertname": alertname,
            "instance": instance,
            "job": "node",
            "severity": severity,
            "team": "sre",
        },
        "annotations": {
            "summary": f"{alertname} on {instance}",
            "description": f"{alertname} on {instance} for 5 minutes.",
        },
        "startsAt": _rfc3339(starts_at),
        "generatorURL": GENERATOR_URL,
    }
    if ends_at is not None:
        alert["endsAt"] = _rfc3339(ends_at)
    return alert


async def _post_alerts(am: AlertmanagerProcess, alerts: list[dict[str, Any]]) -> None:
    async with httpx.AsyncClient(base_url=am.url, timeout=10, trust_env=False) as client:
        r = await client.post("/api/v2/alerts", json=alerts)
    assert r.status_code == 200, f"POST /api/v2/alerts: {r.status_code} {r.text}\n{am.diagnostics()}"


async def _am_fingerprints(am: AlertmanagerProcess) -> dict[str, str]:
    """Alertmanager's own fingerprint of each alert it holds, by its ``instance`` label."""
    async with httpx.AsyncClient(base_url=am.url, timeout=10, trust_env=False) as client:
        r = await client.get("/api/v2/alerts")
    assert r.status_code == 200, r.text
    return {a["labels"]["instance"]: a["fingerprint"] for a in r.json()}


async def _committed(
    watcher: CommitWatcher, am: AlertmanagerProcess, predicate: Callable[[Event], bool], what: str
) -> Event:
    try:
        return await watcher.wait_for(predicate, timeout=COMMIT_TIMEOUT)
    except TimeoutError:
        seen = [(e.id, e.event_type, e.state, e.host) for e in watcher.events]
        pytest.fail(
            f"no committed event for {what} within {COMMIT_TIMEOUT}s (committed: {seen})\n{am.diagnostics()}",
            pytrace=False,
        )


def _is(alertname: str, instance: str, state: EventState) -> Callable[[Event], bool]:
    def predicate(event: Event) -> bool:
        labels = event.metadata.get("labels") or {}
        return (
            event.source_type == "prometheus"
            and labels.get("alertname") == alertname
            and labels.get("instance") == instance
            and event.state == state
        )

    return predicate


async def _api_events(service: OpsResponder, **params: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKENS['read']}"}
    async with httpx.AsyncClient(base_url=base_url(service), headers=headers, trust_env=False) as client:
        r = await client.get("/api/v1/events", params=params)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


async def _api_event(service: OpsResponder, event_id: int | None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKENS['read']}"}
    async with httpx.AsyncClient(base_url=base_url(service), headers=headers, trust_env=False) as client:
        r = await client.get(f"/api/v1/events/{event_id}")
    assert r.status_code == 200, r.text
    event: dict[str, Any] = r.json()
    return event


def _by_id(listing: dict[str, Any], event_id: int | None) -> dict[str, Any]:
    matches = [e for e in listing["events"] if e["id"] == event_id]
    assert len(matches) == 1, f"event {event_id} not in {listing}"
    event: dict[str, Any] = matches[0]
    return event


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_a_firing_alert_becomes_a_problem_event_and_its_resolve_links_to_it(
    service: OpsResponder, watcher: CommitWatcher, alertmanager: AlertmanagerProcess
) -> None:
    starts_at = _now() - timedelta(minutes=1)
    firing = _alert("HighCPUUsage", "web-01:9100", severity="critical", starts_at=starts_at)
    await _post_alerts(alertmanager, [firing])

    problem = await _committed(
        watcher, alertmanager, _is("HighCPUUsage", "web-01:9100", EventState.PROBLEM), "the firing alert"
    )
    am_fingerprint = (await _am_fingerprints(alertmanager))["web-01:9100"]

    listing = await _api_events(service, event_type="high_cpu_usage")
    assert listing["total_count"] == 1, listing
    event = _by_id(listing, problem.id)
    assert event["source_type"] == "prometheus"
    assert event["source"] == "alertmanager.test"  # host of Alertmanager's --web.external-url
    assert event["event_type"] == "high_cpu_usage"
    assert event["severity"] == "critical"
    assert event["state"] == "problem"
    assert event["host"] == "web-01"  # instance label, port stripped
    assert event["service"] == "node"  # job label
    assert event["title"] == "HighCPUUsage on web-01:9100"
    assert event["description"] == "HighCPUUsage on web-01:9100 for 5 minutes."
    assert _at(event["occurred_at"]) == starts_at
    assert event["tags"] == ["team:sre"]
    assert event["fingerprint"] == problem.fingerprint != ""
    metadata = event["metadata"]
    assert metadata["labels"] == firing["labels"]
    assert metadata["annotations"] == firing["annotations"]
    assert metadata["status"] == "firing"
    assert metadata["source_fingerprint"] == am_fingerprint
    assert metadata["generator_url"] == GENERATOR_URL
    assert metadata["receiver"] == RECEIVER
    assert metadata["group_key"] == '{}:{alertname="HighCPUUsage"}'
    assert metadata["external_url"] == alertmanager.external_url
    assert _at(metadata["starts_at"]) == starts_at
    assert "problem_severity" not in metadata

    raw = json.loads((await _api_event(service, problem.id))["raw"])  # the alert as Alertmanager sent it
    assert raw["status"] == "firing"
    assert raw["fingerprint"] == am_fingerprint
    assert raw["labels"] == firing["labels"]

    ends_at = _now() - timedelta(seconds=1)
    resolving = _alert(
        "HighCPUUsage", "web-01:9100", severity="critical", starts_at=starts_at, ends_at=ends_at
    )
    await _post_alerts(alertmanager, [resolving])

    resolve = await _committed(
        watcher, alertmanager, _is("HighCPUUsage", "web-01:9100", EventState.RESOLVED), "the resolve"
    )
    listing = await _api_events(service, event_type="high_cpu_usage")
    assert listing["total_count"] == 2, listing
    event = _by_id(listing, resolve.id)
    assert event["state"] == "resolved"
    assert event["event_type"] == "high_cpu_usage"  # the same as its problem's
    assert event["severity"] == "info"
    assert event["host"] == "web-01"
    assert event["service"] == "node"
    assert event["fingerprint"] == problem.fingerprint  # linked to the problem it resolves
    assert _at(event["occurred_at"]) == ends_at
    metadata = event["metadata"]
    assert metadata["status"] == "resolved"
    assert metadata["problem_severity"] == "critical"
    assert metadata["source_fingerprint"] == am_fingerprint
    assert _at(metadata["starts_at"]) == starts_at
    assert _at(metadata["ends_at"]) == ends_at
    assert resolve.id != problem.id


async def test_a_group_of_two_alerts_becomes_two_events(
    service: OpsResponder, watcher: CommitWatcher, alertmanager: AlertmanagerProcess
) -> None:
    starts_at = _now() - timedelta(minutes=2)
    alerts = [
        _alert("DiskAlmostFull", "db-01:9100", severity="critical", starts_at=starts_at),
        _alert("DiskAlmostFull", "db-02:9100", severity="warning", starts_at=starts_at),
    ]
    await _post_alerts(alertmanager, alerts)  # both in one group: group_by [alertname]

    first = await _committed(
        watcher, alertmanager, _is("DiskAlmostFull", "db-01:9100", EventState.PROBLEM), "db-01"
    )
    second = await _committed(
        watcher, alertmanager, _is("DiskAlmostFull", "db-02:9100", EventState.PROBLEM), "db-02"
    )
    am_fingerprints = await _am_fingerprints(alertmanager)

    listing = await _api_events(service, event_type="disk_almost_full")
    assert listing["total_count"] == 2, listing
    one, two = _by_id(listing, first.id), _by_id(listing, second.id)
    assert (one["host"], one["severity"]) == ("db-01", "critical")
    assert (two["host"], two["severity"]) == ("db-02", "medium")  # warning
    for event, instance in ((one, "db-01:9100"), (two, "db-02:9100")):
        assert event["source_type"] == "prometheus"
        assert event["service"] == "node"
        assert event["state"] == "problem"
        assert event["title"] == f"DiskAlmostFull on {instance}"
        assert event["metadata"]["labels"]["instance"] == instance
        assert event["metadata"]["source_fingerprint"] == am_fingerprints[instance]
        # Both came in one notification of the same group.
        assert event["metadata"]["group_key"] == '{}:{alertname="DiskAlmostFull"}'
    assert one["fingerprint"] != two["fingerprint"]
