"""Alertmanager webhook v4: samples as Alertmanager sends them, and refused variants naming the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from opsresponder.core.errors import InvalidEventError
from opsresponder.core.event import EventState, is_event_type
from opsresponder.core.severity import Severity
from opsresponder.ingest.http.adapters import ADAPTERS
from opsresponder.ingest.http.adapters.alertmanager import AlertmanagerAdapter
from tests.unit.ingest.http import RECEIVED_AT, sample

ADAPTER = AlertmanagerAdapter()


def parse(payload: Any) -> list[Any]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return ADAPTER.parse(body, "application/json", RECEIVED_AT)


def firing() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(sample("alertmanager_firing.json"))
    return result


def test_multi_alert_body_gives_one_event_per_alert_in_order() -> None:
    cpu, disk = parse(sample("alertmanager_firing.json"))

    assert cpu.source == "alertmanager.example.com"
    assert cpu.source_type == "prometheus"
    assert cpu.event_type == "high_cpu_usage"
    assert cpu.severity is Severity.CRITICAL
    assert cpu.state is EventState.PROBLEM
    assert cpu.host == "web-01.example.com"
    assert cpu.service == "node"
    assert cpu.title == "CPU usage above 90% on web-01.example.com:9100"
    assert cpu.description == "CPU usage has been above 90% for 5 minutes (current value: 95.5%)."
    assert cpu.occurred_at == datetime(2024, 12, 20, 10, 30, 0, 123457, tzinfo=UTC)
    assert cpu.received_at == RECEIVED_AT
    assert cpu.tags == ["team:web", "env:production"]
    assert cpu.metadata["labels"]["alertname"] == "HighCPUUsage"
    assert cpu.metadata["annotations"]["runbook_url"] == "https://runbooks.example.com/high-cpu"
    assert cpu.metadata["source_fingerprint"] == "5ae9b5a4d8c0e1f2"
    assert cpu.metadata["generator_url"].startswith("http://prometheus.example.com:9090/graph")
    assert cpu.metadata["receiver"] == "opsresponder"
    assert cpu.metadata["status"] == "firing"
    assert "ends_at" not in cpu.metadata  # 0001-01-01 means unset
    assert json.loads(cpu.raw or "")["fingerprint"] == "5ae9b5a4d8c0e1f2"

    assert disk.event_type == "disk_space_low"
    assert disk.severity is Severity.MEDIUM
    assert disk.host == "2001:db8::5"
    assert disk.description is None
    assert disk.occurred_at == datetime(2024, 12, 20, 9, 31, tzinfo=UTC)  # +01:00 converted
    assert cpu.fingerprint != disk.fingerprint


def test_resolve_keeps_event_type_and_fingerprint_of_its_problem() -> None:
    (problem, _) = parse(sample("alertmanager_firing.json"))
    (resolve,) = parse(sample("alertmanager_resolved.json"))

    assert resolve.state is EventState.RESOLVED
    assert resolve.event_type == problem.event_type
    assert resolve.fingerprint == problem.fingerprint
    assert resolve.severity is Severity.INFO
    assert resolve.metadata["problem_severity"] == "critical"
    assert resolve.occurred_at == datetime(2024, 12, 20, 10, 45, tzinfo=UTC)  # endsAt
    assert resolve.description != problem.description  # the text changed, the identity did not


def test_fingerprint_ignores_receiver_and_external_url_of_ha_replicas() -> None:
    other_replica = firing()
    other_replica["externalURL"] = "http://alertmanager-2.example.com:9093"
    other_replica["receiver"] = "ops"
    assert [e.fingerprint for e in parse(other_replica)] == [e.fingerprint for e in parse(firing())]


def test_registry_and_source_fallbacks() -> None:
    assert ADAPTERS["alertmanager"] is ADAPTERS["prometheus"]
    payload = firing()
    payload["externalURL"] = ""
    assert parse(payload)[0].source == "opsresponder"
    payload["receiver"] = ""
    assert parse(payload)[0].source == "alertmanager"


@pytest.mark.parametrize(
    ("labels", "event_type", "host", "service"),
    [
        ({"alertname": "KubePodCrashLooping"}, "kube_pod_crash_looping", None, None),
        ({"alertname": "X", "event_type": "threshold_breach"}, "threshold_breach", None, None),
        ({"alertname": "Instance down!"}, "instance_down", None, None),
        ({"alertname": "!!!"}, "alert", None, None),
        ({"alertname": "a", "instance": "https://example.com/health"}, "a", "example.com", None),
        ({"alertname": "a", "host": "h1", "instance": "h2:1", "job": "j", "service": "s"}, "a", "h1", "s"),
    ],
)
def test_labels_map_to_identifiers_host_and_service(
    labels: dict[str, str], event_type: str, host: str | None, service: str | None
) -> None:
    payload = {"version": "4", "alerts": [{"status": "firing", "labels": labels}]}
    (event,) = parse(payload)
    assert (event.event_type, event.host, event.service) == (event_type, host, service)
    assert is_event_type(event.event_type)
    assert event.title == labels["alertname"]
    assert event.occurred_at == RECEIVED_AT  # no startsAt


@pytest.mark.parametrize(
    ("value", "severity"),
    [("page", "critical"), ("ERROR", "high"), ("warning", "medium"), ("minor", "low"), ("none", "info")],
)
def test_severity_label_table(value: str, severity: str) -> None:
    payload = {"alerts": [{"status": "firing", "labels": {"alertname": "A", "severity": value}}]}
    assert parse(payload)[0].severity == severity


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.pop("alerts"), "alerts"),
        (lambda p: p.update(alerts={}), "alerts"),
        (lambda p: p["alerts"][1]["labels"].pop("alertname"), "alerts[1].labels.alertname"),
        (lambda p: p["alerts"][1]["labels"].update(alertname=""), "alerts[1].labels.alertname"),
        (lambda p: p["alerts"][0]["labels"].update(severity="sev9"), "alerts[0].labels.severity"),
        (lambda p: p["alerts"][0]["labels"].update(team=7), "alerts[0].labels.team"),
        (lambda p: p["alerts"][1].update(status="pending"), "alerts[1].status"),
        (lambda p: p["alerts"][1].pop("status"), "alerts[1].status"),
        (lambda p: p["alerts"][0].update(startsAt="yesterday"), "alerts[0].startsAt"),
        (lambda p: p["alerts"][0].update(endsAt="9999-12-31T23:00:00-02:00"), "alerts[0].endsAt"),
        (lambda p: p["alerts"].__setitem__(0, "alert"), "alerts[0]"),
        (lambda p: p.update(commonLabels=[]), "commonLabels"),
        (lambda p: p.update(truncatedAlerts="none"), "truncatedAlerts"),
    ],
)
def test_malformed_payloads_name_the_field(mutate: Any, field: str) -> None:
    payload = firing()
    mutate(payload)
    with pytest.raises(InvalidEventError) as caught:
        parse(payload)
    assert caught.value.field == field


@pytest.mark.parametrize("body", [b"", b"{", b"not json", b"[" * 100_000])
def test_malformed_json_has_no_field(body: bytes) -> None:
    with pytest.raises(InvalidEventError) as caught:
        parse(body)
    assert caught.value.field is None


def test_body_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidEventError) as caught:
        parse([1, 2])
    assert caught.value.field is None
    assert "object" in caught.value.message


def test_raw_is_the_alert_itself_compact() -> None:
    payload = firing()
    payload["alerts"][0]["extra"] = {"kept": True}
    event = parse(payload)[0]
    assert event.raw == msgspec.json.encode(payload["alerts"][0]).decode()
