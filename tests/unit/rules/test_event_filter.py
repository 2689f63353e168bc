"""`EventFilter` in Python: each condition, suppressed events, and the stream's headers."""

from __future__ import annotations

from opsresponder.live.hub import EventHeader
from opsresponder.rules.filter import EventFilter
from tests.factories import make_event


def test_an_empty_filter_leaves_out_suppressed_events_only() -> None:
    assert EventFilter().matches(make_event())
    assert not EventFilter().matches(make_event(suppressed_reason="maintenance"))
    assert EventFilter(include_suppressed=True).matches(make_event(suppressed_reason="maintenance"))
    assert not EventFilter().matches_everything
    assert EventFilter(include_suppressed=True).matches_everything


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
