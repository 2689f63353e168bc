"""The generic webhook body: strict fields, precise field paths, and no input that raises anything else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsresponder.core.errors import InvalidEventError
from opsresponder.core.event import Event
from opsresponder.ingest.http.generic import decode_generic, decode_generic_fast, decode_json

NOW = datetime(2024, 12, 20, 10, 31, tzinfo=UTC)
VALID: dict[str, Any] = {"source": "s", "event_type": "alert", "severity": "high", "title": "t"}


def decode(body: bytes) -> list[Event | InvalidEventError]:
    fast = decode_generic_fast(body, NOW)
    if fast is not None:
        return fast.items
    return decode_generic(decode_json(body), NOW).items


def test_defaults_and_timestamp() -> None:
    (event,) = decode(msgspec.json.encode(VALID))
    assert isinstance(event, Event)
    assert event.occurred_at == NOW and event.source_type == "custom" and event.metadata == {}
    (event,) = decode(msgspec.json.encode({**VALID, "timestamp": "2024-12-20T12:30:00+02:00"}))
    assert isinstance(event, Event)
    assert event.occurred_at == datetime(2024, 12, 20, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**VALID, "severity": "urgent"}, "severity"),
        ({k: v for k, v in VALID.items() if k != "source"}, "source"),
        ({**VALID, "event_type": ""}, "event_type"),
        ({**VALID, "event_type": "x" * 65}, "event_type"),
        ({**VALID, "metadata": {"a": 1}, "tags": ["ok", 2]}, "tags[1]"),
        ({**VALID, "state": "gone"}, "state"),
    ],
)
def test_single_object_errors_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidEventError) as e:
        decode(msgspec.json.encode(body))
    assert e.value.field == field


def test_each_array_element_stands_alone() -> None:
    items = decode(msgspec.json.encode([VALID, {**VALID, "severity": 3}, "not an object"]))
    assert isinstance(items[0], Event)
    assert isinstance(items[1], InvalidEventError) and items[1].field == "[1].severity"
    assert isinstance(items[2], InvalidEventError) and items[2].field == "[2]"


def test_non_object_bodies_are_refused() -> None:
    for body in (b"42", b'"x"', b"null", b"", b"{", b"\xff\xfe"):
        with pytest.raises(InvalidEventError):
            decode(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_yield_events_or_invalid_event_errors(body: bytes) -> None:
    try:
        items = decode(body)
    except InvalidEventError:
        return
    assert all(isinstance(i, Event | InvalidEventError) for i in items)


@given(
    st.dictionaries(st.sampled_from([*VALID, "host", "timestamp", "tags", "metadata", "state"]), json_values)
)
def test_arbitrary_objects_yield_an_event_or_a_named_field(body: dict[str, Any]) -> None:
    try:
        items = decode(msgspec.json.encode({**VALID, **body}))
    except InvalidEventError as e:
        assert e.field is not None
        assert e.field.split("[")[0].split(".")[0] in {
            *VALID,
            "host",
            "timestamp",
            "tags",
            "metadata",
            "state",
        }
        return
    assert len(items) == 1 and isinstance(items[0], Event)
