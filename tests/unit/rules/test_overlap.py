"""Overlap between rules: identical conditions and coverage, by indexed value sets and other conjuncts."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsresponder.rules.conditions import ConditionError, compile_conditions
from opsresponder.rules.overlap import OtherRule, RuleShape, overlap_warnings
from tests.condition_docs import condition_docs, events


def shape(doc: dict[str, Any]) -> RuleShape:
    return RuleShape.of(doc, compile_conditions(doc))


BASE: dict[str, Any] = {"event_type": "cpu", "severity": ["critical", "high"], "metadata.cpu": {"$gt": 90}}


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        # The same conditions written differently: list order, $and, an operator object.
        ({"severity": ["high", "critical"], "$and": [{"metadata.cpu": {"$gt": 90}}], "event_type": "cpu"},
         "the same conditions"),
        # Narrower: one severity of the two, or one more condition.
        ({**BASE, "severity": "critical"}, "every event this rule matches also matches"),
        ({**BASE, "host": "web-1"}, "every event this rule matches also matches"),
        ({**BASE, "severity": {"$gte": "critical"}}, "every event this rule matches also matches"),
        # Wider: any severity at least high is the same set; without the threshold it is wider.
        ({"event_type": "cpu", "severity": {"$gte": "high"}}, "matches also matches this rule"),
        # No overlap: another event type, another threshold, or an event_type only inside $and.
        ({**BASE, "event_type": "disk"}, None),
        ({**BASE, "metadata.cpu": {"$gt": 80}}, None),
        ({"$and": [{"event_type": "cpu"}], "severity": ["critical", "high"], "metadata.cpu": {"$gt": 91}},
         None),
    ],
)  # fmt: skip
def test_overlap(new: dict[str, Any], expected: str | None) -> None:
    warnings = overlap_warnings(shape(new), [OtherRule(7, "cpu", shape(BASE))])
    if expected is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and expected in warnings[0], warnings
        assert warnings[0].startswith("overlaps active rule 7 ('cpu')")


@settings(max_examples=150, deadline=None)
@given(
    first=condition_docs,
    second=condition_docs,
    extra=condition_docs,
    batch=st.lists(events(), min_size=1, max_size=8),
)
def test_a_rule_that_covers_another_matches_every_event_the_other_matches(
    first: dict[str, Any], second: dict[str, Any], extra: dict[str, Any], batch: list[Any]
) -> None:
    # A narrower variant of `first` (one more condition) is covered by it: the case overlap looks for.
    narrower = {"$and": [first, extra]} if first and extra else {**extra, **first}
    for a_doc, b_doc in [(first, second), (first, narrower), (narrower, first)]:
        try:
            a, b = compile_conditions(a_doc), compile_conditions(b_doc)
        except ConditionError:
            continue
        if RuleShape.of(a_doc, a).covers(RuleShape.of(b_doc, b)):
            for event in batch:
                assert not b.matches(event) or a.matches(event), (a_doc, b_doc, event)
