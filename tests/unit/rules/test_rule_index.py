"""`RuleIndex` returns every rule that matches an event, in the given order, and skips rules that cannot."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from opsresponder.core.event import Event
from opsresponder.core.severity import Severity
from opsresponder.rules.conditions import compile_conditions
from opsresponder.rules.index import RuleIndex
from tests.condition_docs import condition_docs, events
from tests.factories import make_event


def _index(docs: list[dict[str, Any]]) -> RuleIndex[int]:
    return RuleIndex((i, compile_conditions(doc)) for i, doc in enumerate(docs))


def test_rules_that_cannot_match_are_not_candidates() -> None:
    index = _index(
        [
            {"event_type": "disk_full", "severity": "critical"},
            {"event_type": {"$in": ["cpu", "disk_full"]}},
            {"source": "zabbix", "metadata.cpu": {"$gt": 90}},
            {"severity": {"$gte": "high"}, "host": {"$regex": "^web"}},  # critical or high
            {"$or": [{"event_type": "cpu"}, {"host": "db"}]},  # no top-level requirement: always evaluated
            {"event_type": "a", "$and": [{"event_type": "b"}]},  # contradictory: never a candidate
        ]
    )

    def candidates(**fields: Any) -> list[int]:
        return [rule for rule, _ in index.candidates(make_event(**fields))]

    assert candidates(event_type="disk_full", source="zabbix", severity=Severity.LOW) == [1, 2, 4]
    assert candidates(event_type="disk_full", source="zabbix", severity=Severity.CRITICAL) == [0, 1, 2, 3, 4]
    assert candidates(event_type="cpu", source="prometheus", severity=Severity.HIGH) == [1, 3, 4]
    assert candidates(event_type="other", source="prometheus", severity=Severity.INFO) == [4]
    assert index.size == 6


def test_the_cache_of_combinations_is_bounded() -> None:
    index = RuleIndex([(0, compile_conditions({"event_type": "a"}))], max_combinations=2)
    for event_type in ("a", "b", "c", "a"):
        assert [r for r, _ in index.candidates(make_event(event_type=event_type))] == (
            [0] if event_type == "a" else []
        )
    assert index.cached_combinations <= 2


@settings(max_examples=150, deadline=None)
@given(docs=st.lists(condition_docs, max_size=12), batch=st.lists(events(), min_size=1, max_size=6))
def test_the_index_finds_exactly_the_matching_rules(docs: list[dict[str, Any]], batch: list[Event]) -> None:
    conditions = [compile_conditions(doc) for doc in docs]
    index = RuleIndex(enumerate(conditions))
    for event in batch:
        assert index.matching(event) == [i for i, c in enumerate(conditions) if c.matches(event)], docs


def test_what_the_index_decides_is_not_checked_again() -> None:
    index = RuleIndex(
        [
            (0, compile_conditions({"event_type": {"$in": ["a", "b"]}, "severity": {"$gte": "high"}})),
            (1, compile_conditions({"source": "zabbix", "host": "db"})),
            (2, compile_conditions({"event_type": "a", "host": "db", "metadata.cpu": {"$gt": 90}})),
        ]
    )
    found = index.lookup(make_event(event_type="a", source="zabbix", severity=Severity.CRITICAL, host="web"))
    [(first, nothing), (second, host), (third, both)] = found.checks
    assert (first, second, third) == (0, 1, 2)
    assert nothing is None  # event_type and severity were all there was to check
    assert host is not None and not host(make_event(host="web")) and host(make_event(host="db"))
    assert both is not None and both(make_event(event_type="other", host="db", metadata={"cpu": 95}))
    assert not both(make_event(event_type="a", host="db", metadata={"cpu": 5}))


def test_the_note_is_made_once_per_combination() -> None:
    made: list[list[int]] = []

    def describe(rules: list[int]) -> object:
        made.append(rules)
        return len(rules)

    index = RuleIndex([(0, compile_conditions({"event_type": "a"}))], describe=describe)
    assert index.lookup(make_event(event_type="a")).note == 1
    assert index.lookup(make_event(event_type="a")).note == 1
    assert index.lookup(make_event(event_type="b")).note == 0
    assert made == [[0], []]
