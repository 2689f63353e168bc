"""Batch: the events of one batch and what the stages add, typed by their keys."""

from __future__ import annotations

import pytest

from opsresponder.core.batch import Batch, BatchKey, TraceEntry
from tests.factories import make_event

SCORES: BatchKey[dict[str, float]] = BatchKey("scores")
FIRED: BatchKey[list[str]] = BatchKey("fired")


def test_an_addition_is_read_back_under_its_key_and_absent_ones_are_none() -> None:
    batch = Batch([make_event()])
    assert batch.get(SCORES) is None
    batch.add(SCORES, {"fp": 0.5})
    scores = batch.get(SCORES)
    assert scores == {"fp": 0.5}
    assert batch.get(FIRED) is None


def test_two_stages_claiming_one_key_is_an_error() -> None:
    batch = Batch([])
    batch.add(FIRED, ["a"])
    with pytest.raises(KeyError, match="fired"):
        batch.add(FIRED, ["b"])
    assert batch.get(FIRED) == ["a"]


def test_trace_entries_refer_to_their_events() -> None:
    event = make_event()
    batch = Batch([event])
    batch.trace.append(TraceEntry(event, "silence", "matched silence 7"))
    assert batch.trace[0].event is batch.events[0]


def test_each_event_is_reported_not_stored_once() -> None:
    a, b, c = make_event(title="a"), make_event(title="b"), make_event(title="c")
    batch = Batch([a, b, c])
    assert batch.report_not_stored([b]) == [b]
    assert batch.report_not_stored([a, b]) == [a]  # b was reported already: its hooks ran for it
    assert batch.report_not_stored([b, a]) == []
    assert batch.report_not_stored([c]) == [c]
