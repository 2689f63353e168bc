"""Property tests: whatever arrives, every adapter returns events or raises InvalidEventError."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from opsresponder.core.errors import InvalidEventError
from opsresponder.core.event import Event, is_event_type
from opsresponder.ingest.http.adapters import ADAPTERS, detect_adapter
from tests.unit.ingest.http import RECEIVED_AT, SAMPLES

NAMES = sorted(ADAPTERS)
CONTENT_TYPES = st.sampled_from(["application/json", "application/x-www-form-urlencoded", "", "text/plain"])
KEYS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["alerts", "labels", "alertname", "status", "firing", "resolved", "event", "host", "id", "name",
         "HOSTNAME", "HOSTSTATE", "SERVICEDESC", "SERVICESTATE", "NOTIFICATIONTYPE", "TIMET", "values",
         "severity", "nseverity", "value", "startsAt", "endsAt", "instance", "tags", "items", "version"]
    ),
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(
        ["firing", "resolved", "DOWN", "OK", "CRITICAL", "1", "0", "critical", "9999-12-31T23:59:59-05:00"]
    ),
)
JSONISH = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=30,
)


def _check(events: list[Event]) -> None:
    for event in events:
        assert is_event_type(event.event_type)
        assert event.title
        assert event.fingerprint
        assert event.occurred_at.tzinfo is not None
        msgspec.json.encode(event)  # storable as JSON


def _parse(name: str, body: bytes, content_type: str) -> None:
    try:
        events = ADAPTERS[name].parse(body, content_type, RECEIVED_AT)
    except InvalidEventError:
        return
    _check(events)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(value=JSONISH, content_type=CONTENT_TYPES)
def test_any_json_value_gives_events_or_invalid_event_error(name: str, value: Any, content_type: str) -> None:
    _parse(name, json.dumps(value).encode(), content_type)
    detect_adapter(value)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=150)
@given(body=st.binary(max_size=300), content_type=CONTENT_TYPES)
@example(body=b'["a\x80"]', content_type="application/json")  # not UTF-8 inside a string (found by it)
@example(body=b'{"title": "\xff"}', content_type="application/json")
def test_any_bytes_give_events_or_invalid_event_error(name: str, body: bytes, content_type: str) -> None:
    _parse(name, body, content_type)


def _samples() -> list[tuple[str, dict[str, Any]]]:
    """Each JSON sample (with the adapter that reads it) as a starting point for mutations."""
    prefixes = {"alertmanager": "alertmanager", "grafana": "grafana", "zabbix": "zabbix", "nagios": "nagios"}
    return [
        (name, json.loads(path.read_bytes()))
        for path in sorted(SAMPLES.glob("*.json"))
        for prefix, name in prefixes.items()
        if path.name.startswith(prefix)
    ]


def _mutate(document: Any, path: list[int], replacement: Any) -> Any:
    """Replace one node (chosen by `path`, indices modulo the container size) with `replacement`."""
    if not path or not isinstance(document, dict | list) or not document:
        return replacement
    if isinstance(document, dict):
        key = sorted(document)[path[0] % len(document)]
        return {**document, key: _mutate(document[key], path[1:], replacement)}
    index = path[0] % len(document)
    return [*document[:index], _mutate(document[index], path[1:], replacement), *document[index + 1 :]]


@settings(max_examples=300)
@given(
    sample=st.sampled_from(_samples()),
    path=st.lists(st.integers(min_value=0, max_value=50), max_size=4),
    replacement=JSONISH,
)
def test_mutated_real_samples_give_events_or_invalid_event_error(
    sample: tuple[str, dict[str, Any]], path: list[int], replacement: Any
) -> None:
    name, document = sample
    _parse(name, json.dumps(_mutate(document, path, replacement)).encode(), "application/json")
