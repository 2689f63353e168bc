"""`EventFilter` in Python: each condition, suppressed events, and the stream's headers."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from opsresponder.live.hub import EventHeader, FramedBatch, StreamClient, frame
from opsresponder.live.wire import encode_event
from opsresponder.rules.filter import EventFilter
from tests.factories import make_event


def test_an_empty_filter_leaves_out_suppressed_events_only() -> None:
    assert EventFilter().matches(make_event())
    assert not EventFilter().matches(make_event(suppressed_reason="maintenance"))
    assert EventFilter(include_suppressed=True).matches(make_event(suppressed_reason="maintenance"))
    assert not EventFilter(include_suppressed=True).has_conditions
    assert EventFilter(min_score=0.0).has_conditions


def test_a_header_matches_like_the_event_it_was_published_from() -> None:
    event = make_event(severity="critical", host="db-1", score=8.0, suppressed_reason="flapping")
    header = EventHeader(id=1, severity="critical", event_type=event.event_type, host="db-1", score=8.0,
                         suppressed_reason="flapping")  # fmt: skip
    for f in (
        EventFilter(),
        EventFilter(include_suppressed=True),
        EventFilter(include_suppressed=True, severity=("critical",), min_score=8.0),
        EventFilter(include_suppressed=True, host="db-2"),
        EventFilter(include_suppressed=True, min_score=8.5),
    ):
        assert f.matches(header) == f.matches(event), f


def _framed(*suppressed: str | None) -> FramedBatch:
    headers = [
        EventHeader(id=i, severity="high", event_type="alert", suppressed_reason=reason)
        for i, reason in enumerate(suppressed, start=1)
    ]
    return FramedBatch(headers, [frame(h.id, b"{}") for h in headers])


def test_a_client_with_the_default_filter_shares_a_batch_without_suppressed_events() -> None:
    client = StreamClient(EventFilter(), limit=100, registered_at=datetime.now(UTC))
    clean = _framed(None, None)
    assert client.offer(clean)
    mixed = _framed(None, "flapping", None)
    assert client.offer(mixed)
    shared, filtered = client.take()
    assert not clean.has_suppressed and mixed.has_suppressed  # said once per batch, for every client
    assert shared is clean  # the same frames as every other client
    assert [h.id for h in filtered.headers] == [1, 3]
    everything = StreamClient(
        EventFilter(include_suppressed=True), limit=100, registered_at=datetime.now(UTC)
    )
    assert everything.offer(mixed)
    assert everything.take() == [mixed]


def test_pattern_selects_the_events_of_one_template_id() -> None:
    ours = make_event(metadata={"pattern": {"id": "0123456789abcdef", "template": "disk <PATH> full"}})
    other = make_event(metadata={"pattern": {"id": "fedcba9876543210", "template": "cpu high"}})
    f = EventFilter(pattern="0123456789abcdef")
    assert f.has_conditions
    assert f.matches(ours) and not f.matches(other) and not f.matches(make_event())
    # What a sender put under metadata.pattern, without the stage, is no template id.
    assert not EventFilter(pattern="5").matches(make_event(metadata={"pattern": {"id": 5}}))
    assert not EventFilter(pattern="x").matches(make_event(metadata={"pattern": "x"}))


def test_a_published_header_carries_the_pattern_id_to_the_filter() -> None:
    event = make_event(metadata={"pattern": {"id": "0123456789abcdef", "template": "t"}, "other": [1]})
    event.id = 7
    header = msgspec.json.decode(encode_event(event), type=EventHeader)
    for f in (EventFilter(pattern="0123456789abcdef"), EventFilter(pattern="nope")):
        assert f.matches(header) == f.matches(event), f
    assert EventFilter(pattern="0123456789abcdef").matches(header)
