"""Zabbix media type JSON: problem, recovery and update messages, severities, refusals naming the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from opsresponder.core.errors import InvalidEventError
from opsresponder.core.event import EventState
from opsresponder.core.severity import Severity
from opsresponder.ingest.http.adapters.zabbix import ZabbixAdapter
from tests.unit.ingest.http import RECEIVED_AT, sample

ADAPTER = ZabbixAdapter()


def parse(payload: Any) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    (event,) = ADAPTER.parse(body, "application/json", RECEIVED_AT)
    return event


def problem() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(sample("zabbix_problem.json"))
    return result


def test_problem() -> None:
    event = parse(sample("zabbix_problem.json"))

    assert event.source == "zabbix-prod"
    assert event.source_type == "zabbix"
    assert event.event_type == "system.cpu.util"
    assert event.severity is Severity.HIGH
    assert event.state is EventState.PROBLEM
    assert event.host == "web-01"
    assert event.service == "web"
    assert event.title == "Linux: High CPU utilization (over 90% for 5m)"
    assert event.description == "CPU utilization is too high. The system might be slow to respond."
    assert event.occurred_at == datetime(2024, 12, 20, 10, 30, tzinfo=UTC)
    assert event.tags == ["class:os", "component:cpu", "scope:performance", "service:web", "critical-path"]
    assert event.metadata["source_event_id"] == "8317"
    assert event.metadata["trigger_id"] == "23117"
    assert event.metadata["host_name"] == "Web server 01"
    assert event.metadata["host_ip"] == "10.0.0.5"
    assert event.metadata["zabbix_severity"] == "High"
    assert event.metadata["opdata"] == "Current utilization: 95.3 %"
    assert event.metadata["metrics"] == {"system_cpu_util": 95.3, "system_cpu_load_all_avg1": 4.52}
    assert event.metadata["system_cpu_util"] == 95.3
    assert event.metadata["items"][0] == {
        "name": "Linux: CPU utilization",
        "key": "system.cpu.util",
        "value": "95.3 %",
    }
    assert "recovery_event_id" not in event.metadata
    assert json.loads(event.raw)["event"]["id"] == "8317"


def test_recovery_matches_its_problem() -> None:
    first = parse(sample("zabbix_problem.json"))
    recovery = parse(sample("zabbix_recovery.json"))

    assert recovery.state is EventState.RESOLVED
    assert recovery.fingerprint == first.fingerprint
    assert recovery.event_type == first.event_type
    assert recovery.severity is Severity.INFO
    assert recovery.metadata["problem_severity"] == "high"
    assert recovery.metadata["recovery_event_id"] == "8342"
    assert recovery.metadata["source_event_id"] == "8317"
    assert recovery.occurred_at == datetime(2024, 12, 20, 10, 52, 30, tzinfo=UTC)
    assert recovery.metadata["metrics"]["system_cpu_util"] == 31.0


def test_acknowledgement_is_its_own_event_linked_to_the_problem() -> None:
    first = parse(sample("zabbix_problem.json"))
    ack = parse(sample("zabbix_acknowledged.json"))

    assert ack.event_type == "acknowledgement"
    assert ack.state is EventState.PROBLEM
    assert ack.severity is Severity.INFO
    assert ack.fingerprint != first.fingerprint
    assert ack.metadata["problem_fingerprint"] == first.fingerprint
    assert ack.metadata["update_user"] == "Jane Admin"
    assert ack.metadata["update_action"] == "acknowledged and commented"
    assert ack.description == "Looking into it, deploy in progress."
    assert ack.occurred_at == RECEIVED_AT
    assert ack.tags == ["service:web"]  # TAGSJSON sent as its JSON text
    assert "recovery_event_id" not in ack.metadata  # unresolved macro


@pytest.mark.parametrize(
    ("action", "event_type"),
    [
        ("commented", "problem_update"),
        ("unacknowledged", "problem_update"),
        ("acknowledged", "acknowledgement"),
    ],
)
def test_update_kinds(action: str, event_type: str) -> None:
    payload = problem()
    payload["event"].update(update_status="1", update_action=action)
    assert parse(payload).event_type == event_type


@pytest.mark.parametrize(
    ("fields", "severity"),
    [
        ({"severity": "Disaster", "nseverity": "5"}, Severity.CRITICAL),
        ({"severity": "Average", "nseverity": ""}, Severity.MEDIUM),
        ({"severity": "warning", "nseverity": "{EVENT.NSEVERITY}"}, Severity.LOW),
        ({"severity": "Information", "nseverity": 1}, Severity.INFO),
        ({"severity": "Not classified", "nseverity": ""}, Severity.INFO),
        ({"severity": "Renamed by admin", "nseverity": "4"}, Severity.HIGH),
    ],
)
def test_severity_table(fields: dict[str, Any], severity: Severity) -> None:
    payload = problem()
    payload["event"].update(fields)
    assert parse(payload).severity is severity


def test_fallbacks_without_optional_fields() -> None:
    payload = {
        "event": {"id": 42, "name": "Zabbix agent is not available", "nseverity": 3, "status": "PROBLEM"},
        "host": {"host": "db-01"},
    }
    event = parse(payload)
    assert event.source == "zabbix"
    assert event.event_type == "zabbix_problem"
    assert event.occurred_at == RECEIVED_AT
    assert event.service is None
    assert event.metadata["source_event_id"] == "42"


def test_event_type_tag_and_date_time_read_as_utc() -> None:
    payload = problem()
    payload["event"]["tags"].append({"tag": "event_type", "value": "High CPU"})
    payload["event"]["timestamp"] = ""
    payload["source"] = ""
    event = parse(payload)
    assert event.event_type == "high_cpu"
    assert event.occurred_at == datetime(2024, 12, 20, 10, 30, tzinfo=UTC)
    assert event.source == "zabbix.example.com"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.pop("event"), "event"),
        (lambda p: p.pop("host"), "host"),
        (lambda p: p["host"].pop("host"), "host.host"),
        (lambda p: p["host"].update(host="{HOST.HOST}"), "host.host"),
        (lambda p: p["event"].pop("id"), "event.id"),
        (lambda p: p["event"].update(name=""), "event.name"),
        (lambda p: p["event"].update(nseverity="9"), "event.nseverity"),
        (lambda p: p["event"].update(nseverity="", severity="Catastrophic"), "event.severity"),
        (lambda p: p["event"].update(nseverity="", severity=""), "event.severity"),
        (lambda p: p["event"].update(value="2", status="UNKNOWN"), "event.value"),
        (lambda p: p["event"].update(timestamp="20 Dec"), "event.timestamp"),
        (lambda p: p["event"].update(timestamp="", date="2024-12-20"), "event.date"),
        (lambda p: p["event"].update(tags="not json"), "event.tags"),
        (lambda p: p["event"].update(tags=[{"value": "x"}]), "event.tags[0].tag"),
        (lambda p: p["items"].append({"value": {}}), "items[2].value"),
        (lambda p: p["host"].update(ip=["10.0.0.5"]), "host.ip"),
    ],
)
def test_malformed_payloads_name_the_field(mutate: Any, field: str) -> None:
    payload = problem()
    mutate(payload)
    with pytest.raises(InvalidEventError) as caught:
        parse(payload)
    assert caught.value.field == field


def test_recovery_with_bad_recovery_time_names_it() -> None:
    payload = json.loads(sample("zabbix_recovery.json"))
    payload["event"]["recovery_timestamp"] = "later"
    with pytest.raises(InvalidEventError) as caught:
        parse(payload)
    assert caught.value.field == "event.recovery_timestamp"


def test_malformed_json() -> None:
    with pytest.raises(InvalidEventError) as caught:
        parse(b'{"event": ')
    assert caught.value.field is None
