"""Overlap between rules: identical conditions and coverage, by indexed value sets and other conjuncts."""

from __future__ import annotations

from typing import Any

import pytest

from opsresponder.rules.conditions import compile_conditions
from opsresponder.rules.overlap import OtherRule, RuleShape, overlap_warnings


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
