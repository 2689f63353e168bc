"""The placeholder correlation stage: one new, valid, random correlation id per event that has none."""

from __future__ import annotations

import uuid

import msgspec

from opsresponder.pipeline.stages.correlate import correlate
from tests.factories import make_event


def test_each_event_without_one_gets_a_distinct_version_4_id() -> None:
    events = [make_event(host=f"h{i}") for i in range(2000)]
    correlate(events)
    ids = [e.correlation_id for e in events]
    assert len(set(ids)) == len(ids)
    for value in ids:
        assert isinstance(value, uuid.UUID)
        parsed = uuid.UUID(str(value))
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
    # It serializes like any UUID (the API, the stream and the outbox encode it with msgspec).
    assert msgspec.json.decode(msgspec.json.encode(events[0]))["correlation_id"] == str(ids[0])


def test_an_existing_correlation_is_kept() -> None:
    known = uuid.uuid4()
    first, second = make_event(correlation_id=known), make_event(host="other")
    correlate([first, second])
    assert first.correlation_id == known
    assert second.correlation_id not in (None, known)


def test_an_empty_batch_is_fine() -> None:
    correlate([])
