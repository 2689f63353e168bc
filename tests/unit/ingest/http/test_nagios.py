"""Nagios and Icinga 2 notifications, JSON and form-encoded: states, types, perfdata, refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest

from opsresponder.core.errors import InvalidEventError
from opsresponder.core.event import EventState
from opsresponder.core.severity import Severity
from opsresponder.ingest.http.adapters import ADAPTERS
from opsresponder.ingest.http.adapters.nagios import parse_perfdata
from tests.unit.ingest.http import RECEIVED_AT, sample

FORM = "application/x-www-form-urlencoded"


def parse(payload: Any, content_type: str = "application/json", adapter: str = "nagios") -> list[Any]:
    if isinstance(payload, bytes):
        body = payload
    elif content_type == FORM:
        body = urlencode(payload).encode()
    else:
        body = json.dumps(payload).encode()
    return ADAPTERS[adapter].parse(body, content_type, RECEIVED_AT)


def service_problem() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(sample("nagios_service_problem.json"))
    return result


def test_service_problem_json() -> None:
    (event,) = parse(sample("nagios_service_problem.json"))

    assert event.source == "nagios"
    assert event.source_type == "nagios"
    assert event.event_type == "cpu_load"
    assert event.severity is Severity.CRITICAL
    assert event.state is EventState.PROBLEM
    assert event.host == "web-01"
    assert event.service == "CPU Load"
    assert event.title == "CPU Load on web-01 is CRITICAL"
    assert event.description == (
        "CRITICAL - load average: 12.50, 9.80, 7.10\nTop process: java (pid 4242)\nSecond: nginx"
    )
    assert event.occurred_at == datetime(2024, 12, 20, 10, 30, tzinfo=UTC)
    assert event.metadata["metrics"] == {"load1": 12.5, "load5": 9.8, "load15": 7.1}
    assert event.metadata["load1"] == 12.5
    assert event.metadata["perfdata"][0] == {
        "label": "load1",
        "value": 12.5,
        "uom": "",
        "warn": "5.000",
        "crit": "10.000",
        "min": 0.0,
        "max": None,
    }
    assert event.metadata["source_event_id"] == "1289"
    assert event.metadata["notification_type"] == "PROBLEM"
    assert event.metadata["host_address"] == "10.0.0.5"
    assert event.metadata["state_type"] == "HARD"
    assert json.loads(event.raw)["SERVICEDESC"] == "CPU Load"


def test_form_encoded_recovery_matches_the_json_problem() -> None:
    (first,) = parse(sample("nagios_service_problem.json"))
    (recovery,) = parse(sample("nagios_service_recovery.txt"), FORM)

    assert recovery.state is EventState.RESOLVED
    assert recovery.fingerprint == first.fingerprint
    assert recovery.event_type == first.event_type
    assert recovery.severity is Severity.INFO
    assert recovery.metadata["problem_severity"] == "critical"  # LASTSERVICESTATE
    assert recovery.metadata["source_event_id"] == "1289"  # LASTSERVICEPROBLEMID
    assert recovery.metadata["metrics"]["load1"] == 0.5
    assert recovery.occurred_at == datetime(2024, 12, 20, 10, 55, tzinfo=UTC)


def test_host_down_form_without_content_type() -> None:
    (event,) = parse(sample("nagios_host_down.txt"), "")
    assert event.event_type == "host_down"
    assert event.service is None  # $SERVICEDESC$ left unresolved
    assert event.severity is Severity.CRITICAL
    assert event.title == "db-01 is DOWN"
    assert event.metadata["metrics"] == {"rta": 5000.0, "pl": 100.0}
    assert event.metadata["perfdata"][0]["uom"] == "ms"

    (up,) = parse({"HOSTNAME": "db-01", "HOSTSTATE": "UP", "NOTIFICATIONTYPE": "RECOVERY"}, FORM)
    assert up.state is EventState.RESOLVED
    assert up.event_type == "host_down"
    assert up.fingerprint == event.fingerprint
    assert "problem_severity" not in up.metadata


def test_acknowledgement_is_informational_and_linked() -> None:
    (first,) = parse(sample("nagios_service_problem.json"))
    (ack,) = parse(sample("nagios_acknowledgement.json"))
    assert ack.event_type == "acknowledgement"
    assert ack.severity is Severity.INFO
    assert ack.state is EventState.PROBLEM
    assert ack.fingerprint != first.fingerprint
    assert ack.metadata["problem_fingerprint"] == first.fingerprint
    assert ack.metadata["problem_severity"] == "critical"
    assert ack.metadata["notification_author"] == "jane"
    assert ack.title == "ACKNOWLEDGEMENT: CPU Load on web-01 is CRITICAL"
    assert ack.occurred_at == datetime(2024, 12, 20, 10, 31, 40, tzinfo=UTC)  # TIMET as a number


@pytest.mark.parametrize(
    ("notification", "event_type"),
    [
        ("FLAPPINGSTART", "flapping_start"),
        ("FlappingEnd", "flapping_stop"),
        ("FLAPPINGSTOP", "flapping_stop"),
        ("FLAPPINGDISABLED", "flapping_disabled"),
        ("DOWNTIMESTART", "downtime_start"),
        ("DowntimeEnd", "downtime_end"),
        ("DOWNTIMECANCELLED", "downtime_cancelled"),
        ("DowntimeRemoved", "downtime_cancelled"),
        ("CUSTOM", "custom_notification"),
    ],
)
def test_notification_types(notification: str, event_type: str) -> None:
    payload = service_problem() | {"NOTIFICATIONTYPE": notification}
    (event,) = parse(payload)
    assert (event.event_type, event.severity, event.state) == (event_type, Severity.INFO, EventState.PROBLEM)


@pytest.mark.parametrize(
    ("fields", "severity", "state"),
    [
        ({"SERVICESTATE": "WARNING"}, Severity.MEDIUM, EventState.PROBLEM),
        ({"SERVICESTATE": "unknown"}, Severity.LOW, EventState.PROBLEM),
        ({"SERVICESTATE": "OK", "NOTIFICATIONTYPE": ""}, Severity.INFO, EventState.RESOLVED),
        ({"SERVICEDESC": "", "HOSTSTATE": "UNREACHABLE"}, Severity.HIGH, EventState.PROBLEM),
    ],
)
def test_state_table(fields: dict[str, str], severity: Severity, state: EventState) -> None:
    (event,) = parse(service_problem() | fields)
    assert (event.severity, event.state) == (severity, state)


def test_icinga_native_names() -> None:
    (event,) = parse(sample("icinga_service_problem.json"), "application/json", "icinga")
    assert event.source == "icinga"
    assert event.source_type == "icinga"
    assert event.host == "fs-01.example.com"
    assert event.service == "disk"
    assert event.severity is Severity.MEDIUM
    assert event.metadata["service_display_name"] == "Disk space"
    assert event.metadata["host_alias"] == "File server 01"
    assert event.metadata["metrics"] == {"root": 23893.0, "var": 9337.0, "used_space": 91.0}
    assert event.occurred_at == datetime(2024, 12, 20, 10, 30, tzinfo=UTC)

    recovery = json.loads(sample("icinga_service_problem.json"))
    recovery |= {"notification.type": "Recovery", "service.state": "OK", "service.last_state": "Warning"}
    (resolve,) = parse(recovery, "application/json", "icinga")
    assert resolve.state is EventState.RESOLVED
    assert resolve.fingerprint == event.fingerprint
    assert resolve.metadata["problem_severity"] == "medium"


def test_lower_case_names_source_event_type_and_arrays() -> None:
    payload = {k.lower(): v for k, v in service_problem().items()}
    payload |= {"source": "nagios-eu", "eventtype": "threshold_breach"}
    events = parse([payload, service_problem()])
    assert [e.source for e in events] == ["nagios-eu", "nagios"]
    assert events[0].event_type == "threshold_breach"
    assert events[0].fingerprint != events[1].fingerprint  # another Nagios server


@pytest.mark.parametrize(
    ("text", "metrics"),
    [
        ("load1=0.5;5;10;0", {"load1": 0.5}),
        ("cpu_usage=95%", {"cpu_usage": 95.0}),
        ("'used space'=91%;80;90 time=0.01s;;;0;10", {"used space": 91.0, "time": 0.01}),
        ("'it''s'=1", {"it's": 1.0}),
        ("a=U b=1e3 c=abc d=", {"a": None, "b": 1000.0}),
        ("x=-1.5e-2KB;@10:20;~:5", {"x": -0.015}),
        ("", {}),
    ],
)
def test_perfdata(text: str, metrics: dict[str, float | None]) -> None:
    assert {p["label"]: p["value"] for p in parse_perfdata(text)} == metrics


@pytest.mark.parametrize(
    ("payload", "content_type", "field"),
    [
        ({"SERVICEDESC": "x", "SERVICESTATE": "OK"}, FORM, "HOSTNAME"),
        ({"HOSTNAME": ""}, FORM, "HOSTNAME"),
        ({"HOSTNAME": "h"}, FORM, "HOSTSTATE"),
        ({"HOSTNAME": "h", "SERVICEDESC": "s"}, "application/json", "SERVICESTATE"),
        ({"HOSTNAME": "h", "SERVICEDESC": "s", "SERVICESTATE": "BROKEN"}, FORM, "SERVICESTATE"),
        ({"HOSTNAME": "h", "HOSTSTATE": "CRITICAL"}, FORM, "HOSTSTATE"),
        ({"HOSTNAME": "h", "HOSTSTATE": "DOWN", "NOTIFICATIONTYPE": "PANIC"}, FORM, "NOTIFICATIONTYPE"),
        ({"HOSTNAME": "h", "HOSTSTATE": "DOWN", "TIMET": "noon"}, FORM, "TIMET"),
        ({"HOSTNAME": "h", "HOSTSTATE": "DOWN", "TIMET": "1e300"}, FORM, "TIMET"),
        ({"HOSTNAME": ["h"], "HOSTSTATE": "DOWN"}, "application/json", "HOSTNAME"),
        ([{"HOSTNAME": "h", "HOSTSTATE": "DOWN"}, {"HOSTSTATE": "DOWN"}], "application/json", "[1].HOSTNAME"),
        ([{"HOSTNAME": "h", "HOSTSTATE": "DOWN"}, 3], "application/json", "[1]"),
    ],
)
def test_malformed_notifications_name_the_field(payload: Any, content_type: str, field: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        parse(payload, content_type)
    assert caught.value.field == field


@pytest.mark.parametrize("body", [b"{", b'"just a string"', b"[", b'{"HOSTNAME": '])
def test_malformed_json(body: bytes) -> None:
    with pytest.raises(InvalidEventError) as caught:
        parse(body)
    assert caught.value.field is None


def test_form_with_too_many_fields_is_refused() -> None:
    with pytest.raises(InvalidEventError) as caught:
        parse("&".join(f"f{i}=1" for i in range(1000)).encode(), FORM)
    assert caught.value.field is None
