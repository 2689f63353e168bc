"""Backoff bounds (full jitter), filter semantics and the delivery payload."""

from __future__ import annotations

import random

import msgspec
import pytest

from opsresponder.core.severity import Severity
from opsresponder.outbound.delivery import backoff_delay, encode_payload
from opsresponder.rules.filter import EventFilter
from tests.factories import make_event


@pytest.mark.parametrize("failures", [1, 2, 3, 5, 10, 20, 64, 1000])
def test_backoff_stays_within_full_jitter_bounds(failures: int) -> None:
    rng = random.Random(failures)
    ceiling = min(60.0, 0.5 * 2 ** (failures - 1)) if failures < 64 else 60.0
    samples = [backoff_delay(failures, base=0.5, cap=60.0, rng=rng) for _ in range(2000)]
    assert all(0 <= s <= ceiling for s in samples)
    # Full jitter spreads over the whole interval, not only near its top.
    assert min(samples) < ceiling * 0.05
    assert max(samples) > ceiling * 0.95


def test_backoff_grows_until_the_cap() -> None:
    rng = random.Random(1)
    means = [sum(backoff_delay(n, 1.0, 30.0, rng) for _ in range(4000)) / 4000 for n in range(1, 9)]
    assert means[0] < means[1] < means[2] < means[3] < means[4]  # 0.5, 1, 2, 4, 8 on average
    assert means[5] == pytest.approx(15, rel=0.1)  # 2**5 = 32 is over the cap of 30
    assert means[7] == pytest.approx(15, rel=0.1)


def test_an_empty_filter_matches_everything_but_suppressed_events() -> None:
    f = EventFilter()
    assert f.matches(make_event())
    assert not f.matches(make_event(suppressed_reason="maintenance"))
    assert EventFilter(include_suppressed=True).matches(make_event(suppressed_reason="maintenance"))


def test_each_filter_field_narrows_like_the_events_query() -> None:
    event = make_event(severity=Severity.HIGH, event_type="disk_full", host="db-1", service="pg", score=7.5)
    assert EventFilter(severity=("critical", "high")).matches(event)
    assert not EventFilter(severity=("critical",)).matches(event)
    assert EventFilter(event_type="disk_full").matches(event)
    assert not EventFilter(event_type="disk").matches(event)
    assert EventFilter(host="db-1", service="pg").matches(event)
    assert not EventFilter(host="DB-1").matches(event)  # exact, as GET /api/v1/events
    assert not EventFilter(service="nginx").matches(event)
    assert EventFilter(min_score=7.5).matches(event)
    assert not EventFilter(min_score=7.6).matches(event)
    assert not EventFilter(min_score=0).matches(make_event(score=None))  # no score: no match
    assert not EventFilter(host="db-1").matches(make_event(host=None))


def test_the_payload_carries_the_events_as_the_api_lists_them() -> None:
    event = make_event(raw="<13>raw text", metadata={"k": [1, 2]})
    event.id = 42
    payload = msgspec.json.decode(encode_payload(7, [event]))
    assert payload["subscription_id"] == 7
    [sent] = payload["events"]
    assert sent["id"] == 42
    assert sent["metadata"] == {"k": [1, 2]}
    assert sent["severity"] == "high"
    assert "raw" not in sent
