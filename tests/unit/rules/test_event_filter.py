"""`EventFilter` in Python: each condition, suppressed events, and the stream's headers."""

from __future__ import annotations

from datetime import UTC, datetime

from opsresponder.live.hub import EventHeader, FramedBatch, StreamClient, frame
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
