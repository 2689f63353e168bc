"""Grafana alerting webhook: samples as Grafana sends them, values as metrics, resolves, refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from opsresponder.core.errors import InvalidEventError
from opsresponder.core.event import EventState
from opsresponder.core.severity import Severity
from opsresponder.ingest.http.adapters.grafana import GrafanaAdapter
from tests.unit.ingest.http import RECEIVED_AT, sample

ADAPTER = GrafanaAdapter()


def parse(payload: Any) -> list[Any]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return ADAPTER.parse(body, "application/json", RECEIVED_AT)


def firing() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(sample("grafana_firing.json"))
    return result


def test_firing_notification_with_two_alerts() -> None:
    memory, no_data = parse(sample("grafana_firing.json"))

    assert memory.source == "grafana.example.com"
    assert memory.source_type == "grafana"
    assert memory.event_type == "high_memory_usage"
    assert memory.severity is Severity.MEDIUM  # no severity label
    assert memory.state is EventState.PROBLEM
    assert memory.host == "db-01"
    assert memory.service is None
    assert memory.title == "This alert was triggered for zone us-1"
    assert memory.description == "The system has high memory usage"
    assert memory.occurred_at == datetime(2021, 10, 12, 7, 51, 3, 157076, tzinfo=UTC)
    assert memory.tags == ["team:blue", "zone:us-1"]
    assert memory.metadata["metrics"] == {"B": 87.2, "C": 1.0}
    assert memory.metadata["B"] == 87.2  # top-level copy for rules like metadata.B > 80
    assert memory.metadata["source_fingerprint"] == "c6eadffa33fcdf37"
    assert memory.metadata["org_id"] == 1
    assert memory.metadata["panel_url"].endswith("viewPanel=4")
    assert memory.metadata["dashboard_url"].startswith("https://grafana.example.com/d/abc123")
    assert memory.metadata["silence_url"].startswith("https://grafana.example.com/alerting/silence/new")
    assert memory.metadata["value_string"].startswith("[ var='B'")

    assert no_data.event_type == "datasource_no_data"
    assert no_data.severity is Severity.INFO
    assert "metrics" not in no_data.metadata  # values: null
    assert "dashboard_url" not in no_data.metadata  # empty string is no link


def test_resolve_matches_its_problem() -> None:
    problem = parse(sample("grafana_firing.json"))[0]
    (resolve,) = parse(sample("grafana_resolved.json"))
    assert resolve.state is EventState.RESOLVED
    assert resolve.fingerprint == problem.fingerprint
    assert resolve.event_type == problem.event_type
    assert resolve.severity is Severity.INFO
    assert resolve.metadata["problem_severity"] == "medium"
    assert resolve.occurred_at == datetime(2021, 10, 12, 8, 6, 3, 157076, tzinfo=UTC)
    assert resolve.metadata["metrics"] == {"B": 41.0, "C": 0.0}


def test_same_labels_in_another_org_is_another_alert() -> None:
    other_org = firing()
    other_org["orgId"] = 2
    assert parse(other_org)[0].fingerprint != parse(firing())[0].fingerprint


def test_metric_never_overrides_adapter_metadata() -> None:
    payload = firing()
    payload["alerts"][0]["values"] = {"labels": 5.0, "cpu usage": 91.5, "gone": None}
    metadata = parse(payload)[0].metadata
    assert isinstance(metadata["labels"], dict)
    assert metadata["metrics"] == {"labels": 5.0, "cpu_usage": 91.5}
    assert metadata["cpu_usage"] == 91.5


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p["alerts"][0].update(values={"B": "high"}), "alerts[0].values.B"),
        (lambda p: p["alerts"][0].update(values=[1]), "alerts[0].values"),
        (lambda p: p.update(orgId="one"), "orgId"),
        (lambda p: p["alerts"][1]["labels"].update(severity="urgent"), "alerts[1].labels.severity"),
        (lambda p: p["alerts"][0].pop("labels"), "alerts[0].labels.alertname"),
        (lambda p: p["alerts"][0].update(annotations={"summary": None}), "alerts[0].annotations.summary"),
    ],
)
def test_malformed_payloads_name_the_field(mutate: Any, field: str) -> None:
    payload = firing()
    mutate(payload)
    with pytest.raises(InvalidEventError) as caught:
        parse(payload)
    assert caught.value.field == field
