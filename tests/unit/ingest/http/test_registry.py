"""The adapter registry, native payload detection at the generic endpoint, and the shared helpers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from opsresponder.core.errors import InvalidEventError
from opsresponder.ingest.http.adapters import ADAPTERS, detect_adapter
from opsresponder.ingest.http.adapters._common import (
    add_metrics,
    convert,
    event_type_from,
    leading_number,
    metric_name,
    strip_port,
)
from opsresponder.ingest.http.adapters.zabbix import ZabbixPayload
from tests.unit.ingest.http import sample


def test_registry_keys_and_names() -> None:
    assert {key: adapter.name for key, adapter in ADAPTERS.items()} == {
        "alertmanager": "alertmanager",
        "prometheus": "alertmanager",
        "grafana": "grafana",
        "zabbix": "zabbix",
        "nagios": "nagios",
        "icinga": "icinga",
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("alertmanager_firing.json", "alertmanager"),
        ("grafana_firing.json", "grafana"),
        ("zabbix_problem.json", "zabbix"),
        ("nagios_service_problem.json", "nagios"),
    ],
)
def test_detects_each_native_sample(name: str, expected: str) -> None:
    adapter = detect_adapter(json.loads(sample(name)))
    assert adapter is not None
    assert adapter.name == expected


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"source_type": "prometheus", "version": "4", "alerts": []}, "alertmanager"),
        ({"source_type": "prometheus", "alerts": []}, "alertmanager"),
        ({"groupKey": "{}", "alerts": []}, "alertmanager"),
        ({"source_type": "grafana", "alerts": []}, "grafana"),
        ({"orgId": 1, "version": "4", "alerts": []}, "grafana"),
        ({"source_type": "icinga", "hostname": "h", "hoststate": "DOWN"}, "icinga"),
        ({"source_type": "nagios", "HOSTNAME": "h", "NOTIFICATIONTYPE": "PROBLEM"}, "nagios"),
        ({"event": {}, "host": {}}, "zabbix"),
    ],
)
def test_detects_native_shapes(payload: dict[str, Any], expected: str) -> None:
    adapter = detect_adapter(payload)
    assert adapter is not None
    assert adapter.name == expected


@pytest.mark.parametrize(
    "payload",
    [
        {
            "source": "nagios-01",
            "source_type": "nagios",
            "event_type": "alert",
            "severity": "high",
            "host": "web-01",
            "title": "t",
        },
        {"source_type": "prometheus", "title": "generic with a prometheus source type", "host": "h"},
        {"alerts": "not a list", "version": "4"},
        {"alerts": []},
        [{"alerts": []}],
        "text",
        None,
    ],
)
def test_generic_bodies_are_not_native(payload: object) -> None:
    assert detect_adapter(payload) is None


@pytest.mark.parametrize(
    ("instance", "host"),
    [
        ("10.0.0.5:9100", "10.0.0.5"),
        ("web-01", "web-01"),
        ("[::1]:9100", "::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("https://user@example.com:8443/health", "example.com"),
        ("host:notaport", "host:notaport"),
    ],
)
def test_strip_port(instance: str, host: str) -> None:
    assert strip_port(instance) == host


@pytest.mark.parametrize(
    ("text", "event_type"),
    [
        ("HighCPUUsage", "high_cpu_usage"),
        ("KubeAPIErrorBudgetBurn", "kube_api_error_budget_burn"),
        ("High memory usage", "high_memory_usage"),
        ("system.cpu.util", "system.cpu.util"),
        ("Disk /var", "disk_var"),
        ("Ünïcode", "n_code"),
        ("x" * 80, "x" * 64),
        ("___", "fallback"),
    ],
)
def test_event_type_from(text: str, event_type: str) -> None:
    assert event_type_from(text, "fallback") == event_type


def test_metric_helpers() -> None:
    assert leading_number("95.3 %") == 95.3
    assert leading_number("up") is None
    assert leading_number("1e999") is None
    assert metric_name("/") == "root"
    assert metric_name("/var/log") == "var_log"
    assert metric_name("---") == ""
    metadata: dict[str, Any] = {"state": "CRITICAL"}
    add_metrics(metadata, {"state": 1.0, "cpu": 2.0, "": 3.0, "nan": float("nan")})
    assert metadata == {"state": "CRITICAL", "metrics": {"state": 1.0, "cpu": 2.0}, "cpu": 2.0}


def test_convert_names_the_missing_field_itself() -> None:
    with pytest.raises(InvalidEventError) as caught:
        convert({"event": {"name": "n"}, "host": {"host": "h"}}, ZabbixPayload)
    assert caught.value.field == "event.id"
    with pytest.raises(InvalidEventError) as caught:
        convert({"event": {"id": 1, "name": "n"}, "host": {"host": 1}}, ZabbixPayload, "[3]")
    assert caught.value.field == "[3].host.host"
