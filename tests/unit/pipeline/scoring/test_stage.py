"""The score stage over a batch: score, factors and trace per event; repetitions counted per fingerprint."""

from __future__ import annotations

from opsresponder.config import ScoringConfig, settings_from_tree
from opsresponder.core.batch import Batch
from opsresponder.core.severity import Severity
from opsresponder.pipeline.scoring import RepetitionCounter, Score, stored_sentence
from tests.factories import make_event


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_each_event_gets_its_score_factors_and_a_compact_trace_entry_read_as_a_sentence() -> None:
    stage = Score(ScoringConfig())
    event = make_event(
        severity=Severity.HIGH,
        fingerprint="fp",
        metadata={"asset": {"name": "db-1", "criticality": "critical", "environment": "production"}},
    )
    batch = Batch([event])
    await stage.run(batch)
    assert event.score == 65.0
    assert event.metadata["score_factors"] == {
        "severity": 30.0,
        "criticality": 25.0,
        "environment": 10.0,
        "correlation": 0.0,
        "repetition": 0.0,
        "business_hours": 0.0,
    }
    assert event.metadata["score_missing"] == ["correlation", "business_hours"]
    [entry] = batch.trace
    assert (entry.event, entry.stage, entry.detail) == (event, "score", "0")  # earlier arrivals only
    assert stored_sentence(event, entry.detail) == (
        "score 65: severity high +30, criticality critical +25, environment production +10, "
        "repetition 0 earlier +0; missing: correlation, business_hours"
    )


async def test_repeated_arrivals_raise_the_repetition_factor_within_the_window() -> None:
    ticks = Ticks()
    config = settings_from_tree({"scoring": {"repetition": {"window_minutes": 1}}}).scoring
    stage = Score(config, monotonic=ticks)
    batch = Batch([make_event(fingerprint="fp") for _ in range(3)] + [make_event(fingerprint="other")])
    await stage.run(batch)
    assert [e.metadata["score_factors"]["repetition"] for e in batch.events] == [0.0, 2.9, 4.6, 0.0]
    ticks.now += 59
    later = Batch([make_event(fingerprint="fp")])
    await stage.run(later)
    assert later.events[0].metadata["score_factors"]["repetition"] == 5.8  # 3 earlier
    ticks.now += 61  # quiet for more than the window: a new run
    again = Batch([make_event(fingerprint="fp")])
    await stage.run(again)
    assert again.events[0].metadata["score_factors"]["repetition"] == 0.0


async def test_a_senders_stale_score_missing_is_removed_when_nothing_is_missing() -> None:
    event = make_event(
        metadata={
            "score_missing": ["made up"],
            "asset": {"criticality": "low", "environment": "dev", "in_business_hours": False},
            "correlation": {"group_size": 1},
        }
    )
    await Score(ScoringConfig()).run(Batch([event]))
    assert "score_missing" not in event.metadata


def test_the_repetition_counter_is_bounded_forgetting_the_least_recently_seen() -> None:
    counter = RepetitionCounter(window_seconds=60, max_fingerprints=2)
    assert [counter.observe(fp, 0) for fp in ("a", "b", "a", "c")] == [0, 0, 1, 0]
    assert len(counter) == 2
    assert counter.observe("a", 1) == 2  # kept: seen more recently than b
    assert counter.observe("b", 1) == 0  # forgotten


async def test_the_entry_counts_earlier_arrivals_and_the_sentence_says_them() -> None:
    stage = Score(ScoringConfig())
    batch = Batch([make_event(fingerprint="a", severity=Severity.LOW) for _ in range(3)])
    batch.events.append(make_event(fingerprint="c", severity=Severity.CRITICAL, duplicate_count=12))
    await stage.run(batch)
    assert [t.detail for t in batch.trace] == ["0", "1", "2", "12"]
    third = stored_sentence(batch.events[2], "2")
    assert third.startswith("score 15: severity low +10, repetition 2 earlier +4.6")
    assert stored_sentence(batch.events[3], "12") == (
        "score 50: severity critical +40, repetition 12 earlier +10; "
        "missing: criticality, environment, correlation, business_hours"
    )


def test_a_stored_sentence_or_an_event_without_its_factors_is_served_as_stored() -> None:
    old = "score 65: severity high +30, repetition 0 earlier +0"
    assert stored_sentence(make_event(), old) == old
    assert stored_sentence(make_event(score=40.0, metadata={"score_factors": {"severity": 40}}), "3") == "3"
