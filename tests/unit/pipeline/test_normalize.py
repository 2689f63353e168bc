"""normalize: trimming, UTC, fingerprints, and text PostgreSQL can hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from opsresponder.core.event import EventState, compute_fingerprint
from opsresponder.pipeline.stages import normalize
from tests.factories import make_event


def test_trims_and_empties_become_none() -> None:
    event = make_event(host="  web-01 ", service="   ", title="  t  ", tags=[" a", "a", "", "b "])
    normalize([event])
    assert event.host == "web-01"
    assert event.service is None
    assert event.title == "t"
    assert event.tags == ["a", "b"]


def test_datetimes_become_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    event = make_event(
        occurred_at=datetime(2024, 12, 20, 12, 30, tzinfo=plus2), received_at=datetime(2024, 12, 20)
    )
    normalize([event])
    assert event.occurred_at == datetime(2024, 12, 20, 10, 30, tzinfo=UTC)
    assert event.received_at.tzinfo is not None


def test_fingerprint_ignores_time_and_state_and_keeps_a_given_one() -> None:
    a = make_event(occurred_at=datetime(2024, 1, 1, tzinfo=UTC))
    b = make_event(state=EventState.RESOLVED)
    given = make_event(fingerprint="sender-id")
    normalize([a, b, given])
    assert (
        a.fingerprint
        == b.fingerprint
        == compute_fingerprint("test", "web-01", "nginx", "threshold_breach", "High CPU usage")
    )
    assert given.fingerprint == "sender-id"
    other = make_event(host="web-02")
    normalize([other])
    assert other.fingerprint != a.fingerprint


def test_nul_is_replaced_everywhere() -> None:
    event = make_event(
        title="a\x00b", description="c\x00", raw="\x00", metadata={"k\x00": ["v\x00", {"n": "\x00"}], "i": 1}
    )
    normalize([event])
    assert event.title == "a\ufffdb"
    assert event.description == "c\ufffd"
    assert event.raw == "\ufffd"
    assert event.metadata == {"k\ufffd": ["v\ufffd", {"n": "\ufffd"}], "i": 1}


def test_nul_is_replaced_in_identifiers_too() -> None:
    # A webhook's source and fingerprint are free text; PostgreSQL refused them with NUL (issue 14).
    event = make_event(source="a\x00", source_type="b\x00", event_type="c\x00", fingerprint="d\x00")
    normalize([event])
    assert (event.source, event.source_type, event.event_type, event.fingerprint) == (
        "a\ufffd",
        "b\ufffd",
        "c\ufffd",
        "d\ufffd",
    )
